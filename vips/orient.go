package vips

import (
	"context"
	"encoding/json"
	"math"
	"strings"

	govips "github.com/davidbyttow/govips/v2/vips"

	"github.com/imaged/imaged"
)

// rotateStep turns the image clockwise by angle degrees. Multiples of 90 move pixels without
// resampling; other angles resample and grow the canvas to hold the whole turned image, filled
// with background (transparent for images with alpha unless a background is given).
type rotateStep struct {
	angle      float64 // normalised to [0, 360)
	background background
}

func init() {
	register(opSpec{OpSpec: imaged.OpSpec{Name: "rotate", Summary: "rotates the image by an angle", Frames: imaged.FramesEach},
		parse: parseArgs(parseRotate), heavy: true, rereads: always})
	register(opSpec{OpSpec: imaged.OpSpec{Name: "flip", Summary: "mirrors the image top to bottom (direction horizontal: left to right)", Frames: imaged.FramesEach}, parse: parseArgs(parseFlip)})
	register(opSpec{OpSpec: imaged.OpSpec{Name: "flop", Summary: "mirrors the image left to right", Frames: imaged.FramesEach},
		parse: parseNumbers("flop", nil, fixedStep(&flipStep{dir: govips.DirectionHorizontal}))})
}

type rotateArgs struct {
	opName
	Angle      *float64        `json:"angle" doc:"degrees, clockwise" min:"-3600" max:"3600" required:"true"`
	Background json.RawMessage `json:"background" type:"colour" doc:"colour of the new pixels"`
}

func parseRotate(p *Processor, i int, op imaged.Op, a *rotateArgs) (step, error) {
	if a.Angle == nil {
		return nil, invalid(i, "angle", "rotate.angle is required (degrees, clockwise)")
	}
	if err := between(i, "rotate", "angle", *a.Angle, -3600, 3600); err != nil {
		return nil, err
	}
	bg, err := parseBackground(i, "rotate", a.Background, black)
	if err != nil {
		return nil, err
	}
	angle := math.Mod(*a.Angle, 360)
	if angle < 0 {
		angle += 360
	}
	return &rotateStep{angle: angle, background: bg}, nil
}

func (r *rotateStep) apply(_ context.Context, s *state) error {
	img := s.img
	if q := r.angle / 90; q == math.Trunc(q) {
		switch int(q) {
		case 1:
			return img.Rotate(govips.Angle90)
		case 2:
			return img.Rotate(govips.Angle180)
		case 3:
			return img.Rotate(govips.Angle270)
		}
		return nil
	}
	bg := r.background.on(img)
	if err := prepareBackground(img, bg); err != nil {
		return err
	}
	c := &govips.ColorRGBA{R: bg.R, G: bg.G, B: bg.B, A: bg.A}
	return img.Similarity(1, r.angle, c, 0, 0, 0, 0)
}

func (r *rotateStep) plan(in imaged.Geometry) (imaged.OpPlan, error) {
	switch q := r.angle / 90; {
	case q == 0:
		return imaged.OpPlan{Out: in}, nil
	case q == math.Trunc(q):
		out := in
		if int(q)%2 == 1 {
			out = in.Resized(in.Height, in.Width)
		}
		return imaged.Reshaped(out, 3*in.MP()), nil
	}
	w, h := turnedSize(in.Width, in.Height, r.angle)
	out := in.Resized(w, h).WithBands(withBackground(in.Bands, r.background))
	return imaged.Reshaped(out, 12*out.MP()), nil
}

// turnedSize is the canvas libvips' similarity gives a w×h image turned by angle degrees: the
// bounding box of the turned corners, rounded to whole pixels.
func turnedSize(w, h int, angle float64) (int, int) {
	rad := angle * math.Pi / 180
	c, s := math.Abs(math.Cos(rad)), math.Abs(math.Sin(rad))
	fw, fh := float64(w)*c+float64(h)*s, float64(w)*s+float64(h)*c
	return max(1, int(math.Round(fw))), max(1, int(math.Round(fh)))
}

// flipStep mirrors the image: horizontal swaps left and right, vertical swaps top and bottom.
// flop is a horizontal flip, the name ImageMagick and sharp users look for.
type flipStep struct{ dir govips.Direction }

type flipArgs struct {
	opName
	Direction string `json:"direction" doc:"vertical (default) mirrors top to bottom, horizontal left to right" enum:"horizontal,vertical" default:"vertical"`
}

func parseFlip(p *Processor, i int, op imaged.Op, a *flipArgs) (step, error) {
	// As in sharp and ImageMagick, a bare flip mirrors top to bottom (flop mirrors left to
	// right); direction keeps its meaning: horizontal mirrors left to right.
	switch strings.ToLower(a.Direction) {
	case "horizontal":
		return &flipStep{dir: govips.DirectionHorizontal}, nil
	case "", "vertical":
		return &flipStep{dir: govips.DirectionVertical}, nil
	}
	return nil, oneOf(i, "flip", "direction", a.Direction, "horizontal", "vertical")
}

func (f *flipStep) apply(_ context.Context, s *state) error { return s.img.Flip(f.dir) }

func (f *flipStep) plan(in imaged.Geometry) (imaged.OpPlan, error) {
	return imaged.Reshaped(in, 2*in.MP()), nil
}
