package resilience

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/imaged/imaged"
	"github.com/imaged/imaged/blobtest"
	"github.com/imaged/imaged/fs"
)

func name(n string) map[string]string { return map[string]string{"name": n} }

func transition(n, from, to string) map[string]string {
	return map[string]string{"name": n, "from": from, "to": to}
}

func TestBreakerOpensAfterConsecutiveTransientFailures(t *testing.T) {
	m, reg := newMetrics(t)
	f := newFakeBlobs()
	s := Blobs(f, BlobConfig{
		Breaker: BreakerConfig{Name: "storage", Failures: 3, Recovery: 10 * time.Second},
		Retry:   RetryConfig{MaxAttempts: 1},
	}, m)
	ctx := t.Context()
	wantMetric(t, reg, "circuit_breaker_state", name("storage"), StateClosed)

	f.failNext("Head", unavailable(), unavailable(), unavailable())
	for i := range 3 {
		if _, err := s.Head(ctx, "k"); !imaged.IsCode(err, imaged.EUnavailable) || IsCircuitOpen(err) {
			t.Fatalf("Head #%d: %v; want the store's own EUnavailable", i+1, err)
		}
	}
	wantMetric(t, reg, "circuit_breaker_state", name("storage"), StateOpen)
	wantMetric(t, reg, "circuit_breaker_transitions_total", transition("storage", "closed", "open"), 1)

	// Open: answered at once, without calling the store, with a Retry-After.
	start := time.Now()
	_, err := s.Head(ctx, "k")
	if elapsed := time.Since(start); elapsed > 100*time.Millisecond {
		t.Errorf("an open breaker took %v to answer", elapsed)
	}
	var e *imaged.Error
	if !errors.As(err, &e) || e.Code != imaged.EUnavailable || !IsCircuitOpen(err) {
		t.Fatalf("Head with the breaker open: %v; want EUnavailable (circuit open)", err)
	}
	if e.Message != "storage is unavailable (circuit open)" {
		t.Errorf("message %q", e.Message)
	}
	if e.RetryAfter < 9*time.Second || e.RetryAfter > 10*time.Second {
		t.Errorf("RetryAfter = %v; want the ~10 s left until half-open", e.RetryAfter)
	}
	if n := f.count("Head"); n != 3 {
		t.Errorf("the store saw %d Head calls; want 3 (none while open)", n)
	}
	// The other operations share the breaker; Ping too (health sees it at once).
	if err := s.Ping(ctx); !IsCircuitOpen(err) {
		t.Errorf("Ping with the breaker open: %v", err)
	}
	if _, _, err := s.Get(ctx, "k"); !IsCircuitOpen(err) {
		t.Errorf("Get with the breaker open: %v", err)
	}
}

func TestSuccessResetsTheFailureCount(t *testing.T) {
	f := newFakeBlobs()
	s := Blobs(f, BlobConfig{Breaker: BreakerConfig{Failures: 3}, Retry: RetryConfig{MaxAttempts: 1}}, nil)
	for range 5 {
		f.failNext("Head", unavailable(), unavailable())
		s.Head(t.Context(), "k")
		s.Head(t.Context(), "k")
		if _, err := s.Head(t.Context(), "k"); !imaged.IsCode(err, imaged.ENotFound) {
			t.Fatalf("Head after two failures: %v; want ENotFound (breaker still closed)", err)
		}
	}
}

func TestHalfOpenSuccessClosesTheBreaker(t *testing.T) {
	m, reg := newMetrics(t)
	f := newFakeBlobs()
	const recovery = 50 * time.Millisecond
	s := Blobs(f, BlobConfig{
		Breaker: BreakerConfig{Name: "storage", Failures: 2, Recovery: recovery},
		Retry:   RetryConfig{MaxAttempts: 1},
	}, m)
	ctx := t.Context()
	f.failNext("Ping", unavailable(), unavailable())
	s.Ping(ctx)
	s.Ping(ctx)
	if err := s.Ping(ctx); !IsCircuitOpen(err) {
		t.Fatalf("Ping after 2 failures: %v; want circuit open", err)
	}
	time.Sleep(recovery + 20*time.Millisecond)
	// The scrape itself shows the breaker half-open once the recovery time has passed.
	wantMetric(t, reg, "circuit_breaker_state", name("storage"), StateHalfOpen)
	if err := s.Ping(ctx); err != nil {
		t.Fatalf("probe in half-open: %v", err)
	}
	wantMetric(t, reg, "circuit_breaker_state", name("storage"), StateClosed)
	wantMetric(t, reg, "circuit_breaker_transitions_total", transition("storage", "closed", "open"), 1)
	wantMetric(t, reg, "circuit_breaker_transitions_total", transition("storage", "open", "half-open"), 1)
	wantMetric(t, reg, "circuit_breaker_transitions_total", transition("storage", "half-open", "closed"), 1)
	if err := s.Ping(ctx); err != nil {
		t.Fatalf("Ping once closed: %v", err)
	}
}

