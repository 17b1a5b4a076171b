package ocr

import (
	"math"
)

// Preprocess prepares photographed or scanned documents before recognition. Results are mapped
// back to the pixels of the image as given.
type Preprocess struct {
	// Grayscale drops colour (and composes alpha over white).
	Grayscale bool `json:"grayscale"`
	// Upscale enlarges the image by this factor (1–4) so that small text reaches the sizes the
	// engines read best; 0 or 1 leaves it.
	Upscale float64 `json:"upscale"`
	// Deskew straightens text tilted by up to 10°.
	Deskew bool `json:"deskew"`
}

// transform maps points of the prepared image back to the original.
type transform struct {
	scale        float64
	angle        float64 // degrees the prepared image was turned
	cx, cy       float64 // centre of that turn, in prepared pixels
	origW, origH int
}

func (t transform) back(x, y float64) (float64, float64) {
	if t.angle != 0 {
		rad := t.angle * math.Pi / 180
		c, s := math.Cos(rad), math.Sin(rad)
		dx, dy := x-t.cx, y-t.cy
		x, y = c*dx-s*dy+t.cx, s*dx+c*dy+t.cy
	}
	return x / t.scale, y / t.scale
}

func (p Preprocess) apply(img Image) (Image, transform) {
	t := transform{scale: 1, origW: img.Width, origH: img.Height}
	if p.Grayscale {
		img = img.gray()
	}
	if p.Upscale > 1 {
		t.scale = p.Upscale
		img = img.resize(int(math.Round(float64(img.Width)*p.Upscale)), int(math.Round(float64(img.Height)*p.Upscale)))
	}
	if p.Deskew {
		if a := estimateSkew(img); math.Abs(a) >= 0.2 {
			img = img.rotate(a)
			t.angle = a
			t.cx, t.cy = float64(img.Width-1)/2, float64(img.Height-1)/2
		}
	}
	return img, t
}

// estimateSkew finds the turn (degrees, as Image.rotate takes it) that makes text lines
// horizontal: the one whose row profile of dark pixels is sharpest.
func estimateSkew(img Image) float64 {
	g := img.gray()
	if f := 800.0 / float64(max(g.Width, g.Height)); f < 1 {
		g = g.resize(max(1, int(float64(g.Width)*f)), max(1, int(float64(g.Height)*f)))
	}
	var sum int
	for _, v := range g.Data {
		sum += int(v)
	}
	thresh := uint8(sum / len(g.Data) * 3 / 4)
	type px struct{ x, y float64 }
	var dark []px
	cx, cy := float64(g.Width-1)/2, float64(g.Height-1)/2
	for y := 0; y < g.Height; y++ {
		for x := 0; x < g.Width; x++ {
			if g.Data[y*g.Width+x] < thresh {
				dark = append(dark, px{float64(x) - cx, float64(y) - cy})
			}
		}
	}
	if len(dark) < 50 {
		return 0
	}
	diag := int(math.Hypot(float64(g.Width), float64(g.Height))) + 2
	bins := make([]float64, diag)
	sharpness := func(deg float64) float64 {
		rad := deg * math.Pi / 180
		c, s := math.Cos(rad), math.Sin(rad)
		clear(bins)
		for _, p := range dark {
			// Row of the pixel once the image is turned by deg (the inverse of Image.rotate's map).
			y := -s*p.x + c*p.y + float64(diag)/2
			if i := int(y); i >= 0 && i < diag {
				bins[i]++
			}
		}
		var v float64
		for i := 1; i < diag; i++ {
			d := bins[i] - bins[i-1]
			v += d * d
		}
		return v
	}
	best, bestV := 0.0, sharpness(0)
	for a := -10.0; a <= 10; a += 0.5 {
		if v := sharpness(a); v > bestV {
			best, bestV = a, v
		}
	}
	centre := best
	for a := centre - 0.4; a <= centre+0.4; a += 0.1 {
		if v := sharpness(a); v > bestV {
			best, bestV = a, v
		}
	}
	return best
}

// mapBack moves every coordinate of res from the prepared image to the original.
func (t transform) mapBack(res *Result) {
	if t.scale == 1 && t.angle == 0 {
		return
	}
	mapBox := func(b Box) Box {
		pts := rectPoints(b)
		for i := range pts {
			pts[i][0], pts[i][1] = t.back(pts[i][0], pts[i][1])
		}
		return boundsOf(pts, t.origW, t.origH)
	}
	for i := range res.Lines {
		l := &res.Lines[i]
		for k := range l.Points {
			l.Points[k][0], l.Points[k][1] = t.back(l.Points[k][0], l.Points[k][1])
		}
		l.Box = boundsOf(l.Points, t.origW, t.origH)
		for j := range l.Words {
			l.Words[j].Box = mapBox(l.Words[j].Box)
		}
	}
	for _, r := range res.Raw {
		t.mapBack(r)
	}
}
