package worker

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"sync"
	"time"

	"github.com/cenkalti/backoff/v5"
	"github.com/sony/gobreaker/v2"

	"github.com/imaged/imaged"
)

// DefaultOutageDeadline is Config.OutageDeadline when not set.
const DefaultOutageDeadline = time.Hour

// Outage reports whether err says that a dependency (the database, storage, the broker, the
// cache) is out of reach, rather than that the task is at fault: an open circuit breaker, a
// refused, reset or timed-out connection, an unavailable database or blob store. Such an error
// puts the task back without spending one of its attempts. Errors of the task itself (bad
// input, a missing model, a pipeline that fails, an attempt that runs past its deadline, which
// the worker tells apart before asking) are not outages, nor is anything that is not known to
// be transient.
func Outage(err error) bool {
	if err == nil || Permanent(err) {
		return false
	}
	if errors.Is(err, gobreaker.ErrOpenState) || errors.Is(err, gobreaker.ErrTooManyRequests) {
		return true
	}
	return imaged.Transient(err)
}

// Ready returns nil at once while the worker takes tasks; after an outage it waits until the
// dependencies answer again (or ctx ends, with ctx's error). Its queue asks it before each
// task it hands out.
func (w *Worker) Ready(ctx context.Context) error { return w.gate.wait(ctx) }

// pastOutageDeadline reports whether task has waited for its dependencies as long as it may:
// Config.OutageDeadline from its creation.
func (w *Worker) pastOutageDeadline(task *imaged.Task) bool {
	return time.Since(task.CreatedAt) >= w.cfg.OutageDeadline
}

// deferDelay is how long a task put back by an outage waits before it is tried again: an
// eighth of its age, between BackoffBase and a minute, ±25 %. Each deferral makes the task
// older, so the waits grow geometrically over a long outage without the task keeping a count;
// and a task deferred early in an outage is back soon after it ends (the ready gate, not this
// wait, holds the workers back while the outage lasts).
func (w *Worker) deferDelay(task *imaged.Task) time.Duration {
	d := min(max(time.Since(task.CreatedAt)/8, w.cfg.BackoffBase), time.Minute)
	return time.Duration(float64(d) * (0.75 + rand.Float64()*0.5))
}

// deferTask puts a task whose attempt an outage cut short back in the queue without counting
// the attempt, or fails it for good once it is past its outage deadline.
func (w *Worker) deferTask(ctx, runCtx context.Context, task *imaged.Task, cause error, elapsed time.Duration) error {
	w.gate.trip(cause)
	if w.pastOutageDeadline(task) {
		f := &imaged.TaskFailure{Code: imaged.EUnavailable, Message: fmt.Sprintf(
			"given up: its dependencies were still unavailable %s after the task was created (the outage deadline); last error: %s",
			w.cfg.OutageDeadline, imaged.ErrorMessage(cause))}
		w.log.ErrorContext(ctx, "task failed: past its outage deadline", "task_id", task.ID, "error", cause.Error())
		return w.failForGood(ctx, runCtx, task, f, true, elapsed)
	}
	delay := w.deferDelay(task)
	f := &imaged.TaskFailure{Code: imaged.EUnavailable, Message: "waiting for a dependency to come back: " + imaged.ErrorMessage(cause)}
	_, err := w.record(ctx, runCtx, task, func(ctx context.Context) (*imaged.Task, error) {
		return w.store.DeferTask(ctx, task.ID, task.Attempts, time.Now().Add(delay), f)
	}, func(t *imaged.Task) bool { return t.Status == imaged.StatusQueued && t.Attempts == task.Attempts-1 })
	if imaged.IsCode(err, imaged.EConflict) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("put back task %s after an outage: %w", task.ID, err)
	}
	if w.metrics != nil {
		w.metrics.OutageDeferrals.WithLabelValues(task.Type).Inc()
	}
	w.log.WarnContext(ctx, "a dependency is unavailable; task put back without spending an attempt", "task_id", task.ID,
		"attempt", task.Attempts, "retry_in", delay.String(), "error", cause.Error())
	return requeue(ctx, w.queue, task, delay)
}

