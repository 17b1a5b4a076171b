package vips

import (
	"context"
	"fmt"
	"math"
	"slices"
	"strings"
	"testing"

	govips "github.com/davidbyttow/govips/v2/vips"

	"github.com/imaged/imaged"
)

// Frames of the test animation: 60×40 each, chelsea as is, darkened, brightened; 100, 200 and
// 300 ms; played 3 times.
var (
	animDelays = []int{100, 200, 300}
	animLoop   = 3
)

const animW, animH = 60, 40

// animated builds a three-frame animation of distinct frames in format (gif, or webp; lossless
// keeps the webp frames exact).
func animated(t testing.TB, format string, lossless bool) []byte {
	t.Helper()
	base, err := govips.NewImageFromBuffer(readTestdata(t, "chelsea.png"))
	if err != nil {
		t.Fatal(err)
	}
	defer base.Close()
	if err := base.ResizeWithVScale(float64(animW)/float64(base.Width()), float64(animH)/float64(base.Height()), govips.KernelLanczos3); err != nil {
		t.Fatal(err)
	}
	if base.Width() != animW || base.Height() != animH {
		t.Fatalf("base frame %dx%d", base.Width(), base.Height())
	}
	var frames []*govips.ImageRef
	for k, fn := range []func(*govips.ImageRef) error{
		func(*govips.ImageRef) error { return nil },
		func(f *govips.ImageRef) error { return linear(f, 0.3, 0) },
		func(f *govips.ImageRef) error { return linear(f, 1.8, 0) },
	} {
		f, err := base.Copy()
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		if err := fn(f); err != nil {
			t.Fatalf("frame %d: %v", k, err)
		}
		frames = append(frames, f)
	}
	stack, err := frames[0].Copy()
	if err != nil {
		t.Fatal(err)
	}
	defer stack.Close()
	if err := stack.ArrayJoin(frames[1:], 1); err != nil {
		t.Fatal(err)
	}
	if err := stack.SetPageHeight(animH); err != nil {
		t.Fatal(err)
	}
	if err := stack.SetPages(len(frames)); err != nil {
		t.Fatal(err)
	}
	if err := stack.SetPageDelay(animDelays); err != nil {
		t.Fatal(err)
	}
	stack.SetInt("loop", animLoop)
	var data []byte
	switch format {
	case "gif":
		data, _, err = stack.ExportGIF(govips.NewGifExportParams())
	case "webp":
		p := govips.NewWebpExportParams()
		p.Lossless = lossless
		data, _, err = stack.ExportWebp(p)
	default:
		t.Fatalf("no animation in %s", format)
	}
	if err != nil {
		t.Fatal(err)
	}
	return data
}

// frameSet is an encoded image decoded with all its frames.
type frameSet struct {
	frames []raw
	delays []int
	loop   int
}

func decodeFrames(t testing.TB, data []byte) frameSet {
	t.Helper()
	params := govips.NewImportParams()
	params.NumPages.Set(-1)
	img, err := govips.LoadImageFromBuffer(data, params)
	if err != nil {
		t.Fatalf("decode frames: %v", err)
	}
	defer img.Close()
	n, ph := max(img.Pages(), 1), img.PageHeight()
	if ph*n != img.Height() {
		t.Fatalf("%d pages of height %d in a %d high image", n, ph, img.Height())
	}
	pix, err := img.ToBytes()
	if err != nil {
		t.Fatal(err)
	}
	var fs frameSet
	size := img.Width() * ph * img.Bands()
	for k := 0; k < n; k++ {
		fs.frames = append(fs.frames, raw{w: img.Width(), h: ph, bands: img.Bands(), pix: pix[k*size : (k+1)*size]})
	}
	if n > 1 {
		if fs.delays, err = img.PageDelay(); err != nil {
			t.Fatal(err)
		}
		fs.loop = img.GetInt("loop")
	}
	return fs
}

// crop cuts a region out of a raw frame.
func (r raw) crop(x, y, w, h int) raw {
	out := raw{w: w, h: h, bands: r.bands, pix: make([]byte, 0, w*h*r.bands)}
	for yy := y; yy < y+h; yy++ {
		out.pix = append(out.pix, r.pix[(yy*r.w+x)*r.bands:(yy*r.w+x+w)*r.bands]...)
	}
	return out
}

