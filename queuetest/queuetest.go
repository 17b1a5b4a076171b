// Package queuetest is the contract every imaged.Queue keeps, as a test suite. A queue's own
// tests call Run with a function that sets up a fresh queue and returns its Harness:
//
//	func TestQueueContract(t *testing.T) {
//		queuetest.Run(t, func(t *testing.T) queuetest.Harness { return harness(t) })
//	}
//
// The suite plays the worker's side as the worker does: consumers whose handlers record the
// outcome before they return nil, and the worker's lease sweeper. So the database queue and the
// brokers are held to the same rules: a delivery is acknowledged only after its outcome, a
// consumer that dies without acknowledging gives its delivery back, a delayed retry is not
// delivered before its delay and is delivered after it, a task that failed for good is never
// delivered again (on a broker it lies in the dead-letter queue), and a task's events cross
// processes in order.
package queuetest

import (
	"context"
	"log/slog"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/imaged/imaged"
	"github.com/imaged/imaged/worker"
)

// Harness is one queue under test.
type Harness struct {
	// Store holds the rows of the suite's tasks: for the database queue, the store it is
	// built on; for a broker, any empty store (the lease sweeper reads it).
	Store imaged.TaskStore
	// Open returns a handle on the queue under test, as one process opens it: every call in one
	// subtest reaches the same queue. The handle is closed when the subtest ends.
	Open func(t *testing.T) imaged.Queue
	// Kill makes q's process vanish: its connections close without acknowledging what its
	// consumers hold. Nil for the database queue, whose consumers let go of a task by its lease
	// running out.
	Kill func(q imaged.Queue)
	// DeadLetters returns the task ids in the dead-letter queue of q; nil for a queue without
	// one. A queue with one implements worker.DeadLetterer.
	DeadLetters func(ctx context.Context, q imaged.Queue) ([]string, error)
	// Events returns an event stream over q, closed when the subtest ends; nil for a queue
	// that carries no events.
	Events func(t *testing.T, q imaged.Queue) imaged.Events
}

// Run runs the contract suite. setup is called once per subtest and must return a harness on a
// fresh queue and store.
func Run(t *testing.T, setup func(t *testing.T) Harness) {
	tests := []struct {
		name string
		fn   func(t *testing.T, h Harness)
	}{
		{"EachTaskOnceWithinConcurrency", testEachTaskOnce},
		{"AckOnlyAfterOutcome", testAckOnlyAfterOutcome},
		{"CancelWaitsForHandlers", testCancelWaitsForHandlers},
		{"RedeliveryWhenConsumerDies", testRedeliveryWhenConsumerDies},
		{"ExpiredLeaseIsPublishedAgain", testExpiredLeaseIsPublishedAgain},
		{"DelayedRetry", testDelayedRetry},
		{"FailedForGoodNeverDeliveredAgain", testFailedForGood},
		{"EventsInOrderAcrossProcesses", testEventsInOrder},
		{"ConsumersOfSomeTypes", testConsumersOfSomeTypes},
		{"ReadyHoldsTheTaking", testReadyHoldsTheTaking},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) { tc.fn(t, setup(t)) })
	}
}

// --- the worker's side, as the suite plays it ------------------------------------------------

var quiet = slog.New(slog.DiscardHandler)

const (
	// lease is the consumers' lease: short, so a dead consumer's task comes back soon on the
	// database queue.
	lease = 300 * time.Millisecond
	// holdLease is the lease of a consumer or claim that is not meant to lose its task: long
	// enough that a handler slowed down by a loaded machine never sees its task swept away.
	holdLease = 30 * time.Second
	sweep     = 50 * time.Millisecond
	// wait bounds every wait for a condition.
	wait = 30 * time.Second
)

// waitFor polls cond until it holds, failing the test after wait.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(wait)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", wait, what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// sweepers holds the function that stops the lease sweeper of each open handle.
var sweepers sync.Map // imaged.Queue → func()

// open returns a handle on the queue with the worker's lease sweeper running over it, as every
// worker process runs one.
func open(t *testing.T, h Harness) imaged.Queue {
	t.Helper()
	q := h.Open(t)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		worker.SweepExpiredLeases(ctx, sweep, 2*lease, h.Store, q, quiet)
	}()
	var once sync.Once
	stop := func() {
		once.Do(func() {
			cancel()
			<-done
		})
	}
	sweepers.Store(q, stop)
	t.Cleanup(func() {
		stop()
		sweepers.Delete(q)
	})
	return q
}

