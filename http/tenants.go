package http

import (
	"context"
	"net/http"
	"sync"
	"time"

	"github.com/imaged/imaged"
)

// tenantTTL is how long a process keeps a tenant's limits before reading them again: a limit
// set through another process bites within it, one set here at once.
const tenantTTL = 2 * time.Second

// tenantCache keeps tenants' limits briefly, so that checking them costs no database read per
// request. A nil entry is a tenant without a record: unlimited.
type tenantCache struct {
	mu      sync.Mutex
	entries map[string]tenantEntry
	quota   sync.Map // tenant id → *sync.Mutex, held while an upload is checked and stored
}

type tenantEntry struct {
	t       *imaged.Tenant
	expires time.Time
}

// tenantLimits returns the tenant's record, nil when it has none (no limits).
func (s *Server) tenantLimits(ctx context.Context, id string) (*imaged.Tenant, error) {
	c := s.access.tenants
	c.mu.Lock()
	e, ok := c.entries[id]
	c.mu.Unlock()
	if ok && time.Now().Before(e.expires) {
		return e.t, nil
	}
	t, err := s.deps.Store.Tenant(ctx, id)
	if imaged.IsCode(err, imaged.ENotFound) {
		t, err = nil, nil
	}
	if err != nil {
		return nil, err
	}
	c.mu.Lock()
	c.entries[id] = tenantEntry{t: t, expires: time.Now().Add(tenantTTL)}
	c.mu.Unlock()
	return t, nil
}

// checkQuota refuses an upload of size bytes that would take the request's tenant past its
// quota. It returns the function to call once the upload is stored or refused: uploads of a
// tenant with a quota are checked and stored one at a time in this process, so that two at
// once cannot both fit into the last free place.
func (s *Server) checkQuota(ctx context.Context, size int64) (func(), error) {
	tenant := imaged.TenantOf(ctx)
	t, err := s.tenantLimits(ctx, tenant)
	if err != nil || t == nil || (t.QuotaBytes == 0 && t.QuotaImages == 0) {
		return func() {}, err
	}
	m, _ := s.access.tenants.quota.LoadOrStore(tenant, &sync.Mutex{})
	mu := m.(*sync.Mutex)
	mu.Lock()
	u, err := s.deps.Store.Usage(ctx, tenant)
	if err == nil {
		err = t.CheckQuota(u, size)
	}
	if err != nil {
		mu.Unlock()
		return nil, err
	}
	return mu.Unlock, nil
}

// tenantView is a tenant as the admin API shows it: its limits and what it stores.
type tenantView struct {
	*imaged.Tenant
	Usage imaged.Usage `json:"usage"`
}

func (s *Server) viewTenant(ctx context.Context, t *imaged.Tenant) (tenantView, error) {
	u, err := s.deps.Store.Usage(ctx, t.ID)
	return tenantView{Tenant: t, Usage: u}, err
}

func (s *Server) handleTenantList() http.Handler {
	return s.adminOnly(func(w http.ResponseWriter, r *http.Request, _ KeyAdmin) {
		tenants, err := s.deps.Store.ListTenants(r.Context())
		views := make([]tenantView, 0, len(tenants))
		for _, t := range tenants {
			if err != nil {
				break
			}
			var v tenantView
			v, err = s.viewTenant(r.Context(), t)
			views = append(views, v)
		}
		if err != nil {
			s.writeError(w, r, err)
			return
		}
		writeJSON(w, http.StatusOK, list[tenantView]{Items: views})
	})
}

func (s *Server) handleTenantGet() http.Handler {
	return s.adminOnly(func(w http.ResponseWriter, r *http.Request, _ KeyAdmin) {
		id := r.PathValue("id")
		t, err := s.deps.Store.Tenant(r.Context(), id)
		missing := imaged.IsCode(err, imaged.ENotFound)
		if missing {
			// A tenant owns data without a record of its own (a key made with --tenant): it
			// has no limits, and its usage is what there is to see.
			t, err = &imaged.Tenant{ID: id}, nil
		}
		var v tenantView
		if err == nil {
			v, err = s.viewTenant(r.Context(), t)
		}
		if err == nil && missing && v.Usage.Images == 0 {
			err = imaged.Errorf(imaged.ENotFound, "tenant %s not found", imaged.EchoID(id))
		}
		if err != nil {
			s.writeError(w, r, err)
			return
		}
		writeJSON(w, http.StatusOK, v)
	})
}

// handleTenantPut sets the limits the body names (the others keep their values), creating
// the tenant when it does not exist yet.
func (s *Server) handleTenantPut() http.Handler {
	return s.adminOnly(func(w http.ResponseWriter, r *http.Request, _ KeyAdmin) {
		var c imaged.TenantChange
		if err := decodeJSON(w, r, &c); err != nil {
			s.writeError(w, r, err)
			return
		}
		id := r.PathValue("id")
		t, err := imaged.SetTenantLimits(r.Context(), s.deps.Store, id, c)
		var v tenantView
		if err == nil {
			s.access.tenants.mu.Lock()
			delete(s.access.tenants.entries, id)
			s.access.tenants.mu.Unlock()
			v, err = s.viewTenant(r.Context(), t)
		}
		if err != nil {
			s.writeError(w, r, err)
			return
		}
		writeJSON(w, http.StatusOK, v)
	})
}
