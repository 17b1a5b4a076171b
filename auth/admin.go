package auth

import (
	"context"

	"github.com/imaged/imaged"
)

// Issue makes a key as Create does, in k.Tenant or, when that is empty, in a tenant of its
// own named after the key's id, so that a new client sees nothing of anyone else's. The tenant
// is recorded (without limits) when the store keeps tenants and it is new, so that it can be
// listed and given limits.
func Issue(ctx context.Context, store imaged.APIKeyStore, k *imaged.APIKey) (string, error) {
	if k.Tenant == "" {
		if k.ID == "" {
			k.ID = imaged.NewOrderedID()
		}
		k.Tenant = k.ID
	}
	if k.Tenant == imaged.AnyTenant || len(k.Tenant) > 128 {
		return "", imaged.FieldErrorf("tenant", "a tenant id has 1 to 128 characters and is not %q", imaged.AnyTenant)
	}
	if ts, ok := store.(imaged.TenantStore); ok {
		_, err := ts.Tenant(ctx, k.Tenant)
		if imaged.IsCode(err, imaged.ENotFound) {
			err = ts.PutTenant(ctx, &imaged.Tenant{ID: k.Tenant})
		}
		if err != nil {
			return "", err
		}
	}
	return Create(ctx, store, k)
}

// CreateKey issues a key (see Issue) for the admin API.
func (s *Service) CreateKey(ctx context.Context, k *imaged.APIKey) (string, error) {
	return Issue(ctx, s.store, k)
}

// ListKeys returns every key, oldest first, or only tenant's when tenant is not "".
func (s *Service) ListKeys(ctx context.Context, tenant string) ([]*imaged.APIKey, error) {
	keys, err := s.store.APIKeys(ctx)
	if err != nil || tenant == "" {
		return keys, err
	}
	var out []*imaged.APIKey
	for _, k := range keys {
		if k.Tenant == tenant {
			out = append(out, k)
		}
	}
	return out, nil
}

// RevokeKey revokes the key ref names (see Revoke). Authenticate reads the key's record on
// every request, so the revocation holds from the next request in every process sharing the
// store.
func (s *Service) RevokeKey(ctx context.Context, ref string) (*imaged.APIKey, error) {
	return Revoke(ctx, s.store, ref)
}
