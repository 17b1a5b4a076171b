package postgres

import (
	"context"
	"errors"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/imaged/imaged"
	"github.com/imaged/imaged/sqlstore"
)

func scanImage(row sqlstore.Scanner) (*imaged.Image, error) {
	var img imaged.Image
	err := row.Scan(sqlstore.ImageDest(&img, &img.CreatedAt)...)
	if err != nil {
		return nil, err
	}
	img.CreatedAt = img.CreatedAt.UTC()
	return &img, nil
}

// CreateImage records an uploaded image. It sets ID (when empty), Tenant (when empty, to the
// default tenant) and CreatedAt (when zero, from the database's clock); EConflict when an image
// with that ID exists.
func (s *Store) CreateImage(ctx context.Context, img *imaged.Image) error {
	ctx, cancel := s.command(ctx)
	defer cancel()
	if img.ID == "" {
		img.ID = imaged.NewOrderedID()
	}
	if img.Tenant == "" {
		img.Tenant = imaged.DefaultTenant
	}
	var created time.Time
	err := s.pool.QueryRow(ctx, `
		INSERT INTO images (id, key, format, content_type, width, height, bytes, sha256, filename, created_at, tenant)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, COALESCE($10::timestamptz, now()), $11)
		RETURNING created_at`,
		img.ID, img.Key, img.Format, img.ContentType, img.Width, img.Height, img.Bytes, img.SHA256,
		img.Filename, timeArg(img.CreatedAt), img.Tenant).Scan(&created)
	if isUniqueViolation(err, "images_pkey") {
		return imaged.WrapError(imaged.EConflict, err, "image %s already exists", img.ID)
	}
	if err != nil {
		return s.wrap(ctx, "create image", err)
	}
	img.CreatedAt = created.UTC()
	return nil
}

// Image returns the tenant's image; ENotFound when absent or another tenant's.
func (s *Store) Image(ctx context.Context, tenant, id string) (*imaged.Image, error) {
	cond, args, err := dialect.OfTenant(tenant, id)
	if err != nil {
		return nil, err
	}
	ctx, cancel := s.command(ctx)
	defer cancel()
	img, err := scanImage(s.pool.QueryRow(ctx, `SELECT `+sqlstore.ImageColumns+` FROM images WHERE `+cond, args...))
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, imaged.Errorf(imaged.ENotFound, "image %s not found", imaged.EchoID(id))
	}
	if err != nil {
		return nil, s.wrap(ctx, "image", err)
	}
	return img, nil
}

// DeleteImage removes the tenant's record and, in the same transaction, expires the results
// made from it and removes the cached outputs of its content that no other image of the tenant
// holds (their blobs go to the trash); ENotFound when absent. The tasks are kept.
func (s *Store) DeleteImage(ctx context.Context, tenant, id string) error {
	cond, args, err := dialect.OfTenant(tenant, id)
	if err != nil {
		return err
	}
	ctx, cancel := s.command(ctx)
	defer cancel()
	err = pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		deleted, err := queryAll(ctx, tx, sqlstore.ScanDeletedImage, `DELETE FROM images WHERE `+cond+`
			RETURNING `+sqlstore.DeletedImageColumns, args...)
		if err != nil {
			return err
		}
		if len(deleted) == 0 {
			return imaged.Errorf(imaged.ENotFound, "image %s not found", imaged.EchoID(id))
		}
		if err := dropCachedOutputs(ctx, tx, deleted); err != nil {
			return err
		}
		return expireDerived(ctx, tx, []string{id}, nil)
	})
	return s.wrap(ctx, "delete image", err)
}

// ListImages returns one page of the tenant's images, newest first (ties broken by id,
// descending), and the cursor of the next page, limited as ListTasks.
func (s *Store) ListImages(ctx context.Context, f imaged.ImageFilter) ([]*imaged.Image, string, error) {
	p, err := dialect.NewPage(f.Tenant, f.Cursor, f.Limit)
	if err != nil {
		return nil, "", err
	}
	ctx, cancel := s.command(ctx)
	defer cancel()
	out, err := queryAll(ctx, s.pool, scanImage, p.Select(sqlstore.ImageColumns, `images`), p.Args...)
	if err != nil {
		return nil, "", s.wrap(ctx, "list images", err)
	}
	out, next := sqlstore.Cut(p, out, sqlstore.ImageKey)
	return out, next, nil
}

// timeArg is a time as the store keeps it (UTC, microseconds), or NULL for the zero time so
// that the statement can default it to the database's clock.
func timeArg(t time.Time) any {
	if t.IsZero() {
		return nil
	}
	return t.UTC().Truncate(time.Microsecond)
}

// isUniqueViolation reports whether err is a violation of the named unique constraint.
func isUniqueViolation(err error, constraint string) bool {
	var pgErr *pgconn.PgError
	return errors.As(err, &pgErr) && pgErr.Code == "23505" && pgErr.ConstraintName == constraint
}
