package vips

import (
	"context"
	"image"
	"math"

	"github.com/imaged/imaged"
)

// planner is a compiled step that knows its plan: the geometry it makes of its input's, the
// images it holds on the way and its cost (imaged.OpPlan). Every op's step is one; register
// turns it into the op's imaged.OpSpec.Plan, and Process plans the compiled pipeline with it
// before decoding (see estimate).
//
// The costs are a model of libvips 8.14 (and of imaged's own Go loops) with one thread, fitted
// to CPU time measured per megapixel on a 2-core x86 machine, in units of about a millisecond
// of one core: cheap per-pixel ops a few units a megapixel; resampling by its kernel's taps;
// Gaussian blur growing with the square of sigma (libvips computes the horizontal pass again
// for every strip of the vertical one); encoders by format and effort. The README's table
// lists them. They need only be right within a factor of two or so: they refuse pipelines
// that would take minutes of CPU, not ones that take seconds.
type planner interface {
	plan(in imaged.Geometry) (imaged.OpPlan, error)
}

// planStep is st's plan on an input of geometry in.
func planStep(st step, in imaged.Geometry) (imaged.OpPlan, error) {
	p, ok := st.(planner)
	if !ok {
		return imaged.OpPlan{}, imaged.Errorf(imaged.EInternal, "a step of type %T has no plan", st)
	}
	return p.plan(in)
}

// planVia makes an op's imaged.OpSpec.Plan from its parser: the op is compiled by planning
// and its step plans itself, so that the plan the domain sees and the one Process follows are
// one code.
func planVia(parse parseFunc) imaged.PlanFunc {
	return func(in imaged.Geometry, o imaged.Op) (imaged.OpPlan, error) {
		st, err := parse.run(planning, 0, o)
		if err != nil {
			return imaged.OpPlan{}, err
		}
		return planStep(st, in)
	}
}

// planning is the processor that compiles ops only to plan them, outside any configured
// processor: its limits take every size (the configured processor checks its own when it
// validates), and it has stand-ins for the image source and the object locator, which a plan
// never calls.
var planning = func() *Processor {
	p := &Processor{cfg: Config{MaxFrames: math.MaxInt32, Locator: noLocator{}},
		limits: imaged.Limits{MaxBytes: math.MaxInt64, MaxWidth: math.MaxInt32, MaxHeight: math.MaxInt32}}
	var src ImageSource = func(context.Context, string) ([]byte, error) {
		return nil, imaged.Errorf(imaged.EInternal, "a plan reads no image")
	}
	p.images.Store(&src)
	return p
}()

type noLocator struct{}

func (noLocator) Locate(context.Context, imaged.Pixels, string) (image.Rectangle, bool, error) {
	return image.Rectangle{}, false, imaged.Errorf(imaged.EInternal, "a plan locates nothing")
}

// planned is a step built from numeric parameters (parseNumbers) with the plan its values give.
type planned struct {
	step
	planOf func(in imaged.Geometry) imaged.OpPlan
}

func (p planned) plan(in imaged.Geometry) (imaged.OpPlan, error) { return p.planOf(in), nil }

// withPlan gives the steps build makes from the values v the plan plan makes of them.
func withPlan(build func(v []float64) step, plan func(v []float64, in imaged.Geometry) imaged.OpPlan) func(v []float64) step {
	return func(v []float64) step {
		st := build(v)
		return planned{step: st, planOf: func(in imaged.Geometry) imaged.OpPlan { return plan(v, in) }}
	}
}

// perMP is the plan of an op that makes an image of its input's geometry with bands bands, at
// cost units a megapixel.
func perMP(cost float64, in imaged.Geometry, bands int) imaged.OpPlan {
	return imaged.Reshaped(in.WithBands(bands), cost*in.MP())
}

// strips is what libvips keeps while an op whose output has geometry out streams: about a KiB
// a column and band (a strip of a few hundred lines of float samples), measured on chains of
// point ops and colour conversions over images up to 8000 pixels wide.
func strips(out imaged.Geometry) int64 {
	return int64(max(out.Width, 256)) * int64(max(out.Bands, 1)) * 1024
}

// window is the extra a convolution by a Gaussian of sigma keeps on an input of geometry in:
// the lines of its mask (libvips cuts it where it falls under a fifth of its peak, at about
// 1.8 sigma either side), in 32-bit samples, for each of its passes.
func window(in imaged.Geometry, sigma float64) int64 {
	return int64(max(in.Width, 256)) * int64(max(in.Bands, 1)) * int64(math.Ceil(3.6*sigma+1)) * 4 * 2
}

// gaussianCost is the cost a megapixel of a Gaussian blur of sigma: libvips' separable
// convolution, whose mask grows with sigma, and whose horizontal pass is computed again for
// each strip of the vertical one, so that large sigmas grow with its square (measured: sigma
// 10 about 12, 25 about 190, 50 about 650, 100 1700 to 2800 a megapixel).
func gaussianCost(sigma float64) float64 { return 2 + 2*sigma + 0.25*sigma*sigma }

// kernelTaps is the cost a megapixel of output of resampling with each kernel.
var kernelTaps = map[string]float64{"lanczos3": 36, "cubic": 30, "linear": 26, "nearest": 13}

// withBackground is the bands of an image given new pixels of background b, as
// prepareBackground makes them: grey becomes sRGB, and an image without alpha gains one when
// the colour is not opaque (an image with alpha takes transparency unless a colour is given).
func withBackground(bands int, b background) int {
	alpha := bands == 2 || bands == 4
	if bands < 3 {
		bands += 2
	}
	if !alpha && b.given && !b.colour.opaque() {
		bands++
	}
	return bands
}

// handoff is what handing the pixels of an image of geometry in to Go (rgbPixels) holds: the
// 8-bit sRGB copy libvips writes and the Go copy of it.
func handoff(in imaged.Geometry) []imaged.Geometry {
	rgb := in.WithBands(3)
	if in.HasAlpha() {
		rgb = in.WithBands(4)
	}
	return []imaged.Geometry{rgb, rgb}
}
