package postgres

import (
	"context"
	"errors"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/imaged/imaged"
	"github.com/imaged/imaged/sqlstore"
)

// CachedOutput returns the tenant's processed-output cache entry of key; ENotFound when none.
func (s *Store) CachedOutput(ctx context.Context, tenant, key string) (*imaged.CachedOutput, error) {
	if err := imaged.CheckTenant(tenant); err != nil {
		return nil, err
	}
	ctx, cancel := s.command(ctx)
	defer cancel()
	var e imaged.CachedOutput
	err := s.pool.QueryRow(ctx, `SELECT `+sqlstore.CachedOutputColumns+` FROM output_cache WHERE key = $1 AND tenant = $2`,
		key, tenant).Scan(sqlstore.CachedOutputDest(&e, &e.CreatedAt)...)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, imaged.Errorf(imaged.ENotFound, "no cached output %s", imaged.EchoID(key))
	}
	if err != nil {
		return nil, s.wrap(ctx, "cached output", err)
	}
	e.CreatedAt = e.CreatedAt.UTC()
	return &e, nil
}

// PutCachedOutput records e, replacing an entry of its key, and takes its blob out of the trash.
// CreatedAt, when zero, is the database's clock.
func (s *Store) PutCachedOutput(ctx context.Context, e *imaged.CachedOutput) error {
	if err := imaged.CheckTenant(e.Tenant); err != nil {
		return err
	}
	ctx, cancel := s.command(ctx)
	defer cancel()
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		var created time.Time
		if err := tx.QueryRow(ctx, `INSERT INTO output_cache (`+sqlstore.CachedOutputColumns+`)
			VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, COALESCE($10::timestamptz, now()))
			ON CONFLICT (key) DO UPDATE SET tenant = excluded.tenant, image_sha256 = excluded.image_sha256,
				blob_key = excluded.blob_key, format = excluded.format, content_type = excluded.content_type,
				width = excluded.width, height = excluded.height, bytes = excluded.bytes, created_at = excluded.created_at
			RETURNING created_at`, sqlstore.CachedOutputArgs(e, timeArg(e.CreatedAt))...).Scan(&created); err != nil {
			return err
		}
		e.CreatedAt = created.UTC()
		_, err := tx.Exec(ctx, `DELETE FROM blob_trash WHERE key = $1`, e.BlobKey)
		return err
	})
	return s.wrap(ctx, "put cached output", err)
}

// ExpireCachedOutputs deletes old processed-output cache entries and trashes their blobs; see
// imaged.RetentionStore. The rows are taken with FOR UPDATE SKIP LOCKED, so two sweepers take
// different ones.
func (s *Store) ExpireCachedOutputs(ctx context.Context, cutoff time.Time, limit int) (int, error) {
	return s.trashReturned(ctx, "expire cached outputs", imaged.BlobCache, `
		DELETE FROM output_cache WHERE key IN (SELECT key FROM output_cache WHERE created_at < $1
			LIMIT $2 FOR UPDATE SKIP LOCKED)
		RETURNING blob_key`, cutoff, limit)
}

// dropCachedOutputs removes the processed-output cache entries of the deleted images' content
// that no image of their tenant holds any more, and trashes their blobs.
func dropCachedOutputs(ctx context.Context, tx pgx.Tx, deleted []sqlstore.DeletedImage) error {
	var tenants, sums []string
	for _, d := range deleted {
		if d.SHA256 != "" {
			tenants, sums = append(tenants, d.Tenant), append(sums, d.SHA256)
		}
	}
	if len(sums) == 0 {
		return nil
	}
	keys, err := queryAll(ctx, tx, sqlstore.ScanString, `
		DELETE FROM output_cache o USING unnest($1::text[], $2::text[]) AS d(tenant, sha256)
		WHERE o.tenant = d.tenant AND o.image_sha256 = d.sha256
			AND NOT EXISTS (SELECT 1 FROM images i WHERE i.tenant = d.tenant AND i.sha256 = d.sha256)
		RETURNING o.blob_key`, tenants, sums)
	if err != nil {
		return err
	}
	return trash(ctx, tx, imaged.BlobCache, keys)
}
