package postgres

import (
	"context"
	"errors"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/imaged/imaged"
	"github.com/imaged/imaged/sqlstore"
)

var _ imaged.RetentionStore = (*Store)(nil)

// resultKey is the blob key of a task's output image, as the tasks_result_key index spells it.
const resultKey = `(result -> 'output' ->> 'key')`

// AcquireLease takes or renews the lease called name for holder, on the database's clock; see
// imaged.RetentionStore.
func (s *Store) AcquireLease(ctx context.Context, name, holder string, ttl time.Duration) (bool, error) {
	ctx, cancel := s.command(ctx)
	defer cancel()
	var got string
	err := s.pool.QueryRow(ctx, `
		INSERT INTO leases (name, holder, until) VALUES ($1, $2, now() + $3 * interval '1 microsecond')
		ON CONFLICT (name) DO UPDATE SET holder = excluded.holder, until = excluded.until
		WHERE leases.holder = excluded.holder OR leases.until <= now()
		RETURNING holder`, name, holder, ttl.Microseconds()).Scan(&got)
	if errors.Is(err, pgx.ErrNoRows) {
		return false, nil
	}
	if err != nil {
		return false, s.wrap(ctx, "acquire lease", err)
	}
	return got == holder, nil
}

// ReleaseLease gives up holder's lease called name.
func (s *Store) ReleaseLease(ctx context.Context, name, holder string) error {
	ctx, cancel := s.command(ctx)
	defer cancel()
	_, err := s.pool.Exec(ctx, `DELETE FROM leases WHERE name = $1 AND holder = $2`, name, holder)
	return s.wrap(ctx, "release lease", err)
}

// ExpireResults marks old results expired and trashes their images; see imaged.RetentionStore.
// The rows are taken with FOR UPDATE SKIP LOCKED, so two sweepers take different ones.
func (s *Store) ExpireResults(ctx context.Context, cutoff, at time.Time, limit int) (int, error) {
	return s.trashReturned(ctx, "expire results", imaged.BlobResult, `
		UPDATE tasks SET result_expired_at = $1, result_expired_reason = $2
		WHERE id IN (SELECT id FROM tasks WHERE finished_at < $3 AND status = 'completed'
			AND result_expired_at IS NULL AND `+resultKey+` IS NOT NULL LIMIT $4 FOR UPDATE SKIP LOCKED)
		AND result_expired_at IS NULL
		RETURNING `+resultKey, at, imaged.ResultExpiredAge, cutoff, limit)
}

// trashReturned runs a statement returning the blob keys of the rows it takes, and trashes
// those blobs as kind in the same transaction; it returns how many rows it took.
func (s *Store) trashReturned(ctx context.Context, what, kind, query string, args ...any) (int, error) {
	ctx, cancel := s.command(ctx)
	defer cancel()
	var n int
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		keys, err := queryAll(ctx, tx, sqlstore.ScanString, query, args...)
		if err != nil {
			return err
		}
		n = len(keys)
		return trash(ctx, tx, kind, keys)
	})
	if err != nil {
		return 0, s.wrap(ctx, what, err)
	}
	return n, nil
}

// DeleteTasks deletes old terminal tasks and emptied batches; see imaged.RetentionStore.
func (s *Store) DeleteTasks(ctx context.Context, cutoff time.Time, limit int) (int, int, error) {
	ctx, cancel := s.command(ctx)
	defer cancel()
	var tasks, batches int
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		live, err := queryAll(ctx, tx, sqlstore.ScanString, `
			DELETE FROM tasks WHERE id IN (SELECT id FROM tasks WHERE finished_at < $1
				AND status IN ('completed', 'failed', 'cancelled') LIMIT $2 FOR UPDATE SKIP LOCKED)
			RETURNING COALESCE(CASE WHEN result_expired_at IS NULL THEN `+resultKey+` END, '')`, cutoff, limit)
		if err != nil {
			return err
		}
		tasks = len(live)
		if err := trash(ctx, tx, imaged.BlobResult, sqlstore.NonEmpty(live)); err != nil {
			return err
		}
		tag, err := tx.Exec(ctx, `
			DELETE FROM batches WHERE id IN (SELECT id FROM batches b WHERE created_at < $1
				AND NOT EXISTS (SELECT 1 FROM tasks WHERE batch_id = b.id) LIMIT $2 FOR UPDATE SKIP LOCKED)`, cutoff, limit)
		batches = int(tag.RowsAffected())
		if err != nil {
			return err
		}
		// Settled outbox rows (delivered or given up) go with the tasks they told of.
		_, err = tx.Exec(ctx, `
			DELETE FROM deliveries WHERE id IN (SELECT id FROM deliveries WHERE created_at < $1
				AND status <> 'pending' LIMIT $2 FOR UPDATE SKIP LOCKED)`, cutoff, limit)
		return err
	})
	if err != nil {
		return 0, 0, s.wrap(ctx, "delete tasks", err)
	}
	return tasks, batches, nil
}

