package resilience

import (
	"context"
	"time"

	"github.com/imaged/imaged"
)

// StoreConfig configures Store.
type StoreConfig struct {
	// Breaker guards every call; defaults: name "database", 5 failures, 60 s.
	Breaker BreakerConfig
	// Retry applies to the calls that are safe to repeat (see Store).
	Retry RetryConfig
}

// DefaultStoreConfig returns the specification's defaults.
func DefaultStoreConfig() StoreConfig {
	return StoreConfig{Breaker: BreakerConfig{Name: "database", Failures: DefaultFailures, Recovery: DefaultRecovery},
		Retry: RetryConfig{}.withDefaults()}
}

// Store decorates a TaskStore with a circuit breaker around every call and retries where a
// repeated call cannot do harm. m may be nil.
//
// What is retried, and why:
//   - Reads (Image, Task, ListTasks, Batch, CountQueued, CachedOutput): always.
//   - PutCachedOutput: yes; it writes the whole entry, so a repeat sets the same row.
//   - DeleteImage: yes. An ENotFound after an earlier attempt failed transiently is taken as
//     that attempt's success (it may have deleted the row before its answer was lost).
//   - CancelTask, CompleteTask, FailTask, RetryTask, DeferTask: yes; they are conditional
//     updates, so a repeat cannot apply twice. When a repeat answers EConflict, the task is
//     read: if it shows exactly the state this call sets (cancelled; completed or failed at
//     this attempt; queued at this attempt, or at the one before for DeferTask), the earlier
//     attempt did it and the task is returned.
//   - CreateTasks: only when an idempotency key covers the whole call (the batch's key, or
//     the key of a single task without batch); a repeat then finds the stored record. If the
//     stored record carries the ids the earlier attempt wrote into the arguments, it is this
//     call's own write and existed is reported false, so the caller still enqueues it.
//     Without a key a repeat could store the tasks twice: not retried.
//   - CreateImage: not retried (a repeat after a lost answer conflicts with its own row).
//   - ClaimTask: not retried (a lost answer leaves a claimed task that another claim would
//     not return; the task comes back when its lease expires, and the queue polls again).
//   - RequeueExpired: yes; requeueing what is already queued changes nothing.
//   - ExtendLease: yes; setting the same lease twice is setting it once.
//   - Ping: through the breaker, not retried, so health reports an open breaker at once.
//   - Close: straight to the store.
func Store(next imaged.TaskStore, cfg StoreConfig, m *Metrics) imaged.TaskStore {
	cfg.Breaker = cfg.Breaker.withDefaults("database", DefaultFailures, DefaultRecovery)
	return &store{next: next, r: &retrier{b: NewBreaker(cfg.Breaker, m), cfg: cfg.Retry.withDefaults(), m: m}}
}

type store struct {
	next imaged.TaskStore
	r    *retrier
}

// Unwrap returns the decorated store.
func (s *store) Unwrap() imaged.TaskStore { return s.next }

// Breaker returns the breaker guarding the store.
func (s *store) Breaker() *Breaker { return s.r.b }

func (s *store) CreateImage(ctx context.Context, img *imaged.Image) error {
	return s.r.do(ctx, func(ctx context.Context) error { return s.next.CreateImage(ctx, img) })
}

func (s *store) Image(ctx context.Context, tenant, id string) (*imaged.Image, error) {
	return retry(ctx, s.r, "image", func(ctx context.Context) (*imaged.Image, error) {
		return s.next.Image(ctx, tenant, id)
	})
}

func (s *store) ListImages(ctx context.Context, f imaged.ImageFilter) ([]*imaged.Image, string, error) {
	return listPage(ctx, s.r, "list_images", func(ctx context.Context) ([]*imaged.Image, string, error) {
		return s.next.ListImages(ctx, f)
	})
}

// listPage reads one page of a list with retries: reading again is harmless.
func listPage[T any](ctx context.Context, r *retrier, op string, list func(ctx context.Context) ([]T, string, error)) ([]T, string, error) {
	type page struct {
		items []T
		next  string
	}
	p, err := retry(ctx, r, op, func(ctx context.Context) (page, error) {
		items, next, err := list(ctx)
		return page{items, next}, err
	})
	return p.items, p.next, err
}

func (s *store) DeleteImage(ctx context.Context, tenant, id string) error {
	failed := false
	_, err := retry(ctx, s.r, "delete_image", func(ctx context.Context) (struct{}, error) {
		err := s.next.DeleteImage(ctx, tenant, id)
		if failed && imaged.IsCode(err, imaged.ENotFound) {
			return struct{}{}, nil
		}
		failed = imaged.Transient(err)
		return struct{}{}, err
	})
	return err
}

