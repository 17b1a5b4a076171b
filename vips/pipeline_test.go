package vips

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"image"
	"image/color"
	"image/png"
	"strings"
	"sync"
	"testing"

	govips "github.com/davidbyttow/govips/v2/vips"
	"golang.org/x/image/bmp"

	"github.com/imaged/imaged"
)

func TestConvertRoundTrips(t *testing.T) {
	p := New(Config{})
	src := readTestdata(t, "chelsea.png")
	orig := decodeRaw(t, src)
	for _, format := range []string{"jpeg", "png", "webp", "avif", "tiff", "gif"} {
		t.Run(format, func(t *testing.T) {
			res := process(t, p, src, `[{"op":"convert","format":"`+format+`"}]`)
			checkFormat(t, res, format, 451, 300)
			r := decodeRaw(t, res.Data)
			if r.bands != 3 {
				t.Fatalf("%d bands", r.bands)
			}
			limit := 8.0 // lossy formats stay close to the source
			if format == "png" || format == "tiff" {
				limit = 0
			}
			if d := meanAbsDiff(t, r, orig); d > limit {
				t.Fatalf("differs from the source by %.2f per value", d)
			}
		})
	}
	// Each one reads back in and converts onwards.
	webp := process(t, p, src, `[{"op":"convert","format":"webp","lossless":true}]`)
	if d := meanAbsDiff(t, decodeRaw(t, webp.Data), orig); d != 0 {
		t.Fatalf("lossless webp differs by %.2f", d)
	}
	back := process(t, p, webp.Data, `[{"op":"resize","width":100}]`)
	checkFormat(t, back, "webp", 100, 67)
	tiff := process(t, p, src, `[{"op":"convert","format":"tiff"}]`)
	checkFormat(t, process(t, p, tiff.Data, `[{"op":"convert","format":"jpg"}]`), "jpeg", 451, 300)
}

func TestConvertSettings(t *testing.T) {
	p := New(Config{})
	src := readTestdata(t, "chelsea.png")
	low := process(t, p, src, `[{"op":"convert","format":"jpeg","quality":30}]`)
	high := process(t, p, src, `[{"op":"convert","format":"jpeg","quality":95}]`)
	def := process(t, p, src, `[{"op":"convert","format":"jpeg"}]`)
	if !(len(low.Data) < len(def.Data) && len(def.Data) < len(high.Data)) {
		t.Fatalf("jpeg sizes: q30 %d, default %d, q95 %d", len(low.Data), len(def.Data), len(high.Data))
	}
	// A progressive JPEG has an SOF2 frame header; a baseline one has SOF0.
	prog := process(t, p, src, `[{"op":"convert","format":"jpeg","progressive":true}]`)
	if !bytes.Contains(prog.Data, []byte{0xFF, 0xC2}) || bytes.Contains(def.Data, []byte{0xFF, 0xC2}) {
		t.Fatal("progressive flag not honoured")
	}

	// Metadata is stripped unless strip is false.
	exif := readTestdata(t, "chelsea-exif6.jpg")
	stripped := process(t, p, exif, `[{"op":"convert","format":"jpeg"}]`)
	kept := process(t, p, exif, `[{"op":"convert","format":"jpeg","strip":false}]`)
	if bytes.Contains(stripped.Data, []byte("Imaged Test Camera")) || !bytes.Contains(kept.Data, []byte("Imaged Test Camera")) {
		t.Fatal("strip flag not honoured")
	}
	// The kept metadata no longer says to rotate: the pixels are upright. Both decoding paths.
	info := analyses(t, process(t, p, kept.Data, `[{"op":"info"}]`))
	if info[0]["orientation"] != 1.0 || info[0]["width"] != 451.0 {
		t.Fatalf("re-read: %v", info[0])
	}
	for _, ops := range []string{
		`[{"op":"resize","width":200},{"op":"convert","format":"jpeg","strip":false}]`,               // streamed
		`[{"op":"resize","width":200},{"op":"flip"},{"op":"convert","format":"jpeg","strip":false}]`, // held in memory
	} {
		kept = process(t, p, exif, ops)
		info = analyses(t, process(t, p, kept.Data, `[{"op":"info"}]`))
		if !bytes.Contains(kept.Data, []byte("Imaged Test Camera")) || info[0]["orientation"] != 1.0 || info[0]["width"] != 200.0 {
			t.Fatalf("%s, re-read: %v", ops, info[0])
		}
	}
}

