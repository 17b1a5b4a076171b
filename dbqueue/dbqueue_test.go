package dbqueue_test

import (
	"context"
	"log/slog"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/imaged/imaged"
	"github.com/imaged/imaged/dbqueue"
	"github.com/imaged/imaged/sqlite"
)

var quiet = slog.New(slog.DiscardHandler)

func openStore(t *testing.T, path string) *sqlite.Store {
	t.Helper()
	s, err := sqlite.Open(t.Context(), path, sqlite.OpenOptions{Logger: quiet})
	if err != nil {
		t.Fatalf("sqlite.Open: %v", err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func newStore(t *testing.T) *sqlite.Store {
	return openStore(t, filepath.Join(t.TempDir(), "imaged.db"))
}

// createTasks stores n queued transform tasks, as the API does before publishing them.
func createTasks(t *testing.T, s imaged.TaskStore, n int, runAfter time.Time) []*imaged.Task {
	t.Helper()
	ctx := t.Context()
	img := &imaged.Image{Key: "images/k.jpg", Format: "jpeg", ContentType: "image/jpeg", Width: 4, Height: 4, Bytes: 10}
	if err := s.CreateImage(ctx, img); err != nil {
		t.Fatalf("CreateImage: %v", err)
	}
	ops, err := imaged.ParseOps([]byte(`[{"op":"resize","width":2}]`))
	if err != nil {
		t.Fatal(err)
	}
	out := make([]*imaged.Task, n)
	for i := range out {
		out[i] = &imaged.Task{ImageID: img.ID, Ops: ops, MaxAttempts: 3, RunAfter: runAfter, CorrelationID: "corr"}
		if _, err := s.CreateTasks(ctx, []*imaged.Task{out[i]}, nil); err != nil {
			t.Fatalf("CreateTasks: %v", err)
		}
	}
	return out
}

// waitFor polls cond until it holds, failing the test after timeout.
func waitFor(t *testing.T, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", timeout, what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// consume runs q.Consume in the background and returns a function that cancels it and waits
// for it to return.
func consume(t *testing.T, q *dbqueue.Queue, opts imaged.ConsumeOptions, h imaged.Handler) (stop func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- q.Consume(ctx, opts, h) }()
	var once sync.Once
	stop = func() {
		once.Do(func() {
			cancel()
			select {
			case err := <-done:
				if err != nil {
					t.Errorf("Consume returned %v", err)
				}
			case <-time.After(10 * time.Second):
				t.Errorf("Consume did not return after cancel")
			}
		})
	}
	t.Cleanup(stop)
	return stop
}

// complete is a handler body that records the outcome as a worker would.
func complete(ctx context.Context, s imaged.TaskStore, d *imaged.Delivery) error {
	_, err := s.CompleteTask(ctx, d.TaskID, d.Task.Attempts, &imaged.TaskResult{})
	return err
}

func TestDelayedTaskNotClaimedEarly(t *testing.T) {
	for _, c := range []struct {
		name string
		poll time.Duration
	}{
		// Fast polling must not claim the task before its RunAfter. (Without polling, Publish's
		// timer wakes the consumer when it is due: the contract suite's DelayedRetry.)
		{"polling", 10 * time.Millisecond},
	} {
		t.Run(c.name, func(t *testing.T) {
			s := newStore(t)
			// A retry as the worker records it: back to queued with a RunAfter, then published
			// with the same delay.
			const delay = 300 * time.Millisecond
			task := createTasks(t, s, 1, time.Time{})[0]
			if c, err := s.ClaimTask(t.Context(), task.ID, nil, "other", time.Minute); err != nil || c == nil {
				t.Fatalf("ClaimTask = %v, %v", c, err)
			}
			retried, err := s.RetryTask(t.Context(), task.ID, 1, time.Now().Add(delay), &imaged.TaskFailure{Code: imaged.EUnavailable, Message: "x"})
			if err != nil {
				t.Fatalf("RetryTask: %v", err)
			}

			q := dbqueue.New(s, dbqueue.Options{PollInterval: c.poll, Logger: quiet})
			defer q.Close()
			var startedAt atomic.Pointer[time.Time]
			consume(t, q, imaged.ConsumeOptions{WorkerID: "w"}, func(ctx context.Context, d *imaged.Delivery) error {
				startedAt.Store(d.Task.StartedAt)
				return complete(ctx, s, d)
			})
			if err := q.Publish(t.Context(), retried, delay); err != nil {
				t.Fatalf("Publish: %v", err)
			}
			waitFor(t, 10*time.Second, "the delayed task completed", func() bool {
				got, err := s.Task(t.Context(), imaged.DefaultTenant, task.ID)
				return err == nil && got.Status == imaged.StatusCompleted
			})
			// StartedAt is the claim's time on the store's clock, as RunAfter is.
			at := *startedAt.Load()
			if at.Before(retried.RunAfter) {
				t.Fatalf("claimed %v before its RunAfter", retried.RunAfter.Sub(at))
			}
			t.Logf("claimed %v after RunAfter", at.Sub(retried.RunAfter))
			got, err := s.Task(t.Context(), imaged.DefaultTenant, task.ID)
			if err != nil || got.Attempts != 2 {
				t.Fatalf("task = %+v, %v; want completed at attempt 2", got, err)
			}
		})
	}
}

func TestQueuedTaskSurvivesRestart(t *testing.T) {
	path := filepath.Join(t.TempDir(), "imaged.db")
	s1, err := sqlite.Open(t.Context(), path, sqlite.OpenOptions{Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	q1 := dbqueue.New(s1, dbqueue.Options{Logger: quiet})
	task := createTasks(t, s1, 1, time.Time{})[0]
	if err := q1.Publish(t.Context(), task, 0); err != nil {
		t.Fatalf("Publish: %v", err)
	}
	q1.Close()
	if err := s1.Close(); err != nil {
		t.Fatal(err)
	}

	s2 := openStore(t, path)
	q2 := dbqueue.New(s2, dbqueue.Options{PollInterval: time.Hour, Logger: quiet})
	defer q2.Close()
	if depth, err := q2.Depth(t.Context()); err != nil || depth[imaged.TaskTypeTransform] != 1 {
		t.Fatalf("Depth after restart = %v, %v; want 1 transform", depth, err)
	}
	var got atomic.Value
	consume(t, q2, imaged.ConsumeOptions{WorkerID: "w2"}, func(ctx context.Context, d *imaged.Delivery) error {
		got.Store(d.TaskID)
		return complete(ctx, s2, d)
	})
	waitFor(t, 10*time.Second, "the task processed after restart", func() bool { return got.Load() != nil })
	if got.Load() != task.ID {
		t.Fatalf("processed %v, want %s", got.Load(), task.ID)
	}
}

func TestOnlyConsumesGivenTypes(t *testing.T) {
	s := newStore(t)
	task := createTasks(t, s, 1, time.Time{})[0] // transform
	q := dbqueue.New(s, dbqueue.Options{PollInterval: 10 * time.Millisecond, Logger: quiet})
	defer q.Close()
	var ocr, all atomic.Int32
	consume(t, q, imaged.ConsumeOptions{WorkerID: "ocr", Types: []string{imaged.TaskTypeOCR}},
		func(ctx context.Context, d *imaged.Delivery) error { ocr.Add(1); return complete(ctx, s, d) })
	// Let the ocr consumer poll a few times over the transform task.
	for range 5 {
		if err := q.Publish(t.Context(), task, 0); err != nil {
			t.Fatal(err)
		}
	}
	consume(t, q, imaged.ConsumeOptions{WorkerID: "any"},
		func(ctx context.Context, d *imaged.Delivery) error { all.Add(1); return complete(ctx, s, d) })
	waitFor(t, 10*time.Second, "the transform task processed", func() bool { return all.Load() == 1 })
	if ocr.Load() != 0 {
		t.Fatal("the ocr consumer took a transform task")
	}
}

func TestPingAndClose(t *testing.T) {
	s := newStore(t)
	q := dbqueue.New(s, dbqueue.Options{Logger: quiet})
	if err := q.Ping(t.Context()); err != nil {
		t.Fatalf("Ping: %v", err)
	}
	task := createTasks(t, s, 1, time.Time{})[0]
	if err := q.Publish(t.Context(), task, time.Hour); err != nil {
		t.Fatalf("Publish with delay: %v", err)
	}
	if err := q.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if err := q.Publish(t.Context(), task, 0); !imaged.IsCode(err, imaged.EUnavailable) {
		t.Fatalf("Publish after Close = %v, want unavailable", err)
	}
	if err := s.Ping(t.Context()); err != nil {
		t.Fatalf("Close closed the store: %v", err)
	}
}
