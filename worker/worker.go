// Package worker runs queued tasks: consume → load the original → run the pipeline → store the
// result → record the outcome → publish events. It decides retries (errors of the task, with
// exponential backoff and jitter, up to the task's max attempts), deadlines, and what an
// outage of a dependency does: the task goes back uncounted and the worker takes no more work
// until the dependency is back (outage.go).
package worker

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"runtime/debug"
	"sync"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"

	"github.com/imaged/imaged"
	"github.com/imaged/imaged/prom"
)

// Config tunes a worker pool.
type Config struct {
	ID          string        // worker id recorded on tasks; random when empty
	Concurrency int           // tasks in flight; default 1
	Types       []string      // task types to run; empty = all
	Deadline    time.Duration // per task attempt; default 5 min
	Grace       time.Duration // on shutdown, how long running tasks may go on; default 30 s
	// Lease is how long a claimed task stays this worker's without word from it; a running
	// task's lease is renewed every Lease/3, so a worker that dies (kill -9, a lost node) gives
	// its tasks back within about Lease plus the sweep interval. Default 60 s.
	Lease time.Duration
	// SweepInterval is how often Run puts the tasks whose lease ran out back in the queue;
	// DefaultSweepInterval when zero.
	SweepInterval time.Duration
	BackoffBase   time.Duration // retry n waits BackoffBase·2^n ± jitter; default 1 s
	BackoffMax    time.Duration // default 5 min
	URLExpiry     time.Duration // for result URLs; default 1 h
	// OutageDeadline is how long after its creation a task may keep waiting for unavailable
	// dependencies (put back without spending attempts) before it fails for good;
	// DefaultOutageDeadline when zero.
	OutageDeadline time.Duration
	// Checks are the process's dependencies; after an outage the worker takes no task until
	// the required ones all pass.
	Checks []imaged.HealthCheck
}

// DefaultLease is Config.Lease when not set.
const DefaultLease = 60 * time.Second

// Worker consumes tasks from a Queue.
type Worker struct {
	cfg       Config
	store     imaged.TaskStore
	queue     imaged.Queue
	blobs     imaged.BlobStore
	processor imaged.Processor
	events    imaged.Events
	metrics   *prom.Metrics
	log       *slog.Logger
	gate      *gate

	mu      sync.Mutex
	running map[string]context.CancelFunc
}

// New returns a worker. metrics and events may be nil.
func New(cfg Config, store imaged.TaskStore, queue imaged.Queue, blobs imaged.BlobStore,
	processor imaged.Processor, events imaged.Events, metrics *prom.Metrics, log *slog.Logger) *Worker {
	if cfg.ID == "" {
		cfg.ID = "worker-" + imaged.NewID()[:8]
	}
	cfg = imaged.WithDefaults(cfg, Config{
		Concurrency:    1,
		Deadline:       5 * time.Minute,
		Grace:          30 * time.Second,
		BackoffBase:    time.Second,
		Lease:          DefaultLease,
		SweepInterval:  DefaultSweepInterval,
		BackoffMax:     5 * time.Minute,
		URLExpiry:      time.Hour,
		OutageDeadline: DefaultOutageDeadline,
	})
	if log == nil {
		log = slog.Default()
	}
	return &Worker{cfg: cfg, store: store, queue: queue, blobs: blobs, processor: processor,
		events: events, metrics: metrics, log: log, running: map[string]context.CancelFunc{},
		gate: newGate(cfg.Checks, log.With("worker_id", cfg.ID))}
}

// ID returns the worker id.
func (w *Worker) ID() string { return w.cfg.ID }

// Run consumes until ctx is cancelled, and meanwhile sweeps the tasks whose lease ran out back
// into the queue. While a dependency is down (a task met its outage) no task is taken. Running
// tasks then get the grace period to finish; what is still running after it is cancelled and
// put back in the queue. Run returns when every task has been recorded.
func (w *Worker) Run(ctx context.Context) error {
	stop := context.AfterFunc(ctx, func() { time.AfterFunc(w.cfg.Grace, w.cancelRunning) })
	defer stop()
	defer w.gate.stop()
	sweepDone := make(chan struct{})
	go func() {
		defer close(sweepDone)
		SweepExpiredLeases(ctx, w.cfg.SweepInterval, 2*w.cfg.Lease, w.store, w.queue, w.log.With("worker_id", w.cfg.ID))
	}()
	defer func() { <-sweepDone }()
	err := w.queue.Consume(ctx, imaged.ConsumeOptions{
		WorkerID: w.cfg.ID, Types: w.cfg.Types, Concurrency: w.cfg.Concurrency, Lease: w.cfg.Lease, Ready: w.Ready,
	}, w.Handle)
	if errors.Is(err, context.Canceled) {
		return nil
	}
	return err
}

