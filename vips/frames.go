package vips

import (
	"context"
	"fmt"
	"strings"

	govips "github.com/davidbyttow/govips/v2/vips"

	"github.com/imaged/imaged"
)

// framesStep keeps the frames of an animated GIF or WebP through the pipeline: {"op":"frames"}
// keeps every frame, and with max (1..Config.MaxFrames) the first max frames of a longer
// animation. It must be the first op, since it decides how the source is loaded. Without it
// only the first frame is loaded and the result is a still image.
//
// Without max, an animation of more frames than the server's limit is refused; either way the
// frames kept may not hold more pixels together than one image of the largest size
// (MaxWidth×MaxHeight). Both are read from the header before any frame is decoded. Each later op then runs on every frame as on a still
// image (see eachFrame), so the frames keep one size, and their delays and loop count are
// written back on output. Ops that would treat frames differently (smart crop, trim) or read
// the pixels elsewhere (ocr, detect, annotate) are refused at validation. The result is
// animated in GIF and WebP; any other output format (jpeg, png, avif, tiff) takes the first
// frame, and convert format=auto picks WebP when the client accepts it, else GIF. A still image
// goes through a frames pipeline as it would without the op.
type framesStep struct {
	max      int
	explicit bool // max was given, rather than the server's limit
}

func init() {
	// frames reads no pixel and changes none: a setting, so that it alone marks nothing as
	// changed.
	register(opSpec{OpSpec: imaged.OpSpec{Name: "frames", Kind: imaged.OpSetting, Frames: imaged.FramesWhole,
		Summary: "keeps every frame of an animated GIF or WebP through the pipeline"}, parse: parseArgs(parseFrames)})
}

type framesArgs struct {
	opName
	Max *int `json:"max" doc:"keep at most this many frames (up to IMAGED_MAX_FRAMES)" min:"1"`
}

func parseFrames(p *Processor, i int, op imaged.Op, a *framesArgs) (step, error) {
	if i != 0 {
		return nil, invalid(i, "op", "frames must be the first op of a pipeline: it decides how the image is loaded")
	}
	fs := &framesStep{max: p.cfg.maxFrames()}
	if a.Max != nil {
		if err := between(i, "frames", "max", *a.Max, 1, fs.max); err != nil {
			return nil, err
		}
		fs.max, fs.explicit = *a.Max, true
	}
	return fs, nil
}

func (*framesStep) apply(context.Context, *state) error { return nil }

// plan leaves the geometry: the frames kept are the source's, read from its header (keptFrames).
func (*framesStep) plan(in imaged.Geometry) (imaged.OpPlan, error) {
	return imaged.OpPlan{Out: in}, nil
}

// animatable refuses, at validation, an op of a frames pipeline that cannot work on an
// animation, naming it.
func animatable(i int, c compiled) error {
	if c.spec.Frames == imaged.FramesRefused {
		return invalid(i, "op", "%s does not work on an animation (frames op); drop the frames op to run it on the first frame only", c.name)
	}
	if c.spec.animatable != nil {
		return c.spec.animatable(i, c.step)
	}
	return nil
}

// keptFrames is the number of frames of an animation of src.pages frames that fr keeps (the
// first max when max was given), refusing from the header alone an animation over the
// server's frame limit or whose kept frames hold more pixels than the limits allow.
func (p *Processor) keptFrames(fr *framesStep, src source) (int, error) {
	n := src.pages
	if fr.explicit {
		n = min(n, fr.max)
	}
	if limit := p.cfg.maxFrames(); n > limit {
		return 0, invalid(0, "max", "the animation has %d frames; this server takes at most %d (frames.max keeps the first ones)", src.pages, limit)
	}
	if total := int64(src.width) * int64(src.height) * int64(n); total > p.limits.MaxPixels {
		return 0, imaged.Errorf(imaged.ETooLarge, "the animation is %d frames of %d×%d pixels, %d pixels in all; the limit is %d",
			n, src.width, src.height, total, p.limits.MaxPixels)
	}
	return n, nil
}

// animation is the timing of an animation: the delay of each frame in milliseconds and the
// number of loops (0: forever).
type animation struct {
	delays  []int
	loop    int
	hasLoop bool
}