// checkAnimation checks that out holds as many frames as in, each w×h, with in's timing, and
// that each frame's mean brightness follows its own source frame's (the frames stay distinct
// and in order).
func checkAnimation(t *testing.T, in, out frameSet, w, h int, tolerance float64) {
	t.Helper()
	if len(out.frames) != len(in.frames) {
		t.Fatalf("%d frames, want %d", len(out.frames), len(in.frames))
	}
	for k, f := range out.frames {
		if f.w != w || f.h != h {
			t.Fatalf("frame %d is %dx%d, want %dx%d", k, f.w, f.h, w, h)
		}
		want := mean(in.frames[k].luma())
		if got := mean(f.luma()); math.Abs(got-want) > tolerance {
			t.Fatalf("frame %d mean %.1f, its source's %.1f", k, got, want)
		}
		for j := range k {
			if d := math.Abs(mean(f.luma()) - mean(out.frames[j].luma())); d < 20 {
				t.Fatalf("frames %d and %d are alike (means %.1f apart)", j, k, d)
			}
		}
	}
	if fmt.Sprint(out.delays) != fmt.Sprint(in.delays) || out.loop != in.loop {
		t.Fatalf("timing: delays %v loop %d, want %v loop %d", out.delays, out.loop, in.delays, in.loop)
	}
}

func TestFramesFixture(t *testing.T) {
	for _, format := range []string{"gif", "webp"} {
		in := decodeFrames(t, animated(t, format, false))
		if len(in.frames) != 3 || fmt.Sprint(in.delays) != fmt.Sprint(animDelays) || in.loop != animLoop {
			t.Fatalf("%s: %d frames, delays %v, loop %d", format, len(in.frames), in.delays, in.loop)
		}
		m := []float64{mean(in.frames[0].luma()), mean(in.frames[1].luma()), mean(in.frames[2].luma())}
		if math.Abs(m[0]-m[1]) < 30 || math.Abs(m[0]-m[2]) < 30 || math.Abs(m[1]-m[2]) < 30 {
			t.Fatalf("%s: frame means %v are not distinct", format, m)
		}
	}
}

// frames + resize keeps an animation animated in every fit mode, each frame resized on its own.
func TestFramesResize(t *testing.T) {
	p := New(Config{})
	for _, format := range []string{"gif", "webp"} {
		src := animated(t, format, false)
		in := decodeFrames(t, src)
		for _, tc := range []struct {
			resize string
			w, h   int
			scale  float64 // of the frames' mean: exact's black bars take a third of the box
		}{
			{`"width":30`, 30, 20, 0},
			{`"width":30,"height":30,"fit":"inside"`, 30, 20, 0},
			{`"width":30,"height":30,"fit":"outside"`, 45, 30, 0},
			{`"width":30,"height":30,"fit":"cover"`, 30, 30, 0},
			{`"width":30,"height":30,"fit":"fill"`, 30, 30, 0},
			{`"width":30,"height":30,"fit":"exact"`, 30, 30, 2.0 / 3},
			{`"width":120,"enlarge":true,"kernel":"nearest"`, 120, 80, 0},
		} {
			t.Run(format+"/"+tc.resize, func(t *testing.T) {
				res := process(t, p, src, `[{"op":"frames"},{"op":"resize",`+tc.resize+`}]`)
				checkFormat(t, res, format, tc.w, tc.h)
				out := decodeFrames(t, res.Data)
				tolerance := 6.0
				if strings.Contains(tc.resize, "cover") {
					tolerance = 25 // the crop moves the mean
				}
				want := in
				if tc.scale != 0 {
					want = frameSet{delays: in.delays, loop: in.loop}
					for _, f := range in.frames {
						f = raw{w: f.w, h: f.h, bands: f.bands, pix: append([]byte(nil), f.pix...)}
						for k := range f.pix {
							f.pix[k] = byte(math.Round(float64(f.pix[k]) * tc.scale))
						}
						want.frames = append(want.frames, f)
					}
				}
				checkAnimation(t, want, out, tc.w, tc.h, tolerance)
			})
		}
	}
}

