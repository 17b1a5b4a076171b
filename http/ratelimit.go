package http

import (
	"math"
	"net"
	"net/http"
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/imaged/imaged"
)

// accessState is what withAccess keeps between requests.
type accessState struct {
	inflight *inflight // requests at once, per identity
	streams  *inflight // event streams open, per identity: counted apart, as they last
	tenants  *tenantCache
	refused  *prometheus.CounterVec
}

func newAccessState(reg prometheus.Registerer) *accessState {
	a := &accessState{
		inflight: &inflight{n: map[string]int{}},
		streams:  &inflight{n: map[string]int{}},
		tenants:  &tenantCache{entries: map[string]tenantEntry{}},
		refused: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "http_requests_refused_total",
			Help: "Requests refused before their route ran, by reason (unauthenticated, rate_limited, concurrency).",
		}, []string{"reason"}),
	}
	if reg != nil {
		if err := reg.Register(a.refused); err != nil {
			if are, ok := err.(prometheus.AlreadyRegisteredError); ok {
				a.refused = are.ExistingCollector.(*prometheus.CounterVec)
			}
		}
	}
	return a
}

// admit counts the request in identity's rate-limit window, sets the RateLimit headers and,
// when the window is full, answers 429 and returns false.
func (s *Server) admit(w http.ResponseWriter, r *http.Request, identity string, limit imaged.RateLimit) bool {
	if s.deps.Limiter == nil || !limit.Enabled() {
		return true
	}
	d, err := s.deps.Limiter.Allow(r.Context(), identity, limit)
	if err != nil {
		s.writeError(w, r, err)
		return false
	}
	h := w.Header()
	h.Set("RateLimit-Limit", strconv.Itoa(d.Limit))
	h.Set("RateLimit-Remaining", strconv.Itoa(d.Remaining))
	reset := d.Reset
	if !d.Allowed {
		reset = d.RetryAfter
	}
	h.Set("RateLimit-Reset", strconv.Itoa(int(math.Ceil(reset.Seconds()))))
	h.Set("RateLimit-Policy", policy(limit))
	if d.Allowed {
		return true
	}
	s.access.refused.WithLabelValues("rate_limited").Inc()
	s.writeError(w, r, &imaged.Error{Code: imaged.ERateLimited, RetryAfter: max(d.RetryAfter, time.Second),
		Message: "too many requests; slow down and retry after the time in Retry-After"})
	return false
}

// policy describes a limit as the RateLimit-Policy header does: quota;w=window seconds.
func policy(l imaged.RateLimit) string {
	var parts []string
	if l.PerMinute > 0 {
		parts = append(parts, strconv.Itoa(l.PerMinute)+";w=60")
	}
	if l.Burst > 0 {
		parts = append(parts, strconv.Itoa(l.Burst)+";w=1")
	}
	return strings.Join(parts, ", ")
}

// clientIP is the address requests are limited by: the peer's address or, when the peer is a
// trusted proxy, the last address in X-Forwarded-For that is not one. IPv6 clients are counted
// by their /64, since one host commonly holds a whole /64.
func (s *Server) clientIP(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		host = r.RemoteAddr
	}
	addr, err := netip.ParseAddr(host)
	if err != nil {
		return host
	}
	addr = addr.Unmap().WithZone("")
	if s.trusted(addr) {
		hops := strings.Split(strings.Join(r.Header.Values("X-Forwarded-For"), ","), ",")
		for i := len(hops) - 1; i >= 0; i-- {
			a, err := netip.ParseAddr(strings.TrimSpace(hops[i]))
			if err != nil {
				break
			}
			addr = a.Unmap().WithZone("")
			if !s.trusted(addr) {
				break
			}
		}
	}
	if addr.Is6() {
		p, _ := addr.Prefix(64)
		return p.String()
	}
	return addr.String()
}

func (s *Server) trusted(a netip.Addr) bool {
	for _, p := range s.cfg.TrustedProxies {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

// inflight counts the requests each key or client address has running in this process.
type inflight struct {
	mu sync.Mutex
	n  map[string]int
}

// acquire takes one of identity's limit slots (limit <= 0: no limit).
func (f *inflight) acquire(identity string, limit int) (func(), bool) {
	if limit <= 0 {
		return func() {}, true
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.n[identity] >= limit {
		return nil, false
	}
	f.n[identity]++
	return func() {
		f.mu.Lock()
		defer f.mu.Unlock()
		if f.n[identity]--; f.n[identity] <= 0 {
			delete(f.n, identity)
		}
	}, true
}
