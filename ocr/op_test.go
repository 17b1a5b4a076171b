package ocr

import (
	"context"
	"encoding/json"
	"math"
	"strings"
	"sync"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/imaged/imaged"
	"github.com/imaged/imaged/onnx"
)

func parseOp(t *testing.T, js string) imaged.Op {
	t.Helper()
	var op imaged.Op
	if err := json.Unmarshal([]byte(js), &op); err != nil {
		t.Fatal(err)
	}
	return op
}

func TestOpValidate(t *testing.T) {
	o := NewOp(Config{})
	defer o.Close()
	ok := []string{
		`{"op":"ocr"}`,
		`{"op":"ocr","engine":"hybrid","languages":["eng"],"hocr":true,"raw":true,"preprocess":{"grayscale":true,"upscale":2,"deskew":true}}`,
		`{"op":"ocr","engine":"paddle","languages":["chi_sim"]}`,
	}
	for _, js := range ok {
		if err := o.Validate(0, parseOp(t, js)); err != nil {
			t.Errorf("%s: %v", js, err)
		}
	}
	bad := map[string]string{
		`{"op":"ocr","engine":"abbyy"}`:              "ops[2].engine",
		`{"op":"ocr","languages":["klingon"]}`:       "ops[2].languages",
		`{"op":"ocr","languages":"eng"}`:             "ops[2].languages",
		`{"op":"ocr","preprocess":{"upscale":9}}`:    "ops[2].preprocess.upscale",
		`{"op":"ocr","colour":true}`:                 "ops[2].colour",
		`{"op":"ocr","preprocess":{"sharpen":true}}`: "ops[2].sharpen",
	}
	for js, field := range bad {
		err := o.Validate(2, parseOp(t, js))
		var e *imaged.Error
		if !imaged.IsCode(err, imaged.EInvalid) || !asError(err, &e) || e.Field != field || !strings.Contains(e.Message, "ocr") {
			t.Errorf("%s: want invalid_argument on %s naming ocr, got %#v", js, field, err)
		}
	}
	err := o.Validate(0, parseOp(t, `{"op":"ocr","languages":["klingon"]}`))
	if !strings.Contains(imaged.ErrorMessage(err), "installed: eng") {
		t.Errorf("the message should list installed languages: %v", err)
	}
}

func asError(err error, e **imaged.Error) bool {
	x, ok := err.(*imaged.Error)
	*e = x
	return ok
}

func TestOpAnalyzeMetricsAndPreprocess(t *testing.T) {
	reg := prometheus.NewRegistry()
	o := NewOp(Config{Registerer: reg})
	defer o.Close()
	img := loadImage(t, "testdata/eval/rotated-plus5.png")
	out, err := o.Analyze(context.Background(), parseOp(t, `{"op":"ocr","preprocess":{"grayscale":true,"upscale":1.5,"deskew":true}}`), imaged.Pixels(img))
	if err != nil {
		t.Fatal(err)
	}
	var res Result
	if err := json.Unmarshal(out, &res); err != nil {
		t.Fatal(err)
	}
	want := "Please send the signed contract by Friday. Meeting room B is on the third floor."
	if normalize(res.Text) != want {
		t.Errorf("text %q", normalize(res.Text))
	}
	if _, ok := res.Timings["preprocess"]; !ok || res.Engine != EngineTesseract {
		t.Errorf("engine %q timings %v", res.Engine, res.Timings)
	}
	// Deskewed lines map back to tilted quads inside the original image (vips turned this one
	// clockwise on screen: its lines fall 5° to the right).
	for _, l := range res.Lines {
		if l.Box.X2 > img.Width || l.Box.Y2 > img.Height {
			t.Errorf("box %+v outside %dx%d", l.Box, img.Width, img.Height)
		}
		dy := l.Points[1][1] - l.Points[0][1]
		dx := l.Points[1][0] - l.Points[0][0]
		if a := math.Atan2(-dy, dx) * 180 / math.Pi; math.Abs(a+5) > 1.5 {
			t.Errorf("line %q top edge at %.1f°, want ≈-5°", l.Text, a)
		}
	}
	var m dto.Metric
	if err := o.metrics.Characters.WithLabelValues("tesseract", "eng").Write(&m); err != nil || m.GetCounter().GetValue() != float64(len(strings.ReplaceAll(want, " ", ""))) {
		t.Errorf("characters metric %v %v", m.GetCounter().GetValue(), err)
	}
	families, err := reg.Gather()
	if err != nil || len(families) != 2 {
		t.Fatalf("gathered %d families: %v", len(families), err)
	}
}

func TestEstimateSkew(t *testing.T) {
	img := loadImage(t, "testdata/eval/clean-01-dejavu-sans-30.png")
	for _, deg := range []float64{-4, 3} {
		if got := estimateSkew(img.rotate(deg)); math.Abs(got+deg) > 0.6 {
			t.Errorf("image turned %.1f°: estimated correction %.1f°", deg, got)
		}
	}
}

func TestOpPaddleWithoutModels(t *testing.T) {
	o := NewOp(Config{Runtime: onnx.New(onnx.Config{ModelsDir: t.TempDir()})})
	defer o.Close()
	_, err := o.Analyze(context.Background(), parseOp(t, `{"op":"ocr","engine":"paddle"}`), imaged.Pixels(loadImage(t, "testdata/eval/clean-00-dejavu-sans-22.png")))
	if !imaged.IsCode(err, imaged.ENotInstalled) || !strings.Contains(imaged.ErrorMessage(err), "make models") {
		t.Fatalf("want unavailable naming make models, got %v", err)
	}
}

// Eight simultaneous recognitions give the sequential results, for every engine.
func TestConcurrentEqualsSequential(t *testing.T) {
	o := NewOp(Config{})
	defer o.Close()
	engines := []string{EngineTesseract}
	if o.engines[EnginePaddle].(*Paddle).Available() == nil {
		engines = append(engines, EnginePaddle, EngineHybrid)
	} else {
		t.Log("SKIPPING paddle and hybrid: models missing (run make models)")
	}
	set := loadEvalSet(t)[:8]
	for _, eng := range engines {
		a := Args{Engine: eng, Languages: []string{"eng"}}
		want := make([]string, len(set))
		for i, s := range set {
			r, err := o.Recognize(context.Background(), s.img, a)
			if err != nil {
				t.Fatal(err)
			}
			want[i] = r.Text
		}
		got := make([]string, len(set))
		var wg sync.WaitGroup
		for i, s := range set {
			wg.Add(1)
			go func() {
				defer wg.Done()
				r, err := o.Recognize(context.Background(), s.img, a)
				if err != nil {
					t.Error(err)
					return
				}
				got[i] = r.Text
			}()
		}
		wg.Wait()
		for i := range set {
			if got[i] != want[i] {
				t.Errorf("%s %s: concurrent %q, sequential %q", eng, set[i].name, got[i], want[i])
			}
		}
	}
}

func TestRegisteredTraits(t *testing.T) {
	ops, err := imaged.ParseOps([]byte(`[{"op":"resize","width":10},{"op":"ocr"}]`))
	if err != nil {
		t.Fatal(err)
	}
	if got := imaged.TaskTypeOf(ops); got != imaged.TaskTypeOCR {
		t.Errorf("task type %s, want ocr", got)
	}
	if !imaged.HasAnalysis(ops) {
		t.Error("ocr answers with JSON")
	}
}
