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
	// Each maps every pixel on its own, in one pass from top to bottom: it streams and works on
	// each frame of an animation.
	pointOp := func(name, summary string, parse parseFunc) {
		register(opSpec{OpSpec: imaged.OpSpec{Name: name, Summary: summary, Frames: imaged.FramesEach},
			parse: parse, streams: true})
	}
	grey := parseNoArgs(func(img *govips.ImageRef) error { return img.ToColorSpace(govips.InterpretationBW) })
	pointOp("grayscale", "makes the image grey", grey)
	pointOp("greyscale", "makes the image grey", grey)
	pointOp("invert", "inverts the colours", parseNoArgs(func(img *govips.ImageRef) error {
		return colourOnly(img, func(c *govips.ImageRef) error { return c.Invert() })
	}))
	pointOp("sepia", "tints the image brown", parseNoArgs(sepia))
	pointOp("brightness", "scales the brightness", parseFactor("brightness", 0, 10, brightness))
	pointOp("contrast", "stretches values away from mid-grey", parseFactor("contrast", 0, 10, contrast))
	pointOp("saturation", "scales the chroma", parseFactor("saturation", 0, 10, saturation))
	pointOp("gamma", "applies a gamma curve", parseGamma)
	pointOp("threshold", "turns the image black and white at a grey level", parseThreshold)
}

// funcStep is an op that is one function of the image.
type funcStep func(img *govips.ImageRef) error

func (f funcStep) apply(_ context.Context, s *state) error { return f(s.img) }

// parseNoArgs is the parser of an op without parameters.
func parseNoArgs(fn func(img *govips.ImageRef) error) func(p *Processor, i int, op imaged.Op) (step, error) {
	return func(p *Processor, i int, op imaged.Op) (step, error) {
		var a struct{ opName }
		if err := op.DecodeArgs(i, &a); err != nil {
			return nil, err
		}
		return funcStep(fn), nil
	}
}

// parseFactor is the parser of an op with one multiplicative "factor" (1 leaves the image as
// it is; default 1).
func parseFactor(name string, lo, hi float64, fn func(img *govips.ImageRef, f float64) error) func(p *Processor, i int, op imaged.Op) (step, error) {
	return func(p *Processor, i int, op imaged.Op) (step, error) {
		var a struct {
			opName
			Factor *float64 `json:"factor"`
		}
		if err := op.DecodeArgs(i, &a); err != nil {
			return nil, err
		}
		if a.Factor == nil {
			return nil, invalid(i, "factor", "%s.factor is required (1 leaves the image unchanged)", name)
		}
		f := *a.Factor
		if err := between(i, name, "factor", f, lo, hi); err != nil {
			return nil, err
		}
		return funcStep(func(img *govips.ImageRef) error { return fn(img, f) }), nil
	}
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

// linear maps every colour value v to a*v + b, clipped to 0..255.
func linear(img *govips.ImageRef, a, b float64) error {
	return colourOnly(img, func(c *govips.ImageRef) error {
		if err := c.Linear1(a, b); err != nil {
			return err
		}
		return c.Cast(govips.BandFormatUchar)
	})
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
	return colourOnly(img, func(c *govips.ImageRef) error {
		if err := c.ToColorSpace(govips.InterpretationBW); err != nil {
			return err
		}
		if err := c.ToColorSpace(govips.InterpretationSRGB); err != nil {
			return err
		}
		if err := c.Linear([]float64{1.351, 1.203, 0.937}, []float64{0, 0, 0}); err != nil {
			return err
		}
		return c.Cast(govips.BandFormatUchar)
	})
}

func parseGamma(p *Processor, i int, op imaged.Op) (step, error) {
	var a struct {
		opName
		Gamma *float64 `json:"gamma"`
	}
	if err := op.DecodeArgs(i, &a); err != nil {
		return nil, err
	}
	g := 2.2
	if err := optional(&g, i, "gamma", "gamma", a.Gamma, 0.1, 10); err != nil {
		return nil, err
	}
	// Values become v^(1/gamma): above 1 brightens the mid-tones, below 1 darkens them.
	return funcStep(func(img *govips.ImageRef) error {
		return colourOnly(img, func(c *govips.ImageRef) error {
			if err := c.Gamma(g); err != nil {
				return err
			}
			return c.Cast(govips.BandFormatUchar)
		})
	}), nil
}

func parseThreshold(p *Processor, i int, op imaged.Op) (step, error) {
	var a struct {
		opName
		Threshold *float64 `json:"threshold"`
	}
	if err := op.DecodeArgs(i, &a); err != nil {
		return nil, err
	}
	t := 128.0
	if err := optional(&t, i, "threshold", "threshold", a.Threshold, 0, 255); err != nil {
		return nil, err
	}
	// A grey value v becomes 255 when v >= t, else 0: (v - t + 0.5) scaled far past the
	// uchar range and clipped by the cast.
	return funcStep(func(img *govips.ImageRef) error {
		return colourOnly(img, func(c *govips.ImageRef) error {
			if err := c.ToColorSpace(govips.InterpretationBW); err != nil {
				return err
			}
			if err := c.Linear1(1e4, (0.5-t)*1e4); err != nil {
				return err
			}
			return c.Cast(govips.BandFormatUchar)
		})
	}), nil
}
