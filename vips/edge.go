package vips

import (
	"context"

	"github.com/imaged/imaged"
)

// edgeStep finds edges in the luminance and leaves a one-band grey image.
//
// canny (default) is the Canny detector: Gaussian smoothing (sigma, default 1), 3×3 Sobel
// gradients with the L1 magnitude |gx|+|gy|, non-maximum suppression along the gradient, and
// hysteresis between a low and a high threshold of 50×intensity and 150×intensity (OpenCV's
// cv2.Canny(gray, 50·i, 150·i) scale, which the original service used). Edge pixels are 255,
// the rest 0.
//
// sobel is the gradient magnitude itself, |gx|+|gy| scaled by intensity/4 and clipped to 255.
type edgeStep struct {
	method    string
	intensity float64
	sigma     float64
}

func init() {
	register(opSpec{OpSpec: imaged.OpSpec{Name: "edge", Summary: "finds the edges of the image", Frames: imaged.FramesEach},
		parse: parseArgs(parseEdge), heavy: true})
}

type edgeArgs struct {
	opName
	Method    string   `json:"method" doc:"edge detector" enum:"canny,sobel" default:"canny"`
	Intensity *float64 `json:"intensity" doc:"strength of the edges" min:"0.01" max:"10" default:"1"`
	Sigma     *float64 `json:"sigma" doc:"smoothing before detection" min:"0" max:"10" default:"1"`
}

func parseEdge(p *Processor, i int, op imaged.Op, a *edgeArgs) (step, error) {
	e := &edgeStep{method: "canny", intensity: 1, sigma: 1}
	if err := choose(&e.method, i, "edge", "method", a.Method, "canny", "sobel"); err != nil {
		return nil, err
	}
	if err := optional(&e.intensity, i, "edge", "intensity", a.Intensity, 0.01, 10); err != nil {
		return nil, err
	}
	if err := optional(&e.sigma, i, "edge", "sigma", a.Sigma, 0, 10); err != nil {
		return nil, err
	}
	return e, nil
}

func (e *edgeStep) apply(ctx context.Context, s *state) error {
	g, err := grayPixels(s.img, e.sigma)
	if err != nil {
		return err
	}
	var out []byte
	if e.method == "sobel" {
		out, err = sobel(ctx, g, e.intensity)
	} else {
		out, err = canny(ctx, g, 50*e.intensity, 150*e.intensity)
	}
	if err != nil {
		return err
	}
	img, err := grayImage(out, g.w, g.h)
	if err != nil {
		return err
	}
	s.replace(img)
	return nil
}

// gradient returns the 3×3 Sobel gradient at x,y, replicating the border.
func (e *edgeStep) plan(in imaged.Geometry) (imaged.OpPlan, error) {
	cost := 40.0
	if e.sigma > 0 {
		cost += gaussianCost(e.sigma)
	}
	p := greyPlan(in, cost)
	if e.sigma > 0 {
		p.Buffers = window(in.WithBands(1), e.sigma)
	}
	if e.method == "canny" {
		// Canny's magnitudes, two bytes a pixel.
		p.Held = append(p.Held, in.WithBands(2))
	}
	return p, nil
}

func (g gray) gradient(x, y int) (gx, gy int) {
	w, h, p := g.w, g.h, g.pix
	x0, x1 := max(x-1, 0), min(x+1, w-1)
	y0, y1 := max(y-1, 0), min(y+1, h-1)
	r0, r, r1 := y0*w, y*w, y1*w
	a, b, c := int(p[r0+x0]), int(p[r0+x]), int(p[r0+x1])
	d, f := int(p[r+x0]), int(p[r+x1])
	gg, hh, ii := int(p[r1+x0]), int(p[r1+x]), int(p[r1+x1])
	gx = (c + 2*f + ii) - (a + 2*d + gg)
	gy = (gg + 2*hh + ii) - (a + 2*b + c)
	return gx, gy
}

func abs(v int) int {
	if v < 0 {
		return -v
	}
	return v
}

func sobel(ctx context.Context, g gray, intensity float64) ([]byte, error) {
	out := make([]byte, g.w*g.h)
	for y := 0; y < g.h; y++ {
		if y%256 == 0 && ctx.Err() != nil {
			return nil, ctx.Err()
		}
		for x := 0; x < g.w; x++ {
			gx, gy := g.gradient(x, y)
			out[y*g.w+x] = clampByte(float64(abs(gx)+abs(gy)) * intensity / 4)
		}
	}
	return out, nil
}

// canny returns 255 on edges and 0 elsewhere.
func canny(ctx context.Context, g gray, low, high float64) ([]byte, error) {
	w, h := g.w, g.h
	mag := make([]uint16, w*h) // L1 magnitude, at most 4·255·2
	for y := 0; y < h; y++ {
		if y%256 == 0 && ctx.Err() != nil {
			return nil, ctx.Err()
		}
		for x := 0; x < w; x++ {
			gx, gy := g.gradient(x, y)
			mag[y*w+x] = uint16(abs(gx) + abs(gy))
		}
	}
	// Non-maximum suppression: keep a pixel only where its magnitude peaks across the edge,
	// comparing with the two neighbours along the gradient direction quantised to 0°, 45°,
	// 90° or 135°. Ties are broken as OpenCV does (strictly greater on one side). Marks:
	// 0 none, 1 candidate (above low), 2 edge (above high).
	const tan22 = 0.41421356 // tan 22.5°
	out := make([]byte, w*h)
	stack := make([]int32, 0, 1024)
	for y := 1; y < h-1; y++ {
		if y%256 == 0 && ctx.Err() != nil {
			return nil, ctx.Err()
		}
		for x := 1; x < w-1; x++ {
			k := y*w + x
			m := float64(mag[k])
			if m <= low {
				continue
			}
			gx, gy := g.gradient(x, y)
			ax, ay := float64(abs(gx)), float64(abs(gy))
			var n1, n2 int
			switch {
			case ay <= ax*tan22: // gradient across columns: the edge runs vertically
				n1, n2 = k-1, k+1
			case ax <= ay*tan22: // gradient across rows: the edge runs horizontally
				n1, n2 = k-w, k+w
			case (gx < 0) == (gy < 0): // gradient along the main diagonal
				n1, n2 = k-w-1, k+w+1
			default:
				n1, n2 = k-w+1, k+w-1
			}
			if !(m > float64(mag[n1]) && m >= float64(mag[n2])) {
				continue
			}
			if m > high {
				out[k] = 2
				stack = append(stack, int32(k))
			} else {
				out[k] = 1
			}
		}
	}
	// Hysteresis: candidates connected (8-neighbourhood) to an edge become edges.
	for len(stack) > 0 {
		k := int(stack[len(stack)-1])
		stack = stack[:len(stack)-1]
		for _, d := range [8]int{-w - 1, -w, -w + 1, -1, 1, w - 1, w, w + 1} {
			if n := k + d; out[n] == 1 {
				out[n] = 2
				stack = append(stack, int32(n))
			}
		}
	}
	for k, v := range out {
		if v == 2 {
			out[k] = 255
		} else {
			out[k] = 0
		}
	}
	return out, nil
}
