package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"

	"github.com/imaged/imaged"
	"github.com/imaged/imaged/sqlstore"
)

func scanImage(sc sqlstore.Scanner) (*imaged.Image, error) {
	var img imaged.Image
	if err := sc.Scan(sqlstore.ImageDest(&img, storedTime{&img.CreatedAt})...); err != nil {
		return nil, err
	}
	return &img, nil
}

// CreateImage records an uploaded image. It sets ID (when empty), Tenant (when empty, to the
// default tenant) and CreatedAt (when zero); EConflict when an image with that ID exists.
func (s *Store) CreateImage(ctx context.Context, img *imaged.Image) error {
	stamp(&img.ID, &img.Tenant, &img.CreatedAt)
	_, err := s.w.ExecContext(ctx, `
		INSERT INTO images (id, tenant, key, format, content_type, width, height, bytes, sha256, filename, created_at)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
		img.ID, img.Tenant, img.Key, img.Format, img.ContentType, img.Width, img.Height, img.Bytes,
		img.SHA256, img.Filename, formatTime(img.CreatedAt))
	if isConstraint(err) {
		return imaged.WrapError(imaged.EConflict, err, "image %s already exists", img.ID)
	}
	if err != nil {
		return fmt.Errorf("sqlite: create image: %w", err)
	}
	return nil
}

// Image returns the tenant's image; ENotFound when absent or another tenant's.
func (s *Store) Image(ctx context.Context, tenant, id string) (*imaged.Image, error) {
	cond, args, err := dialect.OfTenant(tenant, id)
	if err != nil {
		return nil, err
	}
	img, err := scanImage(s.r.QueryRowContext(ctx, `SELECT `+sqlstore.ImageColumns+` FROM images WHERE `+cond, args...))
	if errors.Is(err, sql.ErrNoRows) {
		return nil, imaged.Errorf(imaged.ENotFound, "image %s not found", imaged.EchoID(id))
	}
	if err != nil {
		return nil, fmt.Errorf("sqlite: image: %w", err)
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
	err = s.inTx(ctx, func(tx *sql.Tx) error {
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
		return expireDerived(ctx, tx, []string{id}, now())
	})
	if err != nil && imaged.ErrorCode(err) == imaged.EInternal {
		return fmt.Errorf("sqlite: delete image: %w", err)
	}
	return err
}

// ListImages returns one page of the tenant's images, newest first (ties broken by id,
// descending), and the cursor of the next page, limited as ListTasks.
func (s *Store) ListImages(ctx context.Context, f imaged.ImageFilter) ([]*imaged.Image, string, error) {
	p, err := dialect.NewPage(f.Tenant, f.Cursor, f.Limit)
	if err != nil {
		return nil, "", err
	}
	out, err := queryAll(ctx, s.r, scanImage, p.Select(sqlstore.ImageColumns, `images`), p.Args...)
	if err != nil {
		return nil, "", fmt.Errorf("sqlite: list images: %w", err)
	}
	out, next := sqlstore.Cut(p, out, sqlstore.ImageKey)
	return out, next, nil
}
