package redis

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"time"

	"github.com/imaged/imaged"
	"github.com/imaged/imaged/resilience"
	goredis "github.com/redis/go-redis/v9"
)

// tombstone is what image:{tenant}:{id} holds after the image was deleted, until MetadataTTL passes. A
// read that began before the delete stores its copy only where no value is (SET NX), so it
// cannot put the deleted image back.
const tombstone = "deleted"

// maxPending bounds the invalidations kept in memory while Redis is unreachable.
const maxPending = 10000

// flushEvery spaces out attempts to write pending invalidations.
const flushEvery = time.Second

// CachedStore decorates a task store with the cache:
//
//   - Task reads result:{tenant}:{task_id} first. A task in a terminal state (completed, failed,
//     cancelled) never changes again, so it is cached for ResultTTL when read from the
//     database and when CompleteTask, FailTask or CancelTask return it. Tasks still queued or
//     processing are never cached nor served from the cache.
//   - Image reads image:{tenant}:{id} first and caches the database's answer for MetadataTTL.
//     DeleteImage replaces the entry with a tombstone (see below), and drops the index entries
//     of the processed-output cache made from the image's content (outputs.go).
//   - Reads for AnyTenant (system callers) go to the database: the key names the tenant,
//     which such a read does not know.
//   - Everything else goes to the database.
//
// Redis errors never fail a call: they are logged at warn and counted, and the call is answered
// from the database. A deleted image whose invalidation cannot reach Redis is remembered in this
// process (treated as absent from the cache) and written again once Redis answers; should the
// process end first, another process may serve the stale entry until MetadataTTL passes.
//
// Put the cache outside the database's circuit breaker (CachedStore(resilience.Store(db…)…))
// so that cached results are still served while the database breaker is open.
func CachedStore(next imaged.TaskStore, c *Client, log *slog.Logger) imaged.TaskStore {
	if log == nil {
		log = slog.Default()
	}
	return &cachedStore{TaskStore: next, c: c, log: log}
}

type cachedStore struct {
	imaged.TaskStore
	c   *Client
	log *slog.Logger
}

// Unwrap returns the decorated store.
func (s *cachedStore) Unwrap() imaged.TaskStore { return s.TaskStore }

// lookup is the outcome of a cache read.
type lookup int

const (
	miss       lookup = iota
	hit               // value holds the entry
	failed            // Redis did not answer; the database answers and nothing is written
	tombstoned        // the entry was invalidated; nothing may be written until it expires
	corrupt           // the entry cannot be decoded; the database's answer replaces it
)

// cachedTask carries the task fields its JSON form leaves out.
type cachedTask struct {
	Task           *imaged.Task `json:"task"`
	IdempotencyKey string       `json:"idempotency_key,omitempty"`
	RunAfter       time.Time    `json:"run_after"`
	LeaseUntil     *time.Time   `json:"lease_until,omitempty"`
}

func encodeTask(t *imaged.Task) ([]byte, error) {
	return json.Marshal(cachedTask{Task: t, IdempotencyKey: t.IdempotencyKey, RunAfter: t.RunAfter, LeaseUntil: t.LeaseUntil})
}

func decodeTask(b []byte) (*imaged.Task, error) {
	var ct cachedTask
	if err := json.Unmarshal(b, &ct); err != nil {
		return nil, err
	}
	if ct.Task == nil || ct.Task.ID == "" {
		return nil, errors.New("the entry holds no task")
	}
	ct.Task.IdempotencyKey, ct.Task.RunAfter, ct.Task.LeaseUntil = ct.IdempotencyKey, ct.RunAfter, ct.LeaseUntil
	return ct.Task, nil
}

func (s *cachedStore) Task(ctx context.Context, tenant, id string) (*imaged.Task, error) {
	if tenant == imaged.AnyTenant || tenant == "" {
		return s.TaskStore.Task(ctx, tenant, id)
	}
	key := s.c.resultKey(tenant, id)
	t, l := read(ctx, s, "result", key, "cached task result is unreadable; reading the database",
		func(b []byte) (*imaged.Task, bool, error) {
			t, err := decodeTask(b)
			return t, err == nil && t.ID == id && t.Tenant == tenant && imaged.IsTerminal(t.Status), err
		})
	if l == hit {
		return t, nil
	}
	t, err := s.TaskStore.Task(ctx, tenant, id)
	if err == nil && l != failed {
		s.cacheTask(ctx, t)
	}
	return t, err
}

