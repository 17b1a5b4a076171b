package imaged

import (
	"fmt"
	"math"
)

// Geometry is the shape of an image as a pipeline holds it: Frames frames (an animation kept
// whole; 1 for a still image) of Width×Height pixels, each of Bands 8-bit samples. Every op
// declares what it makes of its input's geometry (OpSpec.Plan), so that a pipeline's largest
// image, its memory and its CPU are known from the source's header before any pixel is
// decoded (Estimate).
type Geometry struct {
	Width, Height int // of one frame
	Bands         int
	Frames        int // 0 counts as 1
}

// Pixels is the number of pixels of every frame together.
func (g Geometry) Pixels() int64 {
	return int64(max(g.Frames, 1)) * int64(max(g.Width, 0)) * int64(max(g.Height, 0))
}

// Bytes is the memory the image takes uncompressed: a byte per sample.
func (g Geometry) Bytes() int64 { return g.Pixels() * int64(max(g.Bands, 1)) }

// MP is Pixels in megapixels, the measure of the cost model.
func (g Geometry) MP() float64 { return float64(g.Pixels()) / 1e6 }

// Resized is g with frames of w×h pixels, its bands and frame count kept.
func (g Geometry) Resized(w, h int) Geometry {
	g.Width, g.Height = w, h
	return g
}

// WithBands is g with n bands.
func (g Geometry) WithBands(n int) Geometry {
	g.Bands = n
	return g
}

// HasAlpha reports whether the bands end with alpha (grey and alpha, or sRGB and alpha), as
// the pipeline keeps images.
func (g Geometry) HasAlpha() bool { return g.Bands == 2 || g.Bands == 4 }

func (g Geometry) String() string {
	if g.Frames > 1 {
		return fmt.Sprintf("%d frames of %d×%d", g.Frames, g.Width, g.Height)
	}
	return fmt.Sprintf("%d×%d", g.Width, g.Height)
}

// OpPlan is what one op does, worked out from its parameters and its input's geometry before
// any pixel exists.
type OpPlan struct {
	// Out is the geometry of the image the op leaves for the next op.
	Out Geometry
	// Held lists the images the op may hold in memory at once besides its input: its output,
	// when it makes a new image, and the copies and working images it makes on the way (the
	// page OCR reads after its preprocessing, the detector's input, a watermark's overlay).
	// Each counts towards the pixel limit and the memory estimate.
	Held []Geometry
	// Scratch is memory the op holds whatever the image's size (a model's input tensor, the
	// strips a decoder streams), in bytes: it counts towards the memory estimate alone.
	Scratch int64
	// Buffers is memory the op keeps while the pipeline streams through it (libvips' region
	// buffers, a strip of its output and its window on its input), in bytes: the ops of a
	// pipeline compute together, so their buffers add up.
	Buffers int64
	// Cost is the CPU the op is expected to take, in cost units: about a millisecond of one
	// core (see CostUnit).
	Cost float64
}

// PlanFunc plans an op, one its package has validated, on an input of geometry in. Its error
// is an *Error naming the op's field, for parameters that cannot apply to that input.
type PlanFunc func(in Geometry, o Op) (OpPlan, error)

// CostUnit describes the unit of OpPlan.Cost and Limits.MaxCost, for messages and documents.
const CostUnit = "cost units (about a millisecond of one core each)"

// Reshaped is the plan of an op that makes a new image of geometry out, at cost.
func Reshaped(out Geometry, cost float64) OpPlan {
	return OpPlan{Out: out, Held: []Geometry{out}, Cost: cost}
}

// PerMegapixel is the PlanFunc of an op that makes a new image of its input's geometry, at
// perMP cost units a megapixel.
func PerMegapixel(perMP float64) PlanFunc {
	return func(in Geometry, _ Op) (OpPlan, error) { return Reshaped(in, perMP*in.MP()), nil }
}

// Untouched is the PlanFunc of an op that holds no pixels of its own and costs nothing: it
// reads metadata or settles how the pipeline runs.
func Untouched(in Geometry, _ Op) (OpPlan, error) { return OpPlan{Out: in}, nil }

// StepPlan is the plan of op Index of a pipeline, with the geometry it was given. A step a
// caller adds after the ops (the encode of a result) has Index -1.
type StepPlan struct {
	Index int
	Op    string
	In    Geometry
	OpPlan
}

// PipelineEstimate is a pipeline planned from its source's geometry alone.
type PipelineEstimate struct {
	Source Geometry
	Steps  []StepPlan
	// Largest is the largest image (by pixels, every frame counted) the pipeline makes or
	// holds, the source included; LargestAt is the index of the op that makes or holds it,
	// -1 for the source.
	Largest   Geometry
	LargestAt int
	// Peak is the most bytes held at once: the decoded source, kept until the end, the
	// buffers of every op, and the most any one op holds besides (its input, unless that is
	// the source, and what it makes); PeakAt is that op's index, -1 when it holds nothing.
	Peak   int64
	PeakAt int
	// Cost is the sum of the ops' costs; Costliest the index of the dearest op (-1: none).
	Cost      float64
	Costliest int
}