// jpegSampling returns the luma component's sampling factors from a baseline or progressive
// frame header: 0x22 is 4:2:0, 0x11 no subsampling.
func jpegSampling(t *testing.T, data []byte) byte {
	t.Helper()
	for i := 2; i+4 < len(data); {
		if data[i] != 0xFF {
			t.Fatal("malformed JPEG")
		}
		marker, size := data[i+1], int(data[i+2])<<8|int(data[i+3])
		if marker == 0xC0 || marker == 0xC2 {
			return data[i+11] // length(2) precision(1) height(2) width(2) count(1) id(1) sampling
		}
		i += 2 + size
	}
	t.Fatal("no frame header")
	return 0
}

func TestConvertEncoderSettings(t *testing.T) {
	p := New(Config{})
	src := readTestdata(t, "chelsea.png")
	for ops, want := range map[string]byte{
		`[{"op":"convert","format":"jpeg"}]`:                                      0x22, // auto at 85: 4:2:0
		`[{"op":"convert","format":"jpeg","quality":95}]`:                         0x11, // auto at 90+: none
		`[{"op":"convert","format":"jpeg","subsample":"off"}]`:                    0x11,
		`[{"op":"convert","format":"jpeg","quality":95,"subsample":"on"}]`:        0x22,
		`[{"op":"convert","format":"jpeg","subsample":"off","progressive":true}]`: 0x11,
	} {
		if got := jpegSampling(t, process(t, p, src, ops).Data); got != want {
			t.Errorf("%s: luma sampling %#x, want %#x", ops, got, want)
		}
	}

	fast := process(t, p, src, `[{"op":"convert","format":"png","compression":0}]`)
	small := process(t, p, src, `[{"op":"convert","format":"png","compression":9}]`)
	// Level 0 stores the pixels (a photo: 451×300×3 bytes and then some); 9 compresses them.
	if len(fast.Data) < 451*300*3 || len(small.Data) >= len(fast.Data)*9/10 {
		t.Errorf("png compression 0: %d bytes, 9: %d bytes; want the stored pixels, then at least a tenth less", len(fast.Data), len(small.Data))
	}
	for _, c := range []struct {
		ops    string
		colors int
	}{{`[{"op":"convert","format":"png","palette":true}]`, 256}, {`[{"op":"convert","format":"png","palette":true,"bitdepth":2}]`, 4}} {
		res := process(t, p, src, c.ops)
		img, err := png.Decode(bytes.NewReader(res.Data))
		if err != nil {
			t.Fatal(err)
		}
		pal, ok := img.(*image.Paletted)
		if !ok || len(pal.Palette) > c.colors {
			t.Errorf("%s: decoded as %T, want a palette of at most %d colours", c.ops, img, c.colors)
			continue
		}
		orig := decodeRaw(t, src)
		if m, m0 := mean(decodeRaw(t, res.Data).luma()), mean(orig.luma()); m < m0-8 || m > m0+8 {
			t.Errorf("%s: mean luma %.1f, source %.1f", c.ops, m, m0)
		}
	}

	for _, effort := range []int{0, 6} {
		res := process(t, p, src, fmt.Sprintf(`[{"op":"convert","format":"webp","effort":%d}]`, effort))
		checkFormat(t, res, "webp", 451, 300)
	}
	if canSave("avif") {
		checkFormat(t, process(t, p, src, `[{"op":"convert","format":"avif","effort":9}]`), "avif", 451, 300)
	}

	for ops, field := range map[string]string{
		`[{"op":"convert","format":"jpeg","subsample":"maybe"}]`:        "ops[0].subsample",
		`[{"op":"convert","format":"png","compression":10}]`:            "ops[0].compression",
		`[{"op":"convert","format":"png","bitdepth":4}]`:                "ops[0].bitdepth",
		`[{"op":"convert","format":"png","palette":true,"bitdepth":3}]`: "ops[0].bitdepth",
		`[{"op":"convert","format":"webp","effort":7}]`:                 "ops[0].effort",
		`[{"op":"convert","format":"avif","effort":10}]`:                "ops[0].effort",
	} {
		err := p.Validate(parseOps(t, ops))
		var e *imaged.Error
		if !errors.As(err, &e) || e.Code != imaged.EInvalid || e.Field != field {
			t.Errorf("%s: %v, want invalid naming %s", ops, err, field)
		}
	}
}

