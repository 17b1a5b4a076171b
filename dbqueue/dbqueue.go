// Package dbqueue is the default queue ("db://"): the tasks table of the configured database is
// the queue. A queued task row is already a message, so publishing only wakes this process's
// consumers; consumers claim rows with TaskStore.ClaimTask and poll to see rows other processes
// created. Tasks whose lease ran out come back through the worker's lease sweeper, which
// publishes them here like any queue. Durable exactly as the database is, and needs no broker.
package dbqueue

import (
	"context"
	"log/slog"
	"sync"
	"time"

	"github.com/imaged/imaged"
)

// Defaults for Options and ConsumeOptions left zero.
const (
	DefaultPollInterval = 500 * time.Millisecond
	DefaultLease        = 5 * time.Minute
)

// claimTimeout bounds one claim, which runs on a context that shutdown does not cancel (see
// claim).
const claimTimeout = 10 * time.Second

// Options tune a Queue.
type Options struct {
	// PollInterval is how often an idle consumer looks for tasks it was not woken for: tasks
	// created by other processes sharing the database, and retries whose RunAfter has come.
	PollInterval time.Duration
	// Logger; slog.Default() when nil.
	Logger *slog.Logger
}

// Queue is an imaged.Queue over an imaged.TaskStore.
type Queue struct {
	store imaged.TaskStore
	opts  Options
	log   *slog.Logger

	mu     sync.Mutex
	wake   chan struct{} // closed and replaced by signal: a broadcast to every idle consumer
	timers map[*time.Timer]struct{}
	closed bool
}

var _ imaged.Queue = (*Queue)(nil)

