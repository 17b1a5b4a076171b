package vips

import (
	"context"
	"encoding/json"
	"math"
	"slices"
	"strings"

	govips "github.com/davidbyttow/govips/v2/vips"

	"github.com/imaged/imaged"
)

// Fit modes of resize, for a box of width×height:
//
//	inside   scale to fit within the box, keeping the aspect ratio (default)
//	outside  scale to cover the box, keeping the aspect ratio; one side may exceed it
//	cover    scale to cover the box, then crop to exactly width×height (by gravity)
//	fill     stretch to exactly width×height, ignoring the aspect ratio
//	exact    scale to fit within the box, then pad to exactly width×height (background, gravity)
//
// With only width or only height given, the other side follows the aspect ratio. Without
// enlarge, no side is ever scaled up.
var fits = []string{"inside", "outside", "cover", "fill", "exact"}

var kernels = map[string]govips.Kernel{
	"lanczos3": govips.KernelLanczos3,
	"cubic":    govips.KernelCubic,
	"linear":   govips.KernelLinear,
	"nearest":  govips.KernelNearest,
}

type resizeStep struct {
	width, height int // 0 when not given
	fit           string
	enlarge       bool
	kernel        string
	gravity       string     // cover's crop and exact's placement
	background    background // exact's padding
}

func init() {
	register(opSpec{
		OpSpec: imaged.OpSpec{Name: "resize", Summary: "scales the image to a box by a fit mode",
			Frames: imaged.FramesEach, TaskTypeFor: objectGravityTask},
		parse: parseArgs(parseResize), heavy: true, rereads: always,
		animatable: func(i int, st step) error {
			if r := st.(*resizeStep); r.fit == "cover" && slices.Contains(smartGravities, r.gravity) {
				return invalid(i, "gravity", "resize.gravity=%s does not work on an animation: it would cut a different box from each frame; use a position gravity, or drop the frames op to resize the first frame", r.gravity)
			}
			return nil
		},
	})
}

type resizeArgs struct {
	opName
	Width      *int            `json:"width" doc:"width of the box in pixels (width, height or both)" min:"1"`
	Height     *int            `json:"height" doc:"height of the box in pixels" min:"1"`
	Fit        string          `json:"fit" doc:"how the image fits the box" enum:"inside,outside,cover,fill,exact" default:"inside"`
	Background json.RawMessage `json:"background" type:"colour" doc:"colour of the new pixels"`
	Enlarge    bool            `json:"enlarge" doc:"allow scaling up"`
	Kernel     string          `json:"kernel" doc:"resampling kernel" enum:"lanczos3,cubic,linear,nearest" default:"lanczos3"`
	Gravity    string          `json:"gravity" doc:"where the box sits: centre, north, south, east, west, north-east… (resize cover also smart, attention, entropy, object:<class>)"`
}

func parseResize(p *Processor, i int, op imaged.Op, a *resizeArgs) (step, error) {
	if a.Width == nil && a.Height == nil {
		return nil, invalid(i, "width", "resize needs width, height or both")
	}
	r := &resizeStep{fit: "inside", kernel: "lanczos3", gravity: "centre", enlarge: a.Enlarge}
	if err := p.sides(i, "resize", a.Width, a.Height, &r.width, &r.height); err != nil {
		return nil, err
	}
	if err := choose(&r.fit, i, "resize", "fit", a.Fit, fits...); err != nil {
		return nil, err
	}
	if a.Kernel != "" {
		r.kernel = strings.ToLower(a.Kernel)
		if _, ok := kernels[r.kernel]; !ok {
			return nil, oneOf(i, "resize", "kernel", r.kernel, "lanczos3", "cubic", "linear", "nearest")
		}
	}
	allowed := gravities
	if r.fit == "cover" {
		allowed = cropGravities
	}
	if err := choose(&r.gravity, i, "resize", "gravity", a.Gravity, allowed...); err != nil {
		return nil, err
	}
	var err error
	if r.background, err = parseBackground(i, "resize", a.Background, black); err != nil {
		return nil, err
	}
	return r, nil
}