func TestConvertAuto(t *testing.T) {
	p := New(Config{})
	src := readTestdata(t, "chelsea.jpg")
	for accept, want := range map[string]string{
		"image/avif,image/webp,*/*": "avif",
		"image/webp,*/*":            "webp",
		"text/html,*/*;q=0.8":       "jpeg",
		"":                          "jpeg",
	} {
		res, err := p.Process(context.Background(), src, parseOps(t, `[{"op":"convert","format":"auto"}]`),
			imaged.ProcessOptions{Accept: accept})
		if err != nil {
			t.Fatal(err)
		}
		checkFormat(t, res, want, 451, 300)
	}
}

// The output keeps the input's format, except where libvips cannot write it.
func TestOutputFormatFollowsInput(t *testing.T) {
	p := New(Config{})
	png := readTestdata(t, "chelsea.png")
	webp := process(t, p, png, `[{"op":"convert","format":"webp"}]`).Data
	tiff := process(t, p, png, `[{"op":"convert","format":"tiff"}]`).Data
	for _, tc := range []struct {
		name   string
		src    []byte
		format string
	}{
		{"jpeg", readTestdata(t, "chelsea.jpg"), "jpeg"},
		{"png", png, "png"},
		{"webp", webp, "webp"},
		{"tiff", tiff, "tiff"},
		{"gif", readTestdata(t, "anim.gif"), "gif"},
		{"bmp", bmpOf(t, png), "png"},
	} {
		res := process(t, p, tc.src, `[{"op":"flip"}]`)
		if res.Format != tc.format || imaged.SniffFormat(res.Data) != tc.format {
			t.Errorf("%s input: output %s (sniffs %s), want %s", tc.name, res.Format, imaged.SniffFormat(res.Data), tc.format)
		}
	}
}

