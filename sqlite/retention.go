package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/imaged/imaged"
	"github.com/imaged/imaged/sqlstore"
)

var _ imaged.RetentionStore = (*Store)(nil)

// resultKey is the blob key of a task's output image, as the tasks_result_key index spells it.
const resultKey = `json_extract(result, '$.output.key')`

// AcquireLease takes or renews the lease called name for holder; see imaged.RetentionStore.
func (s *Store) AcquireLease(ctx context.Context, name, holder string, ttl time.Duration) (bool, error) {
	at := now()
	var got string
	err := s.w.QueryRowContext(ctx, `
		INSERT INTO leases (name, holder, until) VALUES (?, ?, ?)
		ON CONFLICT (name) DO UPDATE SET holder = excluded.holder, until = excluded.until
		WHERE leases.holder = excluded.holder OR leases.until <= ?
		RETURNING holder`, name, holder, formatTime(at.Add(ttl)), formatTime(at)).Scan(&got)
	if errors.Is(err, sql.ErrNoRows) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("sqlite: acquire lease %s: %w", name, err)
	}
	return got == holder, nil
}

// ReleaseLease gives up holder's lease called name.
func (s *Store) ReleaseLease(ctx context.Context, name, holder string) error {
	if _, err := s.w.ExecContext(ctx, `DELETE FROM leases WHERE name = ? AND holder = ?`, name, holder); err != nil {
		return fmt.Errorf("sqlite: release lease %s: %w", name, err)
	}
	return nil
}

// ExpireResults marks old results expired and trashes their images; see imaged.RetentionStore.
func (s *Store) ExpireResults(ctx context.Context, cutoff, at time.Time, limit int) (int, error) {
	return s.trashReturned(ctx, "expire results", imaged.BlobResult, `
		UPDATE tasks SET result_expired_at = ?, result_expired_reason = ?
		WHERE seq IN (SELECT seq FROM tasks WHERE finished_at < ? AND status = 'completed'
			AND result_expired_at IS NULL AND `+resultKey+` IS NOT NULL LIMIT ?)
		RETURNING `+resultKey, formatTime(at), imaged.ResultExpiredAge, formatTime(cutoff), limit)
}

// trashReturned runs a statement returning the blob keys of the rows it takes, and trashes
// those blobs as kind in the same transaction; it returns how many rows it took.
func (s *Store) trashReturned(ctx context.Context, what, kind, query string, args ...any) (int, error) {
	var n int
	err := s.inTx(ctx, func(tx *sql.Tx) error {
		keys, err := queryAll(ctx, tx, sqlstore.ScanString, query, args...)
		if err != nil {
			return err
		}
		n = len(keys)
		return trash(ctx, tx, kind, keys)
	})
	if err != nil {
		return 0, fmt.Errorf("sqlite: %s: %w", what, err)
	}
	return n, nil
}

// DeleteTasks deletes old terminal tasks and emptied batches; see imaged.RetentionStore.
func (s *Store) DeleteTasks(ctx context.Context, cutoff time.Time, limit int) (int, int, error) {
	var tasks, batches int
	err := s.inTx(ctx, func(tx *sql.Tx) error {
		live, err := queryAll(ctx, tx, sqlstore.ScanString, `
			DELETE FROM tasks WHERE seq IN (SELECT seq FROM tasks WHERE finished_at < ?
				AND status IN ('completed', 'failed', 'cancelled') LIMIT ?)
			RETURNING COALESCE(CASE WHEN result_expired_at IS NULL THEN `+resultKey+` END, '')`, formatTime(cutoff), limit)
		if err != nil {
			return err
		}
		tasks = len(live)
		if err := trash(ctx, tx, imaged.BlobResult, sqlstore.NonEmpty(live)); err != nil {
			return err
		}
		res, err := tx.ExecContext(ctx, `
			DELETE FROM batches WHERE id IN (SELECT id FROM batches b WHERE created_at < ?
				AND NOT EXISTS (SELECT 1 FROM tasks WHERE batch_id = b.id) LIMIT ?)`, formatTime(cutoff), limit)
		if err != nil {
			return err
		}
		n, err := res.RowsAffected()
		batches = int(n)
		if err != nil {
			return err
		}
		// Settled outbox rows (delivered or given up) go with the tasks they told of.
		_, err = tx.ExecContext(ctx, `
			DELETE FROM deliveries WHERE id IN (SELECT id FROM deliveries WHERE created_at < ?
				AND status <> 'pending' LIMIT ?)`, formatTime(cutoff), limit)
		return err
	})
	if err != nil {
		return 0, 0, fmt.Errorf("sqlite: delete tasks: %w", err)
	}
	return tasks, batches, nil
}

