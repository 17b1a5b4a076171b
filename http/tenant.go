package http

import (
	"net/http"

	"github.com/imaged/imaged"
)

// requestTenant returns the tenant a key-authenticated request acts for: the key's own, or
// with ?tenant=T the tenant T, which only an admin key may name (403 for any other key, so
// that a plain key learns nothing about other tenants). With authentication off (k is nil)
// there is one tenant, the default.
func requestTenant(r *http.Request, k *imaged.APIKey) (string, error) {
	if k == nil {
		return imaged.DefaultTenant, nil
	}
	own := k.Tenant
	if own == "" {
		own = imaged.DefaultTenant
	}
	q := r.URL.Query()
	if !q.Has("tenant") {
		return own, nil
	}
	if !k.Admin {
		return "", imaged.Errorf(imaged.EPermissionDenied, "only an admin key may name a tenant")
	}
	t := q.Get("tenant")
	if t == "" || t == imaged.AnyTenant {
		return "", imaged.FieldErrorf("tenant", "tenant must name one tenant")
	}
	return t, nil
}

// tenantOf returns the tenant the request acts for (set by withAccess on every route that
// needs a key).
func tenantOf(r *http.Request) string { return imaged.TenantOf(r.Context()) }