// kill makes q's process vanish, its sweeper included.
func kill(h Harness, q imaged.Queue) {
	if stop, ok := sweepers.Load(q); ok {
		stop.(func())()
	}
	if h.Kill != nil {
		h.Kill(q)
	}
}

// consume runs q.Consume in the background and returns a function that cancels it and waits
// for it to return. A consumer the test kills may return an error; others must not.
func consume(t *testing.T, q imaged.Queue, opts imaged.ConsumeOptions, killed bool, h imaged.Handler) (stop func()) {
	t.Helper()
	if opts.Lease == 0 {
		opts.Lease = holdLease
	}
	if opts.Concurrency == 0 {
		opts.Concurrency = 1
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- q.Consume(ctx, opts, h) }()
	var once sync.Once
	stop = func() {
		once.Do(func() {
			cancel()
			select {
			case err := <-done:
				if err != nil && !killed {
					t.Errorf("Consume returned %v", err)
				}
			case <-time.After(wait):
				t.Errorf("Consume did not return within %s of cancel", wait)
			}
		})
	}
	t.Cleanup(stop)
	return stop
}

// outcome records the outcome of a delivery as the worker does: through the claim the database
// queue made, or by claiming the task first when a broker delivered only its id.
func outcome(ctx context.Context, s imaged.TaskStore, d *imaged.Delivery) error {
	task := d.Task
	if task == nil {
		t, err := s.ClaimTask(ctx, d.TaskID, nil, "queuetest", holdLease)
		if err != nil || t == nil {
			return err // not claimable: a duplicate, dropped as the worker drops it
		}
		task = t
	}
	_, err := s.CompleteTask(ctx, task.ID, task.Attempts, &imaged.TaskResult{})
	if imaged.IsCode(err, imaged.EConflict) {
		return nil
	}
	return err
}

// deliveries records every delivery a consumer got.
type deliveries struct {
	mu  sync.Mutex
	all []*imaged.Delivery
	at  []time.Time
}

func (r *deliveries) add(d *imaged.Delivery) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.all = append(r.all, d)
	r.at = append(r.at, time.Now())
}

// of returns the deliveries of task id and when they came.
func (r *deliveries) of(id string) ([]*imaged.Delivery, []time.Time) {
	r.mu.Lock()
	defer r.mu.Unlock()
	var ds []*imaged.Delivery
	var at []time.Time
	for i, d := range r.all {
		if d.TaskID == id {
			ds = append(ds, d)
			at = append(at, r.at[i])
		}
	}
	return ds, at
}

func (r *deliveries) count(id string) int {
	ds, _ := r.of(id)
	return len(ds)
}

// recorder returns a handler that records each delivery and its outcome.
func recorder(s imaged.TaskStore, r *deliveries) imaged.Handler {
	return func(ctx context.Context, d *imaged.Delivery) error {
		r.add(d)
		return outcome(ctx, s, d)
	}
}

var opsJSON = map[string]string{
	imaged.TaskTypeTransform: `[{"op":"resize","width":2}]`,
	imaged.TaskTypeDetect:    `[{"op":"detect"}]`,
	imaged.TaskTypeOCR:       `[{"op":"ocr"}]`,
}

// createTasks stores n queued tasks of type typ, as the API does before it publishes them.
func createTasks(t *testing.T, s imaged.TaskStore, typ string, n int) []*imaged.Task {
	t.Helper()
	ctx := t.Context()
	img := &imaged.Image{Key: "images/" + imaged.NewID() + ".png", Format: "png", ContentType: "image/png",
		Width: 4, Height: 4, Bytes: 10}
	if err := s.CreateImage(ctx, img); err != nil {
		t.Fatalf("CreateImage: %v", err)
	}
	ops, err := imaged.ParseOps([]byte(opsJSON[typ]))
	if err != nil {
		t.Fatal(err)
	}
	out := make([]*imaged.Task, n)
	for i := range out {
		out[i] = &imaged.Task{ImageID: img.ID, Type: typ, Ops: ops, MaxAttempts: 3, CorrelationID: "corr-" + imaged.NewID()[:6]}
		if _, err := s.CreateTasks(ctx, []*imaged.Task{out[i]}, nil); err != nil {
			t.Fatalf("CreateTasks: %v", err)
		}
	}
	return out
}