func TestHalfOpenFailureOpensAgain(t *testing.T) {
	m, reg := newMetrics(t)
	f := newFakeBlobs()
	const recovery = 50 * time.Millisecond
	s := Blobs(f, BlobConfig{
		Breaker: BreakerConfig{Name: "storage", Failures: 1, Recovery: recovery},
		Retry:   RetryConfig{MaxAttempts: 1},
	}, m)
	f.failNext("Ping", unavailable(), unavailable())
	s.Ping(t.Context())
	time.Sleep(recovery + 20*time.Millisecond)
	if err := s.Ping(t.Context()); err == nil || IsCircuitOpen(err) {
		t.Fatalf("failing probe: %v; want the store's error", err)
	}
	if err := s.Ping(t.Context()); !IsCircuitOpen(err) {
		t.Fatalf("after a failed probe: %v; want circuit open", err)
	}
	wantMetric(t, reg, "circuit_breaker_transitions_total", transition("storage", "half-open", "open"), 1)
	wantMetric(t, reg, "circuit_breaker_state", name("storage"), StateOpen)
}

func TestPermanentErrorsAreNotRetriedAndDoNotTrip(t *testing.T) {
	m, reg := newMetrics(t)
	f := newFakeBlobs()
	s := Blobs(f, BlobConfig{Breaker: BreakerConfig{Name: "storage", Failures: 2}, Retry: quickRetry}, m)
	permanent := []error{
		imaged.Errorf(imaged.ENotFound, "gone"),
		imaged.Errorf(imaged.EInvalid, "bad key"),
		imaged.Errorf(imaged.EConflict, "clash"),
		imaged.Errorf(imaged.EPermissionDenied, "denied"),
		errors.New("a plain bug"),
	}
	for i, perr := range permanent {
		for range 3 {
			f.failNext("Head", perr)
			if _, err := s.Head(t.Context(), "k"); !errors.Is(err, perr) {
				t.Fatalf("Head: %v; want %v as is", err, perr)
			}
		}
		if n := f.count("Head"); n != 3*(i+1) {
			t.Fatalf("store saw %d Head calls after %d permanent failures; want no retries", n, 3*(i+1))
		}
	}
	wantMetric(t, reg, "circuit_breaker_state", name("storage"), StateClosed)
	wantMetric(t, reg, "retries_total", map[string]string{"name": "storage", "operation": "head"}, 0)
}

func TestRetriesSucceedAfterTransientFailures(t *testing.T) {
	m, reg := newMetrics(t)
	f := newFakeBlobs()
	s := Blobs(f, BlobConfig{Retry: quickRetry}, m)
	ctx := t.Context()
	if err := f.Put(ctx, "images/a.png", []byte("png"), "image/png"); err != nil {
		t.Fatal(err)
	}
	refused := &net.OpError{Op: "dial", Net: "tcp", Err: syscall.ECONNREFUSED}
	f.failNext("Get", unavailable(), refused)
	rc, info, err := s.Get(ctx, "images/a.png")
	if err != nil {
		t.Fatalf("Get after 2 transient failures: %v", err)
	}
	b, _ := io.ReadAll(rc)
	rc.Close()
	if string(b) != "png" || info.Size != 3 {
		t.Errorf("Get = %q, %+v", b, info)
	}
	if n := f.count("Get"); n != 3 {
		t.Errorf("store saw %d Get calls; want 3", n)
	}
	wantMetric(t, reg, "retries_total", map[string]string{"name": "storage", "operation": "get"}, 2)

	// Three failures exhaust the three attempts: the last error comes back.
	f.failNext("Head", unavailable(), unavailable(), fmt.Errorf("head: %w", context.DeadlineExceeded))
	if _, err := s.Head(ctx, "images/a.png"); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Head after 3 failures: %v; want the last one", err)
	}
	if n := f.count("Head"); n != 3 {
		t.Errorf("store saw %d Head calls; want 3", n)
	}
	wantMetric(t, reg, "retries_total", map[string]string{"name": "storage", "operation": "head"}, 2)
}

