package ocr

import (
	"context"
	"strings"
	"testing"

	"github.com/imaged/imaged"
)

func TestTesseractEvaluationSet(t *testing.T) {
	eng := NewTesseract(TesseractConfig{})
	defer eng.Close()
	t.Logf("OpenMP thread limit: %d", ThreadLimit())
	clean, all := evaluate(t, eng, loadEvalSet(t), Options{})
	report(t, EngineTesseract, clean, all)
	if clean.cer() > 2 {
		t.Errorf("Tesseract CER on the clean subset is %.2f%%, want ≤ 2%%", clean.cer())
	}
}

func TestTesseractUnknownLanguageListsInstalled(t *testing.T) {
	eng := NewTesseract(TesseractConfig{})
	img := loadImage(t, "testdata/eval/clean-00-dejavu-sans-22.png")
	_, err := eng.Recognize(context.Background(), img, Options{Languages: []string{"xx"}})
	if !imaged.IsCode(err, imaged.EInvalid) || !strings.Contains(imaged.ErrorMessage(err), "eng") || strings.Contains(imaged.ErrorMessage(err), "osd") {
		t.Fatalf("want invalid_argument listing eng (and not osd), got %v", err)
	}
}

func TestTesseractWordsAndLines(t *testing.T) {
	eng := NewTesseract(TesseractConfig{})
	defer eng.Close()
	img := loadImage(t, "testdata/eval/clean-01-dejavu-sans-30.png")
	res, err := eng.Recognize(context.Background(), img, Options{HOCR: true})
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Lines) != 2 {
		t.Fatalf("want 2 lines, got %d: %q", len(res.Lines), res.Text)
	}
	for _, l := range res.Lines {
		if l.Confidence < 50 || l.Confidence > 100 || len(l.Words) < 5 {
			t.Errorf("line %q: confidence %.1f, %d words", l.Text, l.Confidence, len(l.Words))
		}
		if l.Box.X1 < 20 || l.Box.X2 > img.Width || l.Box.Y2 <= l.Box.Y1 {
			t.Errorf("line %q has box %+v outside the text", l.Text, l.Box)
		}
	}
	if res.Lines[0].Box.Y2 > res.Lines[1].Box.Y1+5 {
		t.Errorf("lines out of order: %+v then %+v", res.Lines[0].Box, res.Lines[1].Box)
	}
	if !strings.Contains(res.HOCR, "ocr_line") {
		t.Errorf("hOCR missing: %.80q", res.HOCR)
	}
}