// read looks key up in the cache and decodes a hit, counting the hit or miss; decode reports
// whether the entry is the one asked for. An entry it cannot read is corrupt, for the
// database's answer to replace.
func read[T any](ctx context.Context, s *cachedStore, cache, key, unreadable string, decode func([]byte) (T, bool, error)) (T, lookup) {
	b, l := s.get(ctx, cache, key)
	if l == hit {
		v, ok, err := decode(b)
		if err == nil && ok {
			s.c.metrics.count(cache, "hit")
			return v, hit
		}
		s.log.WarnContext(ctx, unreadable, "key", key, "error", errText(err))
		l = corrupt
	}
	if l != failed {
		s.c.metrics.count(cache, "miss")
	}
	var zero T
	return zero, l
}

func errText(err error) string {
	if err == nil {
		return "the entry is not the one asked for (another id or tenant, or a task not finished)"
	}
	return err.Error()
}

// cacheTask stores a terminal task for ResultTTL; others are left out.
func (s *cachedStore) cacheTask(ctx context.Context, t *imaged.Task) {
	if t == nil || !imaged.IsTerminal(t.Status) {
		return
	}
	b, err := encodeTask(t)
	if err != nil {
		s.log.WarnContext(ctx, "task result cannot be cached", "task_id", t.ID, "error", err.Error())
		return
	}
	key := s.c.resultKey(t.Tenant, t.ID)
	if err := s.c.do(ctx, func(ctx context.Context) error {
		return s.c.rdb.Set(ctx, key, b, s.c.resultTTL).Err()
	}); err != nil {
		s.warn(ctx, "caching a task result failed", key, err)
	}
}

func (s *cachedStore) CompleteTask(ctx context.Context, id string, attempt int, res *imaged.TaskResult) (*imaged.Task, error) {
	t, err := s.TaskStore.CompleteTask(ctx, id, attempt, res)
	if err == nil {
		s.cacheTask(ctx, t)
	}
	return t, err
}

func (s *cachedStore) FailTask(ctx context.Context, id string, attempt int, f *imaged.TaskFailure) (*imaged.Task, error) {
	t, err := s.TaskStore.FailTask(ctx, id, attempt, f)
	if err == nil {
		s.cacheTask(ctx, t)
	}
	return t, err
}

func (s *cachedStore) CancelTask(ctx context.Context, tenant, id string) (*imaged.Task, error) {
	t, err := s.TaskStore.CancelTask(ctx, tenant, id)
	if err == nil {
		s.cacheTask(ctx, t)
	}
	return t, err
}

func (s *cachedStore) Image(ctx context.Context, tenant, id string) (*imaged.Image, error) {
	if tenant == imaged.AnyTenant || tenant == "" {
		return s.TaskStore.Image(ctx, tenant, id)
	}
	key := s.c.imageKey(tenant, id)
	img, l := read(ctx, s, "image", key, "cached image metadata is unreadable; reading the database",
		func(b []byte) (*imaged.Image, bool, error) {
			var img imaged.Image
			err := json.Unmarshal(b, &img)
			return &img, err == nil && img.ID == id && img.Tenant == tenant, err
		})
	if l == hit {
		return img, nil
	}
	img, err := s.TaskStore.Image(ctx, tenant, id)
	if err != nil || l == failed || l == tombstoned {
		return img, err
	}
	v, merr := json.Marshal(img)
	if merr != nil {
		return img, nil
	}
	if err := s.c.do(ctx, func(ctx context.Context) error {
		if l == corrupt {
			return s.c.rdb.Set(ctx, key, v, s.c.metadataTTL).Err()
		}
		// NX: a delete that happened since the read left a tombstone this must not replace.
		return s.c.rdb.SetNX(ctx, key, v, s.c.metadataTTL).Err()
	}); err != nil {
		s.warn(ctx, "caching image metadata failed", key, err)
	}
	return img, nil
}

