package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"runtime"
	"time"

	"github.com/imaged/imaged"
	"github.com/imaged/imaged/kafka"
	"github.com/imaged/imaged/prom"
	"github.com/imaged/imaged/rabbitmq"
	"github.com/imaged/imaged/webhook"
)

// brokerConfig is the settings of the message brokers' side of imaged: the workers' lease
// sweep, webhooks and the periodic health event. It is part of Config.
type brokerConfig struct {
	LeaseSweep      time.Duration
	WebhookSecret   string
	WebhookAttempts int
	WebhookBackoff  time.Duration
	WebhookTimeout  time.Duration
	HealthInterval  time.Duration
}

func brokerSettings(c *Config) []setting {
	str := func(p *string, def string) func(*flag.FlagSet, string, string) {
		return func(fs *flag.FlagSet, n, h string) { fs.StringVar(p, n, def, h) }
	}
	integer := func(p *int, def int) func(*flag.FlagSet, string, string) {
		return func(fs *flag.FlagSet, n, h string) { fs.IntVar(p, n, def, h) }
	}
	dur := func(p *time.Duration, def time.Duration) func(*flag.FlagSet, string, string) {
		return func(fs *flag.FlagSet, n, h string) { fs.DurationVar(p, n, def, h) }
	}
	return []setting{
		{"lease-sweep", "IMAGED_LEASE_SWEEP", "how often workers queue again the tasks whose worker died (lease run out)", dur(&c.LeaseSweep, 10*time.Second)},
		{"webhook-secret", "IMAGED_WEBHOOK_SECRET", "key of the HMAC-SHA256 signature of webhooks; default: generated once into DATA_DIR (set it when processes do not share one)", str(&c.WebhookSecret, "")},
		{"webhook-attempts", "IMAGED_WEBHOOK_ATTEMPTS", "tries of a webhook delivery", integer(&c.WebhookAttempts, webhook.DefaultAttempts)},
		{"webhook-backoff", "IMAGED_WEBHOOK_BACKOFF", "wait before the second try of a webhook; doubles for each later one", dur(&c.WebhookBackoff, webhook.DefaultBackoff)},
		{"webhook-timeout", "IMAGED_WEBHOOK_TIMEOUT", "longest try of a webhook delivery", dur(&c.WebhookTimeout, webhook.DefaultTimeout)},
		{"health-event-interval", "IMAGED_HEALTH_EVENT_INTERVAL", "how often a health event (status and key figures) is published; 0 = never", dur(&c.HealthInterval, 30*time.Second)},
	}
}

func (c *Config) validateBrokers() error {
	checks := []struct {
		ok      bool
		setting string
		msg     string
	}{
		{c.LeaseSweep >= 100*time.Millisecond, "IMAGED_LEASE_SWEEP", "must be at least 100ms"},
		{c.WebhookAttempts >= 1 && c.WebhookAttempts <= 20, "IMAGED_WEBHOOK_ATTEMPTS", "must be between 1 and 20"},
		{c.WebhookBackoff > 0, "IMAGED_WEBHOOK_BACKOFF", "must be positive"},
		{c.WebhookTimeout > 0, "IMAGED_WEBHOOK_TIMEOUT", "must be positive"},
		{c.HealthInterval == 0 || c.HealthInterval >= time.Second, "IMAGED_HEALTH_EVENT_INTERVAL", "must be 0 or at least 1s"},
	}
	for _, ch := range checks {
		if !ch.ok {
			return fmt.Errorf("setting %s: %s", ch.setting, ch.msg)
		}
	}
	return nil
}

// brokerEvents is the event stream of a broker: every process's events, and Local, those of
// this process alone.
type brokerEvents interface {
	imaged.Events
	Local() imaged.Events
	io.Closer
}

