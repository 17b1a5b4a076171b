package worker_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/sony/gobreaker/v2"

	"github.com/imaged/imaged"
	"github.com/imaged/imaged/dbqueue"
	"github.com/imaged/imaged/fs"
	"github.com/imaged/imaged/prom"
	"github.com/imaged/imaged/resilience"
	"github.com/imaged/imaged/sqlite"
	"github.com/imaged/imaged/worker"
)

// refused returns the error of a real connection refused by a closed port.
func refused(t *testing.T) error {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	c, err := net.DialTimeout("tcp", addr, time.Second)
	if err == nil {
		c.Close()
		t.Fatalf("a closed port accepted a connection")
	}
	return err
}

// openBreaker returns the error a tripped circuit breaker answers with.
func openBreaker(t *testing.T, cause error) error {
	t.Helper()
	b := resilience.NewBreaker(resilience.BreakerConfig{Name: "storage", Failures: 1, Recovery: time.Hour}, nil)
	_ = b.Do(t.Context(), func(context.Context) error { return cause })
	err := b.Do(t.Context(), func(context.Context) error { return nil })
	if !resilience.IsCircuitOpen(err) {
		t.Fatalf("the breaker did not open: %v", err)
	}
	return err
}

// An outage is a dependency out of reach; the task's own errors (bad input, a missing model, a
// failing pipeline) are not, nor is anything not known to be transient.
func TestOutageClassification(t *testing.T) {
	conn := refused(t)
	for _, tc := range []struct {
		name string
		err  error
		want bool
	}{
		{"connection refused", conn, true},
		{"refused, reading an image", imaged.WrapError(imaged.EUnavailable, conn, "reading image x failed"), true},
		{"refused, wrapped as internal", imaged.WrapError(imaged.EInternal, fmt.Errorf("put: %w", conn), "storing"), true},
		{"breaker open", openBreaker(t, conn), true},
		{"gobreaker's own refusal", fmt.Errorf("storage: %w", gobreaker.ErrOpenState), true},
		{"half-open breaker", gobreaker.ErrTooManyRequests, true},
		{"a dependency's timeout", fmt.Errorf("query: %w", context.DeadlineExceeded), true},
		{"database connection lost", &pgconn.PgError{Code: "08006", Message: "connection failure"}, true},
		{"database shutting down", &pgconn.PgError{Code: "57P01", Message: "terminating connection"}, true},
		{"unavailable", imaged.Errorf(imaged.EUnavailable, "the database does not answer"), true},
		{"model not installed", imaged.WrapError(imaged.ENotInstalled, conn, "the model x.onnx is missing"), false},
		{"bad input", imaged.Errorf(imaged.EInvalid, "resize.width must be positive"), false},
		{"image gone", imaged.Errorf(imaged.ENotFound, "image x not found"), false},
		{"unsupported", imaged.Errorf(imaged.EUnsupported, "not an image"), false},
		{"a failing pipeline", imaged.Errorf(imaged.EInternal, "vips: unable to write"), false},
		{"a plain error", errors.New("bug"), false},
		{"unique violation", &pgconn.PgError{Code: "23505", Message: "duplicate key"}, false},
		{"cancelled", context.Canceled, false},
		{"none", nil, false},
	} {
		if got := worker.Outage(tc.err); got != tc.want {
			t.Errorf("%s: Outage(%v) = %v, want %v", tc.name, tc.err, got, tc.want)
		}
	}
}

// switchedBlobs is a real blob store on local disk whose reachability the test switches: while
// down, every call fails as a refused connection does.
type switchedBlobs struct {
	imaged.BlobStore
	down atomic.Bool
	err  error
}

func (b *switchedBlobs) fail() error {
	if b.down.Load() {
		return &imaged.Error{Code: imaged.EInternal, Message: "storage call failed", Err: b.err}
	}
	return nil
}

