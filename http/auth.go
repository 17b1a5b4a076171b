package http

import (
	"context"
	"net/http"
	"strings"
	"time"

	"github.com/imaged/imaged"
)

// Authenticator checks API keys (package auth implements it).
type Authenticator interface {
	// Authenticate returns the key's record; EUnauthenticated when the key is malformed,
	// unknown, wrong or revoked.
	Authenticate(ctx context.Context, token string) (*imaged.APIKey, error)
}

// access says who may call a route.
type access int

const (
	needsKey  access = iota // an API key (unless authentication is off); limited per key
	signed                  // the URL's signature authorises; limited per client address
	uncounted               // anyone, without limits: health and metrics
)

// routeAccess lists the routes that need no key, by ServeMux pattern. Every other route, one
// added later or none at all (404), needs a key: forgetting a route here fails closed.
var routeAccess = map[string]access{
	"GET /health":                  uncounted,
	"GET /health/live":             uncounted,
	"GET /health/ready":            uncounted,
	"GET /metrics":                 uncounted,
	"GET /openapi.json":            uncounted,
	"GET /v1/blobs/{key...}":       signed,
	"GET /i/{signature}/{path...}": signed,
}

// credentials returns the API key a request carries in X-API-Key or Authorization: Bearer.
func credentials(r *http.Request) (string, bool) {
	if k := r.Header.Get("X-API-Key"); k != "" {
		return strings.TrimSpace(k), true
	}
	if h := r.Header.Get("Authorization"); h != "" {
		scheme, token, ok := strings.Cut(h, " ")
		if ok && strings.EqualFold(scheme, "Bearer") {
			return strings.TrimSpace(token), true
		}
	}
	return "", false
}

type apiKeyContextKey struct{}

// identityContextKey holds who a request counts against ("key:<id>" or "ip:<address>").
type identityContextKey struct{}

// apiKeyFrom returns the key a request was authenticated with, nil when none.
func apiKeyFrom(ctx context.Context) *imaged.APIKey {
	k, _ := ctx.Value(apiKeyContextKey{}).(*imaged.APIKey)
	return k
}

// withAccess authenticates, limits and admits each request before the route runs: routes that
// need a key get a 401 without a valid one, then every counted request takes a slot of its
// key's (or client address's) concurrency and of its tenant's, and a place in both their
// rate-limit windows, or gets a 429.
// It wraps the mux directly and leaves the matched pattern on r, for the log and metrics.
func (s *Server) withAccess(mux *http.ServeMux) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, pattern := mux.Handler(r)
		r.Pattern = pattern
		level := routeAccess[pattern]
		if level == uncounted {
			mux.ServeHTTP(w, r)
			return
		}
		ctx := r.Context()
		ip := s.clientIP(r)
		identity, limit, concurrency := "ip:"+ip, s.cfg.IPLimit, s.cfg.Concurrency
		var tenant *imaged.Tenant
		if level == needsKey {
			if s.deps.Auth != nil {
				token, ok := credentials(r)
				if !ok {
					s.refuseAuth(w, r, ip, imaged.Errorf(imaged.EUnauthenticated,
						"an API key is required: send it in the X-API-Key header or as Authorization: Bearer <key>"))
					return
				}
				k, err := s.deps.Auth.Authenticate(ctx, token)
				if err != nil {
					s.refuseAuth(w, r, ip, err)
					return
				}
				identity, limit = "key:"+k.ID, s.keyLimit(k)
				if k.Concurrency > 0 {
					concurrency = k.Concurrency
				}
				ctx = context.WithValue(ctx, apiKeyContextKey{}, k)
			}
			id, err := requestTenant(r, apiKeyFrom(ctx))
			if err == nil {
				tenant, err = s.tenantLimits(ctx, id)
			}
			if err != nil {
				s.writeError(w, r, err)
				return
			}
			ctx = imaged.WithTenant(ctx, id)
			if slot, ok := ctx.Value(tenantSlotKey{}).(*string); ok {
				*slot = id
			}
		}
		if s.deps.Auth == nil {
			// Authentication is off: one tenant, and no key or address rate limit (a tenant's
			// own limits, set on purpose, still apply).
			limit = imaged.RateLimit{}
		}
		// An event stream stays open for as long as its task or batch runs: it takes a place
		// among the identity's streams (as many as its concurrency), not a request slot that
		// a few watchers would otherwise hold for good.
		pool, what := s.access.inflight, "requests"
		if strings.HasSuffix(pattern, "/events") {
			pool, what = s.access.streams, "event streams"
		}
		// A request passes both its key's (or address's) limits and its tenant's.
		release, ok := pool.acquire(identity, concurrency)
		if ok && tenant != nil {
			releaseKey := release
			var releaseTenant func()
			if releaseTenant, ok = pool.acquire("tenant:"+tenant.ID, tenant.Concurrency); ok {
				release = func() { releaseTenant(); releaseKey() }
			} else {
				releaseKey()
				what += " for this tenant"
			}
		}
		if !ok {
			s.access.refused.WithLabelValues("concurrency").Inc()
			s.writeError(w, r, &imaged.Error{Code: imaged.ERateLimited, RetryAfter: time.Second,
				Message: "too many " + what + " at once; wait for one to finish"})
			return
		}
		defer release()
		if !s.admit(w, r, identity, limit) {
			return
		}
		if tenant != nil && !s.admit(w, r, "tenant:"+tenant.ID, imaged.RateLimit{PerMinute: tenant.RateLimit, Burst: tenant.Burst}) {
			return
		}
		r2 := r.WithContext(context.WithValue(ctx, identityContextKey{}, identity))
		mux.ServeHTTP(w, r2)
		r.Pattern = r2.Pattern
	})
}

// refuseAuth answers a request without a valid key. Failed attempts count against the client
// address's limit, so guessing keys soon meets 429s.
func (s *Server) refuseAuth(w http.ResponseWriter, r *http.Request, ip string, err error) {
	if !imaged.IsCode(err, imaged.EUnauthenticated) {
		s.writeError(w, r, err)
		return
	}
	s.access.refused.WithLabelValues("unauthenticated").Inc()
	if !s.admit(w, r, "ip:"+ip, s.cfg.IPLimit) {
		return
	}
	w.Header().Set("WWW-Authenticate", `Bearer realm="imaged"`)
	s.writeError(w, r, err)
}

func (s *Server) keyLimit(k *imaged.APIKey) imaged.RateLimit {
	l := s.cfg.KeyLimit
	if k.RateLimit > 0 {
		l.PerMinute = k.RateLimit
	}
	if k.Burst > 0 {
		l.Burst = k.Burst
	}
	return l
}

// withSecurityHeaders sets the headers every answer carries. Handlers may override them (the
// signed image routes allow cross-origin embedding and caching).
func withSecurityHeaders(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("X-Frame-Options", "DENY")
		h.Set("Referrer-Policy", "no-referrer")
		h.Set("Content-Security-Policy", "default-src 'none'; frame-ancestors 'none'; sandbox")
		h.Set("Cache-Control", "no-store")
		if strings.HasPrefix(r.URL.Path, "/i/") || strings.HasPrefix(r.URL.Path, "/v1/blobs/") {
			h.Set("Cross-Origin-Resource-Policy", "cross-origin")
		} else {
			h.Set("Cross-Origin-Resource-Policy", "same-origin")
		}
		if r.TLS != nil {
			h.Set("Strict-Transport-Security", "max-age=63072000; includeSubDomains")
		}
		next.ServeHTTP(w, r)
	})
}
