package detect

import (
	"context"
	"encoding/json"
	"fmt"
	"image"
	"math"

	"golang.org/x/image/font"
	"golang.org/x/image/font/basicfont"
	"golang.org/x/image/math/fixed"

	"github.com/imaged/imaged"
)

// palette gives each class a colour that stays readable under white text.
var palette = [][3]byte{
	{230, 25, 75}, {60, 180, 75}, {0, 130, 200}, {245, 130, 48}, {145, 30, 180},
	{70, 150, 150}, {240, 50, 230}, {128, 128, 0}, {0, 0, 128}, {170, 110, 40},
	{128, 0, 0}, {0, 128, 128},
}

// Annotator serves the annotate op: it draws the boxes of the pipeline's latest detect analysis
// (or of a detection it runs itself when there is none) onto the image.
type Annotator struct{ svc *Service }

var _ imaged.Painter = Annotator{}

// Annotator returns the painter of the annotate op, which detects with s when the pipeline has
// not.
func (s *Service) Annotator() Annotator { return Annotator{svc: s} }

// Spec is the annotate op's registered traits.
func (Annotator) Spec() imaged.OpSpec { return specs.annotate }

// Validate checks the op's parameters: it has none.
func (Annotator) Validate(i int, op imaged.Op) error {
	var args struct {
		Op string `json:"op"`
	}
	return op.DecodeArgs(i, &args)
}

// Paint draws the detections onto px.
func (a Annotator) Paint(ctx context.Context, _ imaged.Op, px imaged.Pixels, analyses []imaged.Analysis) (imaged.Pixels, error) {
	img := Image(px)
	var dets []Detection
	found := false
	for i := len(analyses) - 1; i >= 0 && !found; i-- {
		if analyses[i].Op != specs.detect.Name {
			continue
		}
		var res Result
		if err := json.Unmarshal(analyses[i].Result, &res); err != nil {
			return imaged.Pixels{}, err
		}
		// Normalised boxes follow the image through resizes made after the detection.
		for _, d := range res.Detections {
			d.Box = Box{X1: d.BoxNorm.X1 * float64(px.Width), Y1: d.BoxNorm.Y1 * float64(px.Height),
				X2: d.BoxNorm.X2 * float64(px.Width), Y2: d.BoxNorm.Y2 * float64(px.Height)}
			dets = append(dets, d)
		}
		found = true
	}
	if !found {
		res, err := a.svc.Detect(ctx, "", img, DefaultOptions())
		if err != nil {
			return imaged.Pixels{}, err
		}
		dets = res.Detections
	}
	return imaged.Pixels(Annotate(img, dets)), nil
}

// Annotate returns a copy of img with each detection's box outlined and labelled with its class
// and confidence. The copy is RGB, or RGBA when img has alpha; img is not changed. Line width and
// text grow with the image so the marks stay visible on large photos.
func Annotate(img Image, dets []Detection) Image {
	out := toRGB(img)
	if !out.valid() {
		return out
	}
	short := min(out.Width, out.Height)
	thick := max(2, int(math.Round(float64(short)/250)))
	scale := max(1, int(math.Round(float64(short)/400)))
	for _, d := range dets {
		c := palette[d.ClassID%len(palette)]
		x1, y1 := int(math.Floor(d.Box.X1)), int(math.Floor(d.Box.Y1))
		x2, y2 := int(math.Ceil(d.Box.X2))-1, int(math.Ceil(d.Box.Y2))-1
		fill(out, x1, y1, x2, y1+thick-1, c)
		fill(out, x1, y2-thick+1, x2, y2, c)
		fill(out, x1, y1, x1+thick-1, y2, c)
		fill(out, x2-thick+1, y1, x2, y2, c)
		label(out, fmt.Sprintf("%s %.2f", d.ClassName, d.Score), x1, y1, scale, c)
	}
	return out
}

// toRGB copies img as 3 bands, or 4 when it has alpha.
func toRGB(img Image) Image {
	bands := 3
	if img.Bands == 2 || img.Bands == 4 {
		bands = 4
	}
	out := Image{Width: img.Width, Height: img.Height, Bands: bands, Data: make([]byte, img.Width*img.Height*bands)}
	if !img.valid() {
		return out
	}
	for p := 0; p < img.Width*img.Height; p++ {
		s, o := img.Data[p*img.Bands:], out.Data[p*bands:]
		switch img.Bands {
		case 1, 2:
			o[0], o[1], o[2] = s[0], s[0], s[0]
		default:
			o[0], o[1], o[2] = s[0], s[1], s[2]
		}
		if bands == 4 {
			o[3] = s[img.Bands-1]
		}
	}
	return out
}

// fill paints the rectangle x1..x2, y1..y2 (inclusive, clipped to the image) opaque.
func fill(im Image, x1, y1, x2, y2 int, c [3]byte) {
	x1, y1 = max(x1, 0), max(y1, 0)
	x2, y2 = min(x2, im.Width-1), min(y2, im.Height-1)
	for y := y1; y <= y2; y++ {
		for x := x1; x <= x2; x++ {
			o := im.Data[(y*im.Width+x)*im.Bands:]
			o[0], o[1], o[2] = c[0], c[1], c[2]
			if im.Bands == 4 {
				o[3] = 255
			}
		}
	}
}

// label writes text in white on a box of colour c, above (x, y) where there is room, else just
// inside; each font pixel becomes scale×scale pixels.
func label(im Image, text string, x, y, scale int, c [3]byte) {
	face := basicfont.Face7x13
	w := font.MeasureString(face, text).Ceil()
	h := face.Height
	mask := image.NewAlpha(image.Rect(0, 0, w, h))
	dr := font.Drawer{Dst: mask, Src: image.Opaque, Face: face, Dot: fixed.P(0, face.Ascent)}
	dr.DrawString(text)
	pad := scale
	bw, bh := w*scale+2*pad, h*scale+2*pad
	top := y - bh
	if top < 0 {
		top = y
	}
	left := min(max(x, 0), max(im.Width-bw, 0))
	fill(im, left, top, left+bw-1, top+bh-1, c)
	for my := 0; my < h; my++ {
		for mx := 0; mx < w; mx++ {
			if mask.AlphaAt(mx, my).A < 128 {
				continue
			}
			px, py := left+pad+mx*scale, top+pad+my*scale
			fill(im, px, py, px+scale-1, py+scale-1, [3]byte{255, 255, 255})
		}
	}
}
