package vips

import (
	"context"

	govips "github.com/davidbyttow/govips/v2/vips"

	"github.com/imaged/imaged"
)

// Colour and tone ops:
//
//	grayscale (greyscale)  one grey band, alpha kept
//	brightness             factor 0..10 (required; 1 leaves the image as it is) scales every value
//	contrast               factor 0..10 (required) stretches values away from mid-grey
//	saturation             factor 0..10 (required) scales chroma, keeping lightness
//	gamma                  gamma 0.1..10 (default 2.2): values become v^(1/gamma)
//	invert                 255 - v on the colour bands
//	threshold              threshold 0..255 (default 128): one band, 255 where grey >= threshold
//	sepia                  a brown tint of the luminance
func init() {
	pointOp := func(name, summary string, params []number, build func(v []float64) step, cost float64, bands func(int) int) {
		plan := func(_ []float64, in imaged.Geometry) imaged.OpPlan { return perMP(cost, in, bands(in.Bands)) }
		register(opSpec{OpSpec: imaged.OpSpec{Name: name, Summary: summary, Frames: imaged.FramesEach},
			parse: parseNumbers(name, params, withPlan(build, plan)), streams: true})
	}
	same := func(b int) int { return b }
	grey := func(b int) int { // one band, and alpha
		if b == 2 || b == 4 {
			return 2
		}
		return 1
	}
	rgb := func(b int) int { // three bands, and alpha
		if b < 3 {
			return b + 2
		}
		return b
	}
	pointOp("grayscale", "makes the image grey", nil, fixedStep(funcStep(greyscale)), 4, grey)
	pointOp("greyscale", "makes the image grey", nil, fixedStep(funcStep(greyscale)), 4, grey)
	pointOp("invert", "inverts the colours", nil, fixedStep(funcStep(invert)), 2, same)
	pointOp("sepia", "tints the image brown", nil, fixedStep(funcStep(sepia)), 4, rgb)
	factor := []number{{name: "factor", lo: 0, hi: 10, need: "1 leaves the image unchanged"}}
	pointOp("brightness", "scales the brightness", factor, valueStep(brightness), 3, same)
	pointOp("contrast", "stretches values away from mid-grey", factor, valueStep(contrast), 3, same)
	// Through LCh and back.
	pointOp("saturation", "scales the chroma", factor, valueStep(saturation), 40, same)
	pointOp("gamma", "applies a gamma curve", []number{{name: "gamma", lo: 0.1, hi: 10, def: 2.2}}, valueStep(gamma), 3, same)
	pointOp("threshold", "turns the image black and white at a grey level",
		[]number{{name: "threshold", lo: 0, hi: 255, def: 128}}, valueStep(threshold), 3, grey)
}

type funcStep func(img *govips.ImageRef) error

func (f funcStep) apply(_ context.Context, s *state) error { return f(s.img) }

// fixedStep builds the step of an op without parameters, for parseNumbers.
func fixedStep(st step) func([]float64) step { return func([]float64) step { return st } }

// valueStep builds the step of an op with one parameter, for parseNumbers: fn of the image and
// the parameter's value.
func valueStep(fn func(img *govips.ImageRef, v float64) error) func([]float64) step {
	return func(v []float64) step {
		x := v[0]
		return funcStep(func(img *govips.ImageRef) error { return fn(img, x) })
	}
}

func greyscale(img *govips.ImageRef) error { return img.ToColorSpace(govips.InterpretationBW) }

func invert(img *govips.ImageRef) error {
	return colourOnly(img, func(c *govips.ImageRef) error { return c.Invert() })
}

// colourOnly runs fn on the colour bands of img, leaving an alpha band as it was.
func colourOnly(img *govips.ImageRef, fn func(c *govips.ImageRef) error) error {
	if !img.HasAlpha() {
		return fn(img)
	}
	n := img.Bands()
	alpha, err := img.ExtractBandToImage(n-1, 1)
	if err != nil {
		return err
	}
	defer alpha.Close()
	if err := img.ExtractBand(0, n-1); err != nil {
		return err
	}
	if err := fn(img); err != nil {
		return err
	}
	return img.BandJoin(alpha)
}

// colourToUchar runs fn on the colour bands, as colourOnly does, and brings them back to 8 bits.
func colourToUchar(img *govips.ImageRef, fn func(c *govips.ImageRef) error) error {
	return colourOnly(img, func(c *govips.ImageRef) error {
		if err := fn(c); err != nil {
			return err
		}
		return c.Cast(govips.BandFormatUchar)
	})
}

// linear maps every colour value v to a*v + b, clipped to 0..255.
func linear(img *govips.ImageRef, a, b float64) error {
	return colourToUchar(img, func(c *govips.ImageRef) error { return c.Linear1(a, b) })
}

// brightness scales every colour value by f (0 is black).
func brightness(img *govips.ImageRef, f float64) error { return linear(img, f, 0) }

// contrast stretches values away from mid-grey by f (0 is flat grey).
func contrast(img *govips.ImageRef, f float64) error { return linear(img, f, 128*(1-f)) }

// saturation scales chroma in LCh by f (0 is grey, keeping lightness).
func saturation(img *govips.ImageRef, f float64) error {
	if img.Bands() < 3 {
		return nil
	}
	if err := img.Modulate(1, f, 0); err != nil {
		return err
	}
	return img.Cast(govips.BandFormatUchar)
}

// sepia tints the luminance brown: the classic sepia matrix's rows are close to multiples of
// the luminance weights, so luminance times (1.351, 1.203, 0.937) matches it closely.
func sepia(img *govips.ImageRef) error {
	return colourToUchar(img, func(c *govips.ImageRef) error {
		if err := c.ToColorSpace(govips.InterpretationBW); err != nil {
			return err
		}
		if err := c.ToColorSpace(govips.InterpretationSRGB); err != nil {
			return err
		}
		return c.Linear([]float64{1.351, 1.203, 0.937}, []float64{0, 0, 0})
	})
}

// gamma makes every colour value v^(1/g): above 1 brightens the mid-tones, below 1 darkens
// them.
func gamma(img *govips.ImageRef, g float64) error {
	return colourToUchar(img, func(c *govips.ImageRef) error { return c.Gamma(g) })
}

// threshold makes one band, 255 where the grey value v >= t, else 0: (v - t + 0.5) scaled far
// past the uchar range and clipped by the cast.
func threshold(img *govips.ImageRef, t float64) error {
	return colourToUchar(img, func(c *govips.ImageRef) error {
		if err := c.ToColorSpace(govips.InterpretationBW); err != nil {
			return err
		}
		return c.Linear1(1e4, (0.5-t)*1e4)
	})
}
