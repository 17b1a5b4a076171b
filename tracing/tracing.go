// Package tracing sets up OpenTelemetry tracing for imaged and holds what the other packages
// share of it: the exporters (OTLP over HTTP, or a JSON-lines file), the W3C trace-context
// helpers the queues use to carry a trace through their messages, a log handler that puts the
// trace id on every log line, and decorators that give the task store, the blob store and the
// queue a span per call.
//
// With tracing off (the default) the global tracer provider stays OpenTelemetry's no-op one:
// spans cost a context lookup, nothing is exported, but the W3C propagator is still installed so
// a caller's traceparent passes through API, queue and worker untouched.
package tracing

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"os"
	"strconv"
	"strings"
	"time"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	"go.opentelemetry.io/otel/exporters/stdout/stdouttrace"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"

	"github.com/imaged/imaged"
)

// Exporters.
const (
	ExporterNone = "none"
	ExporterOTLP = "otlp"
	ExporterFile = "file"
)

// Config chooses where spans go.
type Config struct {
	// Exporter is none (default), otlp or file.
	Exporter string
	// Endpoint is the OTLP/HTTP endpoint, e.g. http://otel-collector:4318 (the /v1/traces path
	// is added). Empty: the OTEL_EXPORTER_OTLP_* environment variables, else localhost:4318.
	Endpoint string
	// File receives one JSON object per span (the stdout exporter's format) with the file
	// exporter; it is appended to.
	File string
	// SampleRatio is the share of new traces recorded, 0..1. A span whose caller sent a
	// sampled traceparent is always recorded (parent-based sampling).
	SampleRatio float64
	// Service names the service; Version and Role (api, worker, api+worker) describe it, and
	// Instance tells processes apart.
	Service, Version, Role, Instance string
}