// New returns a queue over store. The store stays the caller's: Close does not close it.
func New(store imaged.TaskStore, opts Options) *Queue {
	if opts.PollInterval <= 0 {
		opts.PollInterval = DefaultPollInterval
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	return &Queue{
		store:  store,
		opts:   opts,
		log:    opts.Logger.With("queue", "db"),
		wake:   make(chan struct{}),
		timers: map[*time.Timer]struct{}{},
	}
}

// waiter returns the channel the next signal closes. A consumer takes it before it tries to
// claim, so a signal that arrives between a fruitless claim and the wait is not lost.
func (q *Queue) waiter() <-chan struct{} {
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.wake
}

// signal wakes every idle consumer of this process.
func (q *Queue) signal() {
	q.mu.Lock()
	defer q.mu.Unlock()
	close(q.wake)
	q.wake = make(chan struct{})
}

// Publish wakes this process's consumers for t, at once or after delay. The task row, created
// queued by the caller, is the message, so nothing is written. The row's RunAfter, not delay,
// is what holds a task back: a consumer polling in this or another process claims it as soon
// as RunAfter has passed, so a caller that delays a task must have stored that RunAfter (as
// TaskStore.RetryTask does). The wake-up fires at the later of delay and RunAfter.
func (q *Queue) Publish(ctx context.Context, t *imaged.Task, delay time.Duration) error {
	if t != nil {
		delay = max(delay, time.Until(t.RunAfter))
	}
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.closed {
		return imaged.Errorf(imaged.EUnavailable, "the queue is closed")
	}
	if delay <= 0 {
		close(q.wake)
		q.wake = make(chan struct{})
		return nil
	}
	var tm *time.Timer
	tm = time.AfterFunc(delay, func() {
		q.mu.Lock()
		delete(q.timers, tm)
		q.mu.Unlock()
		q.signal()
	})
	q.timers[tm] = struct{}{}
	return nil
}

// Consume claims tasks of opts.Types (every type when empty) and calls h for each, at most
// opts.Concurrency (default 1) at a time, each claim waiting for opts.Ready when it is set,
// until ctx is cancelled; then it stops claiming, waits for handlers in flight and
// returns nil.
//
// Handlers run on a context that carries ctx's values but is not cancelled with it: a task
// already claimed is allowed to finish and record its outcome during shutdown. Deadlines and
// the shutdown grace period belong to the caller (the worker), which must bound each handler
// itself; Consume waits for as long as handlers take.
//
// A handler that returns an error could not record the outcome; the task stays processing
// under its lease and the worker's lease sweeper requeues it when the lease runs out. opts.Lease defaults to
// DefaultLease.
func (q *Queue) Consume(ctx context.Context, opts imaged.ConsumeOptions, h imaged.Handler) error {
	opts, err := opts.Checked(h)
	if err != nil {
		return err
	}
	if opts.Lease <= 0 {
		opts.Lease = DefaultLease
	}
	log := q.log.With("worker_id", opts.WorkerID)
	handlerCtx := context.WithoutCancel(ctx)

	poll := time.NewTicker(q.opts.PollInterval)
	defer poll.Stop()
	slots := make(chan struct{}, opts.Concurrency)
	var inflight sync.WaitGroup
	defer inflight.Wait()

	for {
		// A free slot first, so a claimed task never waits for one under its lease.
		select {
		case slots <- struct{}{}:
		case <-ctx.Done():
			return nil
		}
		t := q.next(ctx, opts, poll.C, log)
		if t == nil {
			<-slots
			return nil
		}
		inflight.Add(1)
		go func() {
			defer inflight.Done()
			defer func() { <-slots }()
			q.handle(handlerCtx, log, h, t)
		}()
	}
}

// next claims a task, waiting for a wake-up, a poll tick or ctx's end while there is none, and
// for opts.Ready before each claim. It returns nil only when ctx is done.
func (q *Queue) next(ctx context.Context, opts imaged.ConsumeOptions, tick <-chan time.Time, log *slog.Logger) *imaged.Task {
	for {
		// A worker whose dependencies are down claims nothing until they are back.
		if opts.WaitReady(ctx) != nil {
			return nil
		}
		wake := q.waiter()
		t, err := q.claim(ctx, opts)
		if err != nil {
			log.ErrorContext(ctx, "claiming a task failed; retrying at the next poll", "error", err)
		} else if t != nil {
			return t
		}
		select {
		case <-wake:
		case <-tick:
		case <-ctx.Done():
			return nil
		}
	}
}

// claim runs one ClaimTask on a context shutdown does not cancel: a claim cut off after the
// database moved the row to processing would leave the task to wait out its lease.
func (q *Queue) claim(ctx context.Context, opts imaged.ConsumeOptions) (*imaged.Task, error) {
	cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), claimTimeout)
	defer cancel()
	return q.store.ClaimTask(cctx, "", opts.Types, opts.WorkerID, opts.Lease)
}

func (q *Queue) handle(ctx context.Context, log *slog.Logger, h imaged.Handler, t *imaged.Task) {
	d := &imaged.Delivery{
		TaskID:        t.ID,
		Type:          t.Type,
		CorrelationID: t.CorrelationID,
		Task:          t,
		Redelivered:   t.Attempts > 1,
	}
	if t.TraceParent != "" {
		// The row is the message: it carries the trace of the request that created it.
		d.Trace = map[string]string{"traceparent": t.TraceParent}
	}
	log = log.With("task_id", t.ID, "task_type", t.Type, "attempt", t.Attempts, "correlation_id", t.CorrelationID)
	if err := h(ctx, d); err != nil {
		log.ErrorContext(ctx, "task handler could not record an outcome; the task is left to the lease sweeper",
			"error", err)
	}
}

// Depth returns the number of queued tasks per task type, retries waiting for RunAfter
// included.
func (q *Queue) Depth(ctx context.Context) (map[string]int, error) {
	return q.store.CountQueued(ctx)
}

// Ping checks the database answers.
func (q *Queue) Ping(ctx context.Context) error {
	return q.store.Ping(ctx)
}

// Close stops pending delayed wake-ups; later Publish calls fail. Consumers stop through their
// contexts, and the store is not closed.
func (q *Queue) Close() error {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.closed = true
	for tm := range q.timers {
		tm.Stop()
	}
	clear(q.timers)
	return nil
}