func (s *cachedStore) DeleteImage(ctx context.Context, tenant, id string) error {
	// The keys name the image's tenant and content: learn them before the record is gone.
	img, err := s.TaskStore.Image(ctx, tenant, id)
	if err == nil {
		tenant = img.Tenant
	} else if tenant == imaged.AnyTenant {
		return err
	}
	err = s.TaskStore.DeleteImage(ctx, tenant, id)
	if err == nil || imaged.IsCode(err, imaged.ENotFound) {
		// Also when the database had no such image: another process may have deleted it
		// without reaching Redis.
		s.invalidate(ctx, s.c.imageKey(tenant, id))
	}
	if err == nil && img != nil {
		s.dropOutputs(ctx, tenant, img.SHA256)
	}
	return err
}

// invalidate writes the tombstone of an image key, or remembers it while Redis is away.
func (s *cachedStore) invalidate(ctx context.Context, key string) {
	err := s.c.do(ctx, func(ctx context.Context) error {
		return s.c.rdb.Set(ctx, key, tombstone, s.c.metadataTTL).Err()
	})
	s.c.mu.Lock()
	defer s.c.mu.Unlock()
	if err == nil {
		delete(s.c.pending, key)
		return
	}
	s.warn(ctx, "invalidating cached image metadata failed; retrying when the cache answers", key, err)
	if len(s.c.pending) < maxPending {
		s.c.pending[key] = true
	}
}

// get reads one cache entry. A key invalidated while Redis was away counts as a tombstone
// without asking Redis.
func (s *cachedStore) get(ctx context.Context, cache, key string) ([]byte, lookup) {
	s.c.mu.Lock()
	pending := s.c.pending[key]
	s.c.mu.Unlock()
	if pending {
		return nil, tombstoned
	}
	var b []byte
	err := s.c.do(ctx, func(ctx context.Context) error {
		var err error
		b, err = s.c.rdb.Get(ctx, key).Bytes()
		return err
	})
	switch {
	case errors.Is(err, goredis.Nil):
		s.flushPending(ctx)
		return nil, miss
	case err != nil:
		s.c.metrics.count(cache, "error")
		if ctx.Err() == nil {
			s.warn(ctx, "cache read failed; reading the database", key, err)
		}
		return nil, failed
	}
	s.flushPending(ctx)
	if string(b) == tombstone {
		return nil, tombstoned
	}
	return b, hit
}

// flushPending writes the invalidations that failed earlier, at most once per flushEvery,
// now that Redis answers again.
func (s *cachedStore) flushPending(ctx context.Context) {
	s.c.mu.Lock()
	if len(s.c.pending) == 0 || time.Since(s.c.lastFlush) < flushEvery {
		s.c.mu.Unlock()
		return
	}
	s.c.lastFlush = time.Now()
	keys := make([]string, 0, len(s.c.pending))
	for k := range s.c.pending {
		keys = append(keys, k)
	}
	s.c.mu.Unlock()
	err := s.c.do(ctx, func(ctx context.Context) error {
		_, err := s.c.rdb.Pipelined(ctx, func(p goredis.Pipeliner) error {
			for _, k := range keys {
				p.Set(ctx, k, tombstone, s.c.metadataTTL)
			}
			return nil
		})
		return err
	})
	if err != nil {
		s.warn(ctx, "writing pending cache invalidations failed", "", err)
		return
	}
	s.c.mu.Lock()
	for _, k := range keys {
		delete(s.c.pending, k)
	}
	s.c.mu.Unlock()
}

// warn logs a cache failure, except the answers of an open breaker, which would repeat for
// every request while Redis is down (the breaker logs its own state changes).
func (s *cachedStore) warn(ctx context.Context, msg, key string, err error) {
	if resilience.IsCircuitOpen(err) {
		return
	}
	attrs := []any{"error", err.Error()}
	if key != "" {
		attrs = append(attrs, "key", key)
	}
	s.log.WarnContext(ctx, msg, attrs...)
}
