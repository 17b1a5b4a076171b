package vips

import (
	"errors"
	"testing"

	"github.com/imaged/imaged"
)

func TestCropBoxIsTheSourceRegion(t *testing.T) {
	p := New(Config{})
	src := readTestdata(t, "chelsea.png")
	orig := decodeRaw(t, src)
	res := process(t, p, src, `[{"op":"crop","x":10,"y":20,"width":100,"height":50}]`)
	checkFormat(t, res, "png", 100, 50)
	r := decodeRaw(t, res.Data)
	for y := 0; y < 50; y++ {
		for x := 0; x < 100; x++ {
			for b := 0; b < 3; b++ {
				if r.at(x, y, b) != orig.at(x+10, y+20, b) {
					t.Fatalf("pixel %d,%d band %d: %d, source has %d", x, y, b, r.at(x, y, b), orig.at(x+10, y+20, b))
				}
			}
		}
	}
}

func TestCropGravity(t *testing.T) {
	p := New(Config{})
	src := readTestdata(t, "chelsea.png") // 451x300
	orig := decodeRaw(t, src)
	for _, tc := range []struct {
		ops        string
		w, h       int
		srcX, srcY int // where the crop's origin lies in the source; -1 when chosen by content
	}{
		{`{"op":"crop","width":100,"height":80}`, 100, 80, 175, 110},
		{`{"op":"crop","width":100,"height":80,"gravity":"north_west"}`, 100, 80, 0, 0},
		{`{"op":"crop","width":100,"height":80,"gravity":"south_east"}`, 100, 80, 351, 220},
		{`{"op":"crop","width":100,"height":80,"gravity":"north"}`, 100, 80, 175, 0},
		{`{"op":"crop","width":100,"gravity":"west"}`, 100, 300, 0, 0},
		{`{"op":"crop","width":1000,"height":80,"gravity":"south"}`, 451, 80, 0, 220},
		{`{"op":"crop","width":100,"height":80,"gravity":"smart"}`, 100, 80, -1, -1},
		{`{"op":"crop","width":100,"height":80,"gravity":"attention"}`, 100, 80, -1, -1},
		{`{"op":"crop","width":100,"height":80,"gravity":"entropy"}`, 100, 80, -1, -1},
	} {
		t.Run(tc.ops, func(t *testing.T) {
			res := process(t, p, src, "["+tc.ops+"]")
			checkFormat(t, res, "png", tc.w, tc.h)
			if tc.srcX < 0 {
				return
			}
			r := decodeRaw(t, res.Data)
			for _, pt := range [][2]int{{0, 0}, {tc.w - 1, tc.h - 1}, {tc.w / 2, tc.h / 3}} {
				if r.at(pt[0], pt[1], 1) != orig.at(pt[0]+tc.srcX, pt[1]+tc.srcY, 1) {
					t.Fatalf("pixel %v is not the source's %d,%d", pt, pt[0]+tc.srcX, pt[1]+tc.srcY)
				}
			}
		})
	}
}

func TestCropOutsideTheImage(t *testing.T) {
	p := New(Config{})
	src := readTestdata(t, "chelsea.jpg")
	// Valid without pixels; refused once the image is known.
	ops := `[{"op":"crop","x":400,"y":0,"width":100,"height":50}]`
	if err := p.Validate(parseOps(t, ops)); err != nil {
		t.Fatalf("validate: %v", err)
	}
	e := processErr(t, p, src, ops, imaged.EInvalid)
	if e.Field != "ops[0].width" || !contains(e.Message, "outside the 451×300 image") {
		t.Fatalf("got field %q message %q", e.Field, e.Message)
	}
	e = processErr(t, p, src, `[{"op":"resize","width":100},{"op":"crop","x":0,"y":60,"width":10,"height":10}]`, imaged.EInvalid)
	if e.Field != "ops[1].height" {
		t.Fatalf("got field %q message %q", e.Field, e.Message)
	}
}