func bmpOf(t *testing.T, pngData []byte) []byte {
	img, err := png.Decode(bytes.NewReader(pngData))
	if err != nil {
		t.Fatal(err)
	}
	var b bytes.Buffer
	if err := bmp.Encode(&b, img); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

func analyses(t *testing.T, res *imaged.Result) []map[string]any {
	t.Helper()
	var out []map[string]any
	for _, a := range res.Analyses {
		var m map[string]any
		if err := json.Unmarshal(a.Result, &m); err != nil {
			t.Fatalf("%s result %s: %v", a.Op, a.Result, err)
		}
		out = append(out, m)
	}
	return out
}

func TestInfo(t *testing.T) {
	p := New(Config{})
	res := process(t, p, readTestdata(t, "chelsea-exif6.jpg"), `[{"op":"info"}]`)
	if res.Changed || res.Data != nil || res.Format != "jpeg" || res.Width != 451 || res.Height != 300 {
		t.Fatalf("analysis-only result: changed %v, %d bytes, %s %dx%d", res.Changed, len(res.Data), res.Format, res.Width, res.Height)
	}
	if len(res.Analyses) != 1 || res.Analyses[0].Op != "info" {
		t.Fatalf("analyses %+v", res.Analyses)
	}
	info := analyses(t, res)[0]
	want := map[string]any{"width": 451.0, "height": 300.0, "format": "jpeg", "bands": 3.0, "has_alpha": false,
		"space": "srgb", "pages": 1.0, "orientation": 6.0, "icc": true}
	for k, v := range want {
		if info[k] != v {
			t.Errorf("info[%s] = %v, want %v", k, info[k], v)
		}
	}
	exif, _ := info["exif"].(map[string]any)
	if exif["Make"] != "Imaged Test Camera" || exif["Model"] != "Model 6" {
		t.Errorf("exif %v", exif)
	}

	// Analyses see the image as the pipeline has made it so far, in order: the output format
	// too, which a later convert still changes.
	res = process(t, p, readTestdata(t, "alpha.png"),
		`[{"op":"info"},{"op":"resize","width":120},{"op":"grayscale"},{"op":"info"},{"op":"convert","format":"webp"}]`)
	got := analyses(t, res)
	if len(got) != 2 || got[0]["width"] != 240.0 || got[0]["format"] != "png" || got[0]["has_alpha"] != true || got[0]["bands"] != 4.0 {
		t.Fatalf("first info %v", got[0])
	}
	if got[1]["width"] != 120.0 || got[1]["bands"] != 2.0 || got[1]["space"] != "b-w" || got[1]["format"] != "png" {
		t.Fatalf("second info %v", got[1])
	}
	checkFormat(t, res, "webp", 120, 87)

	res = process(t, p, readTestdata(t, "anim.gif"), `[{"op":"info"}]`)
	if info := analyses(t, res)[0]; info["format"] != "gif" || info["pages"].(float64) < 2 {
		t.Fatalf("gif info %v", info)
	}
}

// An EXIF-rotated photo comes out upright, by either decoding path.
func TestAutoOrient(t *testing.T) {
	p := New(Config{})
	rotated := readTestdata(t, "chelsea-exif6.jpg") // stored 300x451, orientation 6
	upright := readTestdata(t, "chelsea.png")
	res := process(t, p, rotated, `[{"op":"convert","format":"png"}]`)
	checkFormat(t, res, "png", 451, 300)
	if d := meanAbsDiff(t, decodeRaw(t, res.Data), decodeRaw(t, upright)); d > 6 {
		t.Fatalf("differs from the upright photo by %.2f", d)
	}
	a := process(t, p, rotated, `[{"op":"resize","width":200},{"op":"convert","format":"png"}]`)
	b := process(t, p, upright, `[{"op":"resize","width":200}]`)
	checkFormat(t, a, "png", 200, 133)
	if d := meanAbsDiff(t, decodeRaw(t, a.Data), decodeRaw(t, b.Data)); d > 6 {
		t.Fatalf("shrunk on load: differs from the upright photo by %.2f", d)
	}
}

func TestMixedPipelineOrder(t *testing.T) {
	p := New(Config{})
	res := process(t, p, readTestdata(t, "chelsea.jpg"),
		`[{"op":"resize","width":300},{"op":"crop","width":100,"height":100},{"op":"rotate","angle":90},{"op":"blur","sigma":1},{"op":"convert","format":"png"},{"op":"info"}]`)
	checkFormat(t, res, "png", 100, 100)
	if got := analyses(t, res); got[0]["width"] != 100.0 || got[0]["format"] != "png" {
		t.Fatalf("info %v", got[0])
	}
}

type fakeAnalyzer struct {
	name string // "detect" where empty
	mu   sync.Mutex
	seen []imaged.Pixels
}

func (f *fakeAnalyzer) Spec() imaged.OpSpec {
	name := f.name
	if name == "" {
		name = "detect"
	}
	return imaged.OpSpec{Name: name, Kind: imaged.OpAnalysis, TaskType: imaged.TaskTypeDetect, Plan: imaged.Untouched}
}

func (f *fakeAnalyzer) Validate(i int, op imaged.Op) error {
	var a struct {
		Op        string  `json:"op"`
		Threshold float64 `json:"threshold"`
	}
	if err := op.DecodeArgs(i, &a); err != nil {
		return err
	}
	if a.Threshold < 0 || a.Threshold > 1 {
		return imaged.FieldErrorf(fmt.Sprintf("ops[%d].threshold", i), "detect.threshold must be between 0 and 1")
	}
	return nil
}

func (f *fakeAnalyzer) Analyze(ctx context.Context, op imaged.Op, px imaged.Pixels) (json.RawMessage, error) {
	f.mu.Lock()
	f.seen = append(f.seen, px)
	f.mu.Unlock()
	if px.Width == 13 {
		return nil, errors.New("model exploded")
	}
	return json.RawMessage(fmt.Sprintf(`{"detections":[],"w":%d,"h":%d}`, px.Width, px.Height)), nil
}

func TestAnalyzer(t *testing.T) {
	fa := &fakeAnalyzer{}
	p := New(Config{Analyzers: []imaged.Analyzer{fa}})
	src := readTestdata(t, "camera.png") // grey

	res := process(t, p, src, `[{"op":"resize","width":100},{"op":"detect","threshold":0.5}]`)
	if len(res.Analyses) != 1 || res.Analyses[0].Op != "detect" || string(res.Analyses[0].Result) != `{"detections":[],"w":100,"h":100}` {
		t.Fatalf("analyses %+v", res.Analyses)
	}
	if !res.Changed || res.Format != "png" {
		t.Fatalf("the resize must still produce an image: %+v", res)
	}
	px := fa.seen[0]
	if px.Width != 100 || px.Height != 100 || px.Bands != 3 || len(px.Data) != 100*100*3 {
		t.Fatalf("pixels %dx%dx%d, %d bytes", px.Width, px.Height, px.Bands, len(px.Data))
	}
	if px.Data[0] != px.Data[1] || px.Data[1] != px.Data[2] {
		t.Fatal("grey input should reach the analyzer as equal RGB")
	}
	// Transforms go on after an analysis, on the same image.
	res = process(t, p, readTestdata(t, "chelsea.jpg"), `[{"op":"resize","width":90},{"op":"detect"},{"op":"rotate","angle":90},{"op":"detect"}]`)
	checkFormat(t, res, "jpeg", 60, 90)
	if len(res.Analyses) != 2 || string(res.Analyses[0].Result) != `{"detections":[],"w":90,"h":60}` ||
		string(res.Analyses[1].Result) != `{"detections":[],"w":60,"h":90}` {
		t.Fatalf("analyses %+v", res.Analyses)
	}
	fa.seen = fa.seen[:1]
	// RGBA stays RGBA.
	process(t, p, readTestdata(t, "alpha.png"), `[{"op":"detect"}]`)
	if px := fa.seen[1]; px.Bands != 4 || len(px.Data) != 240*173*4 {
		t.Fatalf("alpha pixels: %d bands", px.Bands)
	}
	// Its validation runs in Validate and Process; its failures are internal.
	if err := p.Validate(parseOps(t, `[{"op":"detect","threshold":2}]`)); imaged.ErrorCode(err) != imaged.EInvalid ||
		err.(*imaged.Error).Field != "ops[0].threshold" {
		t.Fatalf("validate: %v", err)
	}
	processErr(t, p, src, `[{"op":"detect","threshold":2}]`, imaged.EInvalid)
	processErr(t, p, src, `[{"op":"resize","width":13},{"op":"detect"}]`, imaged.EInternal)
	// Processors without it do not know it.
	e := processErr(t, New(Config{}), src, `[{"op":"detect"}]`, imaged.EInvalid)
	if !strings.Contains(e.Message, `unknown op "detect"`) {
		t.Fatal(e.Message)
	}
}

func TestAnalyzerNameClash(t *testing.T) {
	defer func() {
		if recover() == nil {
			t.Fatal("no panic for an analyzer named like a built-in op")
		}
	}()
	New(Config{Analyzers: []imaged.Analyzer{&fakeAnalyzer{name: "Resize"}}})
}

func TestUndecodable(t *testing.T) {
	p := New(Config{})
	jpg := readTestdata(t, "chelsea.jpg")
	broken := append(append([]byte{}, jpg[:200]...), bytes.Repeat([]byte{0x42}, 2000)...)
	broken = append(broken, 0xFF, 0xD9)
	for name, src := range map[string][]byte{
		"garbage":       []byte("this is not an image at all, just some text"),
		"empty":         nil,
		"svg":           []byte(`<svg xmlns="http://www.w3.org/2000/svg" width="10" height="10"></svg>`),
		"broken jpeg":   broken,
		"png signature": []byte("\x89PNG\r\n\x1a\nrest is missing"),
	} {
		e := processErr(t, p, src, `[{"op":"resize","width":10}]`, imaged.EInvalid)
		if !strings.HasPrefix(e.Message, "the image could not be decoded: ") || strings.Contains(e.Message, "goroutine") {
			t.Errorf("%s: %q", name, e.Message)
		}
	}
}

func TestLimits(t *testing.T) {
	p := New(Config{Limits: imaged.Limits{MaxWidth: 500, MaxHeight: 500}})
	src := readTestdata(t, "chelsea.jpg") // 451x300
	processErr(t, New(Config{Limits: imaged.Limits{MaxWidth: 400}}), src, `[{"op":"flip"}]`, imaged.ETooLarge)
	processErr(t, New(Config{Limits: imaged.Limits{MaxBytes: 1000}}), src, `[{"op":"flip"}]`, imaged.ETooLarge)
	e := processErr(t, p, src, `[{"op":"rotate","angle":45}]`, imaged.EInvalid)
	if e.Field != "ops[0]" || !strings.Contains(e.Message, "limit is 500×500") {
		t.Fatalf("%s: %s", e.Field, e.Message)
	}
	processErr(t, p, src, `[{"op":"pad","width":501}]`, imaged.EInvalid)
	if err := p.Validate(parseOps(t, `[{"op":"resize","width":501}]`)); imaged.ErrorCode(err) != imaged.EInvalid ||
		!strings.Contains(err.Error(), "resize.width must be between 1 and 500") {
		t.Fatalf("validate: %v", err)
	}
}

func TestCancelled(t *testing.T) {
	p := New(Config{})
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, err := p.Process(ctx, readTestdata(t, "chelsea.jpg"), parseOps(t, `[{"op":"flip"}]`), imaged.ProcessOptions{})
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("got %v", err)
	}
}

