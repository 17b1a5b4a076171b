package vips

import (
	"context"
	"math"

	govips "github.com/davidbyttow/govips/v2/vips"

	"github.com/imaged/imaged"
)

func init() {
	heavyOp := func(name, summary string, params []number, build func(v []float64) step, plan func(v []float64, in imaged.Geometry) imaged.OpPlan, rereads func(step) bool) {
		register(opSpec{OpSpec: imaged.OpSpec{Name: name, Summary: summary, Frames: imaged.FramesEach},
			parse: parseNumbers(name, params, withPlan(build, plan)), heavy: true, rereads: rereads})
	}
	// A Gaussian blur of sigma pixels.
	heavyOp("blur", "blurs the image (Gaussian)", []number{{name: "sigma", lo: 0.1, hi: 100, def: 2}},
		valueStep(func(img *govips.ImageRef, sigma float64) error { return img.GaussianBlur(sigma) }),
		func(v []float64, in imaged.Geometry) imaged.OpPlan {
			p := perMP(gaussianCost(v[0]), in, in.Bands)
			p.Buffers = window(in, v[0])
			return p
		}, always)
	// libvips' unsharp mask on lightness: sigma is the radius of the mask, amount the strength in
	// edge areas.
	heavyOp("sharpen", "sharpens the image (unsharp mask)",
		[]number{{name: "sigma", lo: 0.1, hi: 10, def: 1}, {name: "amount", lo: 0, hi: 20, def: 3}},
		func(v []float64) step {
			sigma, amount := v[0], v[1]
			return funcStep(func(img *govips.ImageRef) error {
				if err := img.Sharpen(sigma, 2, amount); err != nil {
					return err
				}
				return img.Cast(govips.BandFormatUchar)
			})
		},
		// Through LabS and back, around a blur of the lightness alone.
		func(v []float64, in imaged.Geometry) imaged.OpPlan {
			p := perMP(40+gaussianCost(v[0]), in, max(in.Bands, 3))
			// The mask is cut at a tenth of its peak (about 2.2 sigma); whatever the image,
			// its lookup tables and buffers take some 2 MiB, 12 MiB with alpha (measured:
			// up to 11), counted as 2 and 14.
			p.Buffers = window(in, v[0]*1.25) + 2<<20
			if in.HasAlpha() {
				p.Buffers += 12 << 20
			}
			return p
		}, always)
	// Blocks of size×size pixels, each the mean of its area.
	heavyOp("pixelate", "turns the image into blocks of one colour", []number{{name: "size", lo: 2, hi: 1000, def: 10, whole: true}},
		valueStep(func(img *govips.ImageRef, size float64) error { return pixelate(img, int(size)) }),
		func(_ []float64, in imaged.Geometry) imaged.OpPlan { return perMP(20, in, in.Bands) }, always)
	// Drawn in Go on the grey pixels: a grey copy handed over, and the result back.
	heavyOp("emboss", "makes the image look stamped in relief", []number{{name: "strength", lo: 0.1, hi: 10, def: 1}},
		func(v []float64) step { return &embossStep{strength: v[0]} },
		func(_ []float64, in imaged.Geometry) imaged.OpPlan { return greyPlan(in, 30) }, nil)
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
