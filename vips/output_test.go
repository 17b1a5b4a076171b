package vips

import (
	"bytes"
	"image"
	"image/png"
	"strings"
	"testing"

	"github.com/imaged/imaged"
)

// solidPNG is a w×h PNG of one colour.
func solidPNG(t testing.TB, w, h int) []byte {
	t.Helper()
	img := image.NewRGBA(image.Rect(0, 0, w, h))
	for i := 0; i < len(img.Pix); i += 4 {
		copy(img.Pix[i:], []byte{200, 30, 30, 255})
	}
	var b bytes.Buffer
	if err := png.Encode(&b, img); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

// A PNG written without convert is compressed as with convert's default (level 6): a solid
// 2000×2000 canvas is a few KB, not the 12 MB of its raw pixels.
func TestPNGIsCompressedWithoutConvert(t *testing.T) {
	p := New(Config{})
	src := solidPNG(t, 2000, 2000)
	for _, ops := range []string{`[{"op":"flip"}]`, `[{"op":"pad","top":10}]`, `[{"op":"convert","format":"png"}]`} {
		res := process(t, p, src, ops)
		if res.Format != "png" {
			t.Fatalf("%s: format %s", ops, res.Format)
		}
		if len(res.Data) > 200<<10 {
			t.Errorf("%s: the PNG is %d bytes; compressed it is a few KB", ops, len(res.Data))
		}
	}
}

// A result over MaxOutputBytes is refused, naming its size and the limit, and never returned.
func TestOutputSizeLimit(t *testing.T) {
	p := New(Config{MaxOutputBytes: 10000})
	src := readTestdata(t, "chelsea.png")
	e := processErr(t, p, src, `[{"op":"flip"}]`, imaged.ETooLarge)
	if !strings.Contains(e.Message, "the limit is 10000 bytes") {
		t.Errorf("message %q does not name the limit", e.Message)
	}
	// Within the limit it is written.
	res := process(t, p, src, `[{"op":"resize","width":40},{"op":"convert","format":"jpeg"}]`)
	if len(res.Data) == 0 || len(res.Data) > 10000 {
		t.Errorf("a small result came back with %d bytes", len(res.Data))
	}
}
