// Package webhook sends what waits in the outbox: the completion callbacks of tasks and
// batches, and the events that could not reach the broker when they were published.
//
// A task or batch created with a callback_url gets, when it finishes, a POST of its JSON (the
// task with its result or error, or the batch with its tasks). The delivery is a row of the
// task store written in the transaction that records the outcome, so it survives restarts and
// kill -9, and whichever imaged process is alive sends it. Each request is signed twice, so the
// receiver can check it came from imaged with a stock Standard Webhooks library or with Verify:
//
//	webhook-id:         <the same on every try; receivers deduplicate on it>
//	webhook-timestamp:  <unix seconds>
//	webhook-signature:  v1,<base64 HMAC-SHA256(secret, "<id>.<timestamp>." + body)>
//	X-Imaged-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256(secret, "<t>." + body)>
//	X-Imaged-Delivery:  <the webhook id>
//	X-Imaged-Event:     task.completed | task.failed | task.cancelled | batch.completed
//
// A delivery is tried until the receiver answers 2xx, waiting Backoff, 2·Backoff, … (with
// jitter, at most MaxBackoff) between tries, for up to MaxAge. Requests go through the outbound
// client, so callback URLs obey the same address policy as URL sources; a refused URL is not
// tried again.
package webhook

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/imaged/imaged"
	"github.com/imaged/imaged/outbound"
	"github.com/imaged/imaged/prom"
)

// Defaults for Config fields left zero.
const (
	DefaultBackoff     = time.Second
	DefaultMaxBackoff  = time.Hour
	DefaultMaxAge      = 24 * time.Hour
	DefaultTimeout     = 10 * time.Second
	DefaultConcurrency = 4
	DefaultPoll        = time.Second
)

// Config tunes a Sender.
type Config struct {
	// Secret keys the signatures. Required.
	Secret []byte
	// Outbox holds the deliveries. Required.
	Outbox imaged.Outbox
	// Events publishes the events that waited for the broker; nil leaves them to a process
	// that has a broker.
	Events imaged.EventSender
	// Backoff is the wait after the first failed try, doubling after each later one up to
	// MaxBackoff; a delivery still failing MaxAge after it became pending is given up.
	Backoff    time.Duration
	MaxBackoff time.Duration
	MaxAge     time.Duration
	// Timeout bounds one try.
	Timeout time.Duration
	// Concurrency is how many tries run at once, and how many items one claim takes: every
	// item claimed is tried at once, so that it ends within Timeout, well inside its lease.
	Concurrency int
	// Poll is how often the outbox is looked at for due items.
	Poll time.Duration
	// Lease is how long a claimed item stays this sender's; 3·Timeout and at least a minute
	// when zero. An item whose sender died is tried again after it.
	Lease time.Duration
	// Client sends the requests; it must enforce the outbound address policy. The policy's
	// default client (no private or loopback peers) when nil.
	Client  *http.Client
	Metrics *prom.Metrics // nil: none
	Logger  *slog.Logger
}

// Sender sends due outbox items until its context ends.
type Sender struct {
	cfg Config
	log *slog.Logger
}

// New returns a sender; Run starts it.
func New(cfg Config) (*Sender, error) {
	if len(cfg.Secret) == 0 {
		return nil, errors.New("webhook: a signing secret is required")
	}
	if cfg.Outbox == nil {
		return nil, errors.New("webhook: an outbox is required")
	}
	cfg = imaged.WithDefaults(cfg, Config{
		Backoff:     DefaultBackoff,
		MaxBackoff:  DefaultMaxBackoff,
		MaxAge:      DefaultMaxAge,
		Timeout:     DefaultTimeout,
		Concurrency: DefaultConcurrency,
		Poll:        DefaultPoll,
		Lease:       max(3*cfg.Timeout, time.Minute),
		Logger:      slog.Default(),
	})
	if cfg.Client == nil {
		cfg.Client = outbound.New(outbound.Config{Timeout: cfg.Timeout, MaxRedirects: -1}).HTTPClient()
	}
	return &Sender{cfg: cfg, log: cfg.Logger.With("component", "outbox")}, nil
}

// Run sends due items every Poll until ctx is cancelled. A try in progress finishes (within
// Timeout); items not tried stay in the outbox for the next process.
func (s *Sender) Run(ctx context.Context) {
	s.round(ctx)
	imaged.Every(ctx, s.cfg.Poll, func() { s.round(ctx) })
}

// round sends what is due now, claim after claim, and updates the backlog gauge.
func (s *Sender) round(ctx context.Context) {
	kinds := []string{imaged.OutboxWebhook}
	if s.cfg.Events != nil {
		kinds = append(kinds, imaged.OutboxEvent)
	}
	for _, kind := range kinds {
		for ctx.Err() == nil {
			items, err := s.cfg.Outbox.ClaimOutbox(ctx, kind, s.cfg.Concurrency, s.cfg.Lease)
			if err != nil {
				if ctx.Err() == nil {
					s.log.WarnContext(ctx, "claiming outbox items failed", "kind", kind, "error", err.Error())
				}
				break
			}
			s.sendAll(ctx, items)
			if len(items) < s.cfg.Concurrency {
				break
			}
		}
	}
	s.gaugeBacklog(ctx)
}