// DeleteImages deletes old images, trashes their blobs, expires their results and removes the
// cached outputs of content no image holds any more; see imaged.RetentionStore.
func (s *Store) DeleteImages(ctx context.Context, cutoff, at time.Time, limit int) (int, error) {
	ctx, cancel := s.command(ctx)
	defer cancel()
	var n int
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		deleted, err := queryAll(ctx, tx, sqlstore.ScanDeletedImage, `
			DELETE FROM images WHERE id IN (SELECT id FROM images WHERE created_at < $1 LIMIT $2 FOR UPDATE SKIP LOCKED)
			RETURNING `+sqlstore.DeletedImageColumns, cutoff, limit)
		if err != nil {
			return err
		}
		ids, keys := sqlstore.DeletedIDsAndKeys(deleted)
		n = len(ids)
		if err := trash(ctx, tx, imaged.BlobImage, keys); err != nil {
			return err
		}
		if err := dropCachedOutputs(ctx, tx, deleted); err != nil {
			return err
		}
		return expireDerived(ctx, tx, ids, at)
	})
	if err != nil {
		return 0, s.wrap(ctx, "delete images", err)
	}
	return n, nil
}

// expireDerived expires the results made from the images ids and trashes their blobs. at nil
// is the database's clock.
func expireDerived(ctx context.Context, tx pgx.Tx, ids []string, at any) error {
	if len(ids) == 0 {
		return nil
	}
	keys, err := queryAll(ctx, tx, sqlstore.ScanString, `
		UPDATE tasks SET result_expired_at = COALESCE($1::timestamptz, now()), result_expired_reason = $2
		WHERE image_id = ANY($3) AND result_expired_at IS NULL AND `+resultKey+` IS NOT NULL
		RETURNING `+resultKey, at, imaged.ResultExpiredImageDeleted, ids)
	if err != nil {
		return err
	}
	return trash(ctx, tx, imaged.BlobResult, keys)
}

// trash records keys of kind as blobs to delete.
func trash(ctx context.Context, tx pgx.Tx, kind string, keys []string) error {
	if len(keys) == 0 {
		return nil
	}
	_, err := tx.Exec(ctx, `INSERT INTO blob_trash (key, kind) SELECT unnest($1::text[]), $2
		ON CONFLICT (key) DO NOTHING`, keys, kind)
	return err
}

// TakeTrash removes the oldest blobs from the trash and returns them; see
// imaged.RetentionStore.
func (s *Store) TakeTrash(ctx context.Context, limit int) ([]imaged.TrashedBlob, error) {
	ctx, cancel := s.command(ctx)
	defer cancel()
	out, err := queryAll(ctx, s.pool, sqlstore.ScanTrashed, `
		DELETE FROM blob_trash WHERE key IN (SELECT key FROM blob_trash ORDER BY created_at LIMIT $1 FOR UPDATE SKIP LOCKED)
		RETURNING key, kind`, limit)
	if err != nil {
		return nil, s.wrap(ctx, "take trash", err)
	}
	return out, nil
}

// Referenced returns those of keys a row references; see imaged.RetentionStore.
func (s *Store) Referenced(ctx context.Context, keys []string) (map[string]bool, error) {
	out := map[string]bool{}
	if len(keys) == 0 {
		return out, nil
	}
	ctx, cancel := s.command(ctx)
	defer cancel()
	found, err := queryAll(ctx, s.pool, sqlstore.ScanString, `
		SELECT key FROM images WHERE key = ANY($1)
		UNION SELECT `+resultKey+` FROM tasks WHERE `+resultKey+` = ANY($1) AND result_expired_at IS NULL
		UNION SELECT key FROM blob_trash WHERE key = ANY($1)
		UNION SELECT blob_key FROM output_cache WHERE blob_key = ANY($1)`, keys)
	if err != nil {
		return nil, s.wrap(ctx, "referenced blobs", err)
	}
	for _, k := range found {
		out[k] = true
	}
	return out, nil
}
