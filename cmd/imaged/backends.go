package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/imaged/imaged"
	"github.com/imaged/imaged/dbqueue"
	"github.com/imaged/imaged/fs"
	imagedhttp "github.com/imaged/imaged/http"
	"github.com/imaged/imaged/inmem"
	"github.com/imaged/imaged/postgres"
	"github.com/imaged/imaged/prom"
	"github.com/imaged/imaged/redis"
	"github.com/imaged/imaged/resilience"
	"github.com/imaged/imaged/s3"
	"github.com/imaged/imaged/settings"
	"github.com/imaged/imaged/sqlite"
)

// adapters are the backends chosen by URL.
type adapters struct {
	store  imaged.TaskStore
	queue  imaged.Queue
	blobs  imaged.BlobStore
	events imaged.Events
	// localEvents are the events of this process alone (with a broker, events holds every
	// process's): webhooks are sent from them, once per event.
	localEvents imaged.Events

	cache *redis.Client
	keys  imaged.APIKeyStore // the database's API keys; nil when it keeps none
	// retention is the database's side of the retention sweep; nil when it has none.
	retention imaged.RetentionStore
	outbox    imaged.Outbox // the database's outbox

	databaseURL, queueURL, storageURL, redisURL string
	closers                                     []io.Closer
}

func (a *adapters) close() {
	for i := len(a.closers) - 1; i >= 0; i-- {
		_ = a.closers[i].Close()
	}
}

func (a *adapters) health() []imagedhttp.HealthCheck {
	checks := []imagedhttp.HealthCheck{
		{Name: "database", Required: true, Check: a.store.Ping},
		{Name: "storage", Required: true, Check: a.blobs.Ping},
		{Name: "queue", Required: true, Check: a.queue.Ping},
	}
	if a.cache != nil {
		// The cache is an optimisation: its outage degrades, never fails, readiness.
		checks = append(checks, imagedhttp.HealthCheck{Name: "cache", Required: false, Check: a.cache.Ping})
	}
	return checks
}

// openAdapters opens the task store, queue, blob store and event bus named by the settings.
// A malformed or unreachable backend fails start-up naming its setting.
func openAdapters(ctx context.Context, cfg *Config, log *slog.Logger, metrics *prom.Metrics) (*adapters, error) {
	a := &adapters{}
	ok := false
	defer func() {
		if !ok {
			a.close()
		}
	}()
	if err := os.MkdirAll(cfg.DataDir, 0o755); err != nil {
		return nil, fmt.Errorf("setting IMAGED_DATA_DIR: %w", err)
	}

	a.databaseURL = cfg.Database()
	store, embedded, err := openStore(ctx, a.databaseURL, cfg.NoMigrate)
	if err != nil {
		return nil, fmt.Errorf("setting IMAGED_DATABASE_URL: %w", err)
	}
	a.closers = append(a.closers, store)
	a.keys, _ = store.(imaged.APIKeyStore)
	a.retention, _ = store.(imaged.RetentionStore)
	a.outbox, _ = store.(imaged.Outbox)
	rm := resilience.NewMetrics(metrics.Registry)
	retry := resilience.RetryConfig{MaxAttempts: cfg.StoreRetries, Initial: cfg.StoreRetryWait}
	store = resilience.Store(store, resilience.StoreConfig{Retry: retry,
		Breaker: resilience.BreakerConfig{Name: "database", Failures: uint32(cfg.BreakerFailures), Recovery: cfg.BreakerRecovery, Log: log}}, rm)
	a.redisURL = cfg.RedisURL
	if cfg.RedisURL != "" {
		redis.RouteLibraryLogs(log)
		c, err := redis.Open(ctx, cfg.RedisURL, redis.Options{ResultTTL: cfg.ResultTTL, MetadataTTL: cfg.MetadataTTL,
			Metrics: redis.NewMetrics(metrics.Registry),
			Breaker: resilience.NewBreaker(resilience.BreakerConfig{Name: "cache", Failures: uint32(cfg.BreakerFailures),
				Recovery: cfg.BreakerRecovery, Log: log}, rm)})
		if err != nil {
			return nil, fmt.Errorf("setting IMAGED_REDIS_URL: %w", err)
		}
		a.closers = append(a.closers, c)
		if err := c.Ping(ctx); err != nil {
			log.Warn("redis is not answering; reads go to the database until it does", "error", err.Error())
		}
		// Outside the database breaker: cached results are still served while it is open.
		store = redis.CachedStore(store, c, log)
		a.cache = c
	}
	a.store = store
	if embedded {
		// An embedded database belongs to this process alone: whatever it shows as processing
		// was cut short by a crash or kill, and runs again now.
		ids, err := store.RequeueExpired(ctx, time.Now(), true)
		if err != nil {
			return nil, fmt.Errorf("recovering interrupted tasks: %w", err)
		}
		if len(ids) > 0 {
			log.Warn("tasks interrupted by the previous run were queued again", "count", len(ids))
		}
	}

	a.queueURL = cfg.QueueURL
	if a.queueURL == "" {
		a.queueURL = "db://"
	}
	qu, err := url.Parse(a.queueURL)
	if err != nil {
		return nil, fmt.Errorf("setting IMAGED_QUEUE_URL: %w", err)
	}
	switch qu.Scheme {
	case "db":
		q := dbqueue.New(store, dbqueue.Options{PollInterval: cfg.PollInterval})
		a.queue = q
		a.closers = append(a.closers, q)
	case "amqp", "amqps", "kafka":
		q, ev, closers, err := openBroker(ctx, qu.Scheme, a.queueURL, a.outbox, log)
		if err != nil {
			return nil, fmt.Errorf("setting IMAGED_QUEUE_URL: %w", err)
		}
		metrics.CountDroppedEvents(ev.Dropped)
		a.queue, a.events, a.localEvents = q, ev, ev.Local()
		a.closers = append(a.closers, closers...)
	default:
		return nil, fmt.Errorf("setting IMAGED_QUEUE_URL: unsupported scheme %q (use db://, amqp:// or kafka://)", qu.Scheme)
	}

	a.storageURL = cfg.StorageURL
	if a.storageURL == "" {
		a.storageURL = "file://" + filepath.Join(cfg.DataDir, "blobs")
	}
	blobs, err := openBlobs(ctx, cfg, a.storageURL)
	if err != nil {
		return nil, fmt.Errorf("setting IMAGED_STORAGE_URL: %w", err)
	}
	a.blobs = resilience.Blobs(blobs, resilience.BlobConfig{Retry: retry,
		Breaker: resilience.BreakerConfig{Name: "storage", Failures: uint32(cfg.BreakerFailures), Recovery: cfg.BreakerRecovery, Log: log},
		Upload:  resilience.BreakerConfig{Name: "storage_upload", Failures: uint32(cfg.UploadFailures), Recovery: cfg.UploadRecovery, Log: log},
	}, rm)

	if a.events == nil {
		bus := inmem.NewEvents(inmem.EventsOptions{})
		a.events, a.localEvents = bus, bus
		a.closers = append(a.closers, bus)
	}
	ok = true
	return a, nil
}