func (s *Sender) sendAll(ctx context.Context, items []*imaged.OutboxItem) {
	var wg sync.WaitGroup
	for _, it := range items {
		wg.Go(func() { s.try(ctx, it) })
	}
	wg.Wait()
}

func (s *Sender) gaugeBacklog(ctx context.Context) {
	if s.cfg.Metrics == nil {
		return
	}
	backlog, err := s.cfg.Outbox.OutboxBacklog(ctx)
	if err != nil {
		return
	}
	for _, kind := range []string{imaged.OutboxWebhook, imaged.OutboxEvent} {
		age := 0.0
		if since, ok := backlog[kind]; ok {
			age = max(time.Since(since).Seconds(), 0)
		}
		s.cfg.Metrics.OutboxOldestPending.WithLabelValues(kind).Set(age)
	}
}

// try sends one claimed item once and records the outcome.
func (s *Sender) try(ctx context.Context, it *imaged.OutboxItem) {
	log := s.log.With("delivery_id", it.ID, "webhook_id", it.WebhookID, "kind", it.Kind, "event", it.Event,
		"task_id", it.TaskID, "batch_id", it.BatchID, "try", it.Attempts)
	// A try in progress is not cut short by shutdown; it is bounded by Timeout.
	tctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), s.cfg.Timeout)
	status, err := s.send(tctx, it)
	cancel()
	o := imaged.OutboxOutcome{StatusCode: status, Delivered: err == nil}
	outcome := prom.OutboxDelivered
	if err != nil {
		o.Error = err.Error()
		var refused *outbound.RefusedError
		deadline := it.PendingSince.Add(s.cfg.MaxAge)
		next := time.Now().Add(imaged.Backoff(s.cfg.Backoff, s.cfg.MaxBackoff, it.Attempts))
		switch {
		case errors.As(err, &refused), !time.Now().Before(deadline):
			o.GiveUp, outcome = true, prom.OutboxFailed
		default:
			// The last try falls at the end of MaxAge rather than past it.
			o.NextAttemptAt, outcome = minTime(next, deadline), prom.OutboxRetrying
		}
	}
	if s.cfg.Metrics != nil {
		s.cfg.Metrics.OutboxAttempts.WithLabelValues(it.Kind, outcome).Inc()
	}
	if ferr := s.cfg.Outbox.FinishOutbox(context.WithoutCancel(ctx), it.ID, it.Claim, o); ferr != nil {
		log.Warn("recording an outbox try failed; the item comes back when its lease ends", "error", ferr.Error())
	}
	switch outcome {
	case prom.OutboxDelivered:
		log.Info("outbox item delivered", "status", status)
	case prom.OutboxFailed:
		log.Error("outbox item failed; giving up", "status", status, "error", o.Error)
	default:
		log.Warn("outbox item failed; trying again", "status", status, "error", o.Error,
			"retry_in", time.Until(o.NextAttemptAt).Round(time.Millisecond).String())
	}
}

func minTime(a, b time.Time) time.Time {
	if a.Before(b) {
		return a
	}
	return b
}

// send makes one try: an event to the broker, or a signed POST to the callback URL. It
// returns the receiver's status and an error unless it took the item.
func (s *Sender) send(ctx context.Context, it *imaged.OutboxItem) (int, error) {
	if it.Kind == imaged.OutboxEvent {
		var ev imaged.Event
		if err := json.Unmarshal(it.Payload, &ev); err != nil {
			return 0, &outbound.RefusedError{Reason: "the stored event is unreadable: " + err.Error()}
		}
		return 0, s.cfg.Events.SendEvent(ctx, ev)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, it.URL, bytes.NewReader(it.Payload))
	if err != nil {
		return 0, &outbound.RefusedError{Reason: "the callback URL is not valid: " + err.Error()}
	}
	now := time.Now()
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set(HeaderWebhookID, it.WebhookID)
	req.Header.Set(HeaderWebhookTimestamp, strconv.FormatInt(now.Unix(), 10))
	req.Header.Set(HeaderWebhookSignature, SignStandard(s.cfg.Secret, it.WebhookID, now, it.Payload))
	req.Header.Set(HeaderDelivery, it.WebhookID)
	req.Header.Set(HeaderEvent, it.Event)
	req.Header.Set(HeaderSignature, Sign(s.cfg.Secret, now, it.Payload))
	if it.CorrelationID != "" {
		req.Header.Set("X-Correlation-ID", it.CorrelationID)
	}
	resp, err := s.cfg.Client.Do(req)
	if err != nil {
		return 0, err
	}
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	resp.Body.Close()
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return resp.StatusCode, fmt.Errorf("the receiver answered %s", resp.Status)
	}
	return resp.StatusCode, nil
}