func (w *Worker) cancelRunning() {
	w.mu.Lock()
	defer w.mu.Unlock()
	for _, cancel := range w.running {
		cancel()
	}
}

// errShutdown marks an attempt interrupted because the process is stopping.
var errShutdown = errors.New("worker shutting down")

// errLeaseLost marks an attempt stopped because its task is no longer this worker's: its lease
// ran out (the database was out of reach for longer than the lease) and the task was queued
// again or finished elsewhere.
var errLeaseLost = errors.New("the task's lease was lost")

// heartbeat renews the lease of task's attempt every Lease/3 until the returned function is
// called. When the store answers that the attempt no longer holds the task, it stops the run
// through cancel: another attempt owns the task now, and this one could only lose the race to
// record an outcome.
func (w *Worker) heartbeat(ctx context.Context, task *imaged.Task, cancel context.CancelCauseFunc) (stop func()) {
	// The renewals do not end with ctx, only when stop is called or the lease is lost.
	renewing, end := context.WithCancel(context.WithoutCancel(ctx))
	stopped := make(chan struct{})
	go func() {
		defer close(stopped)
		imaged.Every(renewing, w.cfg.Lease/3, func() {
			hctx, hcancel := context.WithTimeout(context.WithoutCancel(ctx), w.cfg.Lease/3)
			err := w.store.ExtendLease(hctx, task.ID, task.Attempts, time.Now().Add(w.cfg.Lease))
			hcancel()
			switch {
			case err == nil:
			case imaged.IsCode(err, imaged.EConflict), imaged.IsCode(err, imaged.ENotFound):
				w.log.WarnContext(ctx, "the task's lease was lost; stopping this attempt", "task_id", task.ID,
					"attempt", task.Attempts, "error", err.Error())
				cancel(errLeaseLost)
				end()
			default:
				w.log.WarnContext(ctx, "renewing the task's lease failed; trying again", "task_id", task.ID,
					"error", err.Error())
			}
		})
	}()
	return func() {
		end()
		<-stopped
	}
}

