package vips

import (
	"bytes"
	"context"
	"image"
	"image/color"
	"image/png"
	"math"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/imaged/imaged"
)

// logoPNG is a 100×50 logo: the left half opaque red, the right half fully transparent.
func logoPNG(t testing.TB) []byte {
	t.Helper()
	img := image.NewNRGBA(image.Rect(0, 0, 100, 50))
	for y := 0; y < 50; y++ {
		for x := 0; x < 50; x++ {
			img.SetNRGBA(x, y, color.NRGBA{R: 255, A: 255})
		}
	}
	var buf bytes.Buffer
	if err := png.Encode(&buf, img); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// uploads is an ImageSource over a map, counting its reads.
type uploads struct {
	images map[string][]byte
	reads  atomic.Int64
}

func (u *uploads) read(_ context.Context, id string) ([]byte, error) {
	u.reads.Add(1)
	if b, ok := u.images[id]; ok {
		return b, nil
	}
	if id == "down" {
		return nil, imaged.Errorf(imaged.EUnavailable, "the store is down")
	}
	return nil, imaged.Errorf(imaged.ENotFound, "image %s not found", id)
}

func newUploads(t testing.TB) *uploads {
	return &uploads{images: map[string][]byte{
		"logo":   logoPNG(t),
		"photo":  readTestdata(t, "chelsea.jpg"),
		"grey":   readTestdata(t, "camera.png"),
		"big":    readTestdata(t, "chelsea.png"),
		"anim":   readTestdata(t, "anim.gif"),
		"broken": []byte("this is not an image at all"),
	}}
}

// changedBox is the bounding box of the pixels of a that differ from b by more than 10 in some
// colour band.
func changedBox(a, b raw) image.Rectangle {
	box := image.Rectangle{}
	for y := 0; y < a.h; y++ {
		for x := 0; x < a.w; x++ {
			for c := 0; c < 3; c++ {
				if math.Abs(float64(a.at(x, y, c))-float64(b.at(x, y, c))) > 10 {
					box = box.Union(image.Rect(x, y, x+1, y+1))
					break
				}
			}
		}
	}
	return box
}

// regionMean is the mean of band c over a region.
func regionMean(r raw, box image.Rectangle, c int) float64 {
	s := 0.0
	for y := box.Min.Y; y < box.Max.Y; y++ {
		for x := box.Min.X; x < box.Max.X; x++ {
			s += float64(r.at(x, y, c))
		}
	}
	return s / float64(box.Dx()*box.Dy())
}

func near(a, b image.Rectangle, slack int) bool {
	d := func(u, v int) bool { return u-v <= slack && v-u <= slack }
	return d(a.Min.X, b.Min.X) && d(a.Min.Y, b.Min.Y) && d(a.Max.X, b.Max.X) && d(a.Max.Y, b.Max.Y)
}

func TestWatermarkImage(t *testing.T) {
	up := newUploads(t)
	p := New(Config{Images: up.read})
	src := readTestdata(t, "chelsea.png")
	o := decodeRaw(t, src)

	// scale 0.2 of 451 px: a 90×45 logo, its red half 45×45, in the bottom-right corner
	// within the 10 px margin; the transparent half leaves the photo as it was.
	res := process(t, p, src, `[{"op":"watermark","image":"logo","gravity":"south_east","scale":0.2,"opacity":1}]`)
	checkFormat(t, res, "png", 451, 300)
	r := decodeRaw(t, res.Data)
	red := image.Rect(351, 245, 396, 290)
	if box := changedBox(r, o); !near(box, red, 1) {
		t.Fatalf("changed %v, want the red half at %v", box, red)
	}
	inner := image.Rect(355, 250, 392, 285)
	if m := []float64{regionMean(r, inner, 0), regionMean(r, inner, 1), regionMean(r, inner, 2)}; m[0] < 253 || m[1] > 2 || m[2] > 2 {
		t.Fatalf("under the logo: %v, want red", m)
	}
	clear := image.Rect(399, 245, 441, 290) // under the transparent half
	far := image.Rect(0, 0, 100, 100)       // the opposite corner
	for _, box := range []image.Rectangle{clear, far} {
		for c := 0; c < 3; c++ {
			if regionMean(r, box, c) != regionMean(o, box, c) {
				t.Fatalf("%v changed in band %d", box, c)
			}
		}
	}

	// Opacity 0.5 lays the logo half over the photo.
	half := decodeRaw(t, process(t, p, src, `[{"op":"watermark","image":"logo","scale":0.2,"opacity":0.5}]`).Data)
	for c, logo := range []float64{255, 0, 0} {
		want := (regionMean(o, inner, c) + logo) / 2
		if got := regionMean(half, inner, c); math.Abs(got-want) > 2 {
			t.Fatalf("band %d at opacity 0.5: %.1f, want %.1f", c, got, want)
		}
	}

	// Without scale the logo keeps its own 100×50 size; the gravity and margin place it.
	for gravity, want := range map[string]image.Rectangle{
		"north_west": image.Rect(20, 20, 70, 70),
		"north":      image.Rect(175, 20, 225, 70),
		"centre":     image.Rect(175, 125, 225, 175),
		"west":       image.Rect(20, 125, 70, 175),
		"south":      image.Rect(175, 230, 225, 280),
	} {
		r := decodeRaw(t, process(t, p, src, `[{"op":"watermark","image":"logo","opacity":1,"margin":20,"gravity":"`+gravity+`"}]`).Data)
		if box := changedBox(r, o); !near(box, want, 1) {
			t.Fatalf("%s: changed %v, want %v", gravity, box, want)
		}
	}

	// A logo larger than the image within its margins is shrunk to fit: scale 1 of 451 px
	// leaves 431 px between the margins, of which the red half is about 216 (the kernel of the
	// enlargement blurs its edge by a pixel or two).
	r = decodeRaw(t, process(t, p, src, `[{"op":"watermark","image":"logo","scale":1,"opacity":1}]`).Data)
	if box := changedBox(r, o); box.Min.X != 10 || box.Dx() < 213 || box.Dx() > 220 || box.Max.Y != 290 {
		t.Fatalf("large logo: changed %v", box)
	}

	// A photo without alpha is laid on whole; grey and transparent images take it too and keep
	// their alpha.
	r = decodeRaw(t, process(t, p, src, `[{"op":"watermark","image":"photo","scale":0.5,"gravity":"north_west","margin":0,"opacity":1}]`).Data)
	if box := changedBox(r, o); !near(box, image.Rect(0, 0, 226, 150), 2) {
		t.Fatalf("photo overlay: changed %v", box)
	}
	process(t, p, readTestdata(t, "camera.png"), `[{"op":"watermark","image":"logo","opacity":1}]`)
	res = process(t, p, readTestdata(t, "alpha.png"), `[{"op":"watermark","image":"grey","scale":0.3}]`)
	if a := decodeRaw(t, res.Data); a.bands != 4 || a.at(0, 0, 3) != 0 {
		t.Fatal("watermark lost alpha")
	}
	// An animated overlay gives its first frame.
	process(t, p, src, `[{"op":"watermark","image":"anim","scale":0.5}]`)
}

// The overlay is read once per pipeline, even over every frame of an animation, and the
// uploads lately read are kept for a while.
func TestWatermarkImageOnFrames(t *testing.T) {
	up := newUploads(t)
	p := New(Config{Images: up.read})
	src := animated(t, "gif", false)
	in := decodeFrames(t, src)
	res := process(t, p, src, `[{"op":"frames"},{"op":"watermark","image":"logo","gravity":"north_west","margin":0,"opacity":1}]`)
	out := decodeFrames(t, res.Data)
	if len(out.frames) != 3 {
		t.Fatalf("%d frames", len(out.frames))
	}
	for k, f := range out.frames {
		// The red half is 50 wide, cut to the 60×40 frame's area: the whole frame is 60×40,
		// the logo shrunk to 60×30, its red half 30×30.
		if box := changedBox(f, in.frames[k]); !near(box, image.Rect(0, 0, 30, 30), 2) {
			t.Fatalf("frame %d: changed %v", k, box)
		}
	}
	process(t, p, src, `[{"op":"frames"},{"op":"watermark","image":"logo"}]`)
	if n := up.reads.Load(); n != 1 {
		t.Fatalf("the overlay was read %d times", n)
	}
	// A new source forgets what the old one gave.
	p.SetImages(up.read)
	process(t, p, src, `[{"op":"watermark","image":"logo"}]`)
	if n := up.reads.Load(); n != 2 {
		t.Fatalf("the overlay was read %d times", n)
	}
}

func TestWatermarkImageErrors(t *testing.T) {
	up := newUploads(t)
	p := New(Config{Images: up.read})
	src := readTestdata(t, "chelsea.jpg")

	e := processErr(t, p, src, `[{"op":"resize","width":200},{"op":"watermark","image":"nope"}]`, imaged.ENotFound)
	if e.Field != "ops[1].image" || !strings.Contains(e.Message, `no uploaded image with id "nope"`) {
		t.Fatalf("unknown id: %+v", e)
	}
	if e := processErr(t, p, src, `[{"op":"watermark","image":"down"}]`, imaged.EUnavailable); !strings.Contains(e.Message, "down") {
		t.Fatalf("store down: %+v", e)
	}
	e = processErr(t, p, src, `[{"op":"watermark","image":"broken"}]`, imaged.EInvalid)
	if e.Field != "ops[0].image" || !strings.Contains(e.Message, "not a jpeg") {
		t.Fatalf("not an image: %+v", e)
	}
	// The overlay meets the limits of any source: bytes, then pixels.
	small := New(Config{Images: up.read, Limits: imaged.Limits{MaxBytes: 200 << 10, MaxWidth: 500, MaxHeight: 500}})
	e = processErr(t, small, src, `[{"op":"watermark","image":"big"}]`, imaged.ETooLarge)
	if e.Field != "ops[0].image" || !strings.Contains(e.Message, "bytes") {
		t.Fatalf("bytes: %+v", e)
	}
	e = processErr(t, small, src, `[{"op":"watermark","image":"grey"}]`, imaged.ETooLarge)
	if e.Field != "ops[0].image" || !strings.Contains(e.Message, "512×512") {
		t.Fatalf("pixels: %+v", e)
	}

	// Without a source of uploads, image watermarks are refused at validation; SetImages gives
	// one later, and nil takes it away again.
	none := New(Config{})
	err := none.Validate(parseOps(t, `[{"op":"watermark","image":"logo"}]`))
	if !asError(err, &e) || e.Code != imaged.EInvalid || e.Field != "ops[0].image" || !strings.Contains(e.Message, "not available on this server") {
		t.Fatalf("no source: %v", err)
	}
	none.SetImages(up.read)
	process(t, none, src, `[{"op":"watermark","image":"logo"}]`)
	none.SetImages(nil)
	if err := none.Validate(parseOps(t, `[{"op":"watermark","image":"logo"}]`)); err == nil {
		t.Fatal("a removed source still serves")
	}
}

func TestWatermarkValidation(t *testing.T) {
	p := New(Config{Images: newUploads(t).read})
	for _, tc := range []struct {
		op, field, text string
	}{
		{`{"op":"watermark"}`, "ops[0].text", "watermark.text is required, or watermark.image"},
		{`{"op":"watermark","text":"  "}`, "ops[0].text", "watermark.text is required"},
		{`{"op":"watermark","text":"x","image":"logo"}`, "ops[0].image", "text or image, not both"},
		{`{"op":"watermark","image":""}`, "ops[0].image", "must be the id of an uploaded image"},
		{`{"op":"watermark","image":7}`, "ops[0].image", "watermark.image must be a string"},
		{`{"op":"watermark","image":"logo","scale":0}`, "ops[0].scale", "watermark.scale must be between 0.01 and 1"},
		{`{"op":"watermark","image":"logo","scale":1.5}`, "ops[0].scale", "watermark.scale must be between 0.01 and 1"},
		{`{"op":"watermark","image":"logo","opacity":-0.1}`, "ops[0].opacity", "watermark.opacity must be between 0 and 1"},
		{`{"op":"watermark","image":"logo","gravity":"top"}`, "ops[0].gravity", "watermark.gravity must be one of"},
		{`{"op":"watermark","image":"logo","margin":-1}`, "ops[0].margin", "watermark.margin must be between 0 and 1000"},
		{`{"op":"watermark","image":"logo","size":20}`, "ops[0].size", "watermark.size applies to a text watermark"},
		{`{"op":"watermark","image":"logo","color":"red"}`, "ops[0].color", "watermark.color applies to a text watermark"},
		{`{"op":"watermark","image":"logo","font":"mono"}`, "ops[0].font", "watermark.font applies to a text watermark"},
		{`{"op":"watermark","text":"x","scale":0.5}`, "ops[0].scale", "watermark.scale applies to an image watermark"},
	} {
		err := p.Validate(parseOps(t, `[`+tc.op+`]`))
		var e *imaged.Error
		if !asError(err, &e) || e.Code != imaged.EInvalid || e.Field != tc.field || !strings.Contains(e.Message, tc.text) {
			t.Errorf("%s: got %v (field %q), want %s: %s", tc.op, err, fieldOf(err), tc.field, tc.text)
		}
	}
	for _, op := range []string{
		`{"op":"watermark","image":"logo"}`,
		`{"op":"watermark","image":"logo","scale":0.01,"opacity":0,"gravity":"center","margin":0}`,
		`{"op":"watermark","text":"x","size":10,"color":"#fff","font":"bold","opacity":1,"gravity":"north_east","margin":1000}`,
	} {
		if err := p.Validate(parseOps(t, `[`+op+`]`)); err != nil {
			t.Errorf("%s: %v", op, err)
		}
	}
}
