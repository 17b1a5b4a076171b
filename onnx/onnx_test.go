package onnx

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/imaged/imaged"
)

// requireModels skips when `make models` has not run, unless IMAGED_TEST_REQUIRE_SERVICES=1.
func requireModels(t *testing.T, rt *Runtime, files ...string) {
	t.Helper()
	if err := rt.Available(files...); err != nil {
		if os.Getenv("IMAGED_TEST_REQUIRE_SERVICES") == "1" {
			t.Fatalf("models required: %v", err)
		}
		t.Skipf("SKIPPING: %v", err)
	}
}

// A missing library or model is not_installed (permanent: a task fails at once), says to run
// make models, and never shows the server's paths.
func TestMissingLibraryIsNotInstalled(t *testing.T) {
	dir := t.TempDir()
	rt := New(Config{ModelsDir: dir})
	err := rt.Available("model.onnx")
	if !imaged.IsCode(err, imaged.ENotInstalled) || !strings.Contains(err.Error(), "make models") {
		t.Fatalf("Available: want not_installed naming make models, got %v", err)
	}
	if msg := imaged.ErrorMessage(err); strings.Contains(msg, dir) || strings.Contains(msg, "/") {
		t.Fatalf("the message shows a server path: %q", msg)
	}
	if envLoaded {
		t.Skip("library already loaded by another test")
	}
	_, err = rt.Pool("model.onnx", []string{"x"}, []string{"y"}).Get(context.Background())
	if !imaged.IsCode(err, imaged.ENotInstalled) || !strings.Contains(imaged.ErrorMessage(err), "make models") {
		t.Fatalf("Get: want not_installed naming make models, got %v", err)
	}
}

func TestMissingModelIsNotInstalled(t *testing.T) {
	dir := t.TempDir()
	_, err := NewSession(filepath.Join(dir, "absent.onnx"), []string{"x"}, []string{"y"})
	if !imaged.IsCode(err, imaged.ENotInstalled) {
		t.Fatalf("want not_installed, got %v", err)
	}
	if msg := imaged.ErrorMessage(err); strings.Contains(msg, dir) || !strings.Contains(msg, "absent.onnx") {
		t.Fatalf("the message must name the file by its base name only: %q", msg)
	}
}

func TestPoolCreatesLazilyAndBoundsUse(t *testing.T) {
	var created atomic.Int32
	p := NewPool(2, func() (*Session, error) {
		created.Add(1)
		return &Session{}, nil
	})
	if created.Load() != 0 {
		t.Fatal("pool created a session before first use")
	}
	ctx := context.Background()
	a, _ := p.Get(ctx)
	b, _ := p.Get(ctx)
	short, cancel := context.WithTimeout(ctx, 20*time.Millisecond)
	defer cancel()
	if _, err := p.Get(short); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("third Get on a pool of 2: want deadline exceeded, got %v", err)
	}
	p.Put(a)
	c, err := p.Get(ctx)
	if err != nil || c != a {
		t.Fatalf("Get after Put should reuse the idle session, got %v %v", c, err)
	}
	p.Put(b)
	p.Put(c)
	var wg sync.WaitGroup
	for i := 0; i < 16; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			s, err := p.Get(ctx)
			if err != nil {
				t.Error(err)
				return
			}
			p.Put(s)
		}()
	}
	wg.Wait()
	if n := created.Load(); n != 2 {
		t.Fatalf("created %d sessions, want 2", n)
	}
}

func TestPoolCreationErrorFreesSlot(t *testing.T) {
	fail := errors.New("boom")
	p := NewPool(1, func() (*Session, error) { return nil, fail })
	for i := 0; i < 3; i++ {
		if _, err := p.Get(context.Background()); !errors.Is(err, fail) {
			t.Fatalf("try %d: want the creation error, got %v", i, err)
		}
	}
}

func TestRunClassifierModel(t *testing.T) {
	rt := New(Config{})
	const model = "ch_ppocr_mobile_v2.0_cls_infer.onnx"
	requireModels(t, rt, model)
	p := rt.Pool(model, []string{"x"}, []string{"softmax_0.tmp_0"})
	if rt.Pool(model, []string{"x"}, []string{"softmax_0.tmp_0"}) != p {
		t.Fatal("the same model should give the same pool")
	}
	in := Tensor{Shape: []int64{2, 3, 48, 192}, Data: make([]float32, 2*3*48*192)}
	out, err := p.Run(context.Background(), in)
	if err != nil {
		t.Fatal(err)
	}
	if len(out) != 1 || len(out[0].Shape) != 2 || out[0].Shape[0] != 2 || out[0].Shape[1] != 2 {
		t.Fatalf("output shape %v, want [2 2]", out[0].Shape)
	}
	if s := out[0].Data[0] + out[0].Data[1]; s < 0.99 || s > 1.01 {
		t.Fatalf("softmax row sums to %v", s)
	}
	if _, err := p.Run(context.Background(), Tensor{Shape: []int64{1, 3}, Data: []float32{1}}); err == nil {
		t.Fatal("a tensor whose data does not fill its shape should fail")
	}
}

// A run whose context ends is terminated by the runtime between kernels, not finished.
func TestRunStopsWhenContextEnds(t *testing.T) {
	rt := New(Config{})
	const model = "ch_ppocr_mobile_v2.0_cls_infer.onnx"
	requireModels(t, rt, model)
	p := rt.Pool(model, []string{"x"}, []string{"softmax_0.tmp_0"})
	const batch = 768
	in := Tensor{Shape: []int64{batch, 3, 48, 192}, Data: make([]float32, batch*3*48*192)}
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	start := time.Now()
	_, err := p.Run(ctx, in)
	took := time.Since(start)
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("got %v after %v, want the deadline's error", err, took)
	}
	// Uncancelled this batch runs for tens of seconds; the runtime checks its terminate flag
	// between kernels, and one kernel over so large a batch takes a fraction of a second.
	if took > 5*time.Second {
		t.Errorf("the run returned %v after it started, %v after its deadline", took, took-300*time.Millisecond)
	}
	t.Logf("returned %v after its deadline", took-300*time.Millisecond)
	// The session is whole: the next run works.
	if _, err := p.Run(context.Background(), Tensor{Shape: []int64{1, 3, 48, 192}, Data: make([]float32, 3*48*192)}); err != nil {
		t.Fatalf("the next run: %v", err)
	}
}