// Handle runs one delivery to its recorded outcome. It returns an error only when the outcome
// could not be recorded, so that the queue delivers the task again. A panic in the attempt is
// such an error too: the task comes back rather than vanishing with a crashed goroutine, and
// the queues need no recovery of their own.
func (w *Worker) Handle(ctx context.Context, d *imaged.Delivery) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("task handler panicked: %v\n%s", r, debug.Stack())
		}
	}()
	ctx = imaged.WithWorkerID(ctx, w.cfg.ID)
	if d.CorrelationID != "" {
		ctx = imaged.WithCorrelationID(ctx, d.CorrelationID)
	}
	task := d.Task
	if task == nil {
		t, err := w.store.ClaimTask(ctx, d.TaskID, nil, w.cfg.ID, w.cfg.Lease)
		if err != nil {
			if Outage(err) {
				w.gate.trip(err) // the delivery comes again once the database is back
			}
			return fmt.Errorf("claim task %s: %w", d.TaskID, err)
		}
		if t == nil {
			// Already terminal, cancelled, running elsewhere or not yet due: a duplicate
			// delivery. The row is the truth; drop the message.
			if err := w.handBackEarly(ctx, d.TaskID); err != nil {
				return err
			}
			w.log.InfoContext(ctx, "delivery dropped: task not claimable", "task_id", d.TaskID)
			return nil
		}
		task = t
	}
	ctx = imaged.WithTenant(imaged.WithCorrelationID(ctx, task.CorrelationID), task.Tenant)
	trace.SpanFromContext(ctx).SetAttributes(attribute.Int("imaged.attempt", task.Attempts),
		attribute.String("imaged.image_id", task.ImageID), attribute.String("imaged.correlation_id", task.CorrelationID))
	if task.MaxAttempts > 0 && task.Attempts > task.MaxAttempts {
		// Every earlier attempt ended with its worker gone (crash, kill, lost lease): a task
		// that takes its worker down must not loop forever.
		return w.giveUp(ctx, task)
	}

	runCtx, cancel := context.WithCancelCause(context.WithoutCancel(ctx))
	w.mu.Lock()
	w.running[task.ID] = func() { cancel(errShutdown) }
	w.mu.Unlock()
	stopHeartbeat := w.heartbeat(ctx, task, cancel)
	defer func() {
		stopHeartbeat()
		w.mu.Lock()
		delete(w.running, task.ID)
		w.mu.Unlock()
		cancel(nil)
	}()
	if w.metrics != nil {
		w.metrics.WorkersBusy.Inc()
		defer w.metrics.WorkersBusy.Dec()
	}

	w.publish(ctx, imaged.Event{Type: imaged.EventTaskStarted, TaskID: task.ID, BatchID: task.BatchID,
		ImageID: task.ImageID, Status: imaged.StatusProcessing, Attempt: task.Attempts})
	w.log.InfoContext(ctx, "task started", "task_id", task.ID, "type", task.Type, "attempt", task.Attempts)

	start := time.Now()
	deadlineCtx, cancelDeadline := context.WithTimeout(runCtx, w.cfg.Deadline)
	res, err := w.run(deadlineCtx, task)
	// The attempt's own deadline, not a dependency's timeout, ended it: the task's fault.
	overran := errors.Is(deadlineCtx.Err(), context.DeadlineExceeded) && runCtx.Err() == nil
	cancelDeadline()
	elapsed := time.Since(start)
	if w.metrics != nil {
		w.metrics.ProcessingDuration.WithLabelValues(task.Type).Observe(elapsed.Seconds())
	}
	if err == nil {
		res.ProcessingSeconds = elapsed.Seconds()
		return w.complete(ctx, runCtx, task, res)
	}
	return w.fail(ctx, runCtx, task, err, overran, elapsed)
}

