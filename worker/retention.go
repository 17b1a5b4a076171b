package worker

import (
	"context"
	"log/slog"
	"time"

	"github.com/imaged/imaged"
	"github.com/imaged/imaged/prom"
)

// Defaults of RetentionConfig.
const (
	DefaultRetentionTasks    = 30 * 24 * time.Hour
	DefaultRetentionResults  = 7 * 24 * time.Hour
	DefaultRetentionOrphans  = 24 * time.Hour
	DefaultRetentionInterval = time.Minute
	DefaultRetentionBatch    = 100
	DefaultRetentionSteps    = 20
	DefaultRetentionLease    = 2 * time.Minute
)

// retentionLease is the name of the lease the sweepers of every process share.
const retentionLease = "retention"

// releaseTimeout bounds giving the lease back at the end of a sweep.
const releaseTimeout = 5 * time.Second

// RetentionConfig says how long rows and blobs are kept (zero: forever) and how the sweep goes.
type RetentionConfig struct {
	Tasks   time.Duration // terminal tasks, from when they finished
	Results time.Duration // result images (synchronous outputs and the processed-output cache too), from when they were made
	Images  time.Duration // uploaded images, with the results made from them
	// Orphans is how old a blob that no row references must be before it is deleted: longer
	// than any upload or task takes between storing a blob and recording the row.
	Orphans  time.Duration
	Interval time.Duration // between sweeps; DefaultRetentionInterval when zero
	Batch    int           // rows or blobs per step; DefaultRetentionBatch when zero
	Steps    int           // most batches of each kind in one sweep; DefaultRetentionSteps when zero
	Lease    time.Duration // how long a sweep holds the lease between renewals; DefaultRetentionLease when zero
	Holder   string        // the lease holder's name; random when empty
	Now      func() time.Time
}

// RetentionStats is what one sweep did.
type RetentionStats struct {
	ResultsExpired, TasksDeleted, BatchesDeleted, ImagesDeleted int
	CachedOutputsExpired                                        int            // processed-output cache entries
	BlobsDeleted                                                map[string]int // by kind
	Skipped                                                     bool           // another process held the lease
}

// Retention deletes what is past its age, in small batches, under a lease in the task store so
// that one process at a time sweeps; the rows themselves are taken by conditional updates and
// deletes, and the blobs they referenced through the store's trash, so even two sweepers at
// once delete each object once.
type Retention struct {
	cfg     RetentionConfig
	store   imaged.RetentionStore
	blobs   imaged.BlobStore
	metrics *prom.Metrics
	log     *slog.Logger

	// orphanAfter is where the orphan sweep goes on from: a pass over every blob takes as
	// many sweeps as it needs.
	orphanPrefix int
	orphanAfter  string
}

// NewRetention returns a sweeper. metrics may be nil.
func NewRetention(cfg RetentionConfig, store imaged.RetentionStore, blobs imaged.BlobStore, metrics *prom.Metrics, log *slog.Logger) *Retention {
	cfg = imaged.WithDefaults(cfg, RetentionConfig{Interval: DefaultRetentionInterval, Batch: DefaultRetentionBatch,
		Steps: DefaultRetentionSteps, Lease: DefaultRetentionLease, Holder: "retention-" + imaged.NewID()[:8]})
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if log == nil {
		log = slog.Default()
	}
	return &Retention{cfg: cfg, store: store, blobs: blobs, metrics: metrics, log: log}
}

// Run sweeps every Interval until ctx is done.
func (r *Retention) Run(ctx context.Context) {
	imaged.Every(ctx, r.cfg.Interval, func() { _, _ = r.Sweep(ctx) })
}