func (b *switchedBlobs) Get(ctx context.Context, key string) (io.ReadCloser, *imaged.BlobInfo, error) {
	if err := b.fail(); err != nil {
		return nil, nil, err
	}
	return b.BlobStore.Get(ctx, key)
}

func (b *switchedBlobs) Put(ctx context.Context, key string, data []byte, ct string) error {
	if err := b.fail(); err != nil {
		return err
	}
	return b.BlobStore.Put(ctx, key, data, ct)
}

func (b *switchedBlobs) Ping(ctx context.Context) error {
	if err := b.fail(); err != nil {
		return err
	}
	return b.BlobStore.Ping(ctx)
}

// copyProcessor returns its input as the result image; slow, when set, makes it wait for the
// attempt's deadline.
type copyProcessor struct{ slow bool }

func (copyProcessor) Validate([]imaged.Op) error { return nil }

func (p copyProcessor) Process(ctx context.Context, src []byte, _ []imaged.Op, _ imaged.ProcessOptions) (*imaged.Result, error) {
	if p.slow {
		<-ctx.Done()
		return nil, ctx.Err()
	}
	return &imaged.Result{Data: src, Format: "png", ContentType: "image/png", Width: 1, Height: 1, Changed: true}, nil
}

type outageRig struct {
	store   imaged.TaskStore
	blobs   *switchedBlobs
	metrics *prom.Metrics
	w       *worker.Worker
	image   string
}

