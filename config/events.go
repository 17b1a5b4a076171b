package config

import (
	"time"

	"github.com/imaged/imaged/settings"
	"github.com/imaged/imaged/webhook"
	"github.com/imaged/imaged/worker"
)

// brokerConfig is the settings of the message brokers' side of imaged: the lease sweep of
// broker queues, webhooks, the periodic health event and the retention sweep. It is part of
// Config.
type brokerConfig struct {
	LeaseSweep     time.Duration
	WebhookSecret  string
	WebhookMaxAge  time.Duration
	WebhookBackoff time.Duration
	WebhookMaxWait time.Duration
	WebhookTimeout time.Duration
	HealthInterval time.Duration
	Retention      worker.RetentionConfig
}

func brokerSettings(c *Config) []settings.Setting {
	return []settings.Setting{
		settings.New("lease-sweep", "IMAGED_LEASE_SWEEP", "how often workers queue again the tasks whose worker died (lease run out)", settings.Duration(&c.LeaseSweep, 10*time.Second)),
		settings.New("webhook-secret", "IMAGED_WEBHOOK_SECRET", "key of the HMAC-SHA256 signature of webhooks; default: generated once into DATA_DIR (set it when processes do not share one)", settings.String(&c.WebhookSecret, "")),
		settings.New("webhook-max-age", "IMAGED_WEBHOOK_MAX_AGE", "how long a webhook delivery is tried before it is given up", settings.Duration(&c.WebhookMaxAge, webhook.DefaultMaxAge)),
		settings.New("webhook-backoff", "IMAGED_WEBHOOK_BACKOFF", "wait before the second try of a webhook; doubles for each later one", settings.Duration(&c.WebhookBackoff, webhook.DefaultBackoff)),
		settings.New("webhook-backoff-max", "IMAGED_WEBHOOK_BACKOFF_MAX", "longest wait between two tries of a webhook", settings.Duration(&c.WebhookMaxWait, webhook.DefaultMaxBackoff)),
		settings.New("webhook-timeout", "IMAGED_WEBHOOK_TIMEOUT", "longest try of a webhook delivery", settings.Duration(&c.WebhookTimeout, webhook.DefaultTimeout)),
		settings.New("retention-tasks", "IMAGED_RETENTION_TASKS", "how long finished tasks are kept; 0 = forever", settings.Duration(&c.Retention.Tasks, worker.DefaultRetentionTasks)),
		settings.New("retention-results", "IMAGED_RETENTION_RESULTS", "how long result images are kept (then the task's result answers 404); 0 = forever", settings.Duration(&c.Retention.Results, worker.DefaultRetentionResults)),
		settings.New("retention-images", "IMAGED_RETENTION_IMAGES", "how long uploaded images, and the results made from them, are kept; 0 = forever", settings.Duration(&c.Retention.Images, 0)),
		settings.New("retention-orphans", "IMAGED_RETENTION_ORPHANS", "age at which a stored blob that no row references is deleted; 0 = never", settings.Duration(&c.Retention.Orphans, worker.DefaultRetentionOrphans)),
		settings.New("retention-interval", "IMAGED_RETENTION_INTERVAL", "how often the retention sweep runs", settings.Duration(&c.Retention.Interval, worker.DefaultRetentionInterval)),
		settings.New("health-event-interval", "IMAGED_HEALTH_EVENT_INTERVAL", "how often a health event (status and key figures) is published; 0 = never", settings.Duration(&c.HealthInterval, 30*time.Second)),
	}
}

func (c *Config) validateBrokers() error {
	return settings.FirstFailure([]settings.Check{
		settings.Rule(c.LeaseSweep >= 100*time.Millisecond, "IMAGED_LEASE_SWEEP", "must be at least 100ms"),
		settings.Rule(c.WebhookMaxAge > 0, "IMAGED_WEBHOOK_MAX_AGE", "must be positive"),
		settings.Rule(c.WebhookBackoff > 0 && c.WebhookMaxWait >= c.WebhookBackoff, "IMAGED_WEBHOOK_BACKOFF", "must be positive and at most IMAGED_WEBHOOK_BACKOFF_MAX"),
		settings.Rule(c.WebhookTimeout > 0, "IMAGED_WEBHOOK_TIMEOUT", "must be positive"),
		settings.Rule(c.Retention.Tasks >= 0, "IMAGED_RETENTION_TASKS", "must be 0 or positive"),
		settings.Rule(c.Retention.Results >= 0, "IMAGED_RETENTION_RESULTS", "must be 0 or positive"),
		settings.Rule(c.Retention.Images >= 0, "IMAGED_RETENTION_IMAGES", "must be 0 or positive"),
		settings.Rule(c.Retention.Orphans == 0 || c.Retention.Orphans >= time.Minute, "IMAGED_RETENTION_ORPHANS", "must be 0 or at least 1m"),
		settings.Rule(c.Retention.Interval >= time.Second, "IMAGED_RETENTION_INTERVAL", "must be at least 1s"),
		settings.Rule(c.HealthInterval == 0 || c.HealthInterval >= time.Second, "IMAGED_HEALTH_EVENT_INTERVAL", "must be 0 or at least 1s"),
	})
}
