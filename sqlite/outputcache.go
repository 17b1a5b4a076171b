package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/imaged/imaged"
	"github.com/imaged/imaged/sqlstore"
)

// CachedOutput returns the tenant's processed-output cache entry of key; ENotFound when none.
func (s *Store) CachedOutput(ctx context.Context, tenant, key string) (*imaged.CachedOutput, error) {
	if err := imaged.CheckTenant(tenant); err != nil {
		return nil, err
	}
	var e imaged.CachedOutput
	err := s.r.QueryRowContext(ctx, `SELECT `+sqlstore.CachedOutputColumns+` FROM output_cache WHERE key = ? AND tenant = ?`,
		key, tenant).Scan(sqlstore.CachedOutputDest(&e, storedTime{&e.CreatedAt})...)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, imaged.Errorf(imaged.ENotFound, "no cached output %s", imaged.EchoID(key))
	}
	if err != nil {
		return nil, fmt.Errorf("sqlite: cached output: %w", err)
	}
	return &e, nil
}

// PutCachedOutput records e, replacing an entry of its key, and takes its blob out of the trash.
func (s *Store) PutCachedOutput(ctx context.Context, e *imaged.CachedOutput) error {
	if err := imaged.CheckTenant(e.Tenant); err != nil {
		return err
	}
	if e.CreatedAt.IsZero() {
		e.CreatedAt = now()
	}
	err := s.inTx(ctx, func(tx *sql.Tx) error {
		if _, err := tx.ExecContext(ctx, `INSERT INTO output_cache (`+sqlstore.CachedOutputColumns+`)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
			ON CONFLICT (key) DO UPDATE SET tenant = excluded.tenant, image_sha256 = excluded.image_sha256,
				blob_key = excluded.blob_key, format = excluded.format, content_type = excluded.content_type,
				width = excluded.width, height = excluded.height, bytes = excluded.bytes, created_at = excluded.created_at`,
			sqlstore.CachedOutputArgs(e, formatTime(e.CreatedAt))...); err != nil {
			return err
		}
		_, err := tx.ExecContext(ctx, `DELETE FROM blob_trash WHERE key = ?`, e.BlobKey)
		return err
	})
	if err != nil {
		return fmt.Errorf("sqlite: put cached output: %w", err)
	}
	return nil
}

// ExpireCachedOutputs deletes old processed-output cache entries and trashes their blobs; see
// imaged.RetentionStore.
func (s *Store) ExpireCachedOutputs(ctx context.Context, cutoff time.Time, limit int) (int, error) {
	return s.trashReturned(ctx, "expire cached outputs", imaged.BlobCache, `
		DELETE FROM output_cache WHERE key IN (SELECT key FROM output_cache WHERE created_at < ? LIMIT ?)
		RETURNING blob_key`, formatTime(cutoff), limit)
}

// dropCachedOutputs removes the processed-output cache entries of the deleted images' content
// that no image of their tenant holds any more, and trashes their blobs.
func dropCachedOutputs(ctx context.Context, tx *sql.Tx, deleted []sqlstore.DeletedImage) error {
	for _, d := range deleted {
		if d.SHA256 == "" {
			continue
		}
		keys, err := queryAll(ctx, tx, sqlstore.ScanString, `
			DELETE FROM output_cache WHERE tenant = ? AND image_sha256 = ?
				AND NOT EXISTS (SELECT 1 FROM images WHERE tenant = ? AND sha256 = ?)
			RETURNING blob_key`, d.Tenant, d.SHA256, d.Tenant, d.SHA256)
		if err != nil {
			return err
		}
		if err := trash(ctx, tx, imaged.BlobCache, keys); err != nil {
			return err
		}
	}
	return nil
}
