package vips

import (
	"context"
	"encoding/json"
	"errors"
	"math"
	"strconv"
	"strings"

	govips "github.com/davidbyttow/govips/v2/vips"

	"github.com/imaged/imaged"
)

// padStep grows the canvas: by margins (top, right, bottom, left), to a width×height canvas, or
// to the smallest canvas of an aspect ratio ("16:9", or a number such as 1.5) that holds the
// image, which gravity places (a canvas side smaller than the image keeps the image's side: pad
// never crops). New pixels take background, transparent for images with alpha unless given.
// extend is the same op.
type padStep struct {
	margins                  bool
	top, right, bottom, left int
	width, height            int
	aspect                   float64 // width / height; 0 when not asked for
	gravity                  string
	background               background
}

func init() {
	register(opSpec{OpSpec: imaged.OpSpec{Name: "pad", Summary: "adds borders around the image", Frames: imaged.FramesEach}, parse: parseArgs(parsePad)})
	register(opSpec{OpSpec: imaged.OpSpec{Name: "extend", Summary: "adds borders around the image", Frames: imaged.FramesEach}, parse: parseArgs(parsePad)})
	// trim would cut each frame of an animation to its own box.
	register(opSpec{OpSpec: imaged.OpSpec{Name: "trim", Summary: "cuts away a plain border"},
		parse: parseArgs(parseTrim), heavy: true, rereads: always})
}

type padArgs struct {
	opName
	Width      *int            `json:"width" doc:"width of the padded image (with height, instead of margins)" min:"1"`
	Height     *int            `json:"height" doc:"height of the padded image" min:"1"`
	Top        *int            `json:"top" doc:"margin in pixels" min:"0"`
	Right      *int            `json:"right" doc:"margin in pixels" min:"0"`
	Bottom     *int            `json:"bottom" doc:"margin in pixels" min:"0"`
	Left       *int            `json:"left" doc:"margin in pixels" min:"0"`
	Aspect     json.RawMessage `json:"aspect" doc:"pad to an aspect ratio: \"16:9\" or a number (0.01–100)"`
	Gravity    string          `json:"gravity" doc:"where the image sits in the padded canvas: centre, north, south-east…"`
	Background json.RawMessage `json:"background" type:"colour" doc:"colour of the new pixels"`
}

func parsePad(p *Processor, i int, op imaged.Op, a *padArgs) (step, error) {
	name := op.Name
	ps := &padStep{gravity: "centre"}
	margins := map[string]*int{"top": a.Top, "right": a.Right, "bottom": a.Bottom, "left": a.Left}
	for _, f := range []string{"top", "right", "bottom", "left"} {
		v := margins[f]
		if v == nil {
			continue
		}
		ps.margins = true
		if err := between(i, name, f, *v, 0, p.limits.MaxWidth); err != nil {
			return nil, err
		}
	}
	if len(a.Aspect) > 0 {
		r, err := parseAspect(a.Aspect)
		if err != nil {
			return nil, invalid(i, "aspect", "%s.aspect must be a ratio such as \"16:9\" or a number such as 1.5 (between 0.01 and 100)", name)
		}
		if ps.margins || a.Width != nil || a.Height != nil {
			return nil, invalid(i, "aspect", "%s takes an aspect ratio, margins or width/height, only one of them", name)
		}
		ps.aspect = r
	}
	switch {
	case ps.margins && (a.Width != nil || a.Height != nil || a.Gravity != ""):
		return nil, invalid(i, "width", "%s takes either margins (top, right, bottom, left) or width/height with gravity, not both", name)
	case ps.aspect > 0:
		if err := choose(&ps.gravity, i, name, "gravity", a.Gravity, gravities...); err != nil {
			return nil, err
		}
	case ps.margins:
		deref := func(v *int) int {
			if v == nil {
				return 0
			}
			return *v
		}
		ps.top, ps.right, ps.bottom, ps.left = deref(a.Top), deref(a.Right), deref(a.Bottom), deref(a.Left)
	case a.Width == nil && a.Height == nil:
		return nil, invalid(i, "width", "%s needs width and/or height, or margins (top, right, bottom, left)", name)
	default:
		if err := p.sides(i, name, a.Width, a.Height, &ps.width, &ps.height); err != nil {
			return nil, err
		}
		if err := choose(&ps.gravity, i, name, "gravity", a.Gravity, gravities...); err != nil {
			return nil, err
		}
	}
	var err error
	if ps.background, err = parseBackground(i, name, a.Background, black); err != nil {
		return nil, err
	}
	return ps, nil
}

func (ps *padStep) apply(_ context.Context, s *state) error {
	img := s.img
	w, h := img.Width(), img.Height()
	cw, ch := ps.canvas(w, h)
	x, y := ps.left, ps.top
	if !ps.margins {
		x, y = place(ps.gravity, cw, ch, w, h)
	}
	if cw == w && ch == h {
		return nil
	}
	if cw > s.limits.MaxWidth || ch > s.limits.MaxHeight {
		return s.invalid("", "%s would make the image %d×%d pixels; the limit is %d×%d",
			s.op, cw, ch, s.limits.MaxWidth, s.limits.MaxHeight)
	}
	return embed(img, x, y, cw, ch, ps.background.on(img))
}