// frames + crop cuts the same box out of every frame.
func TestFramesCrop(t *testing.T) {
	p := New(Config{})
	for _, format := range []string{"gif", "webp"} {
		src := animated(t, format, true)
		in := decodeFrames(t, src)
		for _, tc := range []struct {
			crop       string
			x, y, w, h int
		}{
			{`"x":10,"y":5,"width":24,"height":20`, 10, 5, 24, 20},
			{`"width":24,"height":20,"gravity":"south_east"`, 36, 20, 24, 20},
			{`"width":24,"height":20`, 18, 10, 24, 20},
		} {
			t.Run(format+"/"+tc.crop, func(t *testing.T) {
				res := process(t, p, src, `[{"op":"frames"},{"op":"crop",`+tc.crop+`}]`)
				checkFormat(t, res, format, tc.w, tc.h)
				out := decodeFrames(t, res.Data)
				checkAnimation(t, in, out, tc.w, tc.h, 255)
				// Each frame is its own source frame's box, and not another frame's.
				for k, f := range out.frames {
					own := meanAbsDiff(t, f, in.frames[k].crop(tc.x, tc.y, tc.w, tc.h))
					if own > 12 {
						t.Fatalf("output frame %d differs from its source frame's box by %.1f", k, own)
					}
					for j, g := range in.frames {
						if d := meanAbsDiff(t, f, g.crop(tc.x, tc.y, tc.w, tc.h)); j != k && d < 3*own {
							t.Fatalf("output frame %d is as close to source frame %d (%.1f) as to its own (%.1f)", k, j, d, own)
						}
					}
				}
			})
		}
	}
	// A box outside the frame is refused: the frame's size counts, not the stack's.
	e := processErr(t, p, animated(t, "gif", false), `[{"op":"frames"},{"op":"crop","x":0,"y":30,"width":20,"height":20}]`, imaged.EInvalid)
	if e.Field != "ops[1].height" || !strings.Contains(e.Message, "60×40") {
		t.Fatalf("error %+v", e)
	}
}

// Every op that works per frame gives each frame what it gives the frame as a still image.
func TestFramesPerFrameOps(t *testing.T) {
	p := New(Config{})
	src := animated(t, "webp", true)
	in := decodeFrames(t, src)
	// The first frame alone, as a lossless still.
	still := process(t, p, src, `[{"op":"convert","format":"webp","lossless":true}]`).Data
	for _, op := range []string{
		`{"op":"flip"}`, `{"op":"flip","direction":"vertical"}`, `{"op":"flop"}`,
		`{"op":"rotate","angle":90}`, `{"op":"rotate","angle":180}`, `{"op":"rotate","angle":270}`, `{"op":"rotate","angle":30}`,
		`{"op":"pad","top":4,"left":6,"background":"#ff0000"}`, `{"op":"extend","width":80,"height":50,"gravity":"north_west"}`,
		`{"op":"grayscale"}`, `{"op":"brightness","factor":1.5}`, `{"op":"contrast","factor":1.5}`,
		`{"op":"saturation","factor":2}`, `{"op":"gamma","gamma":2}`, `{"op":"invert"}`, `{"op":"sepia"}`,
		`{"op":"threshold","threshold":100}`, `{"op":"blur","sigma":2}`, `{"op":"sharpen"}`, `{"op":"pixelate","size":5}`,
		`{"op":"emboss"}`, `{"op":"edge","method":"sobel"}`, `{"op":"watermark","text":"hi","opacity":1,"margin":2}`,
		`{"op":"resize","width":30,"kernel":"linear"}`, `{"op":"crop","width":30,"height":30,"gravity":"north"}`,
	} {
		t.Run(op, func(t *testing.T) {
			res := process(t, p, src, `[{"op":"frames"},`+op+`,{"op":"convert","format":"webp","lossless":true}]`)
			want := decodeRaw(t, process(t, p, still, `[{"op":"flip"},{"op":"flip"},`+op+`,{"op":"convert","format":"webp","lossless":true}]`).Data)
			out := decodeFrames(t, res.Data)
			if len(out.frames) != len(in.frames) || res.Width != want.w || res.Height != want.h {
				t.Fatalf("%d frames of %dx%d; want %d of %dx%d", len(out.frames), res.Width, res.Height, len(in.frames), want.w, want.h)
			}
			if fmt.Sprint(out.delays) != fmt.Sprint(animDelays) || out.loop != animLoop {
				t.Fatalf("timing lost: delays %v, loop %d", out.delays, out.loop)
			}
			f := out.frames[0]
			if f.bands != want.bands {
				// webp writes 3 or 4 bands; compare the colour alone.
				f, want = dropAlpha(f), dropAlpha(want)
			}
			if d := meanAbsDiff(t, f, want); d > 1 {
				t.Fatalf("first frame differs from the still result by %.2f", d)
			}
		})
	}
}

