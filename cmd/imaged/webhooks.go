package main

import (
	"context"
	"log/slog"
	"path/filepath"

	"github.com/imaged/imaged"
	"github.com/imaged/imaged/prom"
	"github.com/imaged/imaged/settings"
	"github.com/imaged/imaged/webhook"
)

// webhookSecret returns the signing key of webhooks: the setting, or one generated once and
// kept in the data directory.
func webhookSecret(cfg *Config, log *slog.Logger) ([]byte, error) {
	if cfg.WebhookSecret != "" {
		return []byte(cfg.WebhookSecret), nil
	}
	secret, created, err := settings.HexSecret(cfg.DataDir, "webhook-secret", "the webhook signing key")
	if err != nil || !created {
		return secret, err
	}
	log.Warn("IMAGED_WEBHOOK_SECRET is not set: webhooks are signed with a key generated into the data directory; "+
		"give receivers that key, and set the setting when several processes send webhooks", "path", filepath.Join(cfg.DataDir, "webhook-secret"))
	return secret, nil
}

// runOutbox sends what waits in the outbox (webhooks, and events that waited for the broker)
// until ctx is cancelled.
func runOutbox(ctx context.Context, cfg *Config, a *adapters, metrics *prom.Metrics, log *slog.Logger) error {
	secret, err := webhookSecret(cfg, log)
	if err != nil || a.outbox == nil {
		return err
	}
	events, _ := a.events.(imaged.EventSender)
	s, err := webhook.New(webhook.Config{Secret: secret, Outbox: a.outbox, Events: events, Backoff: cfg.WebhookBackoff,
		MaxBackoff: cfg.WebhookMaxWait, MaxAge: cfg.WebhookMaxAge, Timeout: cfg.WebhookTimeout,
		Client: newOutbound(cfg).HTTPClient(), Metrics: metrics, Logger: log})
	if err != nil {
		return err
	}
	s.Run(ctx)
	return nil
}