// canvas is the size of the canvas ps makes for a w×h image.
func (ps *padStep) canvas(w, h int) (cw, ch int) {
	switch {
	case ps.margins:
		return w + ps.left + ps.right, h + ps.top + ps.bottom
	case ps.aspect > 0:
		cw, ch = w, h
		if float64(w)/float64(h) < ps.aspect {
			cw = int(math.Round(float64(h) * ps.aspect))
		} else {
			ch = int(math.Round(float64(w) / ps.aspect))
		}
		return max(cw, w), max(ch, h)
	}
	return max(ps.width, w), max(ps.height, h)
}

func (ps *padStep) plan(in imaged.Geometry) (imaged.OpPlan, error) {
	cw, ch := ps.canvas(in.Width, in.Height)
	if cw == in.Width && ch == in.Height {
		return imaged.OpPlan{Out: in}, nil
	}
	out := in.Resized(cw, ch).WithBands(withBackground(in.Bands, ps.background))
	return imaged.Reshaped(out, padCost*out.MP()), nil
}

// padCost is the cost a megapixel of a padded canvas.
const padCost = 2

// embed places img at x,y on a cw×ch canvas of colour bg.
func embed(img *govips.ImageRef, x, y, cw, ch int, bg rgba) error {
	if err := prepareBackground(img, bg); err != nil {
		return err
	}
	return img.EmbedBackgroundRGBA(x, y, cw, ch, &govips.ColorRGBA{R: bg.R, G: bg.G, B: bg.B, A: bg.A})
}

// prepareBackground readies img for new pixels of colour bg: libvips fills them band by band,
// so a grey image becomes sRGB (libvips takes a three-value background), and an image without
// alpha gains one when bg is not opaque.
func prepareBackground(img *govips.ImageRef, bg rgba) error {
	if img.Bands() < 3 {
		if err := img.ToColorSpace(govips.InterpretationSRGB); err != nil {
			return err
		}
	}
	if !bg.opaque() && !img.HasAlpha() {
		return img.AddAlpha()
	}
	return nil
}

// trimStep cuts away the border whose colour is within threshold of background (by default
// the colour of the top-left pixel). An image that is all border is left as it is.
type trimStep struct {
	threshold  float64
	background background
}

type trimArgs struct {
	opName
	Threshold  *float64        `json:"threshold" doc:"how far a pixel may differ from the background and still be trimmed" min:"0" max:"255" default:"10"`
	Background json.RawMessage `json:"background" type:"colour" doc:"colour of the new pixels"`
}

func parseTrim(p *Processor, i int, op imaged.Op, a *trimArgs) (step, error) {
	t := &trimStep{threshold: 10}
	if err := optional(&t.threshold, i, "trim", "threshold", a.Threshold, 0, 255); err != nil {
		return nil, err
	}
	var err error
	if t.background, err = parseBackground(i, "trim", a.Background, white); err != nil {
		return nil, err
	}
	return t, nil
}

func (t *trimStep) apply(_ context.Context, s *state) error {
	img := s.img
	bg := t.background.colour
	if !t.background.given {
		px, err := img.GetPoint(0, 0)
		if err != nil {
			return err
		}
		if len(px) == 1 || img.Bands() < 3 {
			bg = rgba{uint8(px[0]), uint8(px[0]), uint8(px[0]), 255}
		} else {
			bg = rgba{uint8(px[0]), uint8(px[1]), uint8(px[2]), 255}
		}
	}
	left, top, w, h, err := img.FindTrim(t.threshold, &govips.Color{R: bg.R, G: bg.G, B: bg.B})
	if err != nil {
		return err
	}
	if w <= 0 || h <= 0 || (w == img.Width() && h == img.Height()) {
		return nil
	}
	return img.ExtractArea(left, top, w, h)
}

// trim keeps at most the whole image: its plan is the image's size, found by a search that
// reads it about as a dozen point ops would.
func (t *trimStep) plan(in imaged.Geometry) (imaged.OpPlan, error) {
	return imaged.Reshaped(in, trimCost*in.MP()), nil
}

// trimCost is the cost a megapixel of trim's search.
const trimCost = 75

// parseAspect reads an aspect ratio: "W:H" (or "WxH") or a number, width over height.
func parseAspect(raw json.RawMessage) (float64, error) {
	var r float64
	var text string
	if err := json.Unmarshal(raw, &r); err != nil {
		if err := json.Unmarshal(raw, &text); err != nil {
			return 0, err
		}
		w, h, ok := strings.Cut(strings.ReplaceAll(strings.ToLower(text), "x", ":"), ":")
		if !ok {
			if r, err = strconv.ParseFloat(strings.TrimSpace(text), 64); err != nil {
				return 0, err
			}
		} else {
			fw, err1 := strconv.ParseFloat(strings.TrimSpace(w), 64)
			fh, err2 := strconv.ParseFloat(strings.TrimSpace(h), 64)
			if err1 != nil || err2 != nil || fh <= 0 {
				return 0, errors.New("not a ratio")
			}
			r = fw / fh
		}
	}
	if !(r >= 0.01 && r <= 100) {
		return 0, errors.New("out of range")
	}
	return r, nil
}