// dropAlpha keeps the first three bands of an image with alpha.
func dropAlpha(r raw) raw {
	if r.bands != 4 {
		return r
	}
	out := raw{w: r.w, h: r.h, bands: 3, pix: make([]byte, 0, r.w*r.h*3)}
	for k := 0; k < len(r.pix); k += 4 {
		out.pix = append(out.pix, r.pix[k:k+3]...)
	}
	return out
}

// Without the frames op only the first frame is loaded, and the result is a still image.
func TestFramesNotAskedForGivesOneFrame(t *testing.T) {
	p := New(Config{})
	for _, format := range []string{"gif", "webp"} {
		src := animated(t, format, false)
		in := decodeFrames(t, src)
		res := process(t, p, src, `[{"op":"resize","width":30}]`)
		checkFormat(t, res, format, 30, 20)
		out := decodeFrames(t, res.Data)
		if len(out.frames) != 1 || math.Abs(mean(out.frames[0].luma())-mean(in.frames[0].luma())) > 6 {
			t.Fatalf("%s: %d frames", format, len(out.frames))
		}
	}
}

func TestFramesOutputFormats(t *testing.T) {
	p := New(Config{})
	src := animated(t, "gif", false)
	in := decodeFrames(t, src)

	// Formats without animation take the first frame.
	for _, format := range []string{"png", "jpeg", "tiff", "avif"} {
		res := process(t, p, src, `[{"op":"frames"},{"op":"resize","width":30},{"op":"convert","format":"`+format+`"}]`)
		checkFormat(t, res, format, 30, 20)
		if r := decodeRaw(t, res.Data); r.h != 20 || math.Abs(mean(r.luma())-mean(in.frames[0].luma())) > 6 {
			t.Fatalf("%s: %dx%d, mean %.1f", format, r.w, r.h, mean(r.luma()))
		}
	}
	// GIF to WebP and back stays animated.
	webp := process(t, p, src, `[{"op":"frames"},{"op":"convert","format":"webp"}]`)
	checkFormat(t, webp, "webp", animW, animH)
	checkAnimation(t, in, decodeFrames(t, webp.Data), animW, animH, 6)
	gif := process(t, p, webp.Data, `[{"op":"frames"},{"op":"convert","format":"gif"}]`)
	checkFormat(t, gif, "gif", animW, animH)
	checkAnimation(t, in, decodeFrames(t, gif.Data), animW, animH, 8)

	// auto picks WebP when the client takes it (never AVIF, which holds no animation here),
	// else GIF.
	for accept, want := range map[string]string{"image/avif,image/webp,*/*": "webp", "image/avif,*/*": "gif", "": "gif"} {
		res, err := p.Process(context.Background(), src, parseOps(t, `[{"op":"frames"},{"op":"convert","format":"auto"}]`),
			imaged.ProcessOptions{Accept: accept})
		if err != nil {
			t.Fatal(err)
		}
		checkFormat(t, res, want, animW, animH)
		if n := len(decodeFrames(t, res.Data).frames); n != 3 {
			t.Fatalf("auto for %q: %d frames", accept, n)
		}
	}
	// A still image through auto still gets AVIF.
	res, err := p.Process(context.Background(), readTestdata(t, "chelsea.jpg"),
		parseOps(t, `[{"op":"frames"},{"op":"convert","format":"auto"}]`), imaged.ProcessOptions{Accept: "image/avif"})
	if err != nil {
		t.Fatal(err)
	}
	checkFormat(t, res, "avif", 451, 300)
}

