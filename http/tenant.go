package http

import (
	"context"
	"encoding/json"
	"fmt"
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

// checkOverlays answers not found for a pipeline naming an uploaded image (the watermark op's
// image) that is not the tenant's, before anything is queued or run. The processor reads
// overlays within the tenant the context carries as well; this check makes a queued task fail
// now, with 404, rather than later in a worker.
func (s *Server) checkOverlays(ctx context.Context, tenant string, ops []imaged.Op, field string) error {
	for i, o := range ops {
		if o.Name != "watermark" || len(o.Args) == 0 {
			continue
		}
		var a struct {
			Image *string `json:"image"`
		}
		if json.Unmarshal(o.Args, &a) != nil || a.Image == nil {
			continue // the processor's validation names what is wrong
		}
		if _, err := s.deps.Store.Image(ctx, tenant, *a.Image); err != nil {
			if e, ok := err.(*imaged.Error); ok && e.Field == "" {
				c := *e
				c.Field = fmt.Sprintf("%sops[%d].image", field, i)
				err = &c
			}
			return err
		}
	}
	return nil
}

// owned answers a route that acts on one of the caller's records named by the path's {id}:
// find looks the record up within the caller's tenant (another tenant's id is not found, so
// ids cannot be probed), and serve answers with it. Either's error is the answer.
func owned[T any](s *Server, find func(ctx context.Context, tenant, id string) (T, error),
	serve func(w http.ResponseWriter, r *http.Request, v T) error) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		v, err := find(r.Context(), tenantOf(r), r.PathValue("id"))
		if err == nil {
			err = serve(w, r, v)
		}
		if err != nil {
			s.writeError(w, r, err)
		}
	})
}
