package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/imaged/imaged"
)

// CreateImage records an uploaded image. It sets ID (when empty) and CreatedAt (when zero);
// EConflict when an image with that ID exists.
func (s *Store) CreateImage(ctx context.Context, img *imaged.Image) error {
	if img.ID == "" {
		img.ID = imaged.NewOrderedID()
	}
	if img.CreatedAt.IsZero() {
		img.CreatedAt = now()
	}
	img.CreatedAt = img.CreatedAt.UTC().Truncate(time.Microsecond)
	_, err := s.w.ExecContext(ctx, `
		INSERT INTO images (id, key, format, content_type, width, height, bytes, sha256, filename, created_at)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
		img.ID, img.Key, img.Format, img.ContentType, img.Width, img.Height, img.Bytes, img.SHA256,
		img.Filename, formatTime(img.CreatedAt))
	if isConstraint(err) {
		return imaged.WrapError(imaged.EConflict, err, "image %s already exists", img.ID)
	}
	if err != nil {
		return fmt.Errorf("sqlite: create image: %w", err)
	}
	return nil
}

// Image returns the image; ENotFound when absent.
func (s *Store) Image(ctx context.Context, id string) (*imaged.Image, error) {
	var img imaged.Image
	var created string
	err := s.r.QueryRowContext(ctx, `
		SELECT id, key, format, content_type, width, height, bytes, sha256, filename, created_at
		FROM images WHERE id = ?`, id).Scan(
		&img.ID, &img.Key, &img.Format, &img.ContentType, &img.Width, &img.Height, &img.Bytes,
		&img.SHA256, &img.Filename, &created)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, imaged.Errorf(imaged.ENotFound, "image %s not found", id)
	}
	if err != nil {
		return nil, fmt.Errorf("sqlite: image: %w", err)
	}
	if img.CreatedAt, err = parseTime(created); err != nil {
		return nil, err
	}
	return &img, nil
}

// DeleteImage removes the record; ENotFound when absent. Tasks of the image are kept.
func (s *Store) DeleteImage(ctx context.Context, id string) error {
	res, err := s.w.ExecContext(ctx, `DELETE FROM images WHERE id = ?`, id)
	if err != nil {
		return fmt.Errorf("sqlite: delete image: %w", err)
	}
	if n, err := res.RowsAffected(); err != nil {
		return fmt.Errorf("sqlite: delete image: %w", err)
	} else if n == 0 {
		return imaged.Errorf(imaged.ENotFound, "image %s not found", id)
	}
	return nil
}