// Setup installs the W3C propagator and, unless cfg.Exporter is none, a tracer provider that
// exports spans as cfg says. The returned function flushes and stops it; call it at exit.
func Setup(ctx context.Context, cfg Config) (shutdown func(context.Context) error, err error) {
	otel.SetTextMapPropagator(propagation.NewCompositeTextMapPropagator(propagation.TraceContext{}, propagation.Baggage{}))
	nothing := func(context.Context) error { return nil }
	if cfg.Exporter == "" || cfg.Exporter == ExporterNone {
		return nothing, nil
	}
	ratio := cfg.SampleRatio
	if ratio < 0 || ratio > 1 {
		return nil, fmt.Errorf("sample ratio %v is not between 0 and 1", ratio)
	}
	res, err := resource.Merge(resource.Default(), resource.NewSchemaless(
		attribute.String("service.name", orDefault(cfg.Service, "imaged")),
		attribute.String("service.version", cfg.Version),
		attribute.String("service.instance.id", cfg.Instance),
		attribute.String("imaged.role", cfg.Role),
	))
	if err != nil {
		return nil, err
	}
	var opt sdktrace.TracerProviderOption
	var file *os.File // the file exporter's, closed at shutdown
	switch cfg.Exporter {
	case ExporterOTLP:
		var opts []otlptracehttp.Option
		if cfg.Endpoint != "" {
			u, err := url.Parse(cfg.Endpoint)
			if err != nil {
				return nil, fmt.Errorf("otlp endpoint: %w", err)
			}
			if u.Path == "" || u.Path == "/" {
				u.Path = "/v1/traces" // a collector's base address, as OTEL_EXPORTER_OTLP_ENDPOINT is
			}
			opts = append(opts, otlptracehttp.WithEndpointURL(u.String()))
		}
		exp, err := otlptracehttp.New(ctx, opts...)
		if err != nil {
			return nil, fmt.Errorf("otlp exporter: %w", err)
		}
		opt = sdktrace.WithBatcher(exp)
	case ExporterFile:
		if cfg.File == "" {
			return nil, errors.New("the file exporter needs a file")
		}
		f, err := os.OpenFile(cfg.File, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
		if err != nil {
			return nil, err
		}
		// The exporter writes each span's JSON in one call, so a reader never sees half a
		// line; it never closes its writer, so the returned shutdown does.
		exp, err := stdouttrace.New(stdouttrace.WithWriter(f))
		if err != nil {
			f.Close()
			return nil, err
		}
		file = f
		// A short batch timeout: the file is read by people and tests waiting for a span.
		opt = sdktrace.WithBatcher(exp, sdktrace.WithBatchTimeout(200*time.Millisecond))
	default:
		return nil, fmt.Errorf("unknown exporter %q (want none, otlp or file)", cfg.Exporter)
	}
	tp := sdktrace.NewTracerProvider(opt, sdktrace.WithResource(res),
		sdktrace.WithSampler(sdktrace.ParentBased(sdktrace.TraceIDRatioBased(ratio))))
	otel.SetTracerProvider(tp)
	return func(ctx context.Context) error {
		err := tp.Shutdown(ctx)
		if file != nil {
			err = errors.Join(err, file.Close())
		}
		return err
	}, nil
}

func orDefault(s, d string) string {
	if s == "" {
		return d
	}
	return s
}

// tracer is the tracer of the decorators in this package.
func tracer() trace.Tracer { return otel.Tracer("github.com/imaged/imaged/tracing") }

// Inject writes the trace context of ctx into a new carrier map; nil when ctx holds no valid
// span context, so untraced messages carry nothing.
func Inject(ctx context.Context) map[string]string {
	if !trace.SpanContextFromContext(ctx).IsValid() {
		return nil
	}
	m := propagation.MapCarrier{}
	otel.GetTextMapPropagator().Inject(ctx, m)
	return m
}

// Extract returns ctx carrying the remote span context found in carrier (unchanged when there
// is none).
func Extract(ctx context.Context, carrier map[string]string) context.Context {
	if len(carrier) == 0 {
		return ctx
	}
	return otel.GetTextMapPropagator().Extract(ctx, propagation.MapCarrier(carrier))
}

// TraceParent returns the W3C traceparent of ctx's span, or "".
func TraceParent(ctx context.Context) string {
	return Inject(ctx)["traceparent"]
}

// End records err on span (when it is not nil) and ends it. Expected outcomes (not found, a
// conflict lost to another worker) are recorded as events, not errors.
func End(span trace.Span, err error) {
	if err != nil {
		switch imaged.ErrorCode(err) {
		case imaged.ENotFound, imaged.EConflict:
			span.AddEvent("outcome", trace.WithAttributes(attribute.String("imaged.error_code", imaged.ErrorCode(err))))
		default:
			span.RecordError(err)
			span.SetStatus(codes.Error, err.Error())
		}
	}
	span.End()
}

// System names the backend a URL setting selects as OpenTelemetry's db.system / messaging.system
// attributes want it (postgresql, rabbitmq, sqlite, s3, file, kafka, db).
func System(rawURL string) string {
	scheme, _, _ := strings.Cut(rawURL, "://")
	switch scheme {
	case "postgres", "postgresql":
		return "postgresql"
	case "amqp", "amqps":
		return "rabbitmq"
	}
	return scheme
}

// Start is Setup for a process: Instance defaults to host/pid, and the returned function, for
// exit, flushes the spans still buffered, for at most five seconds, logging a failure.
func Start(ctx context.Context, cfg Config) (stop func(), err error) {
	if cfg.Instance == "" {
		host, _ := os.Hostname()
		cfg.Instance = host + "/" + strconv.Itoa(os.Getpid())
	}
	shutdown, err := Setup(ctx, cfg)
	if err != nil {
		return nil, err
	}
	return func() {
		sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer cancel()
		if err := shutdown(sctx); err != nil {
			slog.Warn("flushing the last spans failed", "error", err.Error())
		}
	}, nil
}