func newOutageRig(t *testing.T, cfg worker.Config, p imaged.Processor) *outageRig {
	t.Helper()
	ctx := t.Context()
	dir := t.TempDir()
	db, err := sqlite.Open(ctx, filepath.Join(dir, "imaged.db"), sqlite.OpenOptions{Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	disk, err := fs.New(filepath.Join(dir, "blobs"), fs.Options{})
	if err != nil {
		t.Fatal(err)
	}
	r := &outageRig{store: db, blobs: &switchedBlobs{BlobStore: disk, err: refused(t)}, metrics: prom.New()}
	t.Cleanup(func() { r.blobs.down.Store(false) }) // so that the worker's probing ends
	img := &imaged.Image{Tenant: imaged.DefaultTenant, Key: "images/" + imaged.NewID() + ".png", Format: "png",
		ContentType: "image/png", Bytes: 3}
	if err := disk.Put(ctx, img.Key, []byte("png"), img.ContentType); err != nil {
		t.Fatal(err)
	}
	if err := db.CreateImage(ctx, img); err != nil {
		t.Fatal(err)
	}
	r.image = img.ID
	// The breaker and retries of the server, over the switched store.
	blobs := resilience.Blobs(r.blobs, resilience.BlobConfig{Retry: resilience.RetryConfig{MaxAttempts: 1},
		Breaker: resilience.BreakerConfig{Failures: 1, Recovery: 100 * time.Millisecond},
		Upload:  resilience.BreakerConfig{Failures: 1, Recovery: 100 * time.Millisecond}}, nil)
	cfg.Checks = []imaged.HealthCheck{{Name: "storage", Required: true, Check: blobs.Ping}}
	cfg.BackoffBase = 10 * time.Millisecond
	r.w = worker.New(cfg, db, dbqueue.New(db, dbqueue.Options{}), blobs, p, nil, r.metrics, slog.New(slog.DiscardHandler))
	return r
}

// task stores a queued task created at created and claims it, as the database queue does.
func (r *outageRig) task(t *testing.T, created time.Time) *imaged.Task {
	t.Helper()
	ops, err := imaged.ParseOps([]byte(`[{"op":"flip"}]`))
	if err != nil {
		t.Fatal(err)
	}
	task := &imaged.Task{Tenant: imaged.DefaultTenant, ImageID: r.image, Ops: ops, MaxAttempts: 3, CreatedAt: created}
	if _, err := r.store.CreateTasks(t.Context(), []*imaged.Task{task}, nil); err != nil {
		t.Fatal(err)
	}
	return r.claim(t, task.ID)
}

func (r *outageRig) claim(t *testing.T, id string) *imaged.Task {
	t.Helper()
	c, err := r.store.ClaimTask(t.Context(), id, nil, r.w.ID(), time.Minute)
	if err != nil || c == nil {
		t.Fatalf("ClaimTask(%s) = %v, %v", id, c, err)
	}
	return c
}

// ready reports whether the worker takes tasks within wait.
func (r *outageRig) ready(wait time.Duration) bool {
	ctx, cancel := context.WithTimeout(context.Background(), max(wait, time.Millisecond))
	defer cancel()
	return r.w.Ready(ctx) == nil
}

func (r *outageRig) get(t *testing.T, id string) *imaged.Task {
	t.Helper()
	got, err := r.store.Task(t.Context(), imaged.AnyTenant, id)
	if err != nil {
		t.Fatal(err)
	}
	return got
}

// Storage down: the attempt is put back uncounted, the worker takes no more work until storage
// answers again, and the task then completes at its first attempt.
func TestOutagePutsTheTaskBackUncounted(t *testing.T) {
	r := newOutageRig(t, worker.Config{}, copyProcessor{})
	r.blobs.down.Store(true)
	task := r.task(t, time.Now())
	if err := r.w.Handle(t.Context(), &imaged.Delivery{TaskID: task.ID, Task: task}); err != nil {
		t.Fatalf("Handle: %v", err)
	}
	got := r.get(t, task.ID)
	if got.Status != imaged.StatusQueued || got.Attempts != 0 || got.Error == nil || got.Error.Code != imaged.EUnavailable ||
		!strings.Contains(got.Error.Message, "waiting for a dependency") {
		t.Fatalf("after an outage the task is %s at %d attempts, error %+v; want queued, 0 attempts, waiting", got.Status, got.Attempts, got.Error)
	}
	if n := counterValue(r.metrics.OutageDeferrals.WithLabelValues(imaged.TaskTypeTransform)); n != 1 {
		t.Errorf("task_outage_deferrals_total = %v, want 1", n)
	}
	if r.ready(300 * time.Millisecond) {
		t.Fatal("the worker still takes tasks with storage down")
	}

	r.blobs.down.Store(false)
	if !r.ready(30 * time.Second) {
		t.Fatal("the worker still takes no tasks 30s after storage came back")
	}
	var again *imaged.Task
	deadline := time.Now().Add(30 * time.Second)
	for again == nil && time.Now().Before(deadline) {
		// The deferral's RunAfter is a short backoff away.
		again, _ = r.store.ClaimTask(t.Context(), task.ID, nil, r.w.ID(), time.Minute)
		time.Sleep(10 * time.Millisecond)
	}
	if again == nil || again.Attempts != 1 {
		t.Fatalf("the task claimed again = %+v; want attempt 1", again)
	}
	if err := r.w.Handle(t.Context(), &imaged.Delivery{TaskID: again.ID, Task: again}); err != nil {
		t.Fatalf("Handle: %v", err)
	}
	if got := r.get(t, task.ID); got.Status != imaged.StatusCompleted || got.Attempts != 1 || got.Error != nil {
		t.Fatalf("the task after the outage: %s at %d attempts, error %+v; want completed at 1", got.Status, got.Attempts, got.Error)
	}
}

// Past its outage deadline (counted from its creation) a task that meets an outage fails for
// good, saying why.
func TestOutageDeadlineFailsTheTask(t *testing.T) {
	r := newOutageRig(t, worker.Config{OutageDeadline: time.Hour}, copyProcessor{})
	r.blobs.down.Store(true)
	young, old := r.task(t, time.Now().Add(-59*time.Minute)), r.task(t, time.Now().Add(-61*time.Minute))
	for _, task := range []*imaged.Task{young, old} {
		if err := r.w.Handle(t.Context(), &imaged.Delivery{TaskID: task.ID, Task: task}); err != nil {
			t.Fatalf("Handle: %v", err)
		}
	}
	if got := r.get(t, young.ID); got.Status != imaged.StatusQueued || got.Attempts != 0 {
		t.Errorf("a task 59 minutes old: %s at %d attempts; want queued again, uncounted", got.Status, got.Attempts)
	}
	got := r.get(t, old.ID)
	if got.Status != imaged.StatusFailed || got.Attempts != 1 || got.Error == nil || got.Error.Code != imaged.EUnavailable ||
		!strings.Contains(got.Error.Message, "1h0m0s after the task was created (the outage deadline)") ||
		!strings.Contains(got.Error.Message, "; last error: ") {
		t.Fatalf("a task 61 minutes old: %s at %d attempts, error %+v; want failed past its outage deadline", got.Status, got.Attempts, got.Error)
	}
}

// An attempt that runs past its own deadline is the task's fault: it spends an attempt even
// though a deadline error looks like a dependency's timeout.
func TestAttemptDeadlineSpendsAnAttempt(t *testing.T) {
	r := newOutageRig(t, worker.Config{Deadline: 50 * time.Millisecond}, copyProcessor{slow: true})
	task := r.task(t, time.Now())
	if err := r.w.Handle(t.Context(), &imaged.Delivery{TaskID: task.ID, Task: task}); err != nil {
		t.Fatalf("Handle: %v", err)
	}
	got := r.get(t, task.ID)
	if got.Status != imaged.StatusQueued || got.Attempts != 1 || got.Error == nil || !strings.Contains(got.Error.Message, "past its deadline") {
		t.Fatalf("after an attempt past its deadline: %s at %d attempts, error %+v; want a counted retry", got.Status, got.Attempts, got.Error)
	}
	if !r.ready(0) {
		t.Error("the task's own deadline stopped the worker taking tasks")
	}
}

// downStore is a real task store whose RequeueExpired the test can make fail as an unreachable
// database does.
type downStore struct {
	imaged.TaskStore
	down atomic.Bool
	err  error
}

func (s *downStore) RequeueExpired(ctx context.Context, now time.Time, all bool) ([]string, error) {
	if s.down.Load() {
		return nil, imaged.WrapError(imaged.EUnavailable, s.err, "the database is unavailable")
	}
	return s.TaskStore.RequeueExpired(ctx, now, all)
}

// After the database was out of reach, the lease sweeper holds off before it requeues: the
// workers could not renew their leases either, and get the time to.
func TestLeaseSweepHoldsOffAfterAnOutage(t *testing.T) {
	r := newOutageRig(t, worker.Config{}, copyProcessor{})
	store := &downStore{TaskStore: r.store, err: refused(t)}
	task := r.task(t, time.Now())
	if err := r.store.ExtendLease(t.Context(), task.ID, task.Attempts, time.Now().Add(-time.Second)); err != nil {
		t.Fatal(err)
	}
	store.down.Store(true)
	const hold = 600 * time.Millisecond
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan struct{})
	go func() {
		defer close(done)
		worker.SweepExpiredLeases(ctx, 10*time.Millisecond, hold, store, dbqueue.New(r.store, dbqueue.Options{}), slog.New(slog.DiscardHandler))
	}()
	defer func() { cancel(); <-done }()
	time.Sleep(100 * time.Millisecond) // sweeps that fail against the database that is down
	store.down.Store(false)
	back := time.Now()
	deadline := time.Now().Add(30 * time.Second)
	for r.get(t, task.ID).Status == imaged.StatusProcessing {
		if time.Now().After(deadline) {
			t.Fatal("the expired lease was never swept after the database came back")
		}
		time.Sleep(10 * time.Millisecond)
	}
	if waited := time.Since(back); waited < hold/2 {
		t.Fatalf("the sweeper requeued the task %s after the database came back, before its hold of %s", waited, hold)
	}
	if got := r.get(t, task.ID); got.Status != imaged.StatusQueued || got.Attempts != 1 {
		t.Fatalf("swept task: %s at %d attempts; want queued, its attempt counted (its worker is gone)", got.Status, got.Attempts)
	}
}