// run loads the original, runs the pipeline and stores the result image.
func (w *Worker) run(ctx context.Context, task *imaged.Task) (*imaged.TaskResult, error) {
	// Everything the pipeline reads (a watermark's overlay) is read within the task's tenant.
	ctx = imaged.WithTenant(ctx, task.Tenant)
	_, src, err := imaged.ReadImage(ctx, w.store, w.blobs, task.Tenant, task.ImageID, 0)
	if err != nil {
		return nil, err
	}
	out, err := w.processor.Process(ctx, src, task.Ops, imaged.ProcessOptions{})
	if err != nil {
		return nil, err
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	return imaged.SaveResult(ctx, w.blobs, task.ID, task.CreatedAt, out, w.cfg.URLExpiry)
}

func (w *Worker) complete(ctx, runCtx context.Context, task *imaged.Task, res *imaged.TaskResult) error {
	done, err := w.record(ctx, runCtx, task, func(ctx context.Context) (*imaged.Task, error) {
		return w.store.CompleteTask(ctx, task.ID, task.Attempts, res)
	}, func(t *imaged.Task) bool { return t.Status == imaged.StatusCompleted && t.Attempts == task.Attempts })
	if imaged.IsCode(err, imaged.EConflict) {
		w.log.WarnContext(ctx, "task finished elsewhere; result of this attempt discarded", "task_id", task.ID, "attempt", task.Attempts)
		return nil
	}
	if err != nil {
		return fmt.Errorf("record completion of task %s: %w", task.ID, err)
	}
	if w.metrics != nil {
		w.metrics.ImagesProcessed.WithLabelValues(task.Type, "success").Inc()
		w.metrics.TasksFinished.WithLabelValues(task.Type, imaged.StatusCompleted, w.metrics.Tenant(task.Tenant)).Inc()
	}
	w.log.InfoContext(ctx, "task completed", "task_id", task.ID, "seconds", res.ProcessingSeconds)
	w.publish(ctx, imaged.Event{Type: imaged.EventTaskCompleted, TaskID: done.ID, BatchID: done.BatchID,
		ImageID: done.ImageID, Status: done.Status, Result: done.Result, ProcessingSeconds: res.ProcessingSeconds,
		Attempt: done.Attempts})
	w.batchFinished(ctx, done)
	return nil
}

// Permanent reports whether err cannot go away by trying again: the input or the pipeline is
// at fault.
func Permanent(err error) bool {
	switch imaged.ErrorCode(err) {
	case imaged.EInvalid, imaged.ENotFound, imaged.ETooLarge, imaged.EUnsupported, imaged.EPermissionDenied, imaged.ENotInstalled:
		return true
	}
	return false
}

// fail decides what becomes of a task whose attempt returned err: put back uncounted when a
// shutdown or a dependency's outage cut it short (deferTask), retried after a backoff when the
// task itself failed transiently and has attempts left, failed for good otherwise.
func (w *Worker) fail(ctx, runCtx context.Context, task *imaged.Task, err error, overran bool, elapsed time.Duration) error {
	cause := context.Cause(runCtx)
	if errors.Is(cause, errLeaseLost) {
		// Another attempt holds the task; its outcome is the task's.
		return nil
	}
	if errors.Is(cause, errShutdown) {
		// Not the task's fault: put it back at once, uncounted, without a retry's backoff.
		f := &imaged.TaskFailure{Code: imaged.EUnavailable, Message: "interrupted by a worker shutdown; queued again"}
		if _, rerr := w.store.DeferTask(ctx, task.ID, task.Attempts, time.Now(), f); rerr != nil && !imaged.IsCode(rerr, imaged.EConflict) {
			return fmt.Errorf("requeue task %s on shutdown: %w", task.ID, rerr)
		}
		w.log.WarnContext(ctx, "task requeued on shutdown", "task_id", task.ID)
		return requeue(ctx, w.queue, task, 0)
	}
	if !overran && Outage(err) {
		return w.deferTask(ctx, runCtx, task, err, elapsed)
	}
	f := &imaged.TaskFailure{Code: imaged.ErrorCode(err), Message: imaged.ErrorMessage(err)}
	if overran {
		f = &imaged.TaskFailure{Code: imaged.EUnavailable, Message: fmt.Sprintf("the task ran past its deadline of %s", w.cfg.Deadline)}
	}
	w.log.WarnContext(ctx, "task attempt failed", "task_id", task.ID, "attempt", task.Attempts, "error", err.Error())
	span := trace.SpanFromContext(ctx)
	span.RecordError(err, trace.WithAttributes(attribute.String("imaged.error_code", f.Code)))
	span.SetStatus(codes.Error, f.Message)
	if !Permanent(err) && task.Attempts < task.MaxAttempts {
		delay := w.backoff(task.Attempts)
		_, rerr := w.record(ctx, runCtx, task, func(ctx context.Context) (*imaged.Task, error) {
			return w.store.RetryTask(ctx, task.ID, task.Attempts, time.Now().Add(delay), f)
		}, func(t *imaged.Task) bool { return t.Status == imaged.StatusQueued && t.Attempts == task.Attempts })
		if rerr != nil {
			if imaged.IsCode(rerr, imaged.EConflict) {
				return nil
			}
			return fmt.Errorf("record retry of task %s: %w", task.ID, rerr)
		}
		if w.metrics != nil {
			w.metrics.TaskRetries.WithLabelValues(task.Type, w.metrics.Tenant(task.Tenant)).Inc()
		}
		return requeue(ctx, w.queue, task, delay)
	}
	return w.failForGood(ctx, runCtx, task, f, true, elapsed)
}

// failForGood records that task failed with f and will not be tried again, and tells whoever
// waits for it. processed says whether an attempt ran (for elapsed) and so counts as an image
// processed; a task given up had none. A conflict means another attempt recorded the outcome,
// which stands.
func (w *Worker) failForGood(ctx, runCtx context.Context, task *imaged.Task, f *imaged.TaskFailure, processed bool, elapsed time.Duration) error {
	done, err := w.record(ctx, runCtx, task, func(ctx context.Context) (*imaged.Task, error) {
		return w.store.FailTask(ctx, task.ID, task.Attempts, f)
	}, func(t *imaged.Task) bool { return t.Status == imaged.StatusFailed && t.Attempts == task.Attempts })
	if imaged.IsCode(err, imaged.EConflict) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("record failure of task %s: %w", task.ID, err)
	}
	if w.metrics != nil {
		if processed {
			w.metrics.ImagesProcessed.WithLabelValues(task.Type, "failure").Inc()
		}
		w.metrics.TasksFinished.WithLabelValues(task.Type, imaged.StatusFailed, w.metrics.Tenant(task.Tenant)).Inc()
	}
	w.publish(ctx, imaged.Event{Type: imaged.EventTaskFailed, TaskID: done.ID, BatchID: done.BatchID,
		ImageID: done.ImageID, Status: done.Status, Error: f, ProcessingSeconds: elapsed.Seconds(), Attempt: done.Attempts})
	w.deadLetter(ctx, done, f)
	w.batchFinished(ctx, done)
	return nil
}