func TestRotateRightAngles(t *testing.T) {
	p := New(Config{})
	src := readTestdata(t, "chelsea.png") // 451x300
	o := decodeRaw(t, src)
	W, H := o.w, o.h
	for _, tc := range []struct {
		angle string
		w, h  int
		from  func(x, y int) (int, int) // the source pixel that lands at x,y
	}{
		{"90", H, W, func(x, y int) (int, int) { return y, H - 1 - x }},
		{"-270", H, W, func(x, y int) (int, int) { return y, H - 1 - x }},
		{"180", W, H, func(x, y int) (int, int) { return W - 1 - x, H - 1 - y }},
		{"270", H, W, func(x, y int) (int, int) { return W - 1 - y, x }},
		{"-90", H, W, func(x, y int) (int, int) { return W - 1 - y, x }},
		{"360", W, H, func(x, y int) (int, int) { return x, y }},
	} {
		t.Run(tc.angle, func(t *testing.T) {
			res := process(t, p, src, `[{"op":"rotate","angle":`+tc.angle+`}]`)
			checkFormat(t, res, "png", tc.w, tc.h)
			r := decodeRaw(t, res.Data)
			for _, pt := range [][2]int{{0, 0}, {tc.w - 1, 0}, {5, tc.h - 1}, {tc.w / 2, tc.h / 3}} {
				sx, sy := tc.from(pt[0], pt[1])
				for b := 0; b < 3; b++ {
					if r.at(pt[0], pt[1], b) != o.at(sx, sy, b) {
						t.Fatalf("pixel %v is not the source's %d,%d", pt, sx, sy)
					}
				}
			}
		})
	}
}

func TestRotateAnyAngle(t *testing.T) {
	p := New(Config{})
	res := process(t, p, readTestdata(t, "chelsea.png"), `[{"op":"rotate","angle":30,"background":[0,0,255]}]`)
	// The canvas holds the whole turned image: w·cos + h·sin by w·sin + h·cos.
	if res.Width < 538 || res.Width > 542 || res.Height < 483 || res.Height > 487 {
		t.Fatalf("size %dx%d, want about 540x485", res.Width, res.Height)
	}
	r := decodeRaw(t, res.Data)
	if r.bands != 3 || r.at(1, 1, 2) != 255 || r.at(1, 1, 0) != 0 {
		t.Fatalf("corner is not the blue background: bands %d, %d,%d,%d", r.bands, r.at(1, 1, 0), r.at(1, 1, 1), r.at(1, 1, 2))
	}
	// Transparent corners for an image with alpha, a grey image becoming colour for a colour.
	res = process(t, p, readTestdata(t, "alpha.png"), `[{"op":"rotate","angle":10}]`)
	if r := decodeRaw(t, res.Data); r.bands != 4 || r.at(0, 0, 3) != 0 {
		t.Fatalf("alpha rotate: bands %d, corner alpha %d", r.bands, r.at(0, 0, 3))
	}
	res = process(t, p, readTestdata(t, "camera.png"), `[{"op":"rotate","angle":10,"background":"#ff0000"}]`)
	if r := decodeRaw(t, res.Data); r.bands != 3 || r.at(0, 0, 0) != 255 || r.at(0, 0, 1) != 0 {
		t.Fatalf("grey rotate on red: bands %d", r.bands)
	}
}

func TestFlip(t *testing.T) {
	p := New(Config{})
	src := readTestdata(t, "chelsea.png")
	o := decodeRaw(t, src)
	for _, tc := range []struct {
		ops  string
		from func(x, y int) (int, int)
	}{
		{`{"op":"flip"}`, func(x, y int) (int, int) { return x, o.h - 1 - y }},
		{`{"op":"flip","direction":"horizontal"}`, func(x, y int) (int, int) { return o.w - 1 - x, y }},
		{`{"op":"flop"}`, func(x, y int) (int, int) { return o.w - 1 - x, y }},
		{`{"op":"flip","direction":"vertical"}`, func(x, y int) (int, int) { return x, o.h - 1 - y }},
	} {
		t.Run(tc.ops, func(t *testing.T) {
			res := process(t, p, src, "["+tc.ops+"]")
			checkFormat(t, res, "png", o.w, o.h)
			r := decodeRaw(t, res.Data)
			for _, pt := range [][2]int{{0, 0}, {10, 200}, {400, 7}} {
				sx, sy := tc.from(pt[0], pt[1])
				if r.at(pt[0], pt[1], 0) != o.at(sx, sy, 0) {
					t.Fatalf("pixel %v is not the source's %d,%d", pt, sx, sy)
				}
			}
		})
	}
}

