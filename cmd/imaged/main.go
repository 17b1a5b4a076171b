// Command imaged is the image service: `imaged serve` runs the API and workers in one process,
// `imaged worker` runs workers only, `imaged migrate` manages the database schema; the client
// commands (upload, process, submit, ocr, detect, watch, health) are package cli's.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"runtime/debug"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/imaged/imaged"
	"github.com/imaged/imaged/cli"
	"github.com/imaged/imaged/config"
	imagedhttp "github.com/imaged/imaged/http"
	"github.com/imaged/imaged/prom"
	"github.com/imaged/imaged/settings"
	"github.com/imaged/imaged/tracing"
	"github.com/imaged/imaged/vips"
	"github.com/imaged/imaged/worker"
)

// Config is every setting imaged reads (package config).
type Config = config.Config

// version is set at build time with -ldflags "-X main.version=…".
var version = "dev"

func main() {
	// Tesseract's OpenMP reads OMP_THREAD_LIMIT when the library loads, before any Go code
	// runs; one thread per recognition is 5–7× faster on small machines, so the process
	// restarts itself once with the limit set unless the caller chose one.
	if os.Getenv("OMP_THREAD_LIMIT") == "" {
		if exe, err := os.Executable(); err == nil {
			env := append(os.Environ(), "OMP_THREAD_LIMIT=1")
			err = syscall.Exec(exe, os.Args, env)
			fmt.Fprintln(os.Stderr, "imaged: restarting with OMP_THREAD_LIMIT=1 failed:", err)
		}
	}
	if err := run(context.Background(), os.Args[1:], os.Getenv, os.Stdout, os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "imaged:", err)
		os.Exit(1)
	}
}

const usage = `usage: imaged <command> [flags]

commands:
  serve            run the API and workers (embedded defaults when no URLs are set)
  worker           run workers only
  migrate up       apply database migrations
  migrate status   show applied and pending migrations
  apikey create    make an API key (printed once); apikey list, apikey revoke ID|PREFIX
  tenant set T     set a tenant's quotas and limits; tenant list shows them with usage
  sign PATH        print the signed URL of ops/…/IMAGE_ID for GET /i/…
  version          print the version

Every flag has an IMAGED_* environment variable; run 'imaged serve -h' for the list.

client commands (a server at IMAGED_URL, the key in IMAGED_KEY; 'imaged COMMAND -h' for each):
`

func run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	err := dispatch(ctx, args, getenv, stdout, stderr)
	// -h is no failure: the command's help goes to stdout.
	var help *config.Help
	if errors.As(err, &help) {
		fmt.Fprint(stdout, help.Text)
		return nil
	}
	return err
}

func dispatch(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		fmt.Fprintln(stderr, usage+cli.Summary())
		return errors.New("no command given")
	}
	if cli.Has(args[0]) {
		ctx, stop := signal.NotifyContext(ctx, syscall.SIGINT, syscall.SIGTERM)
		defer stop()
		return cli.Run(ctx, args, cli.Env{Getenv: getenv, Stdout: stdout, Stderr: stderr, Local: localPipeline,
			Version: versionString()})
	}
	switch args[0] {
	case "version", "--version", "-v":
		fmt.Fprintln(stdout, "imaged", versionString())
		return nil
	case "serve", "worker":
		cfg, err := config.Parse(args[0], args[1:], getenv)
		if err != nil {
			return err
		}
		ctx, stop := signal.NotifyContext(ctx, syscall.SIGINT, syscall.SIGTERM)
		defer stop()
		return serve(ctx, cfg, args[0] == "serve", stderr)
	case "migrate":
		if len(args) < 2 || (args[1] != "up" && args[1] != "status") {
			return errors.New("usage: imaged migrate up|status [flags]")
		}
		cfg, err := config.Parse("migrate", args[2:], getenv)
		if err != nil {
			return err
		}
		return migrate(ctx, cfg, args[1], stdout)
	case "apikey", "tenant":
		return adminCommand(ctx, args[0], args[1:], getenv, stdout, stderr)
	case "sign":
		return signCommand(args[1:], getenv, stdout, stderr)
	case "help", "-h", "--help":
		fmt.Fprintln(stdout, usage+cli.Summary())
		return nil
	}
	fmt.Fprintln(stderr, usage+cli.Summary())
	return fmt.Errorf("unknown command %q", args[0])
}

// typesOrAll names the task types workers run, for the log.
func typesOrAll(types []string) string {
	if len(types) == 0 {
		return "all"
	}
	return strings.Join(types, ",")
}

func versionString() string {
	if version != "dev" {
		return version
	}
	if bi, ok := debug.ReadBuildInfo(); ok {
		for _, s := range bi.Settings {
			if s.Key == "vcs.revision" && len(s.Value) >= 12 {
				return "dev-" + s.Value[:12]
			}
		}
	}
	return version
}

func newLogger(cfg *Config, w io.Writer) *slog.Logger {
	var level slog.Level
	_ = level.UnmarshalText([]byte(cfg.LogLevel))
	opts := &slog.HandlerOptions{Level: level}
	var h slog.Handler = slog.NewJSONHandler(w, opts)
	if cfg.LogFormat == "text" {
		h = slog.NewTextHandler(w, opts)
	}
	return slog.New(tracing.LogHandler{Handler: imaged.ContextHandler{Handler: h}})
}