// Sweep runs one sweep, when this process gets the lease: results, images and tasks past their
// age, then the trash, then a part of the orphan pass. An error stops the sweep; the next one
// goes on where it stopped.
func (r *Retention) Sweep(ctx context.Context) (RetentionStats, error) {
	st := RetentionStats{BlobsDeleted: map[string]int{}}
	ok, err := r.store.AcquireLease(ctx, retentionLease, r.cfg.Holder, r.cfg.Lease)
	if err != nil {
		return st, r.fail(ctx, "taking the retention lease failed", err)
	}
	if !ok {
		st.Skipped = true
		return st, nil
	}
	defer func() {
		// Bounded, so that a shutdown with the database gone is not held up by it; an
		// unreleased lease runs out by itself.
		rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), releaseTimeout)
		defer cancel()
		if err := r.store.ReleaseLease(rctx, retentionLease, r.cfg.Holder); err != nil {
			r.log.Warn("releasing the retention lease failed", "error", err.Error())
		}
	}()
	now := r.cfg.Now()
	err = r.sweep(ctx, now, &st)
	if n := st.ResultsExpired + st.CachedOutputsExpired + st.TasksDeleted + st.BatchesDeleted + st.ImagesDeleted + len(st.BlobsDeleted); n > 0 {
		r.log.Info("retention sweep", "results_expired", st.ResultsExpired, "cached_outputs_expired", st.CachedOutputsExpired,
			"tasks_deleted", st.TasksDeleted, "batches_deleted", st.BatchesDeleted, "images_deleted", st.ImagesDeleted,
			"blobs_deleted", st.BlobsDeleted)
	}
	if err != nil {
		return st, r.fail(ctx, "the retention sweep failed", err)
	}
	return st, nil
}

func (r *Retention) sweep(ctx context.Context, now time.Time, st *RetentionStats) error {
	if r.cfg.Results > 0 {
		err := r.steps(ctx, func() (int, error) {
			n, err := r.store.ExpireResults(ctx, now.Add(-r.cfg.Results), now, r.cfg.Batch)
			st.ResultsExpired += n
			r.count(func(m *prom.Metrics) {
				m.RetentionResultsExpired.WithLabelValues(imaged.ResultExpiredAge).Add(float64(n))
			})
			return n, err
		})
		if err != nil {
			return err
		}
		// The processed-output cache's entries age as results do.
		err = r.steps(ctx, func() (int, error) {
			n, err := r.store.ExpireCachedOutputs(ctx, now.Add(-r.cfg.Results), r.cfg.Batch)
			st.CachedOutputsExpired += n
			r.count(func(m *prom.Metrics) { m.RetentionRowsDeleted.WithLabelValues("cached_output").Add(float64(n)) })
			return n, err
		})
		if err != nil {
			return err
		}
	}
	if r.cfg.Images > 0 {
		err := r.steps(ctx, func() (int, error) {
			n, err := r.store.DeleteImages(ctx, now.Add(-r.cfg.Images), now, r.cfg.Batch)
			st.ImagesDeleted += n
			r.count(func(m *prom.Metrics) { m.RetentionRowsDeleted.WithLabelValues("image").Add(float64(n)) })
			return n, err
		})
		if err != nil {
			return err
		}
	}
	if r.cfg.Tasks > 0 {
		err := r.steps(ctx, func() (int, error) {
			tasks, batches, err := r.store.DeleteTasks(ctx, now.Add(-r.cfg.Tasks), r.cfg.Batch)
			st.TasksDeleted += tasks
			st.BatchesDeleted += batches
			r.count(func(m *prom.Metrics) {
				m.RetentionRowsDeleted.WithLabelValues("task").Add(float64(tasks))
				m.RetentionRowsDeleted.WithLabelValues("batch").Add(float64(batches))
			})
			return max(tasks, batches), err
		})
		if err != nil {
			return err
		}
	}
	if err := r.steps(ctx, func() (int, error) { return r.emptyTrash(ctx, st) }); err != nil {
		return err
	}
	if r.cfg.Orphans > 0 || r.cfg.Results > 0 { // synchronous outputs age as results
		return r.steps(ctx, func() (int, error) { return r.sweepOrphans(ctx, now, st) })
	}
	return nil
}