func TestPad(t *testing.T) {
	p := New(Config{})
	src := readTestdata(t, "chelsea.png") // 451x300
	o := decodeRaw(t, src)
	res := process(t, p, src, `[{"op":"pad","width":500,"height":400,"gravity":"north_west","background":"#00ff00"}]`)
	checkFormat(t, res, "png", 500, 400)
	r := decodeRaw(t, res.Data)
	if r.at(499, 399, 1) != 255 || r.at(499, 399, 0) != 0 || r.at(10, 10, 0) != o.at(10, 10, 0) {
		t.Fatal("image not at the top left on green")
	}
	res = process(t, p, src, `[{"op":"extend","top":5,"right":6,"bottom":7,"left":8}]`)
	checkFormat(t, res, "png", 451+14, 300+12)
	r = decodeRaw(t, res.Data)
	if r.at(0, 0, 0) != 0 || r.at(8, 5, 2) != o.at(0, 0, 2) {
		t.Fatal("margins are not black around the image")
	}
	// Transparent padding for an image with alpha; never cropping.
	res = process(t, p, readTestdata(t, "alpha.png"), `[{"op":"pad","width":300,"height":100}]`)
	checkFormat(t, res, "png", 300, 173)
	if r := decodeRaw(t, res.Data); r.bands != 4 || r.at(0, 100, 3) != 0 {
		t.Fatal("padding is not transparent")
	}
}

func TestPadToAspectRatio(t *testing.T) {
	p := New(Config{})
	src := readTestdata(t, "chelsea.png") // 451x300, 1.503
	o := decodeRaw(t, src)
	for _, c := range []struct {
		ops  string
		w, h int
	}{
		{`[{"op":"pad","aspect":"1:1","background":"#ff0000"}]`, 451, 451},
		{`[{"op":"pad","aspect":"16:9","background":"#ff0000"}]`, 533, 300},
		{`[{"op":"pad","aspect":0.5,"background":"#ff0000"}]`, 451, 902},
		{`[{"op":"extend","aspect":"3x2","background":"#ff0000"}]`, 451, 301},
	} {
		res := process(t, p, src, c.ops)
		checkFormat(t, res, "png", c.w, c.h)
		r := decodeRaw(t, res.Data)
		// Centred: the image's middle pixel sits in the canvas's middle; the corner is padding
		// when the canvas grew on that side.
		if r.at(c.w/2, c.h/2, 1) != o.at(225, 150, 1) && r.at(c.w/2, c.h/2, 1) != o.at(226, 150, 1) {
			t.Errorf("%s: the image is not centred", c.ops)
		}
		if (c.w-451 >= 2 || c.h-300 >= 2) && (r.at(0, 0, 0) != 255 || r.at(0, 0, 1) != 0) {
			t.Errorf("%s: the corner is not red padding", c.ops)
		}
	}
	res := process(t, p, src, `[{"op":"pad","aspect":"1:1","gravity":"north"}]`)
	if r := decodeRaw(t, res.Data); r.at(10, 10, 0) != o.at(10, 10, 0) || r.at(10, 440, 0) != 0 {
		t.Error("gravity north: the image is not at the top")
	}
	for ops, field := range map[string]string{
		`[{"op":"pad","aspect":"wide"}]`:               "ops[0].aspect",
		`[{"op":"pad","aspect":0}]`:                    "ops[0].aspect",
		`[{"op":"pad","aspect":"1:0"}]`:                "ops[0].aspect",
		`[{"op":"pad","aspect":"1:1","width":100}]`:    "ops[0].aspect",
		`[{"op":"pad","aspect":"1:1","top":10}]`:       "ops[0].aspect",
		`[{"op":"pad","aspect":"1:1","gravity":"up"}]`: "ops[0].gravity",
	} {
		err := p.Validate(parseOps(t, ops))
		var e *imaged.Error
		if !errors.As(err, &e) || e.Field != field {
			t.Errorf("%s: %v, want an error naming %s", ops, err, field)
		}
	}
}

func TestTrim(t *testing.T) {
	p := New(Config{})
	src := readTestdata(t, "chelsea.png")
	res := process(t, p, src, `[{"op":"pad","top":20,"right":30,"bottom":40,"left":50,"background":"#ffffff"},{"op":"trim"}]`)
	checkFormat(t, res, "png", 451, 300)
	if d := meanAbsDiff(t, decodeRaw(t, res.Data), decodeRaw(t, src)); d != 0 {
		t.Fatalf("trimmed image differs from the source by %.2f", d)
	}
	// A plain image is left alone.
	res = process(t, p, src, `[{"op":"trim","threshold":5,"background":"#000000"}]`)
	checkFormat(t, res, "png", 451, 300)
}
