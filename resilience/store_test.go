package resilience

import (
	"context"
	"errors"
	"log/slog"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/imaged/imaged"
	"github.com/imaged/imaged/sqlite"
	"github.com/imaged/imaged/storetest"
)

func openSQLite(t *testing.T) *sqlite.Store {
	t.Helper()
	s, err := sqlite.Open(t.Context(), filepath.Join(t.TempDir(), "imaged.db"),
		sqlite.OpenOptions{Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatalf("sqlite.Open: %v", err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// faultyStore is a real SQLite store whose calls fail on demand: a fault given "before" fails
// the call without running it; one given "after" runs it and then loses the answer, as a
// connection dropped after the commit would.
type faultyStore struct {
	imaged.TaskStore
	mu     sync.Mutex
	calls  map[string]int
	faults map[string][]fault
}

type fault struct {
	after bool
	err   error
}

func newFaultyStore(t *testing.T) *faultyStore {
	return &faultyStore{TaskStore: openSQLite(t), calls: map[string]int{}, faults: map[string][]fault{}}
}

func (f *faultyStore) failBefore(method string, errs ...error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, err := range errs {
		f.faults[method] = append(f.faults[method], fault{err: err})
	}
}

func (f *faultyStore) failAfter(method string, err error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.faults[method] = append(f.faults[method], fault{after: true, err: err})
}

func (f *faultyStore) count(method string) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.calls[method]
}

// run counts the call and applies the next fault of method around do.
func run[T any](f *faultyStore, method string, do func() (T, error)) (T, error) {
	f.mu.Lock()
	f.calls[method]++
	var ft *fault
	if q := f.faults[method]; len(q) > 0 {
		ft = &q[0]
		f.faults[method] = q[1:]
	}
	f.mu.Unlock()
	var zero T
	if ft != nil && !ft.after {
		return zero, ft.err
	}
	v, err := do()
	if ft != nil && err == nil {
		return zero, ft.err
	}
	return v, err
}

func (f *faultyStore) Task(ctx context.Context, tenant, id string) (*imaged.Task, error) {
	return run(f, "Task", func() (*imaged.Task, error) { return f.TaskStore.Task(ctx, tenant, id) })
}

func (f *faultyStore) CreateTasks(ctx context.Context, tasks []*imaged.Task, batch *imaged.Batch) (bool, error) {
	return run(f, "CreateTasks", func() (bool, error) { return f.TaskStore.CreateTasks(ctx, tasks, batch) })
}

func (f *faultyStore) CreateImage(ctx context.Context, img *imaged.Image) error {
	_, err := run(f, "CreateImage", func() (struct{}, error) { return struct{}{}, f.TaskStore.CreateImage(ctx, img) })
	return err
}

func (f *faultyStore) DeleteImage(ctx context.Context, tenant, id string) error {
	_, err := run(f, "DeleteImage", func() (struct{}, error) { return struct{}{}, f.TaskStore.DeleteImage(ctx, tenant, id) })
	return err
}

func (f *faultyStore) ClaimTask(ctx context.Context, id string, types []string, workerID string, lease time.Duration) (*imaged.Task, error) {
	return run(f, "ClaimTask", func() (*imaged.Task, error) { return f.TaskStore.ClaimTask(ctx, id, types, workerID, lease) })
}

func (f *faultyStore) CompleteTask(ctx context.Context, id string, attempt int, res *imaged.TaskResult) (*imaged.Task, error) {
	return run(f, "CompleteTask", func() (*imaged.Task, error) { return f.TaskStore.CompleteTask(ctx, id, attempt, res) })
}

func (f *faultyStore) FailTask(ctx context.Context, id string, attempt int, fl *imaged.TaskFailure) (*imaged.Task, error) {
	return run(f, "FailTask", func() (*imaged.Task, error) { return f.TaskStore.FailTask(ctx, id, attempt, fl) })
}

func (f *faultyStore) RetryTask(ctx context.Context, id string, attempt int, runAfter time.Time, fl *imaged.TaskFailure) (*imaged.Task, error) {
	return run(f, "RetryTask", func() (*imaged.Task, error) { return f.TaskStore.RetryTask(ctx, id, attempt, runAfter, fl) })
}

func (f *faultyStore) CancelTask(ctx context.Context, tenant, id string) (*imaged.Task, error) {
	return run(f, "CancelTask", func() (*imaged.Task, error) { return f.TaskStore.CancelTask(ctx, tenant, id) })
}

func (f *faultyStore) Ping(ctx context.Context) error {
	_, err := run(f, "Ping", func() (struct{}, error) { return struct{}{}, f.TaskStore.Ping(ctx) })
	return err
}

func dbDown() error { return imaged.Errorf(imaged.EUnavailable, "the database is not answering") }

// seedTask stores an image and one queued task and returns the task.
func seedTask(t *testing.T, s imaged.TaskStore, key string) *imaged.Task {
	t.Helper()
	ctx := t.Context()
	img := &imaged.Image{Key: "images/a.png", Format: "png", ContentType: "image/png", Width: 1, Height: 1}
	if err := s.CreateImage(ctx, img); err != nil {
		t.Fatalf("CreateImage: %v", err)
	}
	task := &imaged.Task{ImageID: img.ID, Ops: []imaged.Op{{Name: "info"}}, MaxAttempts: 3, IdempotencyKey: key}
	if _, err := s.CreateTasks(ctx, []*imaged.Task{task}, nil); err != nil {
		t.Fatalf("CreateTasks: %v", err)
	}
	return task
}

func claim(t *testing.T, s imaged.TaskStore, id string) *imaged.Task {
	t.Helper()
	c, err := s.ClaimTask(t.Context(), id, nil, "worker-1", time.Minute)
	if err != nil || c == nil {
		t.Fatalf("ClaimTask: %v, %v", c, err)
	}
	return c
}

// The decorator changes nothing a caller of a healthy store can see.
func TestStoreContract(t *testing.T) {
	storetest.Run(t, func(t *testing.T) imaged.TaskStore {
		return Store(openSQLite(t), DefaultStoreConfig(), NewMetrics(nil))
	})
}

func TestStoreBreakerOpensAndRecovers(t *testing.T) {
	m, reg := newMetrics(t)
	f := newFaultyStore(t)
	const recovery = 50 * time.Millisecond
	s := Store(f, StoreConfig{Breaker: BreakerConfig{Name: "database", Failures: 3, Recovery: recovery},
		Retry: quickRetry}, m)
	ctx := t.Context()
	task := seedTask(t, s, "")

	// One read retried three times fails three times: the breaker opens.
	f.failBefore("Task", dbDown(), dbDown(), dbDown())
	if _, err := s.Task(ctx, imaged.DefaultTenant, task.ID); !imaged.IsCode(err, imaged.EUnavailable) || IsCircuitOpen(err) {
		t.Fatalf("Task: %v; want the database's EUnavailable", err)
	}
	start := time.Now()
	_, err := s.Task(ctx, imaged.DefaultTenant, task.ID)
	var e *imaged.Error
	if !errors.As(err, &e) || !IsCircuitOpen(err) || e.Message != "database is unavailable (circuit open)" || e.RetryAfter != time.Second {
		t.Fatalf("Task with the breaker open: %v (%+v); want EUnavailable with RetryAfter 1s", err, e)
	}
	if d := time.Since(start); d > 100*time.Millisecond {
		t.Errorf("open breaker answered in %v", d)
	}
	if n := f.count("Task"); n != 3 {
		t.Errorf("database saw %d Task calls; want 3", n)
	}
	if err := s.Ping(ctx); !IsCircuitOpen(err) {
		t.Errorf("Ping with the breaker open: %v", err)
	}
	time.Sleep(recovery + 20*time.Millisecond)
	got, err := s.Task(ctx, imaged.DefaultTenant, task.ID)
	if err != nil || got.ID != task.ID {
		t.Fatalf("Task after recovery: %v, %v", got, err)
	}
	wantMetric(t, reg, "circuit_breaker_state", name("database"), StateClosed)
	wantMetric(t, reg, "circuit_breaker_transitions_total", transition("database", "half-open", "closed"), 1)
	wantMetric(t, reg, "retries_total", map[string]string{"name": "database", "operation": "task"}, 2)
}

func TestStoreNotFoundAndConflictDoNotTrip(t *testing.T) {
	m, reg := newMetrics(t)
	f := newFaultyStore(t)
	s := Store(f, StoreConfig{Breaker: BreakerConfig{Name: "database", Failures: 1}, Retry: quickRetry}, m)
	ctx := t.Context()
	task := seedTask(t, s, "")
	for range 3 {
		if _, err := s.Task(ctx, imaged.DefaultTenant, "no-such-task"); !imaged.IsCode(err, imaged.ENotFound) {
			t.Fatalf("Task of a missing id: %v", err)
		}
		if _, err := s.CompleteTask(ctx, task.ID, 1, &imaged.TaskResult{}); !imaged.IsCode(err, imaged.EConflict) {
			t.Fatalf("CompleteTask of a queued task: %v", err)
		}
	}
	if n := f.count("Task") + f.count("CompleteTask"); n != 6 {
		t.Errorf("database saw %d calls; want 6 (no retries)", n)
	}
	wantMetric(t, reg, "circuit_breaker_state", name("database"), StateClosed)
}

func TestStoreRetriesReads(t *testing.T) {
	f := newFaultyStore(t)
	s := Store(f, StoreConfig{Retry: quickRetry}, nil)
	task := seedTask(t, s, "")
	f.failBefore("Task", dbDown(), dbDown())
	got, err := s.Task(t.Context(), imaged.DefaultTenant, task.ID)
	if err != nil || got.ID != task.ID {
		t.Fatalf("Task after 2 transient failures: %v, %v", got, err)
	}
}

func TestCompleteTaskWhoseAnswerWasLost(t *testing.T) {
	f := newFaultyStore(t)
	s := Store(f, StoreConfig{Retry: quickRetry}, nil)
	ctx := t.Context()
	task := seedTask(t, s, "")
	c := claim(t, s, task.ID)

	// The update commits, the answer is lost; the repeat conflicts with it and recognises it.
	f.failAfter("CompleteTask", dbDown())
	got, err := s.CompleteTask(ctx, task.ID, c.Attempts, &imaged.TaskResult{ProcessingSeconds: 1.5})
	if err != nil {
		t.Fatalf("CompleteTask: %v; want the earlier attempt's success", err)
	}
	if got.Status != imaged.StatusCompleted || got.Result == nil || got.Result.ProcessingSeconds != 1.5 {
		t.Errorf("CompleteTask = %+v", got)
	}
	if n := f.count("CompleteTask"); n != 2 {
		t.Errorf("database saw %d CompleteTask calls; want 2", n)
	}
	// Another attempt's completion still conflicts.
	if _, err := s.CompleteTask(ctx, task.ID, c.Attempts+1, &imaged.TaskResult{}); !imaged.IsCode(err, imaged.EConflict) {
		t.Errorf("CompleteTask of a finished task: %v; want EConflict", err)
	}
}

func TestFailTaskDoesNotClaimAnotherOutcome(t *testing.T) {
	f := newFaultyStore(t)
	s := Store(f, StoreConfig{Retry: quickRetry}, nil)
	ctx := t.Context()
	task := seedTask(t, s, "")
	c := claim(t, s, task.ID)
	if _, err := s.CompleteTask(ctx, task.ID, c.Attempts, &imaged.TaskResult{}); err != nil {
		t.Fatal(err)
	}
	// A FailTask whose first attempt fails transiently and whose repeat conflicts with a
	// completion: the task is not in the state FailTask sets, so the conflict stands.
	f.failBefore("FailTask", dbDown())
	if _, err := s.FailTask(ctx, task.ID, c.Attempts, &imaged.TaskFailure{Code: "x", Message: "y"}); !imaged.IsCode(err, imaged.EConflict) {
		t.Fatalf("FailTask: %v; want EConflict", err)
	}
}

func TestRetryAndCancelWhoseAnswerWasLost(t *testing.T) {
	f := newFaultyStore(t)
	s := Store(f, StoreConfig{Retry: quickRetry}, nil)
	ctx := t.Context()
	task := seedTask(t, s, "")
	c := claim(t, s, task.ID)
	f.failAfter("RetryTask", dbDown())
	got, err := s.RetryTask(ctx, task.ID, c.Attempts, time.Now(), &imaged.TaskFailure{Code: "unavailable", Message: "later"})
	if err != nil || got.Status != imaged.StatusQueued {
		t.Fatalf("RetryTask: %v, %v", got, err)
	}
	f.failAfter("CancelTask", dbDown())
	got, err = s.CancelTask(ctx, imaged.DefaultTenant, task.ID)
	if err != nil || got.Status != imaged.StatusCancelled {
		t.Fatalf("CancelTask: %v, %v", got, err)
	}
}

func TestCreateTasksIsRetriedOnlyWithAnIdempotencyKey(t *testing.T) {
	f := newFaultyStore(t)
	s := Store(f, StoreConfig{Retry: quickRetry}, nil)
	ctx := t.Context()
	img := &imaged.Image{Key: "images/b.png", Format: "png"}
	if err := s.CreateImage(ctx, img); err != nil {
		t.Fatal(err)
	}

	// Without a key: one attempt, its error returned.
	f.failBefore("CreateTasks", dbDown())
	_, err := s.CreateTasks(ctx, []*imaged.Task{{ImageID: img.ID, Ops: []imaged.Op{{Name: "info"}}}}, nil)
	if !imaged.IsCode(err, imaged.EUnavailable) || f.count("CreateTasks") != 1 {
		t.Fatalf("CreateTasks without key: %v after %d calls; want one failed call", err, f.count("CreateTasks"))
	}

	// With a key, the first attempt commits and loses its answer: the repeat finds the task
	// this very call stored and reports it as new, so the caller still enqueues it.
	task := &imaged.Task{ImageID: img.ID, Ops: []imaged.Op{{Name: "info"}}, IdempotencyKey: "k-1"}
	f.failAfter("CreateTasks", dbDown())
	existed, err := s.CreateTasks(ctx, []*imaged.Task{task}, nil)
	if err != nil || existed {
		t.Fatalf("CreateTasks with key after a lost answer = %v, %v; want new", existed, err)
	}
	if f.count("CreateTasks") != 3 {
		t.Errorf("database saw %d CreateTasks calls; want 3", f.count("CreateTasks"))
	}
	// A later request with the same key is a replay.
	again := &imaged.Task{ImageID: img.ID, Ops: []imaged.Op{{Name: "info"}}, IdempotencyKey: "k-1"}
	existed, err = s.CreateTasks(ctx, []*imaged.Task{again}, nil)
	if err != nil || !existed || again.ID != task.ID {
		t.Fatalf("replay = %v, %v, id %s; want existed with id %s", existed, err, again.ID, task.ID)
	}
	// A batch with a key is retried the same way.
	b := &imaged.Batch{IdempotencyKey: "b-1"}
	ts := []*imaged.Task{{ImageID: img.ID, Ops: []imaged.Op{{Name: "info"}}}, {ImageID: img.ID, Ops: []imaged.Op{{Name: "info"}}}}
	f.failAfter("CreateTasks", dbDown())
	if existed, err := s.CreateTasks(ctx, ts, b); err != nil || existed {
		t.Fatalf("CreateTasks of a keyed batch after a lost answer = %v, %v; want new", existed, err)
	}
}

func TestClaimAndCreateImageAreNotRetried(t *testing.T) {
	f := newFaultyStore(t)
	s := Store(f, StoreConfig{Retry: quickRetry}, nil)
	ctx := t.Context()
	task := seedTask(t, s, "")
	f.failBefore("ClaimTask", dbDown())
	if _, err := s.ClaimTask(ctx, task.ID, nil, "w", time.Minute); !imaged.IsCode(err, imaged.EUnavailable) {
		t.Fatalf("ClaimTask: %v", err)
	}
	if n := f.count("ClaimTask"); n != 1 {
		t.Errorf("database saw %d ClaimTask calls; want 1", n)
	}
	f.failBefore("CreateImage", dbDown())
	if err := s.CreateImage(ctx, &imaged.Image{Key: "images/c.png"}); !imaged.IsCode(err, imaged.EUnavailable) {
		t.Fatalf("CreateImage: %v", err)
	}
	if n := f.count("CreateImage"); n != 2 { // one from seedTask
		t.Errorf("database saw %d CreateImage calls; want 2", n)
	}
}

func TestDeleteImageWhoseAnswerWasLost(t *testing.T) {
	f := newFaultyStore(t)
	s := Store(f, StoreConfig{Retry: quickRetry}, nil)
	ctx := t.Context()
	img := &imaged.Image{Key: "images/d.png"}
	if err := s.CreateImage(ctx, img); err != nil {
		t.Fatal(err)
	}
	f.failAfter("DeleteImage", dbDown())
	if err := s.DeleteImage(ctx, imaged.DefaultTenant, img.ID); err != nil {
		t.Fatalf("DeleteImage: %v; want the earlier attempt's success", err)
	}
	if _, err := s.Image(ctx, imaged.DefaultTenant, img.ID); !imaged.IsCode(err, imaged.ENotFound) {
		t.Errorf("Image after delete: %v", err)
	}
	if err := s.DeleteImage(ctx, imaged.DefaultTenant, img.ID); !imaged.IsCode(err, imaged.ENotFound) {
		t.Errorf("DeleteImage of a missing image: %v; want ENotFound", err)
	}
}

func TestStoreRetryStopsWhenContextEnds(t *testing.T) {
	f := newFaultyStore(t)
	s := Store(f, StoreConfig{Retry: RetryConfig{MaxAttempts: 3, Initial: time.Second}}, nil)
	task := seedTask(t, s, "")
	f.failBefore("Task", dbDown(), dbDown(), dbDown())
	ctx, cancel := context.WithTimeout(t.Context(), 100*time.Millisecond)
	defer cancel()
	start := time.Now()
	_, err := s.Task(ctx, imaged.DefaultTenant, task.ID)
	if d := time.Since(start); d > 400*time.Millisecond {
		t.Errorf("Task waited %v past its deadline", d)
	}
	if !imaged.IsCode(err, imaged.EUnavailable) {
		t.Errorf("Task: %v; want the database's error, not the context's", err)
	}
}
