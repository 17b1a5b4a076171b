package vips

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"image"
	"image/color"
	"image/color/palette"
	"image/gif"
	"image/jpeg"
	"image/png"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"

	govips "github.com/davidbyttow/govips/v2/vips"
	"golang.org/x/image/bmp"

	"github.com/imaged/imaged"
)

// libvips keeps one high-water mark of the memory it tracks (pixel buffers, held images,
// region buffers) per process and offers no reset, so each pipeline is measured in a process
// of its own: this test binary, started again with peakChildEnv naming a file that holds the
// source and the pipeline. TestMain hands such a process to peakChild.
const peakChildEnv = "IMAGED_VIPS_PEAK_CHILD"

// peakCase is one measured run: the source, the pipeline, and an uploaded logo for watermarks.
type peakCase struct {
	Source []byte `json:"source"`
	Ops    string `json:"ops"`
	Logo   []byte `json:"logo,omitempty"`
}

// peakAccept is the Accept header of the measured runs: convert's format auto picks WebP.
const peakAccept = "image/webp"

// peakReport is what the child measured.
type peakReport struct {
	// ChargedMiB is what the pipeline took from the memory budget (0: refused before).
	ChargedMiB int `json:"charged_mib"`
	// Peak is libvips' tracked high-water mark over the run, less what it held before.
	Peak int64  `json:"peak"`
	Err  string `json:"err,omitempty"`
	Code string `json:"code,omitempty"`
	// Handoffs lists the pixels handed to an engine that were larger than planned.
	Handoffs []string `json:"handoffs,omitempty"`
}

// peakChild runs the case in the file os.Getenv(peakChildEnv) names and prints its report.
func peakChild() int {
	var c peakCase
	data, err := os.ReadFile(os.Getenv(peakChildEnv))
	if err == nil {
		err = json.Unmarshal(data, &c)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	Startup(Config{})
	defer Shutdown()
	rep := measurePeak(c)
	if err := json.NewEncoder(os.Stdout).Encode(rep); err != nil {
		return 2
	}
	return 0
}

func measurePeak(c peakCase) peakReport {
	var rep peakReport
	ops, err := imaged.ParseOps([]byte(c.Ops))
	if err != nil {
		return peakReport{Err: err.Error(), Code: imaged.ErrorCode(err)}
	}
	rec := &recorder{}
	p := recordingProcessor(rec, c.Logo)
	// The geometry each engine op is given, as planned.
	steps, err := p.compile(ops)
	if err == nil {
		var e *imaged.PipelineEstimate
		if e, err = planSource(p, c.Source, steps); err == nil {
			for _, s := range e.Steps {
				if s.Op == "ocr" || s.Op == "detect" || s.Op == "annotate" {
					rec.planned = append(rec.planned, s.In)
				}
			}
		}
	}
	decodeTrace = func(mib int) { rep.ChargedMiB = mib }
	var before govips.MemoryStats
	govips.ReadVipsMemStats(&before)
	_, err = p.Process(context.Background(), c.Source, ops, imaged.ProcessOptions{Accept: peakAccept})
	var after govips.MemoryStats
	govips.ReadVipsMemStats(&after)
	rep.Peak = after.MemHigh - before.Mem
	if err != nil {
		rep.Err, rep.Code = err.Error(), imaged.ErrorCode(err)
	}
	rep.Handoffs = rec.violations
	return rep
}

// recorder stands in for the engines (ocr, detect, annotate, under their registered traits and
// plans) and checks that the pixels each is handed are the size planned for it.
type recorder struct {
	mu         sync.Mutex
	planned    []imaged.Geometry
	seen       int
	violations []string
}

func (r *recorder) check(name string, px imaged.Pixels) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.seen >= len(r.planned) {
		r.violations = append(r.violations, fmt.Sprintf("%s was handed pixels no plan foresaw", name))
		return
	}
	in := r.planned[r.seen]
	r.seen++
	want := handoff(in)[0]
	if int64(px.Width)*int64(px.Height)*int64(px.Bands) > want.Bytes() || px.Width != in.Width || px.Height != in.Height {
		r.violations = append(r.violations, fmt.Sprintf("%s was handed %d×%d×%d pixels; planned %d×%d×%d", name,
			px.Width, px.Height, px.Bands, want.Width, want.Height, want.Bands))
	}
}

