package vips

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"

	"github.com/imaged/imaged"
	_ "github.com/imaged/imaged/detect" // registers detect and annotate
	_ "github.com/imaged/imaged/ocr"    // registers ocr
)

// sampleOps holds a valid instance of every built-in op, for the tests that go over them all.
var sampleOps = map[string]string{
	"resize":     `{"op":"resize","width":200}`,
	"crop":       `{"op":"crop","width":100,"height":80}`,
	"rotate":     `{"op":"rotate","angle":30}`,
	"flip":       `{"op":"flip"}`,
	"flop":       `{"op":"flop"}`,
	"pad":        `{"op":"pad","top":10,"left":20}`,
	"extend":     `{"op":"extend","aspect":"16:9","background":"transparent"}`,
	"trim":       `{"op":"trim"}`,
	"grayscale":  `{"op":"grayscale"}`,
	"greyscale":  `{"op":"greyscale"}`,
	"invert":     `{"op":"invert"}`,
	"sepia":      `{"op":"sepia"}`,
	"brightness": `{"op":"brightness","factor":1.2}`,
	"contrast":   `{"op":"contrast","factor":1.2}`,
	"saturation": `{"op":"saturation","factor":1.5}`,
	"gamma":      `{"op":"gamma"}`,
	"threshold":  `{"op":"threshold"}`,
	"blur":       `{"op":"blur","sigma":3}`,
	"sharpen":    `{"op":"sharpen"}`,
	"pixelate":   `{"op":"pixelate","size":8}`,
	"emboss":     `{"op":"emboss"}`,
	"edge":       `{"op":"edge"}`,
	"watermark":  `{"op":"watermark","text":"imaged"}`,
	"frames":     `{"op":"frames"}`,
	"convert":    `{"op":"convert","format":"webp"}`,
	"info":       `{"op":"info"}`,
	"ocr":        `{"op":"ocr","preprocess":{"upscale":2}}`,
	"detect":     `{"op":"detect"}`,
	"annotate":   `{"op":"annotate"}`,
}

// Every op declares its geometry, what it holds and its cost: an op registered without a plan
// could not be refused or charged before decoding. The ops of every package that registers
// some are linked into this test.
func TestEveryOpDeclaresItsPlan(t *testing.T) {
	in := imaged.Geometry{Width: 640, Height: 480, Bands: 3, Frames: 1}
	ops := imaged.RegisteredOps()
	if len(ops) < len(builtins)+3 {
		t.Fatalf("only %d ops registered", len(ops))
	}
	for _, spec := range ops {
		if spec.Plan == nil {
			t.Errorf("op %s declares no plan (OpSpec.Plan)", spec.Name)
			continue
		}
		sample, ok := sampleOps[spec.Name]
		if !ok {
			t.Errorf("op %s has no sample in sampleOps", spec.Name)
			continue
		}
		plan, err := spec.Plan(in, parseOps(t, "["+sample+"]")[0])
		if err != nil {
			t.Errorf("%s: %v", spec.Name, err)
			continue
		}
		if plan.Out.Width <= 0 || plan.Out.Height <= 0 || plan.Out.Bands <= 0 || plan.Cost < 0 {
			t.Errorf("%s: plan %+v", spec.Name, plan)
		}
		if spec.Kind == imaged.OpTransform && spec.Name != "convert" && (plan.Cost <= 0 || len(plan.Held) == 0) {
			t.Errorf("%s changes the image but its plan holds nothing or costs nothing: %+v", spec.Name, plan)
		}
	}
	for name := range builtins {
		if _, ok := imaged.LookupOp(name); !ok {
			t.Errorf("built-in %s is not registered", name)
		}
	}
}

