package imaged

import (
	"context"
	"errors"
	"time"
)

// DefaultTenant is the tenant of rows made before tenants existed, of keys created without
// one, and of every request when authentication is off.
const DefaultTenant = "default"

// AnyTenant is passed by system callers that act for no tenant (the worker running a task it
// took from the queue, the lease sweeper, webhook delivery) to reach a row whatever its
// tenant. It is spelt out rather than "" so that a forgotten tenant argument fails loudly.
const AnyTenant = "*"

// Tenant is one customer of a shared service: every image, task, batch and key belongs to
// exactly one, and sees nothing of another's. Limits of 0 mean unlimited.
type Tenant struct {
	ID string `json:"id"`
	// QuotaBytes and QuotaImages bound the tenant's stored originals.
	QuotaBytes  int64 `json:"quota_bytes"`
	QuotaImages int64 `json:"quota_images"`
	// RateLimit is the most requests per minute, Burst the most in any one second and
	// Concurrency the most at once, over all the tenant's keys.
	RateLimit   int       `json:"rate_limit"`
	Burst       int       `json:"burst"`
	Concurrency int       `json:"concurrency"`
	CreatedAt   time.Time `json:"created_at"`
	UpdatedAt   time.Time `json:"updated_at"`
}

// Usage is what a tenant stores: its originals' bytes and count.
type Usage struct {
	Bytes  int64 `json:"bytes"`
	Images int64 `json:"images"`
}

// TenantStore keeps tenants and their limits; every TaskStore is one, since the tenants live
// beside the rows they own.
type TenantStore interface {
	// Tenant returns the tenant; ENotFound when absent.
	Tenant(ctx context.Context, id string) (*Tenant, error)
	// PutTenant creates the tenant or sets the limits of an existing one, and fills in its
	// stored times.
	PutTenant(ctx context.Context, t *Tenant) error
	// ListTenants returns every tenant, by id.
	ListTenants(ctx context.Context) ([]*Tenant, error)
	// Usage sums the tenant's stored originals (zero for a tenant with none).
	Usage(ctx context.Context, tenant string) (Usage, error)
}

// CheckTenant rejects an empty tenant, which is always a caller's mistake: system callers say
// AnyTenant. Stores call it first in every method that takes a tenant.
func CheckTenant(tenant string) error {
	if tenant == "" {
		return Errorf(EInternal, "no tenant given: callers acting for no tenant pass AnyTenant")
	}
	return nil
}

type tenantKey struct{}

// WithTenant returns a context carrying the tenant a request acts for.
func WithTenant(ctx context.Context, tenant string) context.Context {
	return context.WithValue(ctx, tenantKey{}, tenant)
}

// TenantOf returns the tenant carried by ctx, or "" when none is (which stores refuse).
func TenantOf(ctx context.Context) string {
	t, _ := ctx.Value(tenantKey{}).(string)
	return t
}

// TenantChange sets some of a tenant's limits; a nil field keeps the current value (0 sets
// unlimited). `imaged tenant set` and PUT /v1/tenants/{id} both make one.
type TenantChange struct {
	QuotaBytes  *int64 `json:"quota_bytes"`
	QuotaImages *int64 `json:"quota_images"`
	RateLimit   *int   `json:"rate_limit"`
	Burst       *int   `json:"burst"`
	Concurrency *int   `json:"concurrency"`
}

// Apply sets the change's limits on t; EInvalid, naming the field, for a negative one.
func (c TenantChange) Apply(t *Tenant) error {
	return errors.Join(setLimit("quota_bytes", c.QuotaBytes, &t.QuotaBytes),
		setLimit("quota_images", c.QuotaImages, &t.QuotaImages), setLimit("rate_limit", c.RateLimit, &t.RateLimit),
		setLimit("burst", c.Burst, &t.Burst), setLimit("concurrency", c.Concurrency, &t.Concurrency))
}

func setLimit[T int | int64](name string, v, to *T) error {
	if v == nil {
		return nil
	}
	if *v < 0 {
		return FieldErrorf(name, "%s must not be negative (0 is unlimited)", name)
	}
	*to = *v
	return nil
}

// SetTenantLimits applies c to tenant id, creating the tenant when it does not exist yet, and
// returns it as stored.
func SetTenantLimits(ctx context.Context, store TenantStore, id string, c TenantChange) (*Tenant, error) {
	t, err := store.Tenant(ctx, id)
	if IsCode(err, ENotFound) {
		t, err = &Tenant{ID: id}, nil
	}
	if err != nil {
		return nil, err
	}
	if err := c.Apply(t); err != nil {
		return nil, err
	}
	if err := store.PutTenant(ctx, t); err != nil {
		return nil, err
	}
	return t, nil
}

// CheckQuota refuses storing one more original of size bytes when it would take the tenant
// past either quota, naming the limit and the current usage.
func (t *Tenant) CheckQuota(u Usage, size int64) error {
	if t.QuotaImages > 0 && u.Images+1 > t.QuotaImages {
		return Errorf(EQuotaExceeded, "tenant %s stores %d of its quota of %d images; delete some to upload more",
			t.ID, u.Images, t.QuotaImages)
	}
	if t.QuotaBytes > 0 && u.Bytes+size > t.QuotaBytes {
		return Errorf(EQuotaExceeded, "tenant %s stores %d bytes of its quota of %d bytes, and this image of %d bytes does not fit; delete some to upload more",
			t.ID, u.Bytes, t.QuotaBytes, size)
	}
	return nil
}