// publish creates n queued transform tasks and publishes them to q.
func publish(t *testing.T, h Harness, q imaged.Queue, n int) []*imaged.Task {
	t.Helper()
	tasks := createTasks(t, h.Store, imaged.TaskTypeTransform, n)
	for _, task := range tasks {
		if err := q.Publish(t.Context(), task, 0); err != nil {
			t.Fatalf("Publish: %v", err)
		}
	}
	return tasks
}

// settled publishes a marker task and waits for consumers recording into r to get it, so that a
// check that something was not delivered (again) is made after the queue had its chance: a
// queue that keeps order (RabbitMQ's queue of a type, the database's oldest-first claims)
// delivers what was pending before the marker; on Kafka the marker may overtake another
// partition's records, and the check is then weaker, never wrong.
func settled(t *testing.T, h Harness, q imaged.Queue, r *deliveries) {
	t.Helper()
	marker := publish(t, h, q, 1)[0]
	waitFor(t, "the marker task delivered", func() bool { return r.count(marker.ID) > 0 })
}

func status(t *testing.T, s imaged.TaskStore, id string) string {
	t.Helper()
	got, err := s.Task(t.Context(), imaged.DefaultTenant, id)
	if err != nil {
		t.Fatalf("Task %s: %v", id, err)
	}
	return got.Status
}

// --- the contract ----------------------------------------------------------------------------

// Every task published reaches one handler once, carrying its type and correlation id, with
// no more handlers in flight than Concurrency.
func testEachTaskOnce(t *testing.T, h Harness) {
	const n, conc = 12, 3
	q := open(t, h)
	tasks := publish(t, h, q, n)
	release := make(chan struct{})
	var inflight, peak atomic.Int32
	var r deliveries
	consume(t, q, imaged.ConsumeOptions{WorkerID: "w1", Concurrency: conc}, false,
		func(ctx context.Context, d *imaged.Delivery) error {
			cur := inflight.Add(1)
			defer inflight.Add(-1)
			for {
				p := peak.Load()
				if cur <= p || peak.CompareAndSwap(p, cur) {
					break
				}
			}
			<-release
			r.add(d)
			return outcome(ctx, h.Store, d)
		})
	waitFor(t, "Concurrency handlers in flight", func() bool { return inflight.Load() == conc })
	close(release)
	// A delivery is recorded before its outcome: wait for the outcomes, not the deliveries.
	waitFor(t, "every task completed", func() bool {
		for _, task := range tasks {
			if status(t, h.Store, task.ID) != imaged.StatusCompleted {
				return false
			}
		}
		return true
	})
	settled(t, h, q, &r)
	for _, task := range tasks {
		ds, _ := r.of(task.ID)
		if len(ds) != 1 {
			t.Fatalf("task %s delivered %d times, want once", task.ID, len(ds))
		}
		if d := ds[0]; d.Type != imaged.TaskTypeTransform || d.CorrelationID != task.CorrelationID || d.Redelivered {
			t.Errorf("delivery of %s = %+v", task.ID, d)
		}
		if s := status(t, h.Store, task.ID); s != imaged.StatusCompleted {
			t.Errorf("task %s is %s, want completed", task.ID, s)
		}
	}
	if p := peak.Load(); p != conc {
		t.Errorf("at most %d handlers in flight, want %d", p, conc)
	}
}

// A handler that returns an error did not record the outcome: the delivery comes again,
// marked redelivered. One that returns nil did: its delivery is gone for good, even for a
// consumer that starts afresh.
func testAckOnlyAfterOutcome(t *testing.T, h Harness) {
	q := open(t, h)
	task := publish(t, h, q, 1)[0]
	var r deliveries
	// The short lease: on the database queue a delivery whose handler failed comes back when
	// its lease runs out.
	stop := consume(t, q, imaged.ConsumeOptions{WorkerID: "w1", Lease: lease}, false,
		func(ctx context.Context, d *imaged.Delivery) error {
			r.add(d)
			if r.count(d.TaskID) == 1 {
				return imaged.Errorf(imaged.EUnavailable, "the database went away")
			}
			return outcome(ctx, h.Store, d)
		})
	waitFor(t, "a second delivery after the handler's error", func() bool { return r.count(task.ID) >= 2 })
	waitFor(t, "the task completed", func() bool { return status(t, h.Store, task.ID) == imaged.StatusCompleted })
	stop()

	// A fresh consumer on a fresh handle: the acknowledged delivery must not come back.
	fresh := open(t, h)
	consume(t, fresh, imaged.ConsumeOptions{WorkerID: "w2"}, false, recorder(h.Store, &r))
	settled(t, h, fresh, &r)
	ds, _ := r.of(task.ID)
	if len(ds) != 2 {
		t.Fatalf("task delivered %d times, want 2 (an error, then the outcome)", len(ds))
	}
	if !ds[1].Redelivered {
		t.Errorf("the delivery after the handler's error is not marked redelivered: %+v", ds[1])
	}
}