// DeleteImages deletes old images, trashes their blobs, expires their results and removes the
// cached outputs of content no image holds any more; see imaged.RetentionStore.
func (s *Store) DeleteImages(ctx context.Context, cutoff, at time.Time, limit int) (int, error) {
	var n int
	err := s.inTx(ctx, func(tx *sql.Tx) error {
		deleted, err := queryAll(ctx, tx, sqlstore.ScanDeletedImage, `
			DELETE FROM images WHERE id IN (SELECT id FROM images WHERE created_at < ? LIMIT ?)
			RETURNING `+sqlstore.DeletedImageColumns, formatTime(cutoff), limit)
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
		return 0, fmt.Errorf("sqlite: delete images: %w", err)
	}
	return n, nil
}

// expireDerived expires the results made from the images ids and trashes their blobs.
func expireDerived(ctx context.Context, tx *sql.Tx, ids []string, at time.Time) error {
	if len(ids) == 0 {
		return nil
	}
	args := []any{formatTime(at), imaged.ResultExpiredImageDeleted}
	for _, id := range ids {
		args = append(args, id)
	}
	keys, err := queryAll(ctx, tx, sqlstore.ScanString, `
		UPDATE tasks SET result_expired_at = ?, result_expired_reason = ?
		WHERE image_id IN (`+marks(len(ids))+`) AND result_expired_at IS NULL AND `+resultKey+` IS NOT NULL
		RETURNING `+resultKey, args...)
	if err != nil {
		return err
	}
	return trash(ctx, tx, imaged.BlobResult, keys)
}

// trash records keys of kind as blobs to delete.
func trash(ctx context.Context, tx *sql.Tx, kind string, keys []string) error {
	at := formatTime(now())
	for _, k := range keys {
		if _, err := tx.ExecContext(ctx, `INSERT INTO blob_trash (key, kind, created_at) VALUES (?, ?, ?)
			ON CONFLICT (key) DO NOTHING`, k, kind, at); err != nil {
			return err
		}
	}
	return nil
}

// TakeTrash removes the oldest blobs from the trash and returns them; see
// imaged.RetentionStore.
func (s *Store) TakeTrash(ctx context.Context, limit int) ([]imaged.TrashedBlob, error) {
	out, err := queryAll(ctx, s.w, sqlstore.ScanTrashed, `DELETE FROM blob_trash WHERE key IN (SELECT key FROM blob_trash ORDER BY created_at LIMIT ?)
		RETURNING key, kind`, limit)
	if err != nil {
		return nil, fmt.Errorf("sqlite: take trash: %w", err)
	}
	return out, nil
}

// Referenced returns those of keys a row references; see imaged.RetentionStore.
func (s *Store) Referenced(ctx context.Context, keys []string) (map[string]bool, error) {
	out := map[string]bool{}
	if len(keys) == 0 {
		return out, nil
	}
	in := marks(len(keys))
	args := make([]any, 0, 4*len(keys))
	for range 4 {
		for _, k := range keys {
			args = append(args, k)
		}
	}
	found, err := queryAll(ctx, s.r, sqlstore.ScanString, `
		SELECT key FROM images WHERE key IN (`+in+`)
		UNION SELECT `+resultKey+` FROM tasks WHERE `+resultKey+` IN (`+in+`) AND result_expired_at IS NULL
		UNION SELECT key FROM blob_trash WHERE key IN (`+in+`)
		UNION SELECT blob_key FROM output_cache WHERE blob_key IN (`+in+`)`, args...)
	if err != nil {
		return nil, fmt.Errorf("sqlite: referenced blobs: %w", err)
	}
	for _, k := range found {
		out[k] = true
	}
	return out, nil
}

// marks is n comma-separated placeholders.
func marks(n int) string { return strings.TrimSuffix(strings.Repeat("?, ", n), ", ") }