// One Processor serves many goroutines at once.
func TestConcurrentPipelines(t *testing.T) {
	p := New(Config{})
	src := readTestdata(t, "chelsea.jpg")
	pipelines := []string{
		`[{"op":"resize","width":100},{"op":"convert","format":"png"}]`,
		`[{"op":"rotate","angle":90},{"op":"edge"}]`,
		`[{"op":"crop","width":50,"height":50,"gravity":"attention"},{"op":"convert","format":"webp"}]`,
		`[{"op":"crop","x":500,"y":0,"width":10,"height":10}]`, // fails
	}
	var wg sync.WaitGroup
	errs := make(chan error, 32)
	for i := 0; i < 16; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			ops := pipelines[i%len(pipelines)]
			res, err := p.Process(context.Background(), src, parseOps(t, ops), imaged.ProcessOptions{})
			if i%len(pipelines) == 3 {
				if imaged.ErrorCode(err) != imaged.EInvalid {
					errs <- fmt.Errorf("%s: got %v", ops, err)
				}
				return
			}
			if err != nil || len(res.Data) == 0 {
				errs <- fmt.Errorf("%s: %v", ops, err)
			}
		}(i)
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

// A photo in another colour space (Adobe RGB with its profile) comes out in sRGB, by either
// decoding path: its profile applied once, not ignored and not twice.
func TestColourManagement(t *testing.T) {
	p := New(Config{})
	adobe := readTestdata(t, "vivid-adobergb.jpg") // 226x150, saturated colours
	srgb := readTestdata(t, "vivid-srgb.png")      // the same picture in sRGB
	if d := meanAbsDiff(t, decodeRaw(t, adobe), decodeRaw(t, srgb)); d < 8 {
		t.Fatalf("test images too alike (%.2f) to tell colour management from none", d)
	}
	want := decodeRaw(t, process(t, p, srgb, `[{"op":"flip"},{"op":"resize","width":100},{"op":"convert","format":"png"}]`).Data)
	full := decodeRaw(t, process(t, p, adobe, `[{"op":"flip"},{"op":"resize","width":100},{"op":"convert","format":"png"}]`).Data)
	shrunk := decodeRaw(t, process(t, p, adobe, `[{"op":"resize","width":100},{"op":"flip"},{"op":"convert","format":"png"}]`).Data)
	if d := meanAbsDiff(t, full, want); d > 3.5 {
		t.Errorf("full decode differs from sRGB by %.2f", d)
	}
	if d := meanAbsDiff(t, shrunk, want); d > 3.5 {
		t.Errorf("shrink-on-load differs from sRGB by %.2f", d)
	}
	// sRGB profiles are recognised, so the transform is skipped for them.
	for name, want := range map[string]bool{"chelsea.jpg": true, "vivid-srgb.png": true, "vivid-adobergb.jpg": false} {
		img, err := govips.NewImageFromBuffer(readTestdata(t, name))
		if err != nil {
			t.Fatal(err)
		}
		if got := isSRGBProfile(img.GetICCProfile()); got != want {
			t.Errorf("%s: sRGB profile %v, want %v", name, got, want)
		}
		img.Close()
	}
}