// steps runs step, one batch at a time, until a batch comes back short or Steps batches ran,
// renewing the lease before each: a sweep that lost its lease stops.
func (r *Retention) steps(ctx context.Context, step func() (int, error)) error {
	for range r.cfg.Steps {
		ok, err := r.store.AcquireLease(ctx, retentionLease, r.cfg.Holder, r.cfg.Lease)
		if err != nil {
			return err
		}
		if !ok {
			return imaged.Errorf(imaged.EConflict, "the retention lease was lost to another process")
		}
		n, err := step()
		if err != nil {
			return err
		}
		if n < r.cfg.Batch {
			return nil
		}
	}
	return nil
}

// emptyTrash deletes one batch of the blobs the store trashed. A blob whose deletion fails is
// out of the trash and referenced by no row: the orphan sweep deletes it later.
func (r *Retention) emptyTrash(ctx context.Context, st *RetentionStats) (int, error) {
	blobs, err := r.store.TakeTrash(ctx, r.cfg.Batch)
	if err != nil {
		return 0, err
	}
	for i, b := range blobs {
		if err := r.blobs.Delete(ctx, b.Key); err != nil {
			r.log.Warn("deleting blobs of expired rows failed; the orphan sweep will delete them", "keys", len(blobs)-i, "error", err.Error())
			return len(blobs), err
		}
		r.deleted(st, b.Kind)
	}
	return len(blobs), nil
}

// sweepOrphans looks at the next page of blobs and deletes those no row references that are
// older than Orphans (synchronous outputs: older than Results); an age of zero keeps them. It returns the page's size, so that a short page ends the step.
func (r *Retention) sweepOrphans(ctx context.Context, now time.Time, st *RetentionStats) (int, error) {
	prefix := imaged.BlobPrefixes[r.orphanPrefix]
	page, err := r.blobs.List(ctx, prefix, r.orphanAfter, r.cfg.Batch)
	if err != nil {
		return 0, err
	}
	if len(page) < r.cfg.Batch {
		r.orphanPrefix, r.orphanAfter = (r.orphanPrefix+1)%len(imaged.BlobPrefixes), ""
	} else {
		r.orphanAfter = page[len(page)-1].Key
	}
	var old []string
	for _, b := range page {
		age := r.cfg.Orphans
		if imaged.IsSyncResultKey(b.Key) {
			age = r.cfg.Results
		}
		if age <= 0 {
			continue
		}
		cutoff := now.Add(-age)
		if b.ModTime.Before(cutoff) {
			old = append(old, b.Key)
		}
	}
	refs, err := r.store.Referenced(ctx, old)
	if err != nil {
		return 0, err
	}
	for _, key := range old {
		if refs[key] {
			continue
		}
		if err := r.blobs.Delete(ctx, key); err != nil {
			return 0, err
		}
		kind := imaged.BlobOrphan
		if imaged.IsSyncResultKey(key) {
			kind = imaged.BlobResult
		}
		r.deleted(st, kind)
	}
	if r.orphanAfter == "" {
		return 0, nil // the end of a prefix ends the step: the next sweep goes on with the next
	}
	return len(page), nil
}

func (r *Retention) deleted(st *RetentionStats, kind string) {
	st.BlobsDeleted[kind]++
	r.count(func(m *prom.Metrics) { m.RetentionBlobsDeleted.WithLabelValues(kind).Inc() })
}

func (r *Retention) count(fn func(m *prom.Metrics)) {
	if r.metrics != nil {
		fn(r.metrics)
	}
}

func (r *Retention) fail(ctx context.Context, msg string, err error) error {
	if ctx.Err() == nil {
		r.log.Error(msg, "error", err.Error())
		r.count(func(m *prom.Metrics) { m.RetentionErrors.Inc() })
	}
	return err
}
