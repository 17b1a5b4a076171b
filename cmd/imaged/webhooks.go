package main

import (
	"context"
	"log/slog"
	"path/filepath"

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