type recordingAnalyzer struct {
	r    *recorder
	name string
}

func (a recordingAnalyzer) Spec() imaged.OpSpec {
	spec, _ := imaged.LookupOp(a.name)
	return spec
}
func (a recordingAnalyzer) Validate(int, imaged.Op) error { return nil }
func (a recordingAnalyzer) Analyze(_ context.Context, _ imaged.Op, px imaged.Pixels) (json.RawMessage, error) {
	a.r.check(a.name, px)
	return json.RawMessage(`{}`), nil
}

type recordingPainter struct{ r *recorder }

func (recordingPainter) Spec() imaged.OpSpec {
	spec, _ := imaged.LookupOp("annotate")
	return spec
}
func (recordingPainter) Validate(int, imaged.Op) error { return nil }
func (p recordingPainter) Paint(_ context.Context, _ imaged.Op, px imaged.Pixels, _ []imaged.Analysis) (imaged.Pixels, error) {
	p.r.check("annotate", px)
	out := px
	out.Data = append([]byte(nil), px.Data...)
	return out, nil
}

// recordingProcessor is a processor whose engine ops are recorders, and whose uploaded images
// are all logo.
func recordingProcessor(r *recorder, logo []byte) *Processor {
	return New(Config{Analyzers: []imaged.Analyzer{recordingAnalyzer{r, "ocr"}, recordingAnalyzer{r, "detect"}},
		Painters: []imaged.Painter{recordingPainter{r}},
		Images:   func(context.Context, string) ([]byte, error) { return logo, nil }})
}

// planSource plans steps over src as decode does: from the header, with the frames an
// animation keeps.
func planSource(p *Processor, src []byte, steps []compiled) (*imaged.PipelineEstimate, error) {
	s := &state{}
	defer s.close()
	format := imaged.SniffFormat(src)
	bands, err := s.readHeader(src, format)
	if err != nil {
		return nil, err
	}
	frames := 1
	if fr, ok := steps[0].step.(*framesStep); ok && s.src.pages > 1 && (format == "gif" || format == "webp") {
		if frames, err = p.keptFrames(fr, s.src); err != nil {
			return nil, err
		}
	}
	return p.estimate(steps, imaged.Geometry{Width: s.src.width, Height: s.src.height, Bands: bands, Frames: frames}, format, peakAccept)
}

// runPeak measures c in a child process.
func runPeak(t testing.TB, c peakCase) peakReport {
	t.Helper()
	data, err := json.Marshal(c)
	if err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(t.TempDir(), "case.json")
	if err := os.WriteFile(file, data, 0o600); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), peakChildEnv+"="+file)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("the measuring process failed: %v\n%s", err, stderr.String())
	}
	var rep peakReport
	if err := json.Unmarshal(out, &rep); err != nil {
		t.Fatalf("the measuring process said %q: %v", out, err)
	}
	return rep
}

// ratios collects estimate/peak of the runs measured, for the log (and, with
// IMAGED_PEAK_RATIOS naming a file, for a long fuzzing run's report).
var ratios struct {
	sync.Mutex
	min, max float64
	n        int
}

func noteRatio(t testing.TB, c peakCase, rep peakReport) {
	if rep.Peak <= 0 || rep.ChargedMiB == 0 || rep.Err != "" {
		return
	}
	r := float64(int64(rep.ChargedMiB)<<20) / float64(rep.Peak)
	ratios.Lock()
	if ratios.n == 0 || r < ratios.min {
		ratios.min = r
	}
	ratios.max = max(ratios.max, r)
	ratios.n++
	ratios.Unlock()
	if name := os.Getenv("IMAGED_PEAK_RATIOS"); name != "" {
		if f, err := os.OpenFile(name, os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o644); err == nil {
			fmt.Fprintf(f, "%.3f\t%d\t%d\t%s\t%s\n", r, rep.ChargedMiB, rep.Peak, imaged.SniffFormat(c.Source), c.Ops)
			f.Close()
		}
	}
}

