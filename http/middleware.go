package http

import (
	"context"
	"fmt"
	"net/http"
	"net/netip"
	"net/url"
	"runtime/debug"
	"strconv"
	"strings"
	"time"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"

	"github.com/imaged/imaged"
)

// tracer makes the server spans of every request.
var tracer = otel.Tracer("github.com/imaged/imaged/http")

// noSpan stands in for the span of untraced requests.
var noSpan = trace.SpanFromContext(context.Background())

// withCorrelationID takes X-Correlation-ID from the request (or makes one), puts it in the
// context for every log line and task, and echoes it in the response.
// HeaderReadLimit is what the HTTP server itself reads of a request's header block at most
// (http.Server.MaxHeaderBytes): above the largest IMAGED_MAX_HEADER_BYTES, so that withHeaderLimit,
// not the server's plain-text answer, refuses what is over the setting.
const HeaderReadLimit = 1<<20 + 64<<10

// withHeaderLimit refuses a request whose request line and headers are larger than
// MaxHeaderBytes with 431 and the JSON error body.
func (s *Server) withHeaderLimit(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if max := s.cfg.MaxHeaderBytes; max > 0 {
			n := len(r.Method) + len(r.RequestURI) + len(r.Proto) + len(r.Host) + 4
			for k, vs := range r.Header {
				for _, v := range vs {
					n += len(k) + len(v) + 4
				}
			}
			if n > max {
				w.Header().Set("Connection", "close")
				s.writeError(w, r, imaged.Errorf(imaged.EHeadersTooLarge,
					"the request line and headers are %d bytes; this server takes at most %d", n, max))
				return
			}
		}
		next.ServeHTTP(w, r)
	})
}

func withCorrelationID(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		id := r.Header.Get("X-Correlation-ID")
		if !validCorrelationID(id) {
			id = imaged.NewID()
		}
		w.Header().Set("X-Correlation-ID", id)
		next.ServeHTTP(w, r.WithContext(imaged.WithCorrelationID(r.Context(), id)))
	})
}

// validCorrelationID accepts short ids of safe characters, so a client cannot inject log lines
// or huge headers through it.
func validCorrelationID(id string) bool {
	if id == "" || len(id) > 128 {
		return false
	}
	for _, c := range id {
		ok := c == '-' || c == '_' || c == '.' || c == ':' ||
			(c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z')
		if !ok {
			return false
		}
	}
	return true
}

// withRecover turns a panic in a handler into a 500 with a JSON body and a logged stack.
func (s *Server) withRecover(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		defer func() {
			if v := recover(); v != nil {
				if v == http.ErrAbortHandler {
					panic(v)
				}
				s.log.ErrorContext(r.Context(), "handler panicked", "panic", fmt.Sprint(v), "stack", string(debug.Stack()))
				s.writeError(w, r, imaged.Errorf(imaged.EInternal, "internal error"))
			}
		}()
		next.ServeHTTP(w, r)
	})
}

type statusRecorder struct {
	http.ResponseWriter
	status int
	bytes  int64
}

func (s *statusRecorder) WriteHeader(code int) {
	if s.status == 0 {
		s.status = code
	}
	s.ResponseWriter.WriteHeader(code)
}

func (s *statusRecorder) Write(b []byte) (int, error) {
	if s.status == 0 {
		s.status = http.StatusOK
	}
	n, err := s.ResponseWriter.Write(b)
	s.bytes += int64(n)
	return n, err
}

// Flush lets streaming handlers (SSE) flush through the recorder.
func (s *statusRecorder) Flush() {
	if f, ok := s.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}

func (s *statusRecorder) Unwrap() http.ResponseWriter { return s.ResponseWriter }