// CMYK and 16-bit sources come out as 8-bit sRGB and 8-bit grey.
func TestUnusualInputs(t *testing.T) {
	p := New(Config{})
	res := process(t, p, readTestdata(t, "chelsea-cmyk.jpg"), `[{"op":"convert","format":"png"}]`)
	r := decodeRaw(t, res.Data)
	if d := meanAbsDiff(t, r, decodeRaw(t, readTestdata(t, "chelsea.jpg"))); d > 5 {
		t.Fatalf("CMYK source (no profile) differs from its sRGB original by %.2f", d)
	}
	res = process(t, p, readTestdata(t, "chelsea-cmyk.jpg"), `[{"op":"resize","width":200},{"op":"convert","format":"png"}]`)
	want := process(t, p, readTestdata(t, "chelsea.jpg"), `[{"op":"resize","width":200},{"op":"convert","format":"png"}]`)
	if d := meanAbsDiff(t, decodeRaw(t, res.Data), decodeRaw(t, want.Data)); d > 5 {
		t.Fatalf("CMYK source shrunk on load differs from its sRGB original by %.2f", d)
	}

	g := image.NewGray16(image.Rect(0, 0, 4, 1))
	for x, v := range []uint16{0, 0x8000, 0xC000, 0xFFFF} {
		g.SetGray16(x, 0, color.Gray16{Y: v})
	}
	var b bytes.Buffer
	if err := png.Encode(&b, g); err != nil {
		t.Fatal(err)
	}
	res = process(t, p, b.Bytes(), `[{"op":"flip"},{"op":"flip"}]`)
	r = decodeRaw(t, res.Data)
	if r.bands != 1 || r.pix[0] != 0 || r.pix[1] != 128 || r.pix[2] != 191 || r.pix[3] != 255 {
		t.Fatalf("16-bit grey: %d bands, values %v", r.bands, r.pix)
	}
}

