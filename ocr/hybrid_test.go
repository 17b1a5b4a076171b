package ocr

import (
	"context"
	"strings"
	"testing"

	"github.com/imaged/imaged"
	"github.com/imaged/imaged/onnx"
)

func TestHybridEvaluationSet(t *testing.T) {
	p := newTestPaddle(t)
	tess := NewTesseract(TesseractConfig{})
	defer tess.Close()
	set := loadEvalSet(t)
	tClean, tAll := evaluate(t, tess, set, Options{})
	pClean, pAll := evaluate(t, p, set, Options{})
	clean, all := evaluate(t, &Hybrid{Tesseract: tess, Paddle: p}, set, Options{})
	report(t, EngineTesseract, tClean, tAll)
	report(t, EnginePaddle, pClean, pAll)
	report(t, EngineHybrid, clean, all)
	best := min(tAll.cer(), pAll.cer())
	if all.cer() > best+0.5 {
		t.Errorf("hybrid CER %.2f%% over the whole set, want ≤ the better engine's %.2f%% + 0.5", all.cer(), best)
	}
}

func TestHybridWithoutPaddleWarns(t *testing.T) {
	tess := NewTesseract(TesseractConfig{})
	defer tess.Close()
	h := &Hybrid{Tesseract: tess, Paddle: NewPaddle(onnx.New(onnx.Config{ModelsDir: t.TempDir()}))}
	res, err := h.Recognize(context.Background(), loadImage(t, "testdata/eval/clean-01-dejavu-sans-30.png"), Options{})
	if err != nil {
		t.Fatal(err)
	}
	if res.Engine != EngineHybrid || len(res.Warnings) != 1 || !strings.Contains(res.Warnings[0], "make models") {
		t.Fatalf("want a hybrid result with a warning naming make models, got %q %q", res.Engine, res.Warnings)
	}
	if !strings.Contains(res.Text, "Please send the signed contract") {
		t.Fatalf("text %q", res.Text)
	}
}

func TestPaddleWithoutModelsIsUnavailable(t *testing.T) {
	p := NewPaddle(onnx.New(onnx.Config{ModelsDir: t.TempDir()}))
	_, err := p.Recognize(context.Background(), loadImage(t, "testdata/eval/clean-01-dejavu-sans-30.png"), Options{})
	if !imaged.IsCode(err, imaged.ENotInstalled) || !strings.Contains(imaged.ErrorMessage(err), "make models") {
		t.Fatalf("want unavailable naming make models, got %v", err)
	}
}

func TestMergeKeepsMoreConfidentReading(t *testing.T) {
	a := []Line{{Text: "he1lo", Confidence: 70, Box: Box{10, 10, 100, 30}}, {Text: "only a", Confidence: 90, Box: Box{10, 50, 100, 70}}, {Text: "noise", Confidence: 20, Box: Box{10, 90, 20, 95}}}
	b := []Line{{Text: "hello", Confidence: 95, Box: Box{8, 8, 104, 34}}, {Text: "only b", Confidence: 80, Box: Box{10, 200, 100, 220}}}
	got := mergeLines(a, b)
	var texts []string
	for _, l := range got {
		texts = append(texts, l.Text)
	}
	if strings.Join(texts, "|") != "hello|only a|only b" {
		t.Fatalf("merged %q", texts)
	}
}