func openStore(ctx context.Context, raw string, noMigrate bool) (imaged.TaskStore, bool, error) {
	scheme, rest, found := strings.Cut(raw, "://")
	if !found {
		return nil, false, fmt.Errorf("%q is not a URL (want sqlite://PATH)", raw)
	}
	switch scheme {
	case "sqlite":
		if rest == "" {
			return nil, false, errors.New("sqlite:// needs a file path")
		}
		s, err := sqlite.Open(ctx, rest)
		if err != nil {
			return nil, false, err
		}
		return s, true, nil
	case "postgres", "postgresql":
		pcfg, err := postgres.ParseURL(raw)
		if err != nil {
			return nil, false, err
		}
		pcfg.NoMigrate = noMigrate
		s, err := postgres.Open(ctx, pcfg)
		if err != nil {
			return nil, false, err
		}
		// Shared by several processes: interrupted tasks come back when their lease runs out.
		return s, false, nil
	}
	return nil, false, fmt.Errorf("unsupported scheme %q (use sqlite://PATH or postgres://…)", scheme)
}

func openBlobs(ctx context.Context, cfg *Config, raw string) (imaged.BlobStore, error) {
	scheme, rest, found := strings.Cut(raw, "://")
	if !found {
		return nil, fmt.Errorf("%q is not a URL (want file://DIR or s3://BUCKET)", raw)
	}
	switch scheme {
	case "file":
		if rest == "" {
			return nil, errors.New("file:// needs a directory")
		}
		secret, err := urlSecret(cfg)
		if err != nil {
			return nil, err
		}
		return fs.New(rest, fs.Options{BaseURL: publicURL(cfg), Secret: secret, FromRequest: cfg.PublicURL == ""})
	case "s3":
		s3cfg, err := s3.ParseURL(raw)
		if err != nil {
			return nil, err
		}
		if s3cfg.PresignExpiry == 0 {
			s3cfg.PresignExpiry = cfg.URLExpiry
		}
		return s3.New(ctx, s3cfg)
	}
	return nil, fmt.Errorf("unsupported scheme %q (use file://DIR or s3://BUCKET)", scheme)
}

func publicURL(cfg *Config) string { return settings.BaseURL(cfg.PublicURL, cfg.Addr) }

// urlSecret returns the key signing local-disk URLs: the setting, or one generated once and
// kept in the data directory so URLs stay valid across restarts.
func urlSecret(cfg *Config) ([]byte, error) {
	if cfg.URLSecret != "" {
		return []byte(cfg.URLSecret), nil
	}
	secret, _, err := settings.HexSecret(cfg.DataDir, "url-secret", "the URL signing key")
	return secret, err
}
