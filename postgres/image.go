package postgres

import (
	"context"
	"errors"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/imaged/imaged"
)

// CreateImage records an uploaded image. It sets ID (when empty) and CreatedAt (when zero, from
// the database's clock); EConflict when an image with that ID exists.
func (s *Store) CreateImage(ctx context.Context, img *imaged.Image) error {
	ctx, cancel := s.command(ctx)
	defer cancel()
	if img.ID == "" {
		img.ID = imaged.NewOrderedID()
	}
	var created time.Time
	err := s.pool.QueryRow(ctx, `
		INSERT INTO images (id, key, format, content_type, width, height, bytes, sha256, filename, created_at)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, COALESCE($10::timestamptz, now()))
		RETURNING created_at`,
		img.ID, img.Key, img.Format, img.ContentType, img.Width, img.Height, img.Bytes, img.SHA256,
		img.Filename, timeArg(img.CreatedAt)).Scan(&created)
	if isUniqueViolation(err, "images_pkey") {
		return imaged.WrapError(imaged.EConflict, err, "image %s already exists", img.ID)
	}
	if err != nil {
		return s.wrap(ctx, "create image", err)
	}
	img.CreatedAt = created.UTC()
	return nil
}

// Image returns the image; ENotFound when absent.
func (s *Store) Image(ctx context.Context, id string) (*imaged.Image, error) {
	ctx, cancel := s.command(ctx)
	defer cancel()
	var img imaged.Image
	err := s.pool.QueryRow(ctx, `
		SELECT id, key, format, content_type, width, height, bytes, sha256, filename, created_at
		FROM images WHERE id = $1`, id).Scan(
		&img.ID, &img.Key, &img.Format, &img.ContentType, &img.Width, &img.Height, &img.Bytes,
		&img.SHA256, &img.Filename, &img.CreatedAt)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, imaged.Errorf(imaged.ENotFound, "image %s not found", id)
	}
	if err != nil {
		return nil, s.wrap(ctx, "image", err)
	}
	img.CreatedAt = img.CreatedAt.UTC()
	return &img, nil
}

// DeleteImage removes the record; ENotFound when absent. Tasks of the image are kept.
func (s *Store) DeleteImage(ctx context.Context, id string) error {
	ctx, cancel := s.command(ctx)
	defer cancel()
	tag, err := s.pool.Exec(ctx, `DELETE FROM images WHERE id = $1`, id)
	if err != nil {
		return s.wrap(ctx, "delete image", err)
	}
	if tag.RowsAffected() == 0 {
		return imaged.Errorf(imaged.ENotFound, "image %s not found", id)
	}
	return nil
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