// Cancelling Consume stops it taking deliveries, but a handler in flight runs on (its context
// is not cancelled), Consume returns only after it, and its outcome is acknowledged.
func testCancelWaitsForHandlers(t *testing.T, h Harness) {
	q := open(t, h)
	tasks := publish(t, h, q, 2)
	started := make(chan context.Context, 2)
	release := make(chan struct{})
	var handlerReturned atomic.Bool
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	returned := make(chan error, 1)
	go func() {
		returned <- q.Consume(ctx, imaged.ConsumeOptions{WorkerID: "w1", Concurrency: 1, Lease: holdLease},
			func(hctx context.Context, d *imaged.Delivery) error {
				started <- hctx
				<-release
				err := outcome(hctx, h.Store, d)
				handlerReturned.Store(true)
				return err
			})
	}()
	var hctx context.Context
	select {
	case hctx = <-started:
	case <-time.After(wait):
		t.Fatal("no handler started")
	}
	cancel()
	// Consume must hold on while its handler runs: give it a moment to return wrongly.
	select {
	case err := <-returned:
		t.Fatalf("Consume returned %v while a handler was running", err)
	case <-time.After(200 * time.Millisecond):
	}
	if hctx.Err() != nil {
		t.Fatalf("the handler's context was cancelled with Consume's: %v", hctx.Err())
	}
	close(release)
	select {
	case err := <-returned:
		if err != nil {
			t.Fatalf("Consume returned %v", err)
		}
	case <-time.After(wait):
		t.Fatal("Consume did not return after its handler did")
	}
	if !handlerReturned.Load() {
		t.Fatal("Consume returned before its handler")
	}
	if len(started) != 0 {
		t.Fatal("a task was handled after cancel")
	}

	// The other task still waits for a consumer; the finished one is not delivered again.
	var r deliveries
	fresh := open(t, h)
	consume(t, fresh, imaged.ConsumeOptions{WorkerID: "w2"}, false, recorder(h.Store, &r))
	waitFor(t, "both tasks completed", func() bool {
		return status(t, h.Store, tasks[0].ID) == imaged.StatusCompleted &&
			status(t, h.Store, tasks[1].ID) == imaged.StatusCompleted
	})
	settled(t, h, fresh, &r)
	if n := r.count(tasks[0].ID) + r.count(tasks[1].ID); n != 1 {
		t.Fatalf("the second consumer got %d deliveries of the two tasks, want 1 (the one not handled before cancel)", n)
	}
}

// A consumer that dies holding a delivery it never acknowledged (its connection closed; on the
// database queue, its lease ran out) gives it back: another consumer gets it.
func testRedeliveryWhenConsumerDies(t *testing.T, h Harness) {
	dying := open(t, h)
	task := publish(t, h, dying, 1)[0]
	got := make(chan *imaged.Delivery, 1)
	hold := make(chan struct{})
	consume(t, dying, imaged.ConsumeOptions{WorkerID: "dying", Lease: lease}, true,
		func(ctx context.Context, d *imaged.Delivery) error {
			got <- d
			<-hold
			return nil
		})
	t.Cleanup(func() { close(hold) }) // runs before the consumer's stop
	select {
	case d := <-got:
		if d.TaskID != task.ID {
			t.Fatalf("delivered %s, want %s", d.TaskID, task.ID)
		}
	case <-time.After(wait):
		t.Fatal("the task was never delivered")
	}
	kill(h, dying)
	var r deliveries
	consume(t, open(t, h), imaged.ConsumeOptions{WorkerID: "alive"}, false, recorder(h.Store, &r))
	waitFor(t, "the dead consumer's task completed by another", func() bool {
		return status(t, h.Store, task.ID) == imaged.StatusCompleted
	})
	if r.count(task.ID) == 0 {
		t.Fatal("the task was completed, but not by the live consumer")
	}
}