// The plan's geometry is the one the pipeline makes: for each op, and for chains of them, the
// planned output has the result's width, height and bands.
func TestPlanMatchesTheResult(t *testing.T) {
	p := New(Config{})
	rng := rand.New(rand.NewPCG(7, 23))
	pipelines := []string{}
	for name, op := range sampleOps {
		switch name {
		case "ocr", "detect", "annotate", "frames", "convert", "info":
			continue
		}
		pipelines = append(pipelines, op)
	}
	for range 12 {
		pipelines = append(pipelines, fmt.Sprintf(`{"op":"rotate","angle":%.2f}`, rng.Float64()*720-360))
	}
	pipelines = append(pipelines,
		`{"op":"resize","width":700,"enlarge":true},{"op":"rotate","angle":-13.7,"background":"transparent"},{"op":"crop","width":300,"height":900}`,
		`{"op":"resize","width":300,"height":300,"fit":"exact","background":"#ff000080"}`,
		`{"op":"resize","width":300,"height":300,"fit":"cover","gravity":"attention"}`,
		`{"op":"resize","height":500,"fit":"fill","width":90,"enlarge":true}`,
		`{"op":"pad","aspect":0.5},{"op":"grayscale"},{"op":"pad","width":900,"height":100,"background":"white"}`,
		`{"op":"grayscale"},{"op":"rotate","angle":45}`,
		`{"op":"edge","method":"sobel"},{"op":"sepia"}`,
		`{"op":"watermark","text":"a very long watermark text that will not fit","size":300},{"op":"rotate","angle":270}`,
	)
	slices.Sort(pipelines)
	for _, src := range []string{"chelsea.jpg", "chelsea-exif6.jpg"} {
		data := readTestdata(t, src)
		for _, ops := range pipelines {
			ops := "[" + ops + `,{"op":"convert","format":"png"}]`
			t.Run(src+" "+ops, func(t *testing.T) {
				steps, err := p.compile(parseOps(t, ops))
				if err != nil {
					t.Fatal(err)
				}
				h, err := p.header(data)
				if err != nil {
					t.Fatal(err)
				}
				e, err := p.estimate(steps, h, "jpeg", "")
				if err != nil {
					t.Fatal(err)
				}
				want := e.Steps[len(e.Steps)-1].Out
				got := decodeRaw(t, process(t, p, data, ops).Data)
				if got.w != want.Width || got.h != want.Height || got.bands != want.Bands {
					t.Fatalf("planned %d×%d×%d, made %d×%d×%d", want.Width, want.Height, want.Bands, got.w, got.h, got.bands)
				}
			})
		}
	}
}

// header is the geometry of an encoded source as decode reads it.
func (p *Processor) header(src []byte) (imaged.Geometry, error) {
	s := &state{}
	defer s.close()
	bands, err := s.readHeader(src, imaged.SniffFormat(src))
	return imaged.Geometry{Width: s.src.width, Height: s.src.height, Bands: bands, Frames: 1}, err
}

// The domain's Estimate plans a pipeline with the ops' registered plans, as Process does.
func TestEstimateFromTheRegistry(t *testing.T) {
	src := imaged.Geometry{Width: 100, Height: 100, Bands: 3}
	e, err := imaged.Estimate(parseOps(t, `[{"op":"pad","width":10000,"height":10000},{"op":"ocr","preprocess":{"upscale":4}}]`), src)
	if err != nil {
		t.Fatal(err)
	}
	if e.LargestAt != 1 || e.Largest.Width != 40000 || e.Largest.Height != 40000 {
		t.Fatalf("largest %v at %d", e.Largest, e.LargestAt)
	}
	err = e.Check(imaged.DefaultLimits)
	var ie *imaged.Error
	if !asError(err, &ie) || ie.Code != imaged.EInvalid || ie.Field != "ops[1]" || !strings.Contains(ie.Message, "ocr would hold an image of 40000×40000") {
		t.Fatalf("check: %v", err)
	}
}

// convert's format auto is planned as the format it will pick for the client: AVIF, which
// costs most, only for one that accepts it.
func TestAutoIsPlannedForTheClient(t *testing.T) {
	if !canSave("avif") {
		t.Skip("this libvips writes no AVIF")
	}
	p := New(Config{})
	steps, err := p.compile(parseOps(t, `[{"op":"pad","width":10000,"height":10000},{"op":"convert","format":"auto"}]`))
	if err != nil {
		t.Fatal(err)
	}
	src := imaged.Geometry{Width: 1, Height: 1, Bands: 3, Frames: 1}
	for accept, refused := range map[string]bool{"image/avif,image/webp,*/*": true, "image/webp,*/*": false, "": false} {
		e, err := p.estimate(steps, src, "png", accept)
		if err != nil {
			t.Fatal(err)
		}
		if err := e.Check(p.limits); (err != nil) != refused {
			t.Errorf("Accept %q: cost %.0f, check %v", accept, e.Cost, err)
		}
	}
}
