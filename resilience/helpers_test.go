package resilience

import (
	"bytes"
	"context"
	"io"
	"sync"
	"testing"
	"time"

	"github.com/imaged/imaged"
	"github.com/prometheus/client_golang/prometheus"
)

// fakeBlobs is an in-memory BlobStore whose calls fail on demand.
type fakeBlobs struct {
	mu      sync.Mutex
	objects map[string][]byte
	calls   map[string]int     // calls per method
	fails   map[string][]error // errors the next calls of a method return, in order
}

func newFakeBlobs() *fakeBlobs {
	return &fakeBlobs{objects: map[string][]byte{}, calls: map[string]int{}, fails: map[string][]error{}}
}

// failNext makes the next len(errs) calls of method return errs in order.
func (f *fakeBlobs) failNext(method string, errs ...error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.fails[method] = append(f.fails[method], errs...)
}

func (f *fakeBlobs) count(method string) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.calls[method]
}

func (f *fakeBlobs) enter(method string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls[method]++
	if q := f.fails[method]; len(q) > 0 {
		f.fails[method] = q[1:]
		return q[0]
	}
	return nil
}

func (f *fakeBlobs) Put(ctx context.Context, key string, data []byte, contentType string) error {
	if err := f.enter("Put"); err != nil {
		return err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.objects[key] = bytes.Clone(data)
	return nil
}

func (f *fakeBlobs) Get(ctx context.Context, key string) (io.ReadCloser, *imaged.BlobInfo, error) {
	if err := f.enter("Get"); err != nil {
		return nil, nil, err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	b, ok := f.objects[key]
	if !ok {
		return nil, nil, imaged.Errorf(imaged.ENotFound, "object %s not found", key)
	}
	return io.NopCloser(bytes.NewReader(b)), &imaged.BlobInfo{Key: key, Size: int64(len(b))}, nil
}

func (f *fakeBlobs) Head(ctx context.Context, key string) (*imaged.BlobInfo, error) {
	if err := f.enter("Head"); err != nil {
		return nil, err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	b, ok := f.objects[key]
	if !ok {
		return nil, imaged.Errorf(imaged.ENotFound, "object %s not found", key)
	}
	return &imaged.BlobInfo{Key: key, Size: int64(len(b))}, nil
}

func (f *fakeBlobs) Delete(ctx context.Context, key string) error {
	if err := f.enter("Delete"); err != nil {
		return err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	delete(f.objects, key)
	return nil
}

func (f *fakeBlobs) URL(ctx context.Context, key string, expiry time.Duration) (string, error) {
	f.enter("URL")
	return "", nil
}

func (f *fakeBlobs) List(ctx context.Context, prefix, after string, limit int) ([]imaged.BlobInfo, error) {
	if err := f.enter("List"); err != nil {
		return nil, err
	}
	return nil, nil
}

func (f *fakeBlobs) Ping(ctx context.Context) error { return f.enter("Ping") }

// unavailable is the transient failure the fakes return.
func unavailable() error {
	return imaged.Errorf(imaged.EUnavailable, "storage is not answering")
}

// quickRetry keeps retry waits in the millisecond range.
var quickRetry = RetryConfig{MaxAttempts: 3, Initial: time.Millisecond, Max: 5 * time.Millisecond}

// metricValue returns the value of the named series with exactly these labels, and whether it
// exists.
func metricValue(t *testing.T, reg *prometheus.Registry, name string, labels map[string]string) (float64, bool) {
	t.Helper()
	families, err := reg.Gather()
	if err != nil {
		t.Fatalf("Gather: %v", err)
	}
	for _, f := range families {
		if f.GetName() != name {
			continue
		}
	next:
		for _, m := range f.GetMetric() {
			if len(m.GetLabel()) != len(labels) {
				continue
			}
			for _, l := range m.GetLabel() {
				if labels[l.GetName()] != l.GetValue() {
					continue next
				}
			}
			switch {
			case m.GetGauge() != nil:
				return m.GetGauge().GetValue(), true
			case m.GetCounter() != nil:
				return m.GetCounter().GetValue(), true
			}
		}
	}
	return 0, false
}

func wantMetric(t *testing.T, reg *prometheus.Registry, name string, labels map[string]string, want float64) {
	t.Helper()
	got, ok := metricValue(t, reg, name, labels)
	if !ok && want != 0 {
		t.Errorf("%s%v is missing; want %v", name, labels, want)
		return
	}
	if got != want {
		t.Errorf("%s%v = %v, want %v", name, labels, got, want)
	}
}

func newMetrics(t *testing.T) (*Metrics, *prometheus.Registry) {
	t.Helper()
	reg := prometheus.NewPedanticRegistry()
	return NewMetrics(reg), reg
}
