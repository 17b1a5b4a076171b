package vips

import (
	"bytes"
	"context"
	"image"
	"image/color"
	"image/png"
	"strings"
	"testing"

	"github.com/imaged/imaged"
)

// tinyPNG is the kind of source a hostile client sends: a 1×1 PNG of about 70 bytes.
func tinyPNG(t testing.TB) []byte {
	t.Helper()
	img := image.NewRGBA(image.Rect(0, 0, 1, 1))
	img.Set(0, 0, color.RGBA{200, 100, 50, 255})
	var buf bytes.Buffer
	if err := png.Encode(&buf, img); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// noiseLogo is a w×h PNG with transparency that does not compress.
func noiseLogo(t testing.TB, w, h int) []byte {
	t.Helper()
	img := image.NewNRGBA(image.Rect(0, 0, w, h))
	for i := range img.Pix {
		img.Pix[i] = uint8(i*2654435761>>13) | 0x40
	}
	var buf bytes.Buffer
	if err := png.Encode(&buf, img); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// Hostile pipelines, on default limits: every op that enlarges, chains of them, OCR's
// preprocessing, animations, watermarks and extreme filter parameters. Each is refused before
// any pixel is decoded (400 naming the op, and nothing taken from the memory budget), or runs
// with libvips' measured peak within what it was charged.
func TestHostilePipelines(t *testing.T) {
	tiny, chelsea, anim := tinyPNG(t), readTestdata(t, "chelsea.png"), animated(t, "gif", false)
	logo := noiseLogo(t, 2000, 2000)
	if len(tiny) > 80 {
		t.Fatalf("the tiny PNG is %d bytes", len(tiny))
	}
	const canvas = `{"op":"pad","width":10000,"height":10000}`
	for _, tc := range []struct {
		name, ops string
		src       []byte
		field     string // the op refused; "" when the pipeline runs
		text      string
	}{
		// Refused before decoding: too large.
		{"OCR upscale 4 on a 10000² canvas", `[` + canvas + `,{"op":"ocr","preprocess":{"upscale":4}}]`, tiny, "ops[1]", "ocr would hold an image of 40000×40000 pixels (1600 MP); the limit is 100 MP"},
		{"OCR upscale 4 after an enlargement", `[{"op":"resize","width":3000,"height":3000,"fit":"fill","enlarge":true},{"op":"ocr","preprocess":{"upscale":4,"grayscale":true}}]`, tiny, "ops[1]", "ocr would hold an image of 12000×12000"},
		{"rotation past the width limit", `[{"op":"resize","width":9000,"enlarge":true},{"op":"rotate","angle":45},{"op":"blur","sigma":100}]`, chelsea, "ops[1]", "rotate would make the image 10597×10597 pixels; the limit is 10000×10000"},
		{"rotation of the largest canvas", `[` + canvas + `,{"op":"rotate","angle":30}]`, tiny, "ops[1]", "rotate would make the image 13660×13660 pixels; the limit is 10000×10000"},
		{"resize outside past the limit", `[{"op":"resize","width":10000,"height":10000,"fit":"outside","enlarge":true}]`, chelsea, "ops[0]", "resize would make the image 15033×10000"},
		{"margins past the limit", `[{"op":"pad","left":6000,"right":6000}]`, chelsea, "ops[0]", "pad would make the image 12451×300"},
		{"extend by aspect past the limit", `[{"op":"resize","width":10000,"enlarge":true},{"op":"extend","aspect":"1:2"}]`, chelsea, "ops[1]", "extend would make the image 10000×20000"},
		{"frames enlarged past the pixel limit", `[{"op":"frames"},{"op":"resize","width":9000,"enlarge":true}]`, anim, "ops[1]", "the limit is 100000000 pixels over all frames"},
		{"frames padded past the pixel limit", `[{"op":"frames"},{"op":"pad","width":8000,"height":8000}]`, anim, "ops[1]", "3 frames of 8000×8000"},
		// Refused before decoding: too costly.
		{"OCR of a 10000² canvas", `[` + canvas + `,{"op":"ocr"}]`, tiny, "ops[1]", "80000 of them for ocr on 10000×10000 pixels; the limit is 60000"},
		{"blur sigma 100 on 25 MP", `[{"op":"resize","width":5000,"height":5000,"fit":"fill","enlarge":true},{"op":"blur","sigma":100}]`, tiny, "ops[1]", "for blur on 5000×5000 pixels"},
		{"blur sigma 100 on the largest canvas", `[` + canvas + `,{"op":"blur","sigma":100}]`, tiny, "ops[1]", "270200 of them for blur"},
		{"a chain of filters on the largest canvas", `[` + canvas + `,{"op":"pixelate","size":2},{"op":"saturation","factor":2},{"op":"sharpen","sigma":10},{"op":"blur","sigma":50}]`, tiny, "ops[4]", "for blur on 10000×10000"},
		{"AVIF at effort 9 on 16 MP", `[{"op":"pad","width":4000,"height":4000},{"op":"convert","format":"avif","effort":9}]`, tiny, "ops[1]", "for convert on 4000×4000"},
		{"sharpen seven times on the largest canvas", `[` + canvas + strings.Repeat(`,{"op":"sharpen","sigma":10}`, 7) + `]`, tiny, "ops[1]", "the limit is 60000"},
		// Run, within what they were charged.
		{"the largest canvas twice", `[` + canvas + `,{"op":"pad","width":10000,"height":10000,"gravity":"north"},{"op":"convert","format":"jpeg"}]`, tiny, "", ""},
		{"enlarge to 9 MP and sharpen", `[{"op":"resize","width":3000,"height":3000,"fit":"fill","enlarge":true},{"op":"sharpen","sigma":10}]`, chelsea, "", ""},
		{"blur sigma 100 on a photo", `[{"op":"blur","sigma":100},{"op":"convert","format":"png"}]`, chelsea, "", ""},
		{"rotate 33° on 24 MP", `[{"op":"pad","width":6000,"height":4000},{"op":"rotate","angle":33},{"op":"convert","format":"jpeg"}]`, chelsea, "", ""},
		{"an image watermark as large as the image", `[{"op":"pad","width":3000,"height":3000},{"op":"watermark","image":"logo","scale":1},{"op":"convert","format":"jpeg"}]`, tiny, "", ""},
		{"a text watermark of size 1000", `[{"op":"pad","width":4000,"height":4000},{"op":"watermark","text":"imaged","size":1000},{"op":"convert","format":"jpeg"}]`, tiny, "", ""},
		{"frames enlarged within the limit", `[{"op":"frames"},{"op":"resize","width":1200,"enlarge":true},{"op":"convert","format":"webp"}]`, anim, "", ""},
		{"pixelate 1000 on 9 MP", `[{"op":"pad","width":3000,"height":3000},{"op":"pixelate","size":1000},{"op":"convert","format":"jpeg"}]`, chelsea, "", ""},
		{"OCR upscale 4 on a photo", `[{"op":"ocr","preprocess":{"upscale":4}}]`, chelsea, "", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if tc.field != "" {
				p := recordingProcessor(&recorder{}, logo)
				decoded := 0
				decodeTrace = func(int) { decoded++ }
				defer func() { decodeTrace = nil }()
				_, err := p.Process(context.Background(), tc.src, parseOps(t, tc.ops), imaged.ProcessOptions{})
				var e *imaged.Error
				if !asError(err, &e) || e.Code != imaged.EInvalid || e.Field != tc.field || !strings.Contains(e.Message, tc.text) {
					t.Fatalf("got %v (field %q), want 400 on %s: %s", err, fieldOf(err), tc.field, tc.text)
				}
				if decoded != 0 {
					t.Fatal("pixels were decoded before the refusal")
				}
				return
			}
			rep := runPeak(t, peakCase{Source: tc.src, Ops: tc.ops, Logo: logo})
			if rep.Err != "" || rep.ChargedMiB == 0 {
				t.Fatalf("the pipeline failed: %s (charged %d MiB)", rep.Err, rep.ChargedMiB)
			}
			if rep.Peak > int64(rep.ChargedMiB)<<20 {
				t.Fatalf("libvips held %.1f MiB at its peak; the pipeline was charged %d MiB", float64(rep.Peak)/(1<<20), rep.ChargedMiB)
			}
			t.Logf("peak %.1f MiB, charged %d MiB", float64(rep.Peak)/(1<<20), rep.ChargedMiB)
		})
	}
}
