package vips

import (
	"context"
	"math"

	govips "github.com/davidbyttow/govips/v2/vips"

	"github.com/imaged/imaged"
)

func init() {
	register(opSpec{OpSpec: imaged.OpSpec{Name: "blur", Summary: "blurs the image (Gaussian)", Frames: imaged.FramesEach},
		parse: parseBlur, heavy: true, rereads: always})
	register(opSpec{OpSpec: imaged.OpSpec{Name: "sharpen", Summary: "sharpens the image (unsharp mask)", Frames: imaged.FramesEach},
		parse: parseSharpen, heavy: true, rereads: always})
	register(opSpec{OpSpec: imaged.OpSpec{Name: "pixelate", Summary: "turns the image into blocks of one colour", Frames: imaged.FramesEach},
		parse: parsePixelate, heavy: true, rereads: always})
	register(opSpec{OpSpec: imaged.OpSpec{Name: "emboss", Summary: "makes the image look stamped in relief", Frames: imaged.FramesEach},
		parse: parseEmboss, heavy: true})
}

// parseBlur: a Gaussian blur of sigma pixels (0.1..100, default 2).
func parseBlur(p *Processor, i int, op imaged.Op) (step, error) {
	var a struct {
		opName
		Sigma *float64 `json:"sigma"`
	}
	if err := op.DecodeArgs(i, &a); err != nil {
		return nil, err
	}
	sigma := 2.0
	if err := optional(&sigma, i, "blur", "sigma", a.Sigma, 0.1, 100); err != nil {
		return nil, err
	}
	return funcStep(func(img *govips.ImageRef) error { return img.GaussianBlur(sigma) }), nil
}

// parseSharpen: libvips' unsharp mask on lightness; sigma (0.1..10, default 1) is the radius
// of the mask, amount (0..20, default 3) the strength in edge areas.
func parseSharpen(p *Processor, i int, op imaged.Op) (step, error) {
	var a struct {
		opName
		Sigma  *float64 `json:"sigma"`
		Amount *float64 `json:"amount"`
	}
	if err := op.DecodeArgs(i, &a); err != nil {
		return nil, err
	}
	sigma, amount := 1.0, 3.0
	if err := optional(&sigma, i, "sharpen", "sigma", a.Sigma, 0.1, 10); err != nil {
		return nil, err
	}
	if err := optional(&amount, i, "sharpen", "amount", a.Amount, 0, 20); err != nil {
		return nil, err
	}
	return funcStep(func(img *govips.ImageRef) error {
		if err := img.Sharpen(sigma, 2, amount); err != nil {
			return err
		}
		return img.Cast(govips.BandFormatUchar)
	}), nil
}

// parsePixelate: blocks of size×size pixels (2..1000, default 10), each the mean of its area.
func parsePixelate(p *Processor, i int, op imaged.Op) (step, error) {
	var a struct {
		opName
		Size *int `json:"size"`
	}
	if err := op.DecodeArgs(i, &a); err != nil {
		return nil, err
	}
	size := 10
	if err := optional(&size, i, "pixelate", "size", a.Size, 2, 1000); err != nil {
		return nil, err
	}
	return funcStep(func(img *govips.ImageRef) error { return pixelate(img, size) }), nil
}

func pixelate(img *govips.ImageRef, size int) error {
	w, h := img.Width(), img.Height()
	nw, nh := (w+size-1)/size, (h+size-1)/size
	if err := img.ResizeWithVScale(float64(nw)/float64(w), float64(nh)/float64(h), govips.KernelLinear); err != nil {
		return err
	}
	if img.Width() != nw || img.Height() != nh {
		if err := img.ExtractArea(0, 0, min(nw, img.Width()), min(nh, img.Height())); err != nil {
			return err
		}
	}
	if err := img.Zoom(size, size); err != nil {
		return err
	}
	if img.Width() < w || img.Height() < h {
		if err := img.Embed(0, 0, max(w, img.Width()), max(h, img.Height()), govips.ExtendCopy); err != nil {
			return err
		}
	}
	return img.ExtractArea(0, 0, w, h)
}

// embossStep shades the image as if lit from the top left: a 3×3 relief kernel over the
// luminance, centred on mid-grey and scaled by strength (0.1..10, default 1). The result is grey.
type embossStep struct{ strength float64 }

func parseEmboss(p *Processor, i int, op imaged.Op) (step, error) {
	var a struct {
		opName
		Strength *float64 `json:"strength"`
	}
	if err := op.DecodeArgs(i, &a); err != nil {
		return nil, err
	}
	e := &embossStep{strength: 1}
	if err := optional(&e.strength, i, "emboss", "strength", a.Strength, 0.1, 10); err != nil {
		return nil, err
	}
	return e, nil
}

func (e *embossStep) apply(ctx context.Context, s *state) error {
	g, err := grayPixels(s.img, 0)
	if err != nil {
		return err
	}
	out := make([]byte, len(g.pix))
	w, h := g.w, g.h
	at := func(x, y int) float64 {
		x = min(max(x, 0), w-1)
		y = min(max(y, 0), h-1)
		return float64(g.pix[y*w+x])
	}
	for y := 0; y < h; y++ {
		if y%256 == 0 && ctx.Err() != nil {
			return ctx.Err()
		}
		for x := 0; x < w; x++ {
			// Kernel [-1 -1 0; -1 0 1; 0 1 1]: bright below-right of dark reads as a lit edge.
			v := -at(x-1, y-1) - at(x, y-1) - at(x-1, y) + at(x+1, y) + at(x, y+1) + at(x+1, y+1)
			out[y*w+x] = clampByte(128 + e.strength*v/2)
		}
	}
	img, err := grayImage(out, w, h)
	if err != nil {
		return err
	}
	s.replace(img)
	return nil
}

func clampByte(v float64) byte {
	v = math.Round(v)
	if v < 0 {
		return 0
	}
	if v > 255 {
		return 255
	}
	return byte(v)
}
