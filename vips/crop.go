package vips

import (
	"context"
	"encoding/json"
	"slices"
	"strings"

	govips "github.com/davidbyttow/govips/v2/vips"

	"github.com/imaged/imaged"
)

// cropStep cuts a box out of the image: either an explicit box (x, y, width, height), which
// must lie inside the image, or a width×height box placed by gravity, where smart/attention
// and entropy let libvips choose the most interesting region. A gravity box larger than the
// image is clamped to it.
type cropStep struct {
	box           bool
	x, y          int
	width, height int // 0 means the whole side, for gravity crops
	gravity       string
	object        string // crop around the best object of this class (gravity=object:<class>)
	locator       imaged.Locator
}

func init() {
	register(opSpec{
		OpSpec: imaged.OpSpec{Name: "crop", Summary: "cuts a box out of the image, given or placed by gravity",
			Frames: imaged.FramesEach, TaskTypeFor: objectGravityTask},
		parse: parseArgs(parseCrop),
		// Only the searches of smart crop read the image twice.
		rereads: func(st step) bool {
			c := st.(*cropStep)
			return !c.box && slices.Contains(smartGravities, c.gravity)
		},
		animatable: func(i int, st step) error {
			if c := st.(*cropStep); c.object != "" || slices.Contains(smartGravities, c.gravity) {
				return invalid(i, "gravity", "crop.gravity=%s does not work on an animation: it would cut a different box from each frame; use a position gravity, or drop the frames op to crop the first frame", c.gravity)
			}
			return nil
		},
	})
}

// objectGravityTask makes a pipeline that places a box around an object (gravity
// object:<class>) a detect task: the object detector finds it.
func objectGravityTask(op imaged.Op) string {
	var a struct {
		Gravity string `json:"gravity"`
	}
	if json.Unmarshal(op.Args, &a) == nil && strings.HasPrefix(strings.ToLower(a.Gravity), "object:") {
		return imaged.TaskTypeDetect
	}
	return ""
}

type cropArgs struct {
	opName
	Width   *int   `json:"width" doc:"width of the box in pixels" min:"1"`
	Height  *int   `json:"height" doc:"height of the box in pixels" min:"1"`
	Gravity string `json:"gravity" doc:"where the box sits: centre, north, south, east, west, north-east…, or smart, attention, entropy, object:<class>"`
	X       *int   `json:"x" doc:"left edge of the box (with y instead of gravity)" min:"0"`
	Y       *int   `json:"y" doc:"top edge of the box (with x instead of gravity)" min:"0"`
}

func parseCrop(p *Processor, i int, op imaged.Op, a *cropArgs) (step, error) {
	c := &cropStep{gravity: "centre"}
	if err := p.sides(i, "crop", a.Width, a.Height, &c.width, &c.height); err != nil {
		return nil, err
	}
	if a.X != nil || a.Y != nil {
		c.box = true
		if a.Gravity != "" {
			return nil, invalid(i, "gravity", "crop takes either x and y or gravity, not both")
		}
		if a.Width == nil || a.Height == nil {
			field := "width"
			if a.Width != nil {
				field = "height"
			}
			return nil, invalid(i, field, "crop with x and y needs width and height")
		}
		if err := optional(&c.x, i, "crop", "x", a.X, 0, p.limits.MaxWidth-1); err != nil {
			return nil, err
		}
		if err := optional(&c.y, i, "crop", "y", a.Y, 0, p.limits.MaxHeight-1); err != nil {
			return nil, err
		}
		return c, nil
	}
	if a.Width == nil && a.Height == nil {
		return nil, invalid(i, "width", "crop needs width and height (with x and y, or a gravity)")
	}
	if class, ok := strings.CutPrefix(strings.ToLower(a.Gravity), "object:"); ok {
		if p.cfg.Locator == nil {
			return nil, invalid(i, "gravity", "crop gravity=object:<class> needs the object detector, which this server lacks")
		}
		if class == "" {
			return nil, invalid(i, "gravity", "crop gravity=object:<class> names no class")
		}
		c.gravity, c.object, c.locator = a.Gravity, class, p.cfg.Locator
		return c, nil
	}
	if err := choose(&c.gravity, i, "crop", "gravity", a.Gravity, cropGravities...); err != nil {
		return nil, err
	}
	return c, nil
}

func (c *cropStep) apply(ctx context.Context, s *state) error {
	if c.object != "" {
		return cropObject(ctx, s, c.locator, c.object, c.width, c.height)
	}
	w, h := s.img.Width(), s.img.Height()
	if c.box {
		if c.x+c.width > w || c.y+c.height > h {
			field := "width"
			if c.y+c.height > h && c.x+c.width <= w {
				field = "height"
			}
			return s.invalid(field, "crop box %d,%d %d×%d lies outside the %d×%d image",
				c.x, c.y, c.width, c.height, w, h)
		}
		return s.img.ExtractArea(c.x, c.y, c.width, c.height)
	}
	cw, ch := c.width, c.height
	if cw == 0 || cw > w {
		cw = w
	}
	if ch == 0 || ch > h {
		ch = h
	}
	return cropGravity(s.img, cw, ch, c.gravity)
}

// plan is the box's size, within the image: a box outside it is refused when the crop runs,
// on the image's real size.
func (c *cropStep) plan(in imaged.Geometry) (imaged.OpPlan, error) {
	side := func(v, full int) int {
		if v <= 0 || v > full {
			return full
		}
		return v
	}
	out := in.Resized(side(c.width, in.Width), side(c.height, in.Height))
	switch {
	case c.object != "":
		// The detector finds the object on the whole image; see objectPlan.
		p := objectPlan(in)
		p.Out = out
		p.Held = append(p.Held, out)
		return p, nil
	case !c.box && slices.Contains(smartGravities, c.gravity):
		return imaged.Reshaped(out, smartCropCost*in.MP()), nil
	}
	if out == in {
		return imaged.OpPlan{Out: in}, nil
	}
	return imaged.Reshaped(out, out.MP()), nil
}

// smartCropCost is the cost a megapixel of the searches of smart, attention and entropy.
const smartCropCost = 10

// cropGravity crops img to cw×ch (no larger than the image), placed by gravity.
func cropGravity(img *govips.ImageRef, cw, ch int, gravity string) error {
	w, h := img.Width(), img.Height()
	if cw == w && ch == h {
		return nil
	}
	switch gravity {
	case "smart", "attention":
		return img.SmartCrop(cw, ch, govips.InterestingAttention)
	case "entropy":
		return img.SmartCrop(cw, ch, govips.InterestingEntropy)
	}
	x, y := place(gravity, w, h, cw, ch)
	return img.ExtractArea(x, y, cw, ch)
}