// A task whose worker died with it claimed (a broker's message already taken, the row left
// processing) comes back when its lease runs out: the worker's sweeper queues it again and
// publishes it, and a consumer gets it as a redelivery.
func testExpiredLeaseIsPublishedAgain(t *testing.T, h Harness) {
	q := open(t, h)
	task := createTasks(t, h.Store, imaged.TaskTypeTransform, 1)[0]
	if c, err := h.Store.ClaimTask(t.Context(), task.ID, nil, "dead-worker", lease); err != nil || c == nil {
		t.Fatalf("ClaimTask = %v, %v", c, err)
	}
	var r deliveries
	consume(t, q, imaged.ConsumeOptions{WorkerID: "alive"}, false, recorder(h.Store, &r))
	waitFor(t, "the task completed after its lease ran out", func() bool {
		return status(t, h.Store, task.ID) == imaged.StatusCompleted
	})
	got, err := h.Store.Task(t.Context(), imaged.DefaultTenant, task.ID)
	if err != nil || got.Attempts != 2 {
		t.Fatalf("task = %+v, %v; want completed at attempt 2", got, err)
	}
}

// A retry published with a delay is not delivered before the delay and is delivered after it,
// without holding a consumer's slot meanwhile.
func testDelayedRetry(t *testing.T, h Harness) {
	const delay = 700 * time.Millisecond
	q := open(t, h)
	var r deliveries
	task := createTasks(t, h.Store, imaged.TaskTypeTransform, 1)[0]
	if c, err := h.Store.ClaimTask(t.Context(), task.ID, nil, "w0", holdLease); err != nil || c == nil {
		t.Fatalf("ClaimTask = %v, %v", c, err)
	}
	// The consumer starts once the task is w0's: on the database queue a consumer's first
	// claim would otherwise race the one above.
	consume(t, q, imaged.ConsumeOptions{WorkerID: "w1", Concurrency: 1}, false, recorder(h.Store, &r))
	// A retry as the worker records it: queued again with a RunAfter, then published with the
	// same delay.
	start := time.Now()
	retried, err := h.Store.RetryTask(t.Context(), task.ID, 1, start.Add(delay),
		&imaged.TaskFailure{Code: imaged.EUnavailable, Message: "try again"})
	if err != nil {
		t.Fatalf("RetryTask: %v", err)
	}
	if err := q.Publish(t.Context(), retried, delay); err != nil {
		t.Fatalf("Publish with a delay: %v", err)
	}
	now := publish(t, h, q, 1)[0]
	waitFor(t, "the delayed task delivered", func() bool { return r.count(task.ID) > 0 })
	_, at := r.of(task.ID)
	if el := at[0].Sub(start); el < delay {
		t.Errorf("the delayed task was delivered after %s, before its delay of %s", el, delay)
	}
	_, nowAt := r.of(now.ID)
	if len(nowAt) == 0 || nowAt[0].After(at[0]) {
		t.Errorf("the task published after the delayed one waited for it: the delayed one held the only slot")
	}
	waitFor(t, "the delayed task completed", func() bool { return status(t, h.Store, task.ID) == imaged.StatusCompleted })
}

// A task that failed for good is never delivered again: a broker keeps its final message in
// the dead-letter queue, which no worker consumes; the database queue never hands out the
// failed row, even when woken for it.
func testFailedForGood(t *testing.T, h Harness) {
	q := open(t, h)
	task := createTasks(t, h.Store, imaged.TaskTypeTransform, 1)[0]
	c, err := h.Store.ClaimTask(t.Context(), task.ID, nil, "w0", holdLease)
	if err != nil || c == nil {
		t.Fatalf("ClaimTask = %v, %v", c, err)
	}
	f := &imaged.TaskFailure{Code: imaged.EInternal, Message: "boom"}
	failed, err := h.Store.FailTask(t.Context(), task.ID, c.Attempts, f)
	if err != nil {
		t.Fatalf("FailTask: %v", err)
	}
	if h.DeadLetters != nil {
		dl, ok := q.(worker.DeadLetterer)
		if !ok {
			t.Fatalf("%T has a dead-letter queue but no DeadLetter method", q)
		}
		if err := dl.DeadLetter(t.Context(), failed, f); err != nil {
			t.Fatalf("DeadLetter: %v", err)
		}
		ctx, cancel := context.WithTimeout(t.Context(), wait)
		defer cancel()
		ids, err := h.DeadLetters(ctx, q)
		if err != nil || !slices.Contains(ids, task.ID) {
			t.Fatalf("dead letters = %v, %v; want %s among them", ids, err, task.ID)
		}
	} else if err := q.Publish(t.Context(), failed, 0); err != nil {
		t.Fatalf("Publish: %v", err)
	}
	var r deliveries
	consume(t, q, imaged.ConsumeOptions{WorkerID: "w1"}, false, recorder(h.Store, &r))
	settled(t, h, q, &r)
	if n := r.count(task.ID); n != 0 {
		t.Fatalf("the failed task was delivered %d times", n)
	}
	if s := status(t, h.Store, task.ID); s != imaged.StatusFailed {
		t.Fatalf("the failed task is %s", s)
	}
}