// info reports the file's frame count and the size of one frame, with frames or without.
func TestFramesInfo(t *testing.T) {
	p := New(Config{})
	for _, format := range []string{"gif", "webp"} {
		src := animated(t, format, false)
		for _, ops := range []string{`[{"op":"info"}]`, `[{"op":"frames"},{"op":"info"}]`} {
			res := process(t, p, src, ops)
			info := analyses(t, res)[0]
			if info["pages"] != 3.0 || info["width"] != float64(animW) || info["height"] != float64(animH) || info["format"] != format {
				t.Fatalf("%s %s: %v", format, ops, info)
			}
			if res.Changed || res.Data != nil || res.Height != animH {
				t.Fatalf("%s %s: changed %v, height %d", format, ops, res.Changed, res.Height)
			}
		}
		res := process(t, p, src, `[{"op":"frames"},{"op":"rotate","angle":90},{"op":"info"}]`)
		if info := analyses(t, res)[0]; info["width"] != float64(animH) || info["height"] != float64(animW) {
			t.Fatalf("%s after rotate: %v", format, info)
		}
		checkFormat(t, res, format, animH, animW)
	}
}

// A still image goes through a frames pipeline exactly as without it, shrinking on load.
func TestFramesStillImage(t *testing.T) {
	p := New(Config{})
	src := readTestdata(t, "chelsea.jpg")
	for _, ops := range []string{
		`{"op":"resize","width":100}`,
		`{"op":"resize","width":100},{"op":"rotate","angle":90}`,
		`{"op":"flip"}`,
	} {
		with := process(t, p, src, `[{"op":"frames"},`+ops+`]`)
		without := process(t, p, src, `[`+ops+`]`)
		if string(with.Data) != string(without.Data) || with.Width != without.Width || with.Height != without.Height {
			t.Fatalf("%s: the frames op changed a still image's result", ops)
		}
	}
	res := process(t, p, readTestdata(t, "anim.gif"), `[{"op":"frames"},{"op":"resize","width":20}]`)
	if n := len(decodeFrames(t, res.Data).frames); n != 2 {
		t.Fatalf("anim.gif: %d frames", n)
	}
	// frames alone changes nothing, still or animated.
	for _, src := range [][]byte{src, animated(t, "webp", false)} {
		if res := process(t, p, src, `[{"op":"frames"}]`); res.Changed || res.Data != nil {
			t.Fatal("frames alone made a new image")
		}
	}
}

func TestFramesLimits(t *testing.T) {
	src := animated(t, "gif", false)
	p := New(Config{})
	// max keeps the first max frames of a longer animation, with their timing.
	for _, src := range [][]byte{src, animated(t, "webp", true)} {
		whole := decodeFrames(t, process(t, p, src, `[{"op":"frames"},{"op":"resize","width":30},{"op":"convert","format":"gif"}]`).Data)
		for _, keep := range []int{1, 2, 3} {
			res := process(t, p, src, fmt.Sprintf(`[{"op":"frames","max":%d},{"op":"resize","width":30},{"op":"convert","format":"gif"}]`, keep))
			got := decodeFrames(t, res.Data)
			if len(got.frames) != keep {
				t.Fatalf("max %d: %d frames", keep, len(got.frames))
			}
			for k := range got.frames {
				// Compared by luma: a single kept frame is a still GIF, without the alpha band.
				if d := math.Abs(mean(got.frames[k].luma()) - mean(whole.frames[k].luma())); d > 4 {
					t.Errorf("max %d: frame %d differs from the animation's frame %d by %.1f", keep, k, k, d)
				}
			}
			if keep > 1 && !slices.Equal(got.delays, animDelays[:keep]) {
				t.Errorf("max %d: delays %v, want %v", keep, got.delays, animDelays[:keep])
			}
		}
	}

	small := New(Config{MaxFrames: 2})
	e := processErr(t, small, src, `[{"op":"frames"},{"op":"resize","width":30}]`, imaged.EInvalid)
	if e.Field != "ops[0].max" || !strings.Contains(e.Message, "at most 2") || !strings.Contains(e.Message, "frames.max keeps the first") {
		t.Fatalf("server limit: %+v", e)
	}
	if n := len(decodeFrames(t, process(t, small, src, `[{"op":"frames","max":2},{"op":"convert","format":"gif"}]`).Data).frames); n != 2 {
		t.Fatalf("max within the server limit kept %d frames", n)
	}
	// Without frames the first frame is all that is loaded, whatever the count.
	process(t, small, src, `[{"op":"resize","width":30}]`)

	// All frames together count against the pixel limit: 3 × 60×40 = 7200 > 60×100.
	tight := New(Config{Limits: imaged.Limits{MaxWidth: 60, MaxHeight: 100}})
	e = processErr(t, tight, src, `[{"op":"frames"},{"op":"flip"}]`, imaged.ETooLarge)
	if !strings.Contains(e.Message, "3 frames of 60×40") {
		t.Fatalf("pixels: %+v", e)
	}
	process(t, tight, src, `[{"op":"flip"}]`)
	// So does an op that would make the frames larger.
	e = processErr(t, New(Config{Limits: imaged.Limits{MaxWidth: 100, MaxHeight: 100}}), src,
		`[{"op":"frames"},{"op":"resize","width":80,"enlarge":true}]`, imaged.EInvalid)
	if e.Field != "ops[1]" || !strings.Contains(e.Message, "pixels over all frames") {
		t.Fatalf("output pixels: %+v", e)
	}
}