// openBroker opens the queue and event stream of an amqp://, amqps:// or kafka:// queue URL.
// The closers are in opening order (closed in reverse: events before the connection).
func openBroker(ctx context.Context, scheme, raw string, log *slog.Logger) (
	imaged.Queue, brokerEvents, []io.Closer, error) {
	switch scheme {
	case "amqp", "amqps":
		rcfg, err := rabbitmq.ParseURL(raw)
		if err != nil {
			return nil, nil, nil, err
		}
		rcfg.Logger = log
		b, err := rabbitmq.Open(ctx, rcfg)
		if err != nil {
			return nil, nil, nil, err
		}
		ev := b.Events(rabbitmq.EventsOptions{})
		return b, ev, []io.Closer{b, ev}, nil
	case "kafka":
		kcfg, err := kafka.ParseURL(raw)
		if err != nil {
			return nil, nil, nil, err
		}
		kcfg.Logger = log
		b, err := kafka.Open(ctx, kcfg)
		if err != nil {
			return nil, nil, nil, err
		}
		ev, err := b.Events(kafka.EventsOptions{})
		if err != nil {
			b.Close()
			return nil, nil, nil, err
		}
		return b, ev, []io.Closer{b, ev}, nil
	}
	return nil, nil, nil, fmt.Errorf("unsupported scheme %q (use db://, amqp://, amqps:// or kafka://)", scheme)
}

// webhookSecret returns the signing key of webhooks: the setting, or one generated once and
// kept in the data directory.
func webhookSecret(cfg *Config, log *slog.Logger) ([]byte, error) {
	if cfg.WebhookSecret != "" {
		return []byte(cfg.WebhookSecret), nil
	}
	path := filepath.Join(cfg.DataDir, "webhook-secret")
	if b, err := os.ReadFile(path); err == nil && len(b) >= 32 {
		return b, nil
	}
	var k [32]byte
	if _, err := rand.Read(k[:]); err != nil {
		return nil, err
	}
	secret := []byte(hex.EncodeToString(k[:]))
	if err := os.WriteFile(path, secret, 0o600); err != nil {
		return nil, fmt.Errorf("writing the webhook signing key: %w", err)
	}
	log.Warn("IMAGED_WEBHOOK_SECRET is not set: webhooks are signed with a key generated into the data directory; "+
		"give receivers that key, and set the setting when several processes send webhooks", "path", path)
	return secret, nil
}

// runWebhooks sends the callbacks of the tasks and batches this process finishes, until ctx
// is cancelled.
func runWebhooks(ctx context.Context, cfg *Config, a *adapters, log *slog.Logger) error {
	secret, err := webhookSecret(cfg, log)
	if err != nil {
		return err
	}
	d, err := webhook.New(webhook.Config{Secret: secret, Attempts: cfg.WebhookAttempts, Backoff: cfg.WebhookBackoff,
		Timeout: cfg.WebhookTimeout, Client: newOutbound(cfg).HTTPClient(), Store: a.store, Logger: log})
	if err != nil {
		return err
	}
	return d.Run(ctx, a.localEvents)
}

// publishHealth publishes a health event every cfg.HealthInterval until ctx is cancelled: the
// process's status (every required check passing or not) and key figures.
func publishHealth(ctx context.Context, cfg *Config, a *adapters, role, workerID string, metrics *prom.Metrics) {
	if cfg.HealthInterval <= 0 || a.events == nil {
		return
	}
	host, _ := os.Hostname()
	start := time.Now()
	t := time.NewTicker(cfg.HealthInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		status := "ok"
		checks := map[string]string{}
		for _, c := range a.health() {
			if err := c.Check(cctx); err != nil {
				checks[c.Name] = "down"
				if c.Required {
					status = "degraded"
				}
			} else {
				checks[c.Name] = "ok"
			}
		}
		depth, _ := a.queue.Depth(cctx)
		cancel()
		data, _ := json.Marshal(map[string]any{
			"role": role, "host": host, "pid": os.Getpid(), "version": versionString(), "checks": checks,
			"queue_depth": depth, "workers": cfg.Workers, "goroutines": runtime.NumGoroutine(),
			"uptime_seconds": int64(time.Since(start).Seconds()),
		})
		_ = a.events.Publish(ctx, imaged.Event{Type: imaged.EventHealth, Status: status, WorkerID: workerID, Data: data})
	}
}