// giveUp fails a task whose attempts all ended without an outcome.
func (w *Worker) giveUp(ctx context.Context, task *imaged.Task) error {
	f := &imaged.TaskFailure{Code: imaged.EInternal,
		Message: fmt.Sprintf("gave up after %d attempts: each ended without an outcome (worker lost)", task.Attempts-1)}
	// One try: no attempt runs, so nothing would end a wait for the database.
	once, cancel := context.WithCancel(ctx)
	cancel()
	return w.failForGood(ctx, once, task, f, false, 0)
}

// backoff returns BackoffBase·2^(attempt-1), capped, with ±25 % jitter so retries of many tasks
// that failed together do not arrive together.
func (w *Worker) backoff(attempt int) time.Duration {
	return imaged.Backoff(w.cfg.BackoffBase, w.cfg.BackoffMax, attempt)
}

func (w *Worker) publish(ctx context.Context, e imaged.Event) {
	if w.events == nil {
		return
	}
	e.WorkerID = w.cfg.ID
	e.CorrelationID = imaged.CorrelationID(ctx)
	if err := w.events.Publish(context.WithoutCancel(ctx), e); err != nil {
		w.log.WarnContext(ctx, "event publish failed", "type", e.Type, "error", err.Error())
	}
}

// DeadLetterer is a queue with a dead-letter queue: the final message of a task that failed
// for good goes there, with the failure, for operators to inspect.
type DeadLetterer interface {
	DeadLetter(ctx context.Context, t *imaged.Task, f *imaged.TaskFailure) error
}

func (w *Worker) deadLetter(ctx context.Context, t *imaged.Task, f *imaged.TaskFailure) {
	dl, ok := w.queue.(DeadLetterer)
	if !ok {
		return
	}
	if err := dl.DeadLetter(context.WithoutCancel(ctx), t, f); err != nil {
		w.log.WarnContext(ctx, "dead-lettering a failed task failed", "task_id", t.ID, "error", err.Error())
	}
}

// handBackEarly publishes again a delivery of a task that is queued but not yet due (a retry's
// message that came back before its time, or a redelivery after the retry was recorded), so
// that the task is not left queued without a message. Brokers only; the database queue claims
// rows itself and never gets here.
func (w *Worker) handBackEarly(ctx context.Context, id string) error {
	cur, err := w.store.Task(ctx, imaged.AnyTenant, id)
	if err != nil || cur.Status != imaged.StatusQueued {
		return nil
	}
	delay := max(time.Until(cur.RunAfter), 100*time.Millisecond)
	if err := requeue(ctx, w.queue, cur, delay); err != nil {
		return fmt.Errorf("hand back task %s that is not yet due: %w", id, err)
	}
	w.log.InfoContext(ctx, "delivery came before the task was due; published again", "task_id", id, "delay", delay.String())
	return nil
}

// batchFinished publishes batch.completed when t was the last of its batch to finish. Two
// workers finishing a batch's last tasks at once may both see it finished: the event then goes
// out twice with the same batch, and webhook deliveries share one delivery id.
func (w *Worker) batchFinished(ctx context.Context, t *imaged.Task) {
	if t.BatchID == "" || w.events == nil {
		return
	}
	b, _, err := w.store.Batch(ctx, imaged.AnyTenant, t.BatchID)
	if err != nil {
		w.log.WarnContext(ctx, "reading the batch of a finished task failed", "batch_id", t.BatchID, "error", err.Error())
		return
	}
	if !imaged.IsTerminal(b.Status) {
		return
	}
	data, _ := json.Marshal(map[string]any{"total": b.Total, "counts": b.Counts})
	w.publish(ctx, imaged.Event{Type: imaged.EventBatchCompleted, BatchID: b.ID, Status: b.Status, Data: data})
}
