package main

import (
	"context"
	"fmt"

	"github.com/imaged/imaged/tracing"
)

// setupTracing installs the tracer provider the settings ask for; the returned function flushes
// the spans still buffered at exit.
func setupTracing(ctx context.Context, cfg *Config, role string) (func(), error) {
	stop, err := tracing.Start(ctx, tracing.Config{
		Exporter: cfg.TraceExporter, Endpoint: cfg.TraceEndpoint, File: cfg.TraceFile, SampleRatio: cfg.TraceSampleRatio,
		Service: "imaged", Version: versionString(), Role: role,
	})
	if err != nil {
		return nil, fmt.Errorf("setting IMAGED_TRACE_EXPORTER: %w", err)
	}
	return stop, nil
}

// traced wraps the task store, blob store and queue in span-making decorators when tracing is
// on. The database queue keeps the undecorated store: its claim polls are not worth a span.
func (a *adapters) traced(cfg *Config) {
	if !cfg.TracingOn() {
		return
	}
	a.store = tracing.Store(a.store, tracing.System(a.databaseURL))
	a.blobs = tracing.Blobs(a.blobs, tracing.System(a.storageURL))
	a.queue = tracing.Queue(a.queue, tracing.System(a.queueURL))
}
