package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"

	"github.com/imaged/imaged"
	"github.com/imaged/imaged/sqlstore"
)

var _ imaged.TenantStore = (*Store)(nil)

func scanTenant(sc sqlstore.Scanner) (*imaged.Tenant, error) {
	var t imaged.Tenant
	if err := sc.Scan(sqlstore.TenantDest(&t, storedTime{&t.CreatedAt}, storedTime{&t.UpdatedAt})...); err != nil {
		return nil, err
	}
	return &t, nil
}

// Tenant returns the tenant; ENotFound when absent.
func (s *Store) Tenant(ctx context.Context, id string) (*imaged.Tenant, error) {
	t, err := scanTenant(s.r.QueryRowContext(ctx, `SELECT `+sqlstore.TenantColumns+` FROM tenants WHERE id = ?`, id))
	if errors.Is(err, sql.ErrNoRows) {
		return nil, imaged.Errorf(imaged.ENotFound, "tenant %s not found", imaged.EchoID(id))
	}
	if err != nil {
		return nil, fmt.Errorf("sqlite: tenant: %w", err)
	}
	return t, nil
}

// PutTenant creates the tenant or sets the limits of an existing one, and fills in its times.
func (s *Store) PutTenant(ctx context.Context, t *imaged.Tenant) error {
	if t.ID == "" || t.ID == imaged.AnyTenant {
		return imaged.FieldErrorf("id", "a tenant needs an id other than %q", imaged.AnyTenant)
	}
	at := formatTime(now())
	stored, err := scanTenant(s.w.QueryRowContext(ctx, `
		INSERT INTO tenants (id, quota_bytes, quota_images, rate_limit, burst, concurrency, created_at, updated_at)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?)
		ON CONFLICT (id) DO UPDATE SET quota_bytes = excluded.quota_bytes,
			quota_images = excluded.quota_images, rate_limit = excluded.rate_limit,
			burst = excluded.burst, concurrency = excluded.concurrency, updated_at = excluded.updated_at
		RETURNING `+sqlstore.TenantColumns,
		t.ID, t.QuotaBytes, t.QuotaImages, t.RateLimit, t.Burst, t.Concurrency, at, at))
	if err != nil {
		return fmt.Errorf("sqlite: put tenant: %w", err)
	}
	*t = *stored
	return nil
}

// ListTenants returns every tenant, by id.
func (s *Store) ListTenants(ctx context.Context) ([]*imaged.Tenant, error) {
	out, err := queryAll(ctx, s.r, scanTenant, `SELECT `+sqlstore.TenantColumns+` FROM tenants ORDER BY id`)
	if err != nil {
		return nil, fmt.Errorf("sqlite: list tenants: %w", err)
	}
	return out, nil
}

// Usage sums the tenant's stored originals.
func (s *Store) Usage(ctx context.Context, tenant string) (imaged.Usage, error) {
	var u imaged.Usage
	if err := imaged.CheckTenant(tenant); err != nil {
		return u, err
	}
	err := s.r.QueryRowContext(ctx, `SELECT COALESCE(sum(bytes), 0), count(*) FROM images WHERE tenant = ?`,
		tenant).Scan(&u.Bytes, &u.Images)
	if err != nil {
		return u, fmt.Errorf("sqlite: usage: %w", err)
	}
	return u, nil
}