// withLogAndMetrics wraps the mux directly, so that after it returns r.Pattern holds the route
// pattern: metrics are labelled by pattern, never by raw path. One log line per request.
func (s *Server) withLogAndMetrics(mux http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		// The server span continues the caller's trace (W3C traceparent) or starts one; it is
		// named after the route once the mux has matched it. Probes and scrapes, which come
		// every few seconds, get none.
		ctx := otel.GetTextMapPropagator().Extract(r.Context(), propagation.HeaderCarrier(r.Header))
		var span trace.Span = noSpan
		if !strings.HasPrefix(r.URL.Path, "/health") && r.URL.Path != "/metrics" {
			ctx, span = tracer.Start(ctx, r.Method, trace.WithSpanKind(trace.SpanKindServer),
				trace.WithAttributes(attribute.String("http.request.method", r.Method), attribute.String("url.path", r.URL.Path),
					attribute.String("client.address", r.RemoteAddr)))
		}
		defer span.End()
		if sc := span.SpanContext(); sc.IsSampled() {
			w.Header().Set("X-Trace-ID", sc.TraceID().String())
		}
		r = r.WithContext(ctx)
		rec := &statusRecorder{ResponseWriter: w}
		// withAccess names the tenant here once it knows it, for the counter and the log line.
		var tenant string
		r = r.WithContext(context.WithValue(r.Context(), tenantSlotKey{}, &tenant))
		mux.ServeHTTP(rec, r)
		if rec.status == 0 {
			rec.status = http.StatusOK
		}
		elapsed := time.Since(start)
		endpoint := patternPath(r.Pattern)
		span.SetName(r.Method + " " + endpoint)
		span.SetAttributes(attribute.String("http.route", endpoint), attribute.Int("http.response.status_code", rec.status))
		if rec.status >= 500 {
			span.SetStatus(codes.Error, http.StatusText(rec.status))
		}
		s.deps.Metrics.HTTPRequests.WithLabelValues(r.Method, endpoint, strconv.Itoa(rec.status), s.deps.Metrics.Tenant(tenant)).Inc()
		s.deps.Metrics.HTTPDuration.WithLabelValues(r.Method, endpoint).Observe(elapsed.Seconds())
		s.log.InfoContext(r.Context(), "request", "method", r.Method, "path", r.URL.Path, "endpoint", endpoint,
			"status", rec.status, "bytes", rec.bytes, "duration_ms", float64(elapsed.Microseconds())/1000,
			"remote", r.RemoteAddr, "tenant", tenant)
	})
}

// tenantSlotKey holds where withAccess writes the tenant a request acts for.
type tenantSlotKey struct{}

// patternPath strips the method from a ServeMux pattern ("GET /v1/tasks/{id}" → "/v1/tasks/{id}").
func patternPath(p string) string {
	for i := 0; i < len(p); i++ {
		if p[i] == ' ' {
			return p[i+1:]
		}
	}
	if p == "" || p == "/" {
		return "unmatched"
	}
	return p
}

// withBaseURL records in the request's context the address the client reached the API at
// (imaged.WithBaseURL), so that links made while serving it work behind an ingress. Only a
// trusted proxy (IMAGED_TRUSTED_PROXIES) may say, with X-Forwarded-Proto, X-Forwarded-Host and
// X-Forwarded-Prefix, what address that was; from anyone else those headers are ignored and the
// request's own Host and scheme count.
func (s *Server) withBaseURL(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		scheme, host, prefix := "http", r.Host, ""
		if r.TLS != nil {
			scheme = "https"
		}
		if peer, err := netip.ParseAddrPort(r.RemoteAddr); err == nil && s.trusted(peer.Addr().Unmap()) {
			if v := firstValue(r.Header.Get("X-Forwarded-Proto")); v == "http" || v == "https" {
				scheme = v
			}
			if v := firstValue(r.Header.Get("X-Forwarded-Host")); validHost(v) {
				host = v
			}
			if v := firstValue(r.Header.Get("X-Forwarded-Prefix")); strings.HasPrefix(v, "/") && !strings.ContainsAny(v, "?# ") {
				prefix = strings.TrimRight(v, "/")
			}
		}
		if validHost(host) {
			r = r.WithContext(imaged.WithBaseURL(r.Context(), scheme+"://"+host+prefix))
		}
		next.ServeHTTP(w, r)
	})
}

// firstValue is the first of a header's comma-separated values (the one the nearest proxy set
// last is not what a chain of proxies agrees on; the first is the client's).
func firstValue(v string) string {
	first, _, _ := strings.Cut(v, ",")
	return strings.TrimSpace(first)
}

// validHost reports whether h is a host[:port] and nothing else.
func validHost(h string) bool {
	if h == "" || strings.ContainsAny(h, "/?#@ \\") {
		return false
	}
	u, err := url.Parse("//" + h)
	return err == nil && u.Host == h && u.Hostname() != ""
}