// FuzzPipelineMemory builds random valid pipelines over random small sources (every input
// format, alpha, grey, 16-bit, animations) and asserts that libvips' tracked memory never
// goes over what the pipeline was charged from the memory budget, its planned peak, and that
// the pixels handed to the engines are the size planned. Pipelines whose plan is refused are
// refused before any pixel is decoded (nothing is charged).
func FuzzPipelineMemory(f *testing.F) {
	for _, seed := range []uint64{1, 2, 3, 5, 8, 13, 21, 34, 55, 89, 144, 233} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, seed uint64) {
		rng := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
		c, animated := randomSource(t, rng)
		c.Ops = randomPipeline(rng, animated)
		if strings.Contains(c.Ops, `"image"`) {
			c.Logo = randomLogo(t, rng)
		}
		p := recordingProcessor(&recorder{}, c.Logo)
		steps, err := p.compile(parseOps(t, c.Ops))
		if err != nil {
			t.Fatalf("the generator made an invalid pipeline %s: %v", c.Ops, err)
		}
		e, err := planSource(p, c.Source, steps)
		if err != nil {
			t.Fatalf("%s: %v", c.Ops, err)
		}
		refused := e.Check(p.limits) != nil
		if !refused && (e.Largest.Pixels() > 4e6 || e.Cost > 4000) {
			t.Skipf("too large for a quick run: %s, cost %.0f", e.Largest, e.Cost)
		}
		rep := runPeak(t, c)
		if refused {
			if rep.ChargedMiB != 0 || rep.Code != imaged.EInvalid && rep.Code != imaged.ETooLarge {
				t.Fatalf("%s: refused by its plan, yet charged %d MiB (%s)", c.Ops, rep.ChargedMiB, rep.Err)
			}
			return
		}
		if rep.ChargedMiB == 0 {
			t.Fatalf("%s: not charged: %s", c.Ops, rep.Err)
		}
		if len(rep.Handoffs) > 0 {
			t.Fatalf("%s: %s", c.Ops, strings.Join(rep.Handoffs, "; "))
		}
		if rep.Peak > int64(rep.ChargedMiB)<<20 {
			t.Fatalf("%s over a %s %s source of %d bands: libvips held %.2f MiB at its peak; the pipeline was charged %d MiB",
				c.Ops, imaged.SniffFormat(c.Source), e.Source, e.Source.Bands, float64(rep.Peak)/(1<<20), rep.ChargedMiB)
		}
		noteRatio(t, c, rep)
	})
	ratios.Lock()
	defer ratios.Unlock()
	if ratios.n > 0 {
		f.Logf("%d pipelines measured: charged/peak from %.2f to %.2f", ratios.n, ratios.min, ratios.max)
	}
}

