package ocr

import (
	"math"
	"sort"
)

type point struct{ x, y float64 }

// convexHull returns the hull of pts counter-clockwise (Andrew's monotone chain).
func convexHull(pts []point) []point {
	if len(pts) < 3 {
		return pts
	}
	sort.Slice(pts, func(i, j int) bool {
		if pts[i].x != pts[j].x {
			return pts[i].x < pts[j].x
		}
		return pts[i].y < pts[j].y
	})
	cross := func(o, a, b point) float64 { return (a.x-o.x)*(b.y-o.y) - (a.y-o.y)*(b.x-o.x) }
	h := make([]point, 0, 2*len(pts))
	for _, p := range pts {
		for len(h) >= 2 && cross(h[len(h)-2], h[len(h)-1], p) <= 0 {
			h = h[:len(h)-1]
		}
		h = append(h, p)
	}
	lower := len(h) + 1
	for i := len(pts) - 2; i >= 0; i-- {
		p := pts[i]
		for len(h) >= lower && cross(h[len(h)-2], h[len(h)-1], p) <= 0 {
			h = h[:len(h)-1]
		}
		h = append(h, p)
	}
	return h[:len(h)-1]
}

// rotatedRect is a rectangle of size w×h centred on c, its w side along angle (radians).
type rotatedRect struct {
	c     point
	w, h  float64
	angle float64
}

// minAreaRect is the smallest rectangle, at any angle, that holds the points: one of its sides
// lies along a hull edge, so trying every edge finds it.
func minAreaRect(pts []point) rotatedRect {
	hull := convexHull(append([]point(nil), pts...))
	if len(hull) == 0 {
		return rotatedRect{}
	}
	if len(hull) == 1 {
		return rotatedRect{c: hull[0]}
	}
	best := rotatedRect{w: math.Inf(1), h: 1}
	for i := range hull {
		a, b := hull[i], hull[(i+1)%len(hull)]
		ang := math.Atan2(b.y-a.y, b.x-a.x)
		c, s := math.Cos(ang), math.Sin(ang)
		minU, maxU, minV, maxV := math.Inf(1), math.Inf(-1), math.Inf(1), math.Inf(-1)
		for _, p := range hull {
			u := p.x*c + p.y*s
			v := -p.x*s + p.y*c
			minU, maxU = math.Min(minU, u), math.Max(maxU, u)
			minV, maxV = math.Min(minV, v), math.Max(maxV, v)
		}
		w, h := maxU-minU, maxV-minV
		if w*h < best.w*best.h {
			cu, cv := (minU+maxU)/2, (minV+maxV)/2
			best = rotatedRect{c: point{cu*c - cv*s, cu*s + cv*c}, w: w, h: h, angle: ang}
		}
	}
	return best
}

// corners returns the rectangle's corners ordered top-left, top-right, bottom-right,
// bottom-left for text running left to right (the long side taken as the reading direction).
func (r rotatedRect) corners() [4]point {
	c, s := math.Cos(r.angle), math.Sin(r.angle)
	hw, hh := r.w/2, r.h/2
	var p [4]point
	for i, d := range [4][2]float64{{-hw, -hh}, {hw, -hh}, {hw, hh}, {-hw, hh}} {
		p[i] = point{r.c.x + d[0]*c - d[1]*s, r.c.y + d[0]*s + d[1]*c}
	}
	return orderQuad(p)
}

// orderQuad orders four corners as PaddleOCR does: the two leftmost are the left side (upper one
// first), the two others the right side.
func orderQuad(p [4]point) [4]point {
	q := p
	sort.Slice(q[:], func(i, j int) bool { return q[i].x < q[j].x })
	tl, bl := q[0], q[1]
	if bl.y < tl.y {
		tl, bl = bl, tl
	}
	tr, br := q[2], q[3]
	if br.y < tr.y {
		tr, br = br, tr
	}
	return [4]point{tl, tr, br, bl}
}

// homography solves for the projective map that sends src[i] to dst[i].
func homography(src, dst [4]point) [9]float64 {
	var a [8][9]float64
	for i := 0; i < 4; i++ {
		x, y, u, v := src[i].x, src[i].y, dst[i].x, dst[i].y
		a[2*i] = [9]float64{x, y, 1, 0, 0, 0, -u * x, -u * y, u}
		a[2*i+1] = [9]float64{0, 0, 0, x, y, 1, -v * x, -v * y, v}
	}
	// Gauss-Jordan elimination with partial pivoting.
	for col := 0; col < 8; col++ {
		piv := col
		for r := col + 1; r < 8; r++ {
			if math.Abs(a[r][col]) > math.Abs(a[piv][col]) {
				piv = r
			}
		}
		a[col], a[piv] = a[piv], a[col]
		if math.Abs(a[col][col]) < 1e-12 {
			continue
		}
		for r := 0; r < 8; r++ {
			if r == col {
				continue
			}
			f := a[r][col] / a[col][col]
			for k := col; k < 9; k++ {
				a[r][k] -= f * a[col][k]
			}
		}
	}
	var h [9]float64
	for i := 0; i < 8; i++ {
		if a[i][i] != 0 {
			h[i] = a[i][8] / a[i][i]
		}
	}
	h[8] = 1
	return h
}

func applyH(h [9]float64, x, y float64) (float64, float64) {
	w := h[6]*x + h[7]*y + h[8]
	return (h[0]*x + h[1]*y + h[2]) / w, (h[3]*x + h[4]*y + h[5]) / w
}

// perspectiveCrop cuts the quadrilateral q (ordered tl, tr, br, bl) out of im into a w×h
// upright image, sampling bilinearly.
func perspectiveCrop(im Image, q [4]point, w, h int) Image {
	dst := [4]point{{0, 0}, {float64(w), 0}, {float64(w), float64(h)}, {0, float64(h)}}
	hm := homography(dst, q)
	out := Image{Width: w, Height: h, Bands: im.Bands, Data: make([]byte, w*h*im.Bands)}
	for y := 0; y < h; y++ {
		for x := 0; x < w; x++ {
			sx, sy := applyH(hm, float64(x)+0.5, float64(y)+0.5)
			for k := 0; k < im.Bands; k++ {
				out.Data[(y*w+x)*im.Bands+k] = uint8(im.at(sx-0.5, sy-0.5, k) + 0.5)
			}
		}
	}
	return out
}

func dist(a, b point) float64 { return math.Hypot(a.x-b.x, a.y-b.y) }

func boundsOf(pts [4][2]float64, w, h int) Box {
	x1, y1, x2, y2 := math.Inf(1), math.Inf(1), math.Inf(-1), math.Inf(-1)
	for _, p := range pts {
		x1, y1 = math.Min(x1, p[0]), math.Min(y1, p[1])
		x2, y2 = math.Max(x2, p[0]), math.Max(y2, p[1])
	}
	clamp := func(v float64, hi int) int { return max(0, min(hi, int(math.Round(v)))) }
	return Box{clamp(x1, w), clamp(y1, h), clamp(x2, w), clamp(y2, h)}
}
