package postgres

import (
	"context"
	"errors"

	"github.com/jackc/pgx/v5"

	"github.com/imaged/imaged"
	"github.com/imaged/imaged/sqlstore"
)

var _ imaged.TenantStore = (*Store)(nil)

func scanTenant(row sqlstore.Scanner) (*imaged.Tenant, error) {
	var t imaged.Tenant
	err := row.Scan(sqlstore.TenantDest(&t, &t.CreatedAt, &t.UpdatedAt)...)
	if err != nil {
		return nil, err
	}
	t.CreatedAt, t.UpdatedAt = t.CreatedAt.UTC(), t.UpdatedAt.UTC()
	return &t, nil
}

// Tenant returns the tenant; ENotFound when absent.
func (s *Store) Tenant(ctx context.Context, id string) (*imaged.Tenant, error) {
	ctx, cancel := s.command(ctx)
	defer cancel()
	t, err := scanTenant(s.pool.QueryRow(ctx, `SELECT `+sqlstore.TenantColumns+` FROM tenants WHERE id = $1`, id))
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, imaged.Errorf(imaged.ENotFound, "tenant %s not found", imaged.EchoID(id))
	}
	if err != nil {
		return nil, s.wrap(ctx, "tenant", err)
	}
	return t, nil
}

// PutTenant creates the tenant or sets the limits of an existing one, and fills in its times.
func (s *Store) PutTenant(ctx context.Context, t *imaged.Tenant) error {
	if t.ID == "" || t.ID == imaged.AnyTenant {
		return imaged.FieldErrorf("id", "a tenant needs an id other than %q", imaged.AnyTenant)
	}
	ctx, cancel := s.command(ctx)
	defer cancel()
	stored, err := scanTenant(s.pool.QueryRow(ctx, `
		INSERT INTO tenants (id, quota_bytes, quota_images, rate_limit, burst, concurrency)
		VALUES ($1, $2, $3, $4, $5, $6)
		ON CONFLICT (id) DO UPDATE SET quota_bytes = excluded.quota_bytes,
			quota_images = excluded.quota_images, rate_limit = excluded.rate_limit,
			burst = excluded.burst, concurrency = excluded.concurrency, updated_at = now()
		RETURNING `+sqlstore.TenantColumns,
		t.ID, t.QuotaBytes, t.QuotaImages, t.RateLimit, t.Burst, t.Concurrency))
	if err != nil {
		return s.wrap(ctx, "put tenant", err)
	}
	*t = *stored
	return nil
}

// ListTenants returns every tenant, by id.
func (s *Store) ListTenants(ctx context.Context) ([]*imaged.Tenant, error) {
	ctx, cancel := s.command(ctx)
	defer cancel()
	out, err := queryAll(ctx, s.pool, scanTenant, `SELECT `+sqlstore.TenantColumns+` FROM tenants ORDER BY id`)
	if err != nil {
		return nil, s.wrap(ctx, "list tenants", err)
	}
	return out, nil
}

// Usage sums the tenant's stored originals.
func (s *Store) Usage(ctx context.Context, tenant string) (imaged.Usage, error) {
	var u imaged.Usage
	if err := imaged.CheckTenant(tenant); err != nil {
		return u, err
	}
	ctx, cancel := s.command(ctx)
	defer cancel()
	err := s.pool.QueryRow(ctx, `SELECT COALESCE(sum(bytes), 0)::bigint, count(*) FROM images WHERE tenant = $1`,
		tenant).Scan(&u.Bytes, &u.Images)
	if err != nil {
		return u, s.wrap(ctx, "usage", err)
	}
	return u, nil
}
