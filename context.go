package imaged

import (
	"context"
	"log/slog"
)

type ctxKey int

const (
	correlationKey ctxKey = iota
	workerKey
	baseURLKey
)

// WithBaseURL returns a context carrying the address the client reached the API at
// ("https://images.example.com"), so that links made while serving it (signed blob URLs) work
// behind an ingress when no public URL is configured.
func WithBaseURL(ctx context.Context, u string) context.Context {
	return context.WithValue(ctx, baseURLKey, u)
}

// BaseURL returns the address carried by ctx, or "".
func BaseURL(ctx context.Context) string {
	u, _ := ctx.Value(baseURLKey).(string)
	return u
}

// WithCorrelationID returns a context carrying the correlation id of the request or task.
func WithCorrelationID(ctx context.Context, id string) context.Context {
	return context.WithValue(ctx, correlationKey, id)
}

// CorrelationID returns the correlation id carried by ctx, or "".
func CorrelationID(ctx context.Context) string {
	id, _ := ctx.Value(correlationKey).(string)
	return id
}

// WithWorkerID returns a context carrying the id of the worker running a task.
func WithWorkerID(ctx context.Context, id string) context.Context {
	return context.WithValue(ctx, workerKey, id)
}

// ContextHandler adds correlation_id, tenant and worker_id from the context to every log record, so
// every line logged while serving a request or running a task can be joined up.
type ContextHandler struct{ slog.Handler }

// Handle implements slog.Handler.
func (h ContextHandler) Handle(ctx context.Context, r slog.Record) error {
	if id := CorrelationID(ctx); id != "" {
		r.AddAttrs(slog.String("correlation_id", id))
	}
	if t := TenantOf(ctx); t != "" && t != AnyTenant {
		r.AddAttrs(slog.String("tenant", t))
	}
	if id, _ := ctx.Value(workerKey).(string); id != "" {
		r.AddAttrs(slog.String("worker_id", id))
	}
	return h.Handler.Handle(ctx, r)
}

// WithAttrs implements slog.Handler.
func (h ContextHandler) WithAttrs(as []slog.Attr) slog.Handler {
	return ContextHandler{h.Handler.WithAttrs(as)}
}

// WithGroup implements slog.Handler.
func (h ContextHandler) WithGroup(name string) slog.Handler {
	return ContextHandler{h.Handler.WithGroup(name)}
}
