package http

import (
	"context"
	"net/http"
	"strings"

	"github.com/imaged/imaged"
)

// KeyAdmin manages API keys for the admin routes (package auth's Service implements it).
type KeyAdmin interface {
	// CreateKey records k and returns the key, the only copy of it; an empty k.Tenant gets a
	// tenant of its own.
	CreateKey(ctx context.Context, k *imaged.APIKey) (string, error)
	// ListKeys returns every key, or only tenant's when tenant is not "".
	ListKeys(ctx context.Context, tenant string) ([]*imaged.APIKey, error)
	// RevokeKey revokes the key with that id or prefix; ENotFound when none.
	RevokeKey(ctx context.Context, ref string) (*imaged.APIKey, error)
}

// adminOnly runs h only for a request made with an admin key (403 permission_denied for any
// other). Keys and tenants are the service's, not a tenant's: an admin acts across tenants on
// these routes.
func (s *Server) adminOnly(h func(w http.ResponseWriter, r *http.Request, ka KeyAdmin)) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		k := apiKeyFrom(r.Context())
		ka, _ := s.deps.Auth.(KeyAdmin)
		switch {
		case k == nil:
			s.writeError(w, r, imaged.Errorf(imaged.EPermissionDenied, "authentication is off: there are no keys to manage; use `imaged apikey` and `imaged tenant`"))
		case !k.Admin:
			s.writeError(w, r, imaged.Errorf(imaged.EPermissionDenied, "only an admin key may manage keys and tenants"))
		case ka == nil:
			s.writeError(w, r, imaged.Errorf(imaged.EUnavailable, "this server cannot manage keys"))
		default:
			h(w, r, ka)
		}
	})
}

// keyCreated is the answer to POST /v1/keys: the record and, this once, the key itself.
type keyCreated struct {
	*imaged.APIKey
	Key string `json:"key"`
}

func (s *Server) handleKeyCreate() http.Handler {
	return s.adminOnly(func(w http.ResponseWriter, r *http.Request, ka KeyAdmin) {
		var req struct {
			Name        string `json:"name"`
			Tenant      string `json:"tenant"`
			Admin       bool   `json:"admin"`
			RateLimit   int    `json:"rate_limit"`
			Burst       int    `json:"burst"`
			Concurrency int    `json:"concurrency"`
		}
		err := decodeJSON(w, r, &req)
		k := &imaged.APIKey{Name: strings.TrimSpace(req.Name), Tenant: req.Tenant, Admin: req.Admin,
			RateLimit: req.RateLimit, Burst: req.Burst, Concurrency: req.Concurrency}
		switch {
		case err != nil:
		case k.Name == "":
			err = imaged.FieldErrorf("name", "name says what the key is for; it is required")
		case k.RateLimit < 0 || k.Burst < 0 || k.Concurrency < 0:
			err = imaged.FieldErrorf("rate_limit", "rate_limit, burst and concurrency must not be negative (0 is the server's default)")
		}
		if err != nil {
			s.writeError(w, r, err)
			return
		}
		token, err := ka.CreateKey(r.Context(), k)
		if err != nil {
			s.writeError(w, r, err)
			return
		}
		w.Header().Set("Location", "/v1/keys/"+k.ID)
		writeJSON(w, http.StatusCreated, keyCreated{APIKey: k, Key: token})
	})
}

// handleKeyList lists every key, or with ?tenant=T only T's; never a key's secret.
func (s *Server) handleKeyList() http.Handler {
	return s.adminOnly(func(w http.ResponseWriter, r *http.Request, ka KeyAdmin) {
		var tenant string
		if r.URL.Query().Has("tenant") {
			tenant = tenantOf(r)
		}
		keys, err := ka.ListKeys(r.Context(), tenant)
		if err != nil {
			s.writeError(w, r, err)
			return
		}
		writeJSON(w, http.StatusOK, list[*imaged.APIKey]{Items: nonNil(keys)})
	})
}

func (s *Server) handleKeyRevoke() http.Handler {
	return s.adminOnly(func(w http.ResponseWriter, r *http.Request, ka KeyAdmin) {
		k, err := ka.RevokeKey(r.Context(), r.PathValue("id"))
		if err != nil {
			s.writeError(w, r, err)
			return
		}
		writeJSON(w, http.StatusOK, k)
	})
}
