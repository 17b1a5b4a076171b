package ocr

import (
	"os"
	"testing"

	"github.com/imaged/imaged/onnx"
)

// newTestPaddle skips when `make models` has not run, unless IMAGED_TEST_REQUIRE_SERVICES=1.
func newTestPaddle(t testing.TB) *Paddle {
	t.Helper()
	p := NewPaddle(onnx.New(onnx.Config{}))
	if err := p.Available(); err != nil {
		if os.Getenv("IMAGED_TEST_REQUIRE_SERVICES") == "1" {
			t.Fatalf("PaddleOCR models required: %v", err)
		}
		t.Skipf("SKIPPING PaddleOCR tests: %v", err)
	}
	return p
}

func TestPaddleEvaluationSet(t *testing.T) {
	p := newTestPaddle(t)
	clean, all := evaluate(t, p, loadEvalSet(t), Options{})
	report(t, EnginePaddle, clean, all)
	if clean.cer() > 3 {
		t.Errorf("Paddle CER on the clean subset is %.2f%%, want ≤ 3%%", clean.cer())
	}
}