// Bad frames parameters, and ops that cannot work on an animation, are refused before any
// pixel is decoded, naming the op and field.
func TestFramesValidation(t *testing.T) {
	p := New(Config{Analyzers: []imaged.Analyzer{&fakeAnalyzer{}}})
	for _, tc := range []struct {
		ops, field, text string
	}{
		{`[{"op":"frames","max":0}]`, "ops[0].max", "frames.max must be between 1 and 100"},
		{`[{"op":"frames","max":101}]`, "ops[0].max", "frames.max must be between 1 and 100"},
		{`[{"op":"frames","count":3}]`, "ops[0].count", `frames has no parameter "count"`},
		{`[{"op":"resize","width":10},{"op":"frames"}]`, "ops[1].op", "frames must be the first op"},
		{`[{"op":"frames"},{"op":"trim"}]`, "ops[1].op", "trim does not work on an animation"},
		{`[{"op":"frames"},{"op":"flip"},{"op":"detect"}]`, "ops[2].op", "detect does not work on an animation"},
		{`[{"op":"frames"},{"op":"crop","width":10,"height":10,"gravity":"smart"}]`, "ops[1].gravity", "crop.gravity=smart does not work on an animation"},
		{`[{"op":"frames"},{"op":"crop","width":10,"height":10,"gravity":"entropy"}]`, "ops[1].gravity", "does not work on an animation"},
		{`[{"op":"frames"},{"op":"resize","width":10,"height":10,"fit":"cover","gravity":"attention"}]`, "ops[1].gravity", "resize.gravity=attention does not work on an animation"},
	} {
		err := p.Validate(parseOps(t, tc.ops))
		var e *imaged.Error
		if !asError(err, &e) || e.Code != imaged.EInvalid || e.Field != tc.field || !strings.Contains(e.Message, tc.text) {
			t.Errorf("%s: got %v (field %q), want %s: %s", tc.ops, err, fieldOf(err), tc.field, tc.text)
		}
	}
	if err := New(Config{MaxFrames: 500}).Validate(parseOps(t, `[{"op":"frames","max":500}]`)); err != nil {
		t.Fatal(err)
	}
	// The same ops without frames are fine, and a still image is refused alike (the pipeline
	// decides, not the image).
	if err := p.Validate(parseOps(t, `[{"op":"trim"},{"op":"crop","width":10,"height":10,"gravity":"smart"},{"op":"detect"}]`)); err != nil {
		t.Fatal(err)
	}
}

func asError(err error, e **imaged.Error) bool {
	v, ok := err.(*imaged.Error)
	*e = v
	return ok
}

func fieldOf(err error) string {
	if e, ok := err.(*imaged.Error); ok {
		return e.Field
	}
	return ""
}
