package prom

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"slices"
	"time"

	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/imaged/imaged"
)

// Serve serves /metrics on addr, apart from the API, until the returned server is closed.
// setting names the setting addr came from, for the error when addr cannot be listened on.
func (m *Metrics) Serve(addr, setting string, log *slog.Logger) (*http.Server, error) {
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", promhttp.HandlerFor(m.Registry, promhttp.HandlerOpts{}))
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second, ReadTimeout: 30 * time.Second,
		WriteTimeout: 30 * time.Second, IdleTimeout: 2 * time.Minute, MaxHeaderBytes: 16 << 10}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("setting %s: cannot listen on %s: %w", setting, addr, err)
	}
	log.Info("metrics serving", "addr", ln.Addr().String())
	go srv.Serve(ln)
	return srv, nil
}

// GaugeQueueDepth keeps tasks_queued current for dashboards and autoscalers, reading q every
// five seconds until ctx is cancelled.
func (m *Metrics) GaugeQueueDepth(ctx context.Context, q imaged.Queue, log *slog.Logger) {
	t := time.NewTicker(5 * time.Second)
	defer t.Stop()
	for {
		dctx, cancel := context.WithTimeout(ctx, 3*time.Second)
		depth, err := q.Depth(dctx)
		cancel()
		if err == nil {
			for _, typ := range imaged.TaskTypes {
				m.TasksQueued.WithLabelValues(typ).Set(float64(depth[typ]))
			}
			for key, n := range depth {
				if !slices.Contains(imaged.TaskTypes, key) {
					// A queue that cannot split its depth by type (Kafka: one topic) says "all".
					m.TasksQueued.WithLabelValues(key).Set(float64(n))
				}
			}
		} else if ctx.Err() == nil {
			log.Warn("reading the queue depth failed", "error", err.Error())
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}