// record writes task's outcome (or its deferral) with write. While write fails for an outage
// (the database is away), it waits for the dependencies to come back and writes again, up to
// the task's outage deadline, so that the work an attempt did is not thrown away for an outage.
// ours tells whether the task as stored shows the write done: a write that failed may have
// been applied with its answer lost, and the next one then conflicts. It stops waiting when
// runCtx ends (a shutdown, after which the lease hands the task back, or a lost lease) and
// returns write's last answer.
func (w *Worker) record(ctx, runCtx context.Context, task *imaged.Task, write func(ctx context.Context) (*imaged.Task, error),
	ours func(*imaged.Task) bool) (*imaged.Task, error) {
	bo := &backoff.ExponentialBackOff{InitialInterval: 200 * time.Millisecond, RandomizationFactor: 0.5, Multiplier: 2,
		MaxInterval: 5 * time.Second}
	bo.Reset()
	failed := false
	for {
		t, err := write(ctx)
		if failed && imaged.IsCode(err, imaged.EConflict) {
			if cur, rerr := w.store.Task(ctx, imaged.AnyTenant, task.ID); rerr == nil && ours(cur) {
				return cur, nil
			}
		}
		if err == nil || !Outage(err) || w.pastOutageDeadline(task) {
			return t, err
		}
		if !failed {
			w.log.WarnContext(ctx, "recording the task waits for its dependencies to come back", "task_id", task.ID,
				"attempt", task.Attempts, "error", err.Error())
		}
		failed = true
		w.gate.trip(err)
		timer := time.NewTimer(bo.NextBackOff())
		select {
		case <-timer.C:
		case <-runCtx.Done():
			timer.Stop()
			return t, err
		}
		if w.gate.wait(runCtx) != nil {
			return t, err
		}
	}
}

// Ready-gate probing: the first wait, the longest, and the bound of one probe.
const (
	probeFirst   = 500 * time.Millisecond
	probeMax     = 5 * time.Second
	probeTimeout = 5 * time.Second
)

// gate holds back the taking of tasks while a dependency they need is down. The first outage a
// task meets closes it; it then probes the required health checks with exponential backoff
// and opens again when they all pass. The queues ask it before each task they hand out
// (ConsumeOptions.Ready), so a worker that cannot finish work claims none.
type gate struct {
	checks []imaged.HealthCheck
	log    *slog.Logger

	mu       sync.Mutex
	open     chan struct{} // closed while tasks may be taken
	shut     bool
	done     chan struct{} // closed when the worker stops: probing ends
	stopOnce sync.Once
}

func newGate(checks []imaged.HealthCheck, log *slog.Logger) *gate {
	g := &gate{checks: checks, log: log, open: make(chan struct{}), done: make(chan struct{})}
	close(g.open)
	return g
}

// wait returns nil at once while the gate is open; otherwise it waits until it opens or ctx
// ends (ctx's error).
func (g *gate) wait(ctx context.Context) error {
	g.mu.Lock()
	open := g.open
	g.mu.Unlock()
	select {
	case <-open:
		return nil
	default:
	}
	select {
	case <-open:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// trip closes the gate after cause, an outage, and starts probing; a closed gate stays so.
func (g *gate) trip(cause error) {
	g.mu.Lock()
	if g.shut {
		g.mu.Unlock()
		return
	}
	g.shut = true
	g.open = make(chan struct{})
	g.mu.Unlock()
	g.log.Warn("a dependency is unavailable: this worker takes no tasks until it is back", "error", cause.Error())
	go g.probe(time.Now())
}

// probe runs the required checks with backoff until they all pass, then opens the gate.
func (g *gate) probe(since time.Time) {
	bo := &backoff.ExponentialBackOff{InitialInterval: probeFirst, RandomizationFactor: 0.5, Multiplier: 2, MaxInterval: probeMax}
	bo.Reset()
	for {
		timer := time.NewTimer(bo.NextBackOff())
		select {
		case <-timer.C:
		case <-g.done:
			timer.Stop()
			return
		}
		if g.down() == "" {
			break
		}
	}
	g.mu.Lock()
	g.shut = false
	close(g.open)
	g.mu.Unlock()
	g.log.Info("dependencies are back: this worker takes tasks again", "paused_seconds", time.Since(since).Seconds())
}

// down returns the name of a required dependency that does not answer, "" when all do.
func (g *gate) down() string {
	for _, c := range g.checks {
		if !c.Required {
			continue
		}
		ctx, cancel := context.WithTimeout(context.Background(), probeTimeout)
		err := c.Check(ctx)
		cancel()
		if err != nil {
			return c.Name
		}
	}
	return ""
}

// stop ends probing; the gate stays as it is.
func (g *gate) stop() { g.stopOnce.Do(func() { close(g.done) }) }