// loadFrames replaces the first frame with the first s.frames frames of the animation, stacked
// top to bottom as libvips keeps them (page-height is the frame height), and keeps their timing.
func (s *state) loadFrames(buf []byte) error {
	params := govips.NewImportParams()
	params.FailOnError.Set(false)
	params.NumPages.Set(s.frames)
	img, err := govips.LoadImageFromBuffer(buf, params)
	if err != nil {
		return undecodable(vipsMessage(err))
	}
	n, ph := s.frames, img.PageHeight()
	if ph*n != img.Height() || img.Width() != s.img.Width() {
		img.Close()
		return undecodable(fmt.Sprintf("the %d frames of the animation do not stack to one size (%d×%d, frame height %d)",
			n, img.Width(), img.Height(), ph))
	}
	if delays, err := img.PageDelay(); err == nil && len(delays) >= n {
		s.anim.delays = delays[:n]
	}
	if hasField(img, "loop") {
		s.anim.loop, s.anim.hasLoop = img.GetInt("loop"), true
	}
	s.replace(img)
	return nil
}

// stepFunc is a step that is one function of the pipeline state.
type stepFunc func(ctx context.Context, s *state) error

func (f stepFunc) apply(ctx context.Context, s *state) error { return f(ctx, s) }

// eachFrame returns st applied to every frame of the animation as a still image of its own,
// the results stacked again. The op thus never sees the stack: a resampling kernel or a blur
// cannot bleed one frame into the next, and a crop, pad or rotation applies to each frame
// rather than to the stack.
func eachFrame(st step) func(ctx context.Context, s *state) error {
	return func(ctx context.Context, s *state) error {
		n := s.frames
		w, ph := s.img.Width(), s.frameHeight()
		done := make([]*govips.ImageRef, 0, n)
		defer func() {
			for _, img := range done {
				img.Close()
			}
		}()
		for k := 0; k < n; k++ {
			if err := ctx.Err(); err != nil {
				return err
			}
			img, err := s.img.Copy()
			if err != nil {
				return err
			}
			f := &state{img: img, src: s.src, index: s.index, op: s.op, opts: s.opts, limits: s.limits,
				frames: 1, lead: -1}
			err = cutStack(f.img, k*ph, w, ph)
			if err == nil {
				err = f.settle()
			}
			if err == nil {
				err = st.apply(ctx, f)
			}
			if err != nil {
				f.img.Close()
				return err
			}
			if k > 0 && (f.img.Width() != done[0].Width() || f.img.Height() != done[0].Height() || f.img.Bands() != done[0].Bands()) {
				err := fmt.Errorf("frame %d came out %d×%d×%d, frame 0 %d×%d×%d", k, f.img.Width(), f.img.Height(),
					f.img.Bands(), done[0].Width(), done[0].Height(), done[0].Bands())
				f.img.Close()
				return err
			}
			done = append(done, f.img)
		}
		stack, err := done[0].Copy()
		if err != nil {
			return err
		}
		if err := stack.ArrayJoin(done[1:], 1); err != nil {
			stack.Close()
			return err
		}
		s.replace(stack)
		return nil
	}
}

// cutStack cuts the rows y..y+h out of a stack of frames. govips crops each page of an image
// whose page height is less than its height, so the stack is first marked as one page.
func cutStack(img *govips.ImageRef, y, w, h int) error {
	if err := img.SetPageHeight(img.Height()); err != nil {
		return err
	}
	return img.ExtractArea(0, y, w, h)
}

// keepFrames readies an animation for encoding: in GIF and WebP, it gets back its frame
// timing; formats without animation take the first frame.
func (s *state) keepFrames(animated bool) error {
	if s.frames <= 1 {
		return nil
	}
	if !animated {
		if err := cutStack(s.img, 0, s.img.Width(), s.frameHeight()); err != nil {
			return err
		}
		s.frames = 1
		return s.settle()
	}
	// The metadata is set on a copy: libvips images are shared, and setting a field changes
	// the image in place.
	img, err := s.img.Copy()
	if err != nil {
		return err
	}
	if len(s.anim.delays) == s.frames {
		if err := img.SetPageDelay(s.anim.delays); err != nil {
			img.Close()
			return err
		}
	}
	if s.anim.hasLoop {
		img.SetInt("loop", s.anim.loop)
	}
	s.replace(img)
	return s.settle()
}

// animatedFormat reports whether format can hold every frame of an animation.
func animatedFormat(format string) bool { return format == "gif" || format == "webp" }

// negotiateAnimated picks the output of format auto for an animation: WebP when the client
// accepts it, else GIF.
func negotiateAnimated(accept string) string {
	if strings.Contains(strings.ToLower(accept), "image/webp") && canSave("webp") {
		return "webp"
	}
	return "gif"
}
