package worker

import (
	"context"
	"log/slog"
	"time"

	"github.com/imaged/imaged"
)

// DefaultSweepInterval is Config.SweepInterval when not set.
const DefaultSweepInterval = 10 * time.Second

// SweepExpiredLeases puts tasks whose lease ran out (their worker died) back to queued every
// interval until ctx is done, and hands each one to q again: a broker's messages of those tasks
// were taken by the dead worker, and the database queue's consumers are woken for them. It
// belongs to the worker side, not to the queues, so that a queue only carries messages and never
// needs the task store.
//
// After a sweep fails (the database is out of reach) the sweeper holds off for hold once the
// database answers again: the workers were cut off from it too, and their leases ran out
// while they could not renew them, not because they died. They renew within a lease of the
// database's return (a third of one, plus their breaker's recovery); give hold at least twice
// the lease, so that a live worker's task is not run twice.
func SweepExpiredLeases(ctx context.Context, every, hold time.Duration, store imaged.TaskStore, q imaged.Queue, log *slog.Logger) {
	var heldUntil time.Time
	imaged.Every(ctx, every, func() {
		if time.Now().Before(heldUntil) {
			return
		}
		ids, err := store.RequeueExpired(ctx, time.Now(), false)
		if err != nil {
			if ctx.Err() == nil {
				heldUntil = time.Now().Add(hold)
				log.Error("requeueing expired leases failed; sweeping again once the database has answered for a while",
					"error", err.Error(), "hold", hold.String())
			}
			return
		}
		if len(ids) == 0 {
			return
		}
		log.Warn("requeued tasks whose lease ran out", "count", len(ids), "task_ids", ids)
		for _, id := range ids {
			t, err := store.Task(ctx, imaged.AnyTenant, id)
			if err == nil {
				err = requeue(ctx, q, t, 0)
			}
			if err != nil {
				log.Error("publishing a requeued task failed", "task_id", id, "error", err.Error())
			}
		}
	})
}

// requeue makes t, already queued in the task store, available to workers again after delay.
// It is the one place the worker side hands a task back to the queue (a retry, a shutdown, a
// delivery that came early, a lease that ran out), so that writing the message in the same
// transaction as the task's new state (an outbox) replaces this function alone.
func requeue(ctx context.Context, q imaged.Queue, t *imaged.Task, delay time.Duration) error {
	return q.Publish(context.WithoutCancel(ctx), t, delay)
}