// box is the target box for a w×h image, the missing side following the aspect ratio.
func (r *resizeStep) box(w, h int) (bw, bh int) {
	bw, bh = r.width, r.height
	if bw == 0 {
		bw = max(1, int(math.Round(float64(w)*float64(bh)/float64(h))))
	}
	if bh == 0 {
		bh = max(1, int(math.Round(float64(h)*float64(bw)/float64(w))))
	}
	return bw, bh
}

// scaled is the size the w×h image is scaled to, before cover's crop or exact's padding.
func (r *resizeStep) scaled(w, h int) (tw, th int) {
	bw, bh := r.box(w, h)
	sx, sy := float64(bw)/float64(w), float64(bh)/float64(h)
	switch r.fit {
	case "fill":
		if !r.enlarge {
			bw, bh = min(bw, w), min(bh, h)
		}
		return bw, bh
	case "outside", "cover":
		sx = max(sx, sy)
	default: // inside, exact
		sx = min(sx, sy)
	}
	if !r.enlarge {
		sx = min(sx, 1)
	}
	return max(1, int(math.Round(float64(w)*sx))), max(1, int(math.Round(float64(h)*sx)))
}

// shrinkOnLoad says whether the loader should produce the scaled image directly: only when
// it downscales, and only with lanczos3, the kernel libvips' thumbnail loader uses.
func (r *resizeStep) shrinkOnLoad(w, h int) (tw, th int, ok bool) {
	if r.kernel != "lanczos3" {
		return 0, 0, false
	}
	tw, th = r.scaled(w, h)
	return tw, th, tw < w || th < h
}

func (r *resizeStep) apply(_ context.Context, s *state) error {
	img := s.img
	w, h := img.Width(), img.Height()
	if s.prescaled && s.index == s.lead {
		// The loader has scaled the source already (to within rounding); sizes still come
		// from the source's.
		w, h = s.src.width, s.src.height
	}
	if tw, th := r.scaled(w, h); tw != img.Width() || th != img.Height() {
		if err := resizeTo(img, tw, th, kernels[r.kernel]); err != nil {
			return err
		}
	}
	bw, bh := r.box(w, h)
	switch r.fit {
	case "cover":
		return cropGravity(img, min(bw, img.Width()), min(bh, img.Height()), r.gravity)
	case "exact":
		if img.Width() == bw && img.Height() == bh {
			return nil
		}
		x, y := place(r.gravity, bw, bh, img.Width(), img.Height())
		return embed(img, x, y, bw, bh, r.background.on(img))
	}
	return nil
}

func (r *resizeStep) plan(in imaged.Geometry) (imaged.OpPlan, error) {
	tw, th := r.scaled(in.Width, in.Height)
	out := in.Resized(tw, th)
	cost := 10*in.MP() + kernelTaps[r.kernel]*out.MP()
	bw, bh := r.box(in.Width, in.Height)
	switch r.fit {
	case "cover":
		out = out.Resized(min(bw, tw), min(bh, th))
		if slices.Contains(smartGravities, r.gravity) {
			cost += smartCropCost * in.Resized(tw, th).MP()
		}
	case "exact":
		if tw != bw || th != bh {
			out = out.Resized(bw, bh).WithBands(withBackground(in.Bands, r.background))
		}
	}
	return imaged.Reshaped(out, cost), nil
}

// resizeTo scales img to exactly tw×th with kernel. (govips premultiplies alpha around the
// resize, so transparent pixels do not bleed their colour into the edges.)
func resizeTo(img *govips.ImageRef, tw, th int, kernel govips.Kernel) error {
	w, h := img.Width(), img.Height()
	if err := img.ResizeWithVScale(float64(tw)/float64(w), float64(th)/float64(h), kernel); err != nil {
		return err
	}
	// libvips rounds the scaled size; settle the last pixel so the result is exactly tw×th.
	if img.Width() != tw || img.Height() != th {
		if img.Width() > tw || img.Height() > th {
			if err := img.ExtractArea(0, 0, min(tw, img.Width()), min(th, img.Height())); err != nil {
				return err
			}
		}
		if img.Width() < tw || img.Height() < th {
			if err := img.Embed(0, 0, tw, th, govips.ExtendCopy); err != nil {
				return err
			}
		}
	}
	return nil
}
