// Package http serves imaged's JSON API over net/http: routes in routes.go, one file per
// resource, middleware as plain wrappers, and one function (writeError) through which every
// error leaves.
package http

import (
	"context"
	"log/slog"
	"net/http"
	"net/netip"
	"time"

	"github.com/imaged/imaged"
	"github.com/imaged/imaged/prom"
	"github.com/imaged/imaged/signedurl"
)

// Config tunes the API.
type Config struct {
	Version     string
	Limits      imaged.Limits
	MaxAttempts int           // attempts per task; default 3
	MaxBatch    int           // items per batch; default 100
	MaxInflight int           // synchronous pipelines at once; default 2×CPU
	MaxWaiting  int           // synchronous requests waiting for a slot before 503; default 8×CPU
	WaitTimeout time.Duration // longest wait for a slot; default 10 s
	URLExpiry   time.Duration // presigned URL lifetime; default 1 h

	// Access (auth.go, ratelimit.go). A zero limit is no limit.
	KeyLimit       imaged.RateLimit // a key's limits unless its record says otherwise
	IPLimit        imaged.RateLimit // requests without a key, per client address
	Concurrency    int              // requests at once per key or client address, in this process
	TrustedProxies []netip.Prefix   // peers whose X-Forwarded-For names the client
	MetricsApart   bool             // /metrics is served on a listener of its own, not here
	MaxHeaderBytes int              // largest request line + header block answered; more is a JSON 431 (0: no check here)
	SignedMaxAge   time.Duration    // Cache-Control max-age of signed image URLs; default 1 year

	// The processed-output cache (outputcache.go).
	OutputCache     bool          // answer synchronous pipelines over stored images from stored outputs
	OutputRetention time.Duration // how long a stored output is kept (IMAGED_RETENTION_RESULTS); 0 = forever
	Engine          string        // the processor and its version, in every output's key and ETag; default Version
}

// HealthCheck is one dependency reported by /health; Required ones decide /health/ready.
type HealthCheck = imaged.HealthCheck

// Deps are the adapters the API talks to. Events and Metrics may be nil.
type Deps struct {
	Store     imaged.TaskStore
	Outbox    imaged.Outbox // the store's webhook deliveries; nil: none are shown
	Queue     imaged.Queue
	Blobs     imaged.BlobStore
	Processor imaged.Processor
	Events    imaged.Events
	Metrics   *prom.Metrics
	Log       *slog.Logger
	Health    []HealthCheck

	Auth    Authenticator      // nil: no key is required (authentication off); a KeyAdmin serves /v1/keys
	Limiter imaged.RateLimiter // nil: no rate limits
	Fetcher Fetcher            // nil: source_url is refused
	URLs    URLChecker         // nil: callback_url is checked as a URL only, its host when it is called
	Signer  *signedurl.Signer  // nil: signed image URLs are not served

	// Shutdown, when set, is closed as the process begins shutting down: event streams end.
	Shutdown <-chan struct{}
}

// Server is the API's http.Handler.
type Server struct {
	cfg     Config
	deps    Deps
	log     *slog.Logger
	handler http.Handler
	mux     *http.ServeMux // the routes, for looking up a request's pattern
	slots   *slots
	access  *accessState
}

// NewServer returns the API handler with every route and middleware in place.
func NewServer(cfg Config, deps Deps) *Server {
	if cfg.Limits == (imaged.Limits{}) {
		cfg.Limits = imaged.DefaultLimits
	}
	if cfg.MaxAttempts <= 0 {
		cfg.MaxAttempts = 3
	}
	if cfg.MaxBatch <= 0 {
		cfg.MaxBatch = 100
	}
	if cfg.MaxInflight <= 0 {
		cfg.MaxInflight = 2 * imaged.CPUs()
	}
	if cfg.MaxWaiting <= 0 {
		cfg.MaxWaiting = 8 * imaged.CPUs()
	}
	if cfg.WaitTimeout <= 0 {
		cfg.WaitTimeout = 10 * time.Second
	}
	if cfg.URLExpiry <= 0 {
		cfg.URLExpiry = time.Hour
	}
	if cfg.SignedMaxAge <= 0 {
		cfg.SignedMaxAge = 365 * 24 * time.Hour
	}
	if cfg.Engine == "" {
		cfg.Engine = cfg.Version
	}
	if deps.Log == nil {
		deps.Log = slog.Default()
	}
	if deps.Metrics == nil {
		deps.Metrics = prom.New()
	}
	s := &Server{cfg: cfg, deps: deps, log: deps.Log}
	s.slots = newSlots(cfg.MaxInflight, cfg.MaxWaiting, func(d int) { deps.Metrics.InflightSyncRequest.Add(float64(d)) })
	s.access = newAccessState(deps.Metrics.Registry)
	mux := http.NewServeMux()
	s.routes(mux)
	s.mux = mux
	s.handler = s.withHeaderLimit(withSecurityHeaders(withCorrelationID(s.withRecover(s.withBaseURL(s.withLogAndMetrics(s.withAccess(mux)))))))
	return s
}

// ServeHTTP implements http.Handler.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) { s.handler.ServeHTTP(w, r) }

// errBusy answers requests the server has no room for.
func errBusy(retry time.Duration) error {
	return &imaged.Error{Code: imaged.EUnavailable, Message: "the server is busy; try again shortly", RetryAfter: retry}
}

// roomForPipeline refuses a synchronous pipeline before its body is read when every slot is busy and the
// waiting line is full: under overload the server then holds no uploads it could not work on,
// and memory stays bounded by the slots and the line.
func (s *Server) roomForPipeline() error {
	if s.slots.full() {
		return errBusy(time.Second)
	}
	return nil
}

// acquire takes a synchronous pipeline slot for the caller (its key, or its address), in fair
// order between callers (see slots). When every slot is busy it waits, but only while fewer
// than MaxWaiting requests wait and for at most WaitTimeout; otherwise it answers unavailable,
// so that overload turns into quick 503s with Retry-After instead of a pile-up.
func (s *Server) acquire(ctx context.Context) (func(), error) {
	identity, _ := ctx.Value(identityContextKey{}).(string)
	return s.slots.acquire(ctx, identity, s.cfg.WaitTimeout)
}

func (s *Server) publish(ctx context.Context, e imaged.Event) {
	if s.deps.Events == nil {
		return
	}
	if e.CorrelationID == "" {
		e.CorrelationID = imaged.CorrelationID(ctx)
	}
	if err := s.deps.Events.Publish(context.WithoutCancel(ctx), e); err != nil {
		s.log.WarnContext(ctx, "event publish failed", "type", e.Type, "error", err.Error())
	}
}