func TestRetryWaitsGrowWithJitter(t *testing.T) {
	f := newFakeBlobs()
	s := Blobs(f, BlobConfig{Retry: RetryConfig{MaxAttempts: 3, Initial: 40 * time.Millisecond}}, nil)
	f.failNext("Delete", unavailable(), unavailable())
	start := time.Now()
	if err := s.Delete(t.Context(), "k"); err != nil {
		t.Fatal(err)
	}
	// Waits of 40 ms and 80 ms, each ±50 %: between 60 ms and 180 ms in all (the upper
	// bound leaves room for a loaded machine).
	if d := time.Since(start); d < 60*time.Millisecond || d > time.Second {
		t.Errorf("two retries took %v; want 40 ms + 80 ms with jitter", d)
	}
}

func TestRetriesStopWhenTheBreakerOpens(t *testing.T) {
	f := newFakeBlobs()
	s := Blobs(f, BlobConfig{Breaker: BreakerConfig{Failures: 2, Recovery: time.Minute},
		Retry: RetryConfig{MaxAttempts: 10, Initial: time.Millisecond}}, nil)
	for range 10 {
		f.failNext("Head", unavailable())
	}
	_, err := s.Head(t.Context(), "k")
	if !IsCircuitOpen(err) {
		t.Fatalf("Head: %v; want circuit open once 2 attempts failed", err)
	}
	if n := f.count("Head"); n != 2 {
		t.Errorf("store saw %d Head calls; want 2", n)
	}
}

func TestCancelledCallerIsNotRetriedNorCounted(t *testing.T) {
	m, reg := newMetrics(t)
	f := newFakeBlobs()
	s := Blobs(f, BlobConfig{Breaker: BreakerConfig{Name: "storage", Failures: 1}, Retry: quickRetry}, m)
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	f.failNext("Head", fmt.Errorf("head: %w", context.Canceled))
	if _, err := s.Head(ctx, "k"); !errors.Is(err, context.Canceled) {
		t.Fatalf("Head: %v", err)
	}
	if n := f.count("Head"); n != 1 {
		t.Errorf("store saw %d calls; want 1", n)
	}
	// A transient-looking error once the caller has gone is not counted either.
	f.failNext("Head", unavailable())
	s.Head(ctx, "k")
	if n := f.count("Head"); n != 2 {
		t.Errorf("store saw %d calls; want 2", n)
	}
	wantMetric(t, reg, "circuit_breaker_state", name("storage"), StateClosed)
}

func TestUploadsHaveTheirOwnBreaker(t *testing.T) {
	m, reg := newMetrics(t)
	f := newFakeBlobs()
	s := Blobs(f, BlobConfig{Retry: RetryConfig{MaxAttempts: 1}}, m) // defaults: uploads 3 failures / 30 s
	ctx := t.Context()
	f.Put(ctx, "k", []byte("x"), "")
	f.failNext("Put", unavailable(), unavailable(), unavailable())
	for range 3 {
		s.Put(ctx, "k2", []byte("y"), "")
	}
	err := s.Put(ctx, "k2", []byte("y"), "")
	var e *imaged.Error
	if !errors.As(err, &e) || !IsCircuitOpen(err) || e.Message != "storage_upload is unavailable (circuit open)" {
		t.Fatalf("Put after 3 failures: %v; want the upload breaker open", err)
	}
	if e.RetryAfter < 29*time.Second || e.RetryAfter > 30*time.Second {
		t.Errorf("RetryAfter = %v; want ~30 s", e.RetryAfter)
	}
	if _, err := s.Head(ctx, "k"); err != nil {
		t.Errorf("Head while uploads are cut off: %v; reads have their own breaker", err)
	}
	wantMetric(t, reg, "circuit_breaker_state", name("storage_upload"), StateOpen)
	wantMetric(t, reg, "circuit_breaker_state", name("storage"), StateClosed)
}

func TestBlobsKeepsSignedURLVerification(t *testing.T) {
	disk, err := fs.New(t.TempDir(), fs.Options{BaseURL: "http://127.0.0.1:1", Secret: []byte("0123456789abcdef0123456789abcdef")})
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := Blobs(disk, BlobConfig{}, nil).(verifier); !ok {
		t.Error("the decorated local-disk store hides Verify")
	}
	if _, ok := Blobs(newFakeBlobs(), BlobConfig{}, nil).(verifier); ok {
		t.Error("the decorated store offers Verify although its store does not")
	}
}

// The decorator changes nothing a caller of a healthy store can see.
func TestBlobsContract(t *testing.T) {
	disk, err := fs.New(filepath.Join(t.TempDir(), "blobs"), fs.Options{})
	if err != nil {
		t.Fatal(err)
	}
	blobtest.Run(t, Blobs(disk, DefaultBlobConfig(), NewMetrics(nil)), "contract")
}