// Only the first frame of an animation is processed, and the result is a still image.
func TestAnimatedGIFFirstFrame(t *testing.T) {
	p := New(Config{})
	res := process(t, p, readTestdata(t, "anim.gif"), `[{"op":"resize","width":20},{"op":"rotate","angle":90}]`)
	checkFormat(t, res, "gif", 14, 20)
	img, err := govips.NewImageFromBuffer(res.Data)
	if err != nil {
		t.Fatal(err)
	}
	defer img.Close()
	if img.Pages() != 1 || img.Height() != 20 {
		t.Fatalf("%d pages, height %d", img.Pages(), img.Height())
	}
}

// The built-in ops' registered traits decide the task type and the analysis of a pipeline.
func TestRegisteredTraits(t *testing.T) {
	for ops, want := range map[string]string{
		`[{"op":"resize","width":10},{"op":"blur"}]`:                                    imaged.TaskTypeTransform,
		`[{"op":"crop","width":10,"height":10,"gravity":"smart"}]`:                      imaged.TaskTypeTransform,
		`[{"op":"crop","width":10,"height":10,"gravity":"object:cat"}]`:                 imaged.TaskTypeDetect,
		`[{"op":"resize","width":10,"height":10,"fit":"cover","gravity":"Object:dog"}]`: imaged.TaskTypeDetect,
	} {
		if got := imaged.TaskTypeOf(parseOps(t, ops)); got != want {
			t.Errorf("%s: %s, want %s", ops, got, want)
		}
	}
	if imaged.HasAnalysis(parseOps(t, `[{"op":"frames"},{"op":"resize","width":10},{"op":"convert","format":"gif"}]`)) {
		t.Error("frames, resize and convert answer with an image")
	}
	if !imaged.HasAnalysis(parseOps(t, `[{"op":"resize","width":10},{"op":"info"}]`)) {
		t.Error("info answers with JSON")
	}
	// Every built-in op is known to the domain under the same traits.
	for name, spec := range builtins {
		if got, ok := imaged.LookupOp(name); !ok || got.Kind != spec.Kind || got.Frames != spec.Frames {
			t.Errorf("%s: registered %+v, ok %v", name, got, ok)
		}
	}
}