// randomSource is a small source in a random format, and whether it is an animation.
func randomSource(t testing.TB, rng *rand.Rand) (peakCase, bool) {
	t.Helper()
	w, h := 1+rng.IntN(400), 1+rng.IntN(400)
	noise := func(x, y, k int) uint8 { return uint8(x*7 + y*3 + k*50 + rng.IntN(64)) }
	rgba := image.NewNRGBA(image.Rect(0, 0, w, h))
	gray16 := image.NewGray16(image.Rect(0, 0, w, h))
	for y := 0; y < h; y++ {
		for x := 0; x < w; x++ {
			rgba.SetNRGBA(x, y, color.NRGBA{noise(x, y, 0), noise(x, y, 1), noise(x, y, 2), uint8(128 + rng.IntN(128))})
			gray16.SetGray16(x, y, color.Gray16{Y: uint16(x*131 + y*17 + rng.IntN(4096))})
		}
	}
	opaque := image.NewRGBA(rgba.Rect)
	for i := range opaque.Pix {
		opaque.Pix[i] = rgba.Pix[i]
		if i%4 == 3 {
			opaque.Pix[i] = 255
		}
	}
	var buf bytes.Buffer
	var err error
	animated := false
	switch rng.IntN(10) {
	case 0:
		err = jpeg.Encode(&buf, opaque, &jpeg.Options{Quality: 90})
	case 1:
		err = png.Encode(&buf, rgba)
	case 2:
		err = png.Encode(&buf, opaque)
	case 3:
		err = png.Encode(&buf, gray16)
	case 4:
		err = bmp.Encode(&buf, opaque)
	case 5:
		anim := &gif.GIF{LoopCount: 0}
		for k := 0; k < 2+rng.IntN(3); k++ {
			fr := image.NewPaletted(opaque.Rect, palette.Plan9)
			for y := 0; y < h; y++ {
				for x := 0; x < w; x++ {
					fr.Set(x, y, opaque.At((x+k*5)%w, y))
				}
			}
			anim.Image = append(anim.Image, fr)
			anim.Delay = append(anim.Delay, 10)
		}
		err = gif.EncodeAll(&buf, anim)
		animated = true
	default: // formats Go does not write: through libvips
		var img *govips.ImageRef
		var pngData bytes.Buffer
		if err = png.Encode(&pngData, rgba); err == nil {
			img, err = govips.NewImageFromBuffer(pngData.Bytes())
		}
		if err != nil {
			break
		}
		defer img.Close()
		var data []byte
		switch rng.IntN(4) {
		case 0:
			data, _, err = img.ExportWebp(govips.NewWebpExportParams())
		case 1:
			data, _, err = img.ExportTiff(govips.NewTiffExportParams())
		case 2:
			if err = img.Flatten(&govips.Color{R: 255, G: 255, B: 255}); err == nil {
				data, _, err = img.ExportJpeg(&govips.JpegExportParams{Quality: 85, Interlace: true})
			}
		default:
			data = readTestdata(t, "chelsea-exif6.jpg")
		}
		buf.Write(data)
	}
	if err != nil {
		t.Fatal(err)
	}
	return peakCase{Source: buf.Bytes()}, animated
}