func (s *store) CreateTasks(ctx context.Context, tasks []*imaged.Task, batch *imaged.Batch) (bool, error) {
	keyed := (batch != nil && batch.IdempotencyKey != "") ||
		(batch == nil && len(tasks) == 1 && tasks[0].IdempotencyKey != "")
	if !keyed {
		return once(ctx, s.r, func(ctx context.Context) (bool, error) {
			return s.next.CreateTasks(ctx, tasks, batch)
		})
	}
	var ids []string // the ids an attempt that failed transiently had written into the arguments
	return retry(ctx, s.r, "create_tasks", func(ctx context.Context) (bool, error) {
		existed, err := s.next.CreateTasks(ctx, tasks, batch)
		if err == nil && existed && ids != nil && sameIDs(ids, tasks, batch) {
			existed = false
		}
		if imaged.Transient(err) {
			ids = idsOf(tasks, batch)
		}
		return existed, err
	})
}

func idsOf(tasks []*imaged.Task, batch *imaged.Batch) []string {
	ids := make([]string, 0, len(tasks)+1)
	if batch != nil {
		ids = append(ids, batch.ID)
	}
	for _, t := range tasks {
		ids = append(ids, t.ID)
	}
	return ids
}

func sameIDs(ids []string, tasks []*imaged.Task, batch *imaged.Batch) bool {
	now := idsOf(tasks, batch)
	if len(now) != len(ids) {
		return false
	}
	for i := range ids {
		if ids[i] == "" || ids[i] != now[i] {
			return false
		}
	}
	return true
}

func (s *store) Task(ctx context.Context, tenant, id string) (*imaged.Task, error) {
	return retry(ctx, s.r, "task", func(ctx context.Context) (*imaged.Task, error) {
		return s.next.Task(ctx, tenant, id)
	})
}

func (s *store) ListTasks(ctx context.Context, f imaged.TaskFilter) ([]*imaged.Task, string, error) {
	return listPage(ctx, s.r, "list_tasks", func(ctx context.Context) ([]*imaged.Task, string, error) {
		return s.next.ListTasks(ctx, f)
	})
}

// conditional runs a conditional update with retries. When a repeat answers EConflict, ours
// reports whether the task as stored now is what the update sets; then the earlier attempt
// applied it and the task is returned.
func (s *store) conditional(ctx context.Context, op, tenant, id string, update func(ctx context.Context) (*imaged.Task, error),
	ours func(t *imaged.Task) bool) (*imaged.Task, error) {
	failed := false
	return retry(ctx, s.r, op, func(ctx context.Context) (*imaged.Task, error) {
		t, err := update(ctx)
		if failed && imaged.IsCode(err, imaged.EConflict) {
			if cur, rerr := s.next.Task(ctx, tenant, id); rerr == nil && ours(cur) {
				return cur, nil
			}
		}
		failed = imaged.Transient(err)
		return t, err
	})
}

func (s *store) CancelTask(ctx context.Context, tenant, id string) (*imaged.Task, error) {
	return s.conditional(ctx, "cancel_task", tenant, id, func(ctx context.Context) (*imaged.Task, error) {
		return s.next.CancelTask(ctx, tenant, id)
	}, func(t *imaged.Task) bool { return t.Status == imaged.StatusCancelled })
}

func (s *store) Batch(ctx context.Context, tenant, id string) (*imaged.Batch, []*imaged.Task, error) {
	type answer struct {
		b     *imaged.Batch
		tasks []*imaged.Task
	}
	a, err := retry(ctx, s.r, "batch", func(ctx context.Context) (answer, error) {
		b, tasks, err := s.next.Batch(ctx, tenant, id)
		return answer{b, tasks}, err
	})
	return a.b, a.tasks, err
}

func (s *store) ListBatches(ctx context.Context, f imaged.BatchFilter) ([]*imaged.Batch, string, error) {
	return listPage(ctx, s.r, "list_batches", func(ctx context.Context) ([]*imaged.Batch, string, error) {
		return s.next.ListBatches(ctx, f)
	})
}

func (s *store) ClaimTask(ctx context.Context, id string, types []string, workerID string, lease time.Duration) (*imaged.Task, error) {
	return once(ctx, s.r, func(ctx context.Context) (*imaged.Task, error) {
		return s.next.ClaimTask(ctx, id, types, workerID, lease)
	})
}