// Estimate plans ops, as their registered OpSpec.Plan declare, over a source of geometry src.
// An op without a plan, or not registered, is an EInvalid error naming it.
func Estimate(ops []Op, src Geometry) (*PipelineEstimate, error) {
	return EstimateWith(ops, src, func(i int, in Geometry) (OpPlan, error) {
		spec, ok := opSpecs[ops[i].Name]
		if !ok || spec.Plan == nil {
			return OpPlan{}, FieldErrorf(fmt.Sprintf("ops[%d].op", i), "%s declares no geometry; it cannot be planned", EchoID(ops[i].Name))
		}
		return spec.Plan(in, ops[i])
	})
}

// EstimateWith plans ops over a source of geometry src with plan, which gives op i's plan on
// an input of geometry in: the one walk of a pipeline's geometry, for callers (the vips
// processor) that have the ops compiled already.
func EstimateWith(ops []Op, src Geometry, plan func(i int, in Geometry) (OpPlan, error)) (*PipelineEstimate, error) {
	e := &PipelineEstimate{Source: src, Steps: make([]StepPlan, 0, len(ops)), Largest: src, LargestAt: -1,
		Peak: src.Bytes(), PeakAt: -1, Costliest: -1}
	in, fromSource := src, true
	var most, buffers int64
	for i, o := range ops {
		p, err := plan(i, in)
		if err != nil {
			return nil, err
		}
		e.Steps = append(e.Steps, StepPlan{Index: i, Op: o.Name, In: in, OpPlan: p})
		var held int64
		if !fromSource {
			held = in.Bytes()
		}
		for _, g := range append([]Geometry{p.Out}, p.Held...) {
			if g.Pixels() > e.Largest.Pixels() {
				e.Largest, e.LargestAt = g, i
			}
		}
		for _, g := range p.Held {
			held += g.Bytes()
		}
		held += p.Scratch
		if held > most {
			most, e.PeakAt = held, i
		}
		buffers += p.Buffers
		e.Cost += p.Cost
		if e.Costliest < 0 || p.Cost > e.Steps[e.Costliest].Cost {
			e.Costliest = i
		}
		if len(p.Held) > 0 || p.Out != in {
			fromSource = false
		}
		in = p.Out
	}
	e.Peak += buffers + most
	return e, nil
}

// Check refuses, as EInvalid naming the op, a pipeline that would make an image wider or
// taller than the limits, hold more pixels than l.MaxPixels at once, or cost more than
// l.MaxCost (0: no cost limit); a source over l.MaxPixels is ETooLarge.
func (e *PipelineEstimate) Check(l Limits) error {
	for _, s := range e.Steps {
		if s.Index < 0 {
			continue
		}
		out := s.Out
		if out == s.In {
			continue
		}
		if (l.MaxWidth > 0 && out.Width > l.MaxWidth) || (l.MaxHeight > 0 && out.Height > l.MaxHeight) {
			return FieldErrorf(fmt.Sprintf("ops[%d]", s.Index), "%s would make the image %d×%d pixels; the limit is %d×%d",
				s.Op, out.Width, out.Height, l.MaxWidth, l.MaxHeight)
		}
		if out.Frames > 1 && l.MaxPixels > 0 && out.Pixels() > l.MaxPixels {
			return FieldErrorf(fmt.Sprintf("ops[%d]", s.Index), "%s would make the animation %d frames of %d×%d pixels; the limit is %d pixels over all frames",
				s.Op, out.Frames, out.Width, out.Height, l.MaxPixels)
		}
	}
	if l.MaxPixels > 0 && e.Source.Pixels() > l.MaxPixels {
		return Errorf(ETooLarge, "the image is %s pixels (%s); the limit is %s", e.Source, megapixels(e.Source.Pixels()), megapixels(l.MaxPixels))
	}
	if l.MaxPixels > 0 && e.Largest.Pixels() > l.MaxPixels {
		s := e.Steps[e.LargestAt]
		return FieldErrorf(s.field(), "%s would hold an image of %s pixels (%s); the limit is %s: make the image smaller before it",
			s.Op, e.Largest, megapixels(e.Largest.Pixels()), megapixels(l.MaxPixels))
	}
	if l.MaxCost > 0 && e.Cost > l.MaxCost {
		s := e.Steps[e.Costliest]
		return FieldErrorf(s.field(), "the pipeline is estimated at %.0f %s, %.0f of them for %s on %s pixels; the limit is %.0f: make the image smaller before costly ops, or lower their parameters",
			math.Ceil(e.Cost), CostUnit, math.Ceil(s.Cost), s.Op, s.In, l.MaxCost)
	}
	return nil
}

// field names the step's op in errors: ops[i], or the whole list for a step of none.
func (s StepPlan) field() string {
	if s.Index < 0 {
		return "ops"
	}
	return fmt.Sprintf("ops[%d]", s.Index)
}

// megapixels writes a pixel count for people: "1600 MP", "0.25 MP".
func megapixels(n int64) string {
	mp := float64(n) / 1e6
	if mp >= 10 {
		return fmt.Sprintf("%.0f MP", mp)
	}
	return fmt.Sprintf("%.2g MP", mp)
}