// localEvents is an event stream that also gives the events of its own process alone.
type localEvents interface {
	Local() imaged.Events
}

// One task's events, published by one process, reach another process in the order they were
// published (queued → started → completed), with their id and correlation id; the publishing
// process sees each once, and the other's own-events stream none of them.
func testEventsInOrder(t *testing.T, h Harness) {
	if h.Events == nil {
		t.Skip("this queue carries no events")
	}
	ea := h.Events(t, open(t, h))
	eb := h.Events(t, open(t, h))
	subA, stopA := ea.Subscribe()
	defer stopA()
	subB, stopB := eb.Subscribe()
	defer stopB()
	var localB <-chan imaged.Event
	if l, ok := eb.(localEvents); ok {
		ch, stop := l.Local().Subscribe()
		defer stop()
		localB = ch
	}

	// b's subscription to the broker comes up in the background: probe until one arrives.
	probe := "probe-" + imaged.NewID()[:8]
	waitFor(t, "the event subscription of the second process", func() bool {
		_ = ea.Publish(context.Background(), imaged.Event{Type: imaged.EventHealth, TaskID: probe})
		select {
		case e := <-subB:
			return e.TaskID == probe
		case <-time.After(100 * time.Millisecond):
			return false
		}
	})

	id := imaged.NewID()
	want := []string{imaged.EventTaskQueued, imaged.EventTaskStarted, imaged.EventTaskCompleted}
	for i, typ := range want {
		ev := imaged.Event{Type: typ, TaskID: id, CorrelationID: "c-42", Attempt: 1, WorkerID: "w"}
		if i == 0 {
			ev.WorkerID = ""
		}
		if err := ea.Publish(context.Background(), ev); err != nil {
			t.Fatalf("Publish %s: %v", typ, err)
		}
	}
	// of returns the task's events that arrive on ch until n have come or wait passed.
	of := func(ch <-chan imaged.Event, n int, who string) []imaged.Event {
		var got []imaged.Event
		deadline := time.After(wait)
		for len(got) < n {
			select {
			case e := <-ch:
				if e.TaskID == id {
					got = append(got, e)
				}
			case <-deadline:
				t.Fatalf("%s got %d of the task's %d events", who, len(got), n)
			}
		}
		return got
	}
	for _, c := range []struct {
		who string
		ch  <-chan imaged.Event
	}{{"the publishing process", subA}, {"the other process", subB}} {
		got := of(c.ch, len(want), c.who)
		for i, e := range got {
			if e.Type != want[i] || e.ID == "" || e.CorrelationID != "c-42" {
				t.Errorf("%s: event %d = %+v, want %s", c.who, i, e, want[i])
			}
		}
	}
	// Nothing more of the task's: a repeat would show before the next probe gets through.
	settle := "settle-" + imaged.NewID()[:8]
	_ = ea.Publish(context.Background(), imaged.Event{Type: imaged.EventHealth, TaskID: settle})
	for _, c := range []struct {
		who string
		ch  <-chan imaged.Event
	}{{"the publishing process", subA}, {"the other process", subB}} {
		deadline := time.After(wait)
	drain:
		for {
			select {
			case e := <-c.ch:
				if e.TaskID == id {
					t.Errorf("%s got the task's %s event twice", c.who, e.Type)
				}
				if e.TaskID == settle {
					break drain
				}
			case <-deadline:
				t.Fatalf("%s never got the settling event", c.who)
			}
		}
	}
	if localB != nil {
		select {
		case e := <-localB:
			t.Errorf("the other process's own-events stream got %+v", e)
		default:
		}
	}
}