func (s *store) CompleteTask(ctx context.Context, id string, attempt int, res *imaged.TaskResult) (*imaged.Task, error) {
	return s.conditional(ctx, "complete_task", imaged.AnyTenant, id, func(ctx context.Context) (*imaged.Task, error) {
		return s.next.CompleteTask(ctx, id, attempt, res)
	}, func(t *imaged.Task) bool { return t.Status == imaged.StatusCompleted && t.Attempts == attempt })
}

func (s *store) FailTask(ctx context.Context, id string, attempt int, f *imaged.TaskFailure) (*imaged.Task, error) {
	return s.conditional(ctx, "fail_task", imaged.AnyTenant, id, func(ctx context.Context) (*imaged.Task, error) {
		return s.next.FailTask(ctx, id, attempt, f)
	}, func(t *imaged.Task) bool { return t.Status == imaged.StatusFailed && t.Attempts == attempt })
}

func (s *store) RetryTask(ctx context.Context, id string, attempt int, runAfter time.Time, f *imaged.TaskFailure) (*imaged.Task, error) {
	return s.conditional(ctx, "retry_task", imaged.AnyTenant, id, func(ctx context.Context) (*imaged.Task, error) {
		return s.next.RetryTask(ctx, id, attempt, runAfter, f)
	}, func(t *imaged.Task) bool { return t.Status == imaged.StatusQueued && t.Attempts == attempt })
}

func (s *store) DeferTask(ctx context.Context, id string, attempt int, runAfter time.Time, f *imaged.TaskFailure) (*imaged.Task, error) {
	return s.conditional(ctx, "defer_task", imaged.AnyTenant, id, func(ctx context.Context) (*imaged.Task, error) {
		return s.next.DeferTask(ctx, id, attempt, runAfter, f)
	}, func(t *imaged.Task) bool { return t.Status == imaged.StatusQueued && t.Attempts == attempt-1 })
}

func (s *store) ExtendLease(ctx context.Context, id string, attempt int, until time.Time) error {
	return s.r.retryErr(ctx, "extend_lease", func(ctx context.Context) error { return s.next.ExtendLease(ctx, id, attempt, until) })
}

func (s *store) RequeueExpired(ctx context.Context, now time.Time, all bool) ([]string, error) {
	return retry(ctx, s.r, "requeue_expired", func(ctx context.Context) ([]string, error) {
		return s.next.RequeueExpired(ctx, now, all)
	})
}

func (s *store) CountQueued(ctx context.Context) (map[string]int, error) {
	return retry(ctx, s.r, "count_queued", func(ctx context.Context) (map[string]int, error) {
		return s.next.CountQueued(ctx)
	})
}

func (s *store) Ping(ctx context.Context) error {
	return s.r.do(ctx, func(ctx context.Context) error { return s.next.Ping(ctx) })
}

func (s *store) Close() error { return s.next.Close() }

func (s *store) Tenant(ctx context.Context, id string) (*imaged.Tenant, error) {
	return retry(ctx, s.r, "tenant", func(ctx context.Context) (*imaged.Tenant, error) {
		return s.next.Tenant(ctx, id)
	})
}

// PutTenant sets the whole record, so repeating it after a transient failure is harmless.
func (s *store) PutTenant(ctx context.Context, t *imaged.Tenant) error {
	return s.r.retryErr(ctx, "put_tenant", func(ctx context.Context) error { return s.next.PutTenant(ctx, t) })
}

func (s *store) ListTenants(ctx context.Context) ([]*imaged.Tenant, error) {
	return retry(ctx, s.r, "list_tenants", func(ctx context.Context) ([]*imaged.Tenant, error) {
		return s.next.ListTenants(ctx)
	})
}

func (s *store) Usage(ctx context.Context, tenant string) (imaged.Usage, error) {
	return retry(ctx, s.r, "usage", func(ctx context.Context) (imaged.Usage, error) {
		return s.next.Usage(ctx, tenant)
	})
}

func (s *store) CachedOutput(ctx context.Context, tenant, key string) (*imaged.CachedOutput, error) {
	return retry(ctx, s.r, "cached_output", func(ctx context.Context) (*imaged.CachedOutput, error) {
		return s.next.CachedOutput(ctx, tenant, key)
	})
}

// PutCachedOutput writes the whole entry, so repeating it after a transient failure is harmless.
func (s *store) PutCachedOutput(ctx context.Context, e *imaged.CachedOutput) error {
	return s.r.retryErr(ctx, "put_cached_output", func(ctx context.Context) error { return s.next.PutCachedOutput(ctx, e) })
}