// serve runs the API (when api is true) and cfg.Workers workers until ctx is cancelled, then
// shuts down gracefully: stop accepting, let requests and running tasks finish within the
// grace period, put back what could not finish.
func serve(ctx context.Context, cfg *Config, api bool, logw io.Writer) error {
	log := newLogger(cfg, logw)
	slog.SetDefault(log)
	role := map[bool]string{true: "api", false: "worker"}[api]
	if api && cfg.Workers > 0 {
		role = "api+worker"
	}
	flushSpans, err := setupTracing(ctx, cfg, role)
	if err != nil {
		return err
	}
	defer flushSpans()
	metrics := prom.New()
	metrics.SetMaxTenants(cfg.MetricsTenants)
	a, err := openAdapters(ctx, cfg, log, metrics)
	if err != nil {
		return err
	}
	defer a.close()
	a.traced(cfg)

	eng, err := newEngines(cfg, metrics)
	if err != nil {
		return err
	}
	eng.useUploads(a, cfg.Limits())
	defer eng.close()
	defer vips.Shutdown()
	processor := eng.processor

	var wg sync.WaitGroup
	workCtx, stopWork := context.WithCancel(context.WithoutCancel(ctx))
	defer stopWork()
	workerID := ""
	// Every process sends the outbox; a moment after the workers stop, so the last callbacks go out.
	hookCtx, stopHooks := context.WithCancel(context.WithoutCancel(ctx))
	defer stopHooks()
	if cfg.Workers == 0 {
		context.AfterFunc(workCtx, stopHooks)
	}
	wg.Add(1)
	go func() {
		defer wg.Done()
		if err := runOutbox(hookCtx, cfg, a, metrics, log); err != nil {
			log.Error("the outbox sender stopped with an error", "error", err.Error())
		}
	}()
	if cfg.Workers > 0 {
		w := worker.New(worker.Config{
			Concurrency: cfg.Workers, Types: cfg.Types(), Deadline: cfg.TaskDeadline, Grace: cfg.ShutdownGrace, Lease: cfg.TaskLease,
			BackoffBase: cfg.RetryBackoff, URLExpiry: cfg.URLExpiry, SweepInterval: cfg.LeaseSweep,
			OutageDeadline: cfg.OutageDeadline, Checks: a.health(),
		}, a.store, a.queue, a.blobs, processor, a.events, metrics, log)
		workerID = w.ID()
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() { time.AfterFunc(time.Second, stopHooks) }()
			log.Info("workers started", "worker_id", w.ID(), "concurrency", cfg.Workers, "types", typesOrAll(cfg.Types()))
			if err := w.Run(workCtx); err != nil {
				log.Error("worker stopped with an error", "error", err.Error())
			}
		}()
	}
	wg.Add(1)
	go func() {
		defer wg.Done()
		hp := imaged.HealthPublisher{Events: a.events, Queue: a.queue, Checks: a.health(), Interval: cfg.HealthInterval,
			Role: role, WorkerID: workerID, Version: versionString(), Workers: cfg.Workers}
		hp.Run(workCtx)
	}()
	wg.Add(1)
	go func() {
		defer wg.Done()
		metrics.GaugeQueueDepth(workCtx, a.queue, log)
	}()
	if a.retention != nil {
		wg.Add(1)
		go func() {
			defer wg.Done()
			worker.NewRetention(cfg.Retention, a.retention, a.blobs, metrics, log).Run(workCtx)
		}()
	}
	fail := func(err error) error {
		stopWork()
		wg.Wait()
		return err
	}
	if cfg.MetricsAddr != "" {
		metricsSrv, err := metrics.Serve(cfg.MetricsAddr, "IMAGED_METRICS_ADDR", log)
		if err != nil {
			return fail(err)
		}
		defer metricsSrv.Close()
	}

	var srv *http.Server
	errc := make(chan error, 1)
	if api {
		handler, err := newAPI(ctx, cfg, a, processor, metrics, log)
		if err != nil {
			return fail(err)
		}
		srv = &http.Server{
			Addr: cfg.Addr, Handler: handler,
			ReadHeaderTimeout: cfg.ReadHeaderTimeout, ReadTimeout: cfg.ReadTimeout, WriteTimeout: cfg.WriteTimeout,
			IdleTimeout: cfg.IdleTimeout, MaxHeaderBytes: imagedhttp.HeaderReadLimit,
			BaseContext: func(net.Listener) context.Context { return context.WithoutCancel(ctx) },
		}
		ln, err := net.Listen("tcp", cfg.Addr)
		if err != nil {
			return fail(fmt.Errorf("setting IMAGED_ADDR: cannot listen on %s: %w", cfg.Addr, err))
		}
		log.Info("imaged serving", "addr", ln.Addr().String(), "version", versionString(),
			"database", settings.RedactURL(a.databaseURL), "queue", settings.RedactURL(a.queueURL), "storage", settings.RedactURL(a.storageURL),
			"cache", settings.RedactURL(a.redisURL), "workers", cfg.Workers)
		go func() { errc <- srv.Serve(ln) }()
	}

	select {
	case <-ctx.Done():
		log.Info("shutting down", "grace", cfg.ShutdownGrace.String())
	case err := <-errc:
		return fail(fmt.Errorf("http server: %w", err))
	}
	if srv != nil {
		sctx, cancel := context.WithTimeout(context.Background(), cfg.ShutdownGrace)
		if err := srv.Shutdown(sctx); err != nil {
			log.Warn("requests still running at the end of the grace period were cut", "error", err.Error())
		}
		cancel()
	}
	stopWork()
	wg.Wait()
	log.Info("shutdown complete")
	return nil
}