// randomLogo is a small uploaded image for image watermarks.
func randomLogo(t testing.TB, rng *rand.Rand) []byte {
	t.Helper()
	w, h := 1+rng.IntN(600), 1+rng.IntN(600)
	img := image.NewNRGBA(image.Rect(0, 0, w, h))
	for i := range img.Pix {
		img.Pix[i] = uint8(rng.IntN(256))
	}
	var buf bytes.Buffer
	if err := png.Encode(&buf, img); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// randomPipeline is a valid pipeline of one to five ops (with frames first, for an animation,
// half the time), and a convert at the end half the time.
func randomPipeline(rng *rand.Rand, animated bool) string {
	pick := func(vs ...string) string { return vs[rng.IntN(len(vs))] }
	side := func() int { return 1 + rng.IntN(1200) }
	var ops []string
	frames := animated && rng.IntN(2) == 0
	if frames {
		ops = append(ops, pick(`{"op":"frames"}`, fmt.Sprintf(`{"op":"frames","max":%d}`, 1+rng.IntN(3))))
	}
	gens := []func() string{
		func() string {
			return fmt.Sprintf(`{"op":"resize","width":%d,"height":%d,"fit":%q,"enlarge":%v,"kernel":%q}`, side(), side(),
				pick("inside", "outside", "cover", "fill", "exact"), rng.IntN(2) == 0, pick("lanczos3", "cubic", "linear", "nearest"))
		},
		func() string { return fmt.Sprintf(`{"op":"resize","width":%d,"enlarge":true}`, side()) },
		func() string {
			return fmt.Sprintf(`{"op":"crop","width":%d,"height":%d,"gravity":%q}`, side(), side(), pick("centre", "north", "south_east"))
		},
		func() string {
			return fmt.Sprintf(`{"op":"crop","x":%d,"y":%d,"width":%d,"height":%d}`, rng.IntN(50), rng.IntN(50), 1+rng.IntN(80), 1+rng.IntN(80))
		},
		func() string {
			return fmt.Sprintf(`{"op":"rotate","angle":%s}`, pick("90", "180", "270", fmt.Sprintf("%.1f", rng.Float64()*720-360)))
		},
		func() string {
			return fmt.Sprintf(`{"op":"rotate","angle":%.1f,"background":%q}`, rng.Float64()*360, pick("transparent", "white", "#00ff0080"))
		},
		func() string { return pick(`{"op":"flip"}`, `{"op":"flop"}`, `{"op":"flip","direction":"vertical"}`) },
		func() string {
			return fmt.Sprintf(`{"op":%q,"width":%d,"height":%d,"background":%q}`, pick("pad", "extend"), side(), side(), pick("black", "transparent"))
		},
		func() string {
			return fmt.Sprintf(`{"op":"pad","top":%d,"left":%d,"bottom":%d,"right":%d}`, rng.IntN(300), rng.IntN(300), rng.IntN(300), rng.IntN(300))
		},
		func() string { return fmt.Sprintf(`{"op":"pad","aspect":%q}`, pick("16:9", "1:3", "4:3")) },
		func() string {
			return pick(`{"op":"grayscale"}`, `{"op":"invert"}`, `{"op":"sepia"}`, `{"op":"gamma"}`, `{"op":"threshold"}`,
				`{"op":"brightness","factor":1.3}`, `{"op":"contrast","factor":0.7}`, `{"op":"saturation","factor":2}`)
		},
		func() string { return fmt.Sprintf(`{"op":"blur","sigma":%.1f}`, 0.1+rng.Float64()*pick2(rng, 3, 30)) },
		func() string {
			return fmt.Sprintf(`{"op":"sharpen","sigma":%.1f,"amount":%.1f}`, 0.1+rng.Float64()*9.9, rng.Float64()*20)
		},
		func() string { return fmt.Sprintf(`{"op":"pixelate","size":%d}`, 2+rng.IntN(60)) },
		func() string { return `{"op":"emboss"}` },
		func() string {
			return fmt.Sprintf(`{"op":"edge","method":%q,"sigma":%.1f}`, pick("canny", "sobel"), rng.Float64()*5)
		},
		func() string {
			return fmt.Sprintf(`{"op":"watermark","text":"imaged %d","size":%d,"opacity":0.6}`, rng.IntN(1000), 4+rng.IntN(200))
		},
		func() string {
			return fmt.Sprintf(`{"op":"watermark","image":"logo","scale":%.2f,"gravity":"north_west"}`, 0.01+rng.Float64()*0.99)
		},
		func() string { return `{"op":"watermark","image":"logo"}` },
		func() string { return `{"op":"trim"}` },
		func() string { return `{"op":"crop","width":64,"height":64,"gravity":"attention"}` },
		func() string { return `{"op":"info"}` },
		func() string {
			return fmt.Sprintf(`{"op":"ocr","preprocess":{"grayscale":%v,"upscale":%d,"deskew":%v}}`, rng.IntN(2) == 0, 1+rng.IntN(4), rng.IntN(2) == 0)
		},
		func() string { return `{"op":"detect"}` },
		func() string { return `{"op":"annotate"}` },
	}
	for n := 1 + rng.IntN(5); n > 0; {
		op := gens[rng.IntN(len(gens))]()
		if frames && stillOnly.MatchString(op) {
			continue
		}
		ops = append(ops, op)
		n--
	}
	if rng.IntN(2) == 0 {
		ops = append(ops, fmt.Sprintf(`{"op":"convert","format":%q}`, pick("jpeg", "png", "webp", "gif", "tiff", "auto")))
	}
	return "[" + strings.Join(ops, ",") + "]"
}

// stillOnly matches the ops that do not run on an animation's frames.
var stillOnly = regexp.MustCompile(`"(trim|ocr|detect|annotate|attention)"`)

// pick2 is one of two values, the first more often.
func pick2(rng *rand.Rand, a, b float64) float64 {
	if rng.IntN(4) == 0 {
		return b
	}
	return a
}
