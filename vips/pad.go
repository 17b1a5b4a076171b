package vips

import (
	"context"
	"encoding/json"
	"strings"

	govips "github.com/davidbyttow/govips/v2/vips"

	"github.com/imaged/imaged"
)

// padStep grows the canvas: by margins (top, right, bottom, left), or to a width×height canvas
// with the image placed by gravity (a canvas side smaller than the image keeps the image's
// side: pad never crops). New pixels take background, transparent for images with alpha unless
// given. extend is the same op.
type padStep struct {
	margins                  bool
	top, right, bottom, left int
	width, height            int
	gravity                  string
	background               rgba
	hasBackground            bool
}

func init() {
	register("pad", parsePad, false)
	register("extend", parsePad, false)
	register("trim", parseTrim, false)
}

func parsePad(p *Processor, i int, op imaged.Op) (step, error) {
	var a struct {
		opName
		Width      *int            `json:"width"`
		Height     *int            `json:"height"`
		Top        *int            `json:"top"`
		Right      *int            `json:"right"`
		Bottom     *int            `json:"bottom"`
		Left       *int            `json:"left"`
		Gravity    string          `json:"gravity"`
		Background json.RawMessage `json:"background"`
	}
	if err := op.DecodeArgs(i, &a); err != nil {
		return nil, err
	}
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
	switch {
	case ps.margins && (a.Width != nil || a.Height != nil || a.Gravity != ""):
		return nil, invalid(i, "width", "%s takes either margins (top, right, bottom, left) or width/height with gravity, not both", name)
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
		if a.Width != nil {
			if err := between(i, name, "width", *a.Width, 1, p.limits.MaxWidth); err != nil {
				return nil, err
			}
			ps.width = *a.Width
		}
		if a.Height != nil {
			if err := between(i, name, "height", *a.Height, 1, p.limits.MaxHeight); err != nil {
				return nil, err
			}
			ps.height = *a.Height
		}
		if a.Gravity != "" {
			ps.gravity = strings.ToLower(a.Gravity)
			if err := oneOf(i, name, "gravity", ps.gravity, gravities...); err != nil {
				return nil, err
			}
		}
	}
	bg, err := parseColour(i, name, "background", a.Background, black)
	if err != nil {
		return nil, err
	}
	ps.background, ps.hasBackground = bg, len(a.Background) > 0
	return ps, nil
}

func (ps *padStep) apply(_ context.Context, s *state) error {
	img := s.img
	w, h := img.Width(), img.Height()
	var x, y, cw, ch int
	if ps.margins {
		x, y, cw, ch = ps.left, ps.top, w+ps.left+ps.right, h+ps.top+ps.bottom
	} else {
		cw, ch = max(ps.width, w), max(ps.height, h)
		x, y = place(ps.gravity, cw, ch, w, h)
	}
	if cw == w && ch == h {
		return nil
	}
	if cw > s.limits.MaxWidth || ch > s.limits.MaxHeight {
		return s.invalid("", "%s would make the image %d×%d pixels; the limit is %d×%d",
			s.op, cw, ch, s.limits.MaxWidth, s.limits.MaxHeight)
	}
	bg := ps.background
	if !ps.hasBackground && img.HasAlpha() {
		bg = transparent
	}
	return embed(img, x, y, cw, ch, bg)
}

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
	threshold     float64
	background    rgba
	hasBackground bool
}

func parseTrim(p *Processor, i int, op imaged.Op) (step, error) {
	var a struct {
		opName
		Threshold  *float64        `json:"threshold"`
		Background json.RawMessage `json:"background"`
	}
	if err := op.DecodeArgs(i, &a); err != nil {
		return nil, err
	}
	t := &trimStep{threshold: 10}
	if a.Threshold != nil {
		if err := between(i, "trim", "threshold", *a.Threshold, 0, 255); err != nil {
			return nil, err
		}
		t.threshold = *a.Threshold
	}
	bg, err := parseColour(i, "trim", "background", a.Background, white)
	if err != nil {
		return nil, err
	}
	t.background, t.hasBackground = bg, len(a.Background) > 0
	return t, nil
}

func (t *trimStep) apply(_ context.Context, s *state) error {
	img := s.img
	bg := t.background
	if !t.hasBackground {
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
