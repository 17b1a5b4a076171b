// Package webhook delivers completion callbacks. A task or batch created with a callback_url
// gets, when it finishes, a POST of its JSON (the task with its result or error, or the batch
// with its tasks), signed so the receiver can check it came from imaged:
//
//	X-Imaged-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256(secret, "<t>." + body)>
//	X-Imaged-Delivery:  <delivery id, the same on every try; receivers deduplicate on it>
//	X-Imaged-Event:     task.completed | task.failed | batch.completed
//
// A delivery is tried up to Attempts times, waiting Backoff, 2·Backoff, … between tries, until
// the receiver answers 2xx. Every try is recorded. Requests go through the outbound client, so
// callback URLs obey the same address policy as URL sources.
//
// The dispatcher reads the event stream of its own process: the process that finished a task
// sends its callback, so with many processes each callback is sent once.
package webhook

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/imaged/imaged"
	"github.com/imaged/imaged/outbound"
)

// Defaults for Config fields left zero.
const (
	DefaultAttempts    = 3
	DefaultBackoff     = time.Second
	DefaultTimeout     = 10 * time.Second
	DefaultConcurrency = 4
	DefaultQueue       = 1024
	// DefaultTolerance is how old a signature Verify accepts.
	DefaultTolerance = 5 * time.Minute
)

// Headers.
const (
	HeaderSignature = "X-Imaged-Signature"
	HeaderDelivery  = "X-Imaged-Delivery"
	HeaderEvent     = "X-Imaged-Event"
)

// Config tunes a Dispatcher.
type Config struct {
	// Secret keys the signatures. Required.
	Secret []byte
	// Attempts is how many times a delivery is tried; Backoff the wait before the second try,
	// doubling for each later one.
	Attempts int
	Backoff  time.Duration
	// Timeout bounds one try.
	Timeout time.Duration
	// Concurrency is how many deliveries run at once; Queue how many may wait (more are
	// dropped, logged and recorded).
	Concurrency int
	Queue       int
	// Client sends the requests; it must enforce the outbound address policy. The policy's
	// default client (no private or loopback peers) when nil.
	Client *http.Client
	// Store finds the callback URL and the body of a finished task or batch.
	Store imaged.TaskStore
	// Recorder records every try; a MemoryRecorder when nil.
	Recorder Recorder
	Logger   *slog.Logger
}

// Attempt is one try of a delivery.
type Attempt struct {
	DeliveryID string        `json:"delivery_id"`
	Event      string        `json:"event"`
	TaskID     string        `json:"task_id,omitempty"`
	BatchID    string        `json:"batch_id,omitempty"`
	URL        string        `json:"url"`
	Try        int           `json:"try"`
	StatusCode int           `json:"status_code,omitempty"`
	Error      string        `json:"error,omitempty"`
	Duration   time.Duration `json:"duration"`
	At         time.Time     `json:"at"`
	// Outcome is "delivered", "retrying" or "failed" (no more tries).
	Outcome string `json:"outcome"`
}

// Outcomes of an attempt.
const (
	OutcomeDelivered = "delivered"
	OutcomeRetrying  = "retrying"
	OutcomeFailed    = "failed"
)

// Recorder keeps delivery attempts.
type Recorder interface {
	RecordAttempt(ctx context.Context, a Attempt) error
}

// MemoryRecorder keeps the latest attempts in memory.
type MemoryRecorder struct {
	mu    sync.Mutex
	max   int
	items []Attempt
}

// NewMemoryRecorder keeps up to max attempts (10000 when max ≤ 0).
func NewMemoryRecorder(max int) *MemoryRecorder {
	if max <= 0 {
		max = 10000
	}
	return &MemoryRecorder{max: max}
}

// RecordAttempt implements Recorder.
func (m *MemoryRecorder) RecordAttempt(_ context.Context, a Attempt) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if len(m.items) >= m.max {
		m.items = append(m.items[:0], m.items[len(m.items)-m.max+1:]...)
	}
	m.items = append(m.items, a)
	return nil
}

// Attempts returns the recorded attempts, oldest first.
func (m *MemoryRecorder) Attempts() []Attempt {
	m.mu.Lock()
	defer m.mu.Unlock()
	return append([]Attempt(nil), m.items...)
}

// Dispatcher sends callbacks for the events it reads.
type Dispatcher struct {
	cfg   Config
	log   *slog.Logger
	queue chan job
}

type job struct {
	id, event, taskID, batchID, url, correlationID string
	body                                           []byte
}

// New returns a dispatcher; Run starts it.
func New(cfg Config) (*Dispatcher, error) {
	if len(cfg.Secret) == 0 {
		return nil, errors.New("webhook: a signing secret is required")
	}
	if cfg.Store == nil {
		return nil, errors.New("webhook: a task store is required")
	}
	cfg = imaged.WithDefaults(cfg, Config{
		Attempts:    DefaultAttempts,
		Backoff:     DefaultBackoff,
		Timeout:     DefaultTimeout,
		Concurrency: DefaultConcurrency,
		Queue:       DefaultQueue,
		Logger:      slog.Default(),
	})
	if cfg.Client == nil {
		cfg.Client = outbound.New(outbound.Config{Timeout: cfg.Timeout, MaxRedirects: -1}).HTTPClient()
	}
	if cfg.Recorder == nil {
		cfg.Recorder = NewMemoryRecorder(0)
	}
	return &Dispatcher{cfg: cfg, log: cfg.Logger.With("component", "webhook"), queue: make(chan job, cfg.Queue)}, nil
}

// Recorder returns where attempts are recorded.
func (d *Dispatcher) Recorder() Recorder { return d.cfg.Recorder }

// Run reads events until ctx is cancelled, sending the callbacks they call for. On cancel, a
// try in progress finishes (within Timeout); deliveries waiting for a retry are given up and
// recorded so.
func (d *Dispatcher) Run(ctx context.Context, events imaged.Events) error {
	ch, unsubscribe := events.Subscribe()
	defer unsubscribe()
	var wg sync.WaitGroup
	for range d.cfg.Concurrency {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-ctx.Done():
					return
				case j := <-d.queue:
					d.deliver(ctx, j)
				}
			}
		}()
	}
	defer wg.Wait()
	for {
		select {
		case <-ctx.Done():
			return nil
		case e, ok := <-ch:
			if !ok {
				<-ctx.Done()
				return nil
			}
			d.handle(ctx, e)
		}
	}
}

// handle turns a finishing event into a delivery when its task or batch has a callback.
func (d *Dispatcher) handle(ctx context.Context, e imaged.Event) {
	var j job
	switch e.Type {
	case imaged.EventTaskCompleted, imaged.EventTaskFailed, imaged.EventTaskCancelled:
		if e.TaskID == "" {
			return
		}
		t, err := d.cfg.Store.Task(ctx, imaged.AnyTenant, e.TaskID)
		if err != nil {
			d.log.WarnContext(ctx, "reading a finished task for its callback failed", "task_id", e.TaskID, "error", err.Error())
			return
		}
		if t.CallbackURL == "" {
			return
		}
		body, err := json.Marshal(taskPayload{ID: DeliveryID(e.Type, t.ID), Event: e.Type, Time: time.Now().UTC(),
			Task: taskView{Task: t, TaskID: t.ID}})
		if err != nil {
			return
		}
		j = job{id: DeliveryID(e.Type, t.ID), event: e.Type, taskID: t.ID, batchID: t.BatchID, url: t.CallbackURL,
			correlationID: t.CorrelationID, body: body}
	case imaged.EventBatchCompleted:
		if e.BatchID == "" {
			return
		}
		b, tasks, err := d.cfg.Store.Batch(ctx, imaged.AnyTenant, e.BatchID)
		if err != nil {
			d.log.WarnContext(ctx, "reading a finished batch for its callback failed", "batch_id", e.BatchID, "error", err.Error())
			return
		}
		if b.CallbackURL == "" {
			return
		}
		items := make([]taskView, len(tasks))
		for i, t := range tasks {
			items[i] = taskView{Task: t, TaskID: t.ID}
		}
		body, err := json.Marshal(batchPayload{ID: DeliveryID(e.Type, b.ID), Event: e.Type, Time: time.Now().UTC(),
			Batch: batchView{Batch: b, BatchID: b.ID, Items: items}})
		if err != nil {
			return
		}
		j = job{id: DeliveryID(e.Type, b.ID), event: e.Type, batchID: b.ID, url: b.CallbackURL,
			correlationID: b.CorrelationID, body: body}
	default:
		return
	}
	select {
	case d.queue <- j:
	default:
		d.log.ErrorContext(ctx, "webhook queue full; delivery dropped", "delivery_id", j.id, "url", j.url)
		_ = d.cfg.Recorder.RecordAttempt(ctx, Attempt{DeliveryID: j.id, Event: j.event, TaskID: j.taskID, BatchID: j.batchID,
			URL: j.url, Error: "the webhook queue was full", At: time.Now().UTC(), Outcome: OutcomeFailed})
	}
}

type taskView struct {
	*imaged.Task
	TaskID string `json:"task_id"`
}

type taskPayload struct {
	ID    string    `json:"id"`
	Event string    `json:"event"`
	Time  time.Time `json:"created_at"`
	Task  taskView  `json:"task"`
}

type batchView struct {
	*imaged.Batch
	BatchID string     `json:"batch_id"`
	Items   []taskView `json:"items"`
}

type batchPayload struct {
	ID    string    `json:"id"`
	Event string    `json:"event"`
	Time  time.Time `json:"created_at"`
	Batch batchView `json:"batch"`
}

// DeliveryID is the id of the callback for an event about a task or batch: the same for every
// try, and for the same event sent twice.
func DeliveryID(event, id string) string {
	sum := sha256.Sum256([]byte(event + ":" + id))
	return hex.EncodeToString(sum[:16])
}

// deliver tries j until the receiver takes it, the tries run out or ctx ends.
func (d *Dispatcher) deliver(ctx context.Context, j job) {
	log := d.log.With("delivery_id", j.id, "event", j.event, "url", j.url, "task_id", j.taskID, "batch_id", j.batchID)
	wait := d.cfg.Backoff
	for try := 1; ; try++ {
		start := time.Now()
		// A try in progress is not cut short by shutdown; it is bounded by Timeout.
		status, err := d.send(context.WithoutCancel(ctx), j)
		a := Attempt{DeliveryID: j.id, Event: j.event, TaskID: j.taskID, BatchID: j.batchID, URL: j.url, Try: try,
			StatusCode: status, Duration: time.Since(start), At: start.UTC()}
		var refused *outbound.RefusedError
		permanent := errors.As(err, &refused)
		switch {
		case err == nil:
			a.Outcome = OutcomeDelivered
		case permanent || try >= d.cfg.Attempts || ctx.Err() != nil:
			a.Outcome = OutcomeFailed
		default:
			a.Outcome = OutcomeRetrying
		}
		if err != nil {
			a.Error = err.Error()
		}
		if rerr := d.cfg.Recorder.RecordAttempt(context.WithoutCancel(ctx), a); rerr != nil {
			log.Warn("recording a webhook attempt failed", "error", rerr.Error())
		}
		switch a.Outcome {
		case OutcomeDelivered:
			log.Info("webhook delivered", "try", try, "status", status)
			return
		case OutcomeFailed:
			log.Error("webhook delivery failed; giving up", "try", try, "status", status, "error", a.Error)
			return
		}
		log.Warn("webhook delivery failed; trying again", "try", try, "status", status, "error", a.Error, "retry_in", wait.String())
		select {
		case <-ctx.Done():
			_ = d.cfg.Recorder.RecordAttempt(context.WithoutCancel(ctx), Attempt{DeliveryID: j.id, Event: j.event,
				TaskID: j.taskID, BatchID: j.batchID, URL: j.url, Try: try, Error: "shutting down", At: time.Now().UTC(),
				Outcome: OutcomeFailed})
			return
		case <-time.After(wait):
		}
		wait *= 2
	}
}

// send makes one signed POST; it returns the status and an error unless the answer was 2xx.
func (d *Dispatcher) send(ctx context.Context, j job) (int, error) {
	ctx, cancel := context.WithTimeout(ctx, d.cfg.Timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, j.url, bytes.NewReader(j.body))
	if err != nil {
		return 0, &outbound.RefusedError{Reason: "the callback URL is not valid: " + err.Error()}
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set(HeaderDelivery, j.id)
	req.Header.Set(HeaderEvent, j.event)
	req.Header.Set(HeaderSignature, Sign(d.cfg.Secret, time.Now(), j.body))
	if j.correlationID != "" {
		req.Header.Set("X-Correlation-ID", j.correlationID)
	}
	resp, err := d.cfg.Client.Do(req)
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

// Sign returns the X-Imaged-Signature value of body sent at t.
func Sign(secret []byte, t time.Time, body []byte) string {
	ts := strconv.FormatInt(t.Unix(), 10)
	return "t=" + ts + ",v1=" + mac(secret, ts, body)
}

func mac(secret []byte, ts string, body []byte) string {
	m := hmac.New(sha256.New, secret)
	m.Write([]byte(ts))
	m.Write([]byte("."))
	m.Write(body)
	return hex.EncodeToString(m.Sum(nil))
}

// Verify checks an X-Imaged-Signature header against body: a v1 signature made with secret,
// at most tolerance old (DefaultTolerance when zero). Receivers written in Go can use it.
func Verify(secret []byte, header string, body []byte, tolerance time.Duration) error {
	if tolerance <= 0 {
		tolerance = DefaultTolerance
	}
	var ts string
	var sigs []string
	for _, part := range strings.Split(header, ",") {
		k, v, _ := strings.Cut(strings.TrimSpace(part), "=")
		switch k {
		case "t":
			ts = v
		case "v1":
			sigs = append(sigs, v)
		}
	}
	sec, err := strconv.ParseInt(ts, 10, 64)
	if err != nil || len(sigs) == 0 {
		return errors.New("malformed signature header")
	}
	if age := time.Since(time.Unix(sec, 0)); age > tolerance || age < -tolerance {
		return fmt.Errorf("signature timestamp is %s off", age.Round(time.Second))
	}
	want := mac(secret, ts, body)
	for _, s := range sigs {
		if hmac.Equal([]byte(s), []byte(want)) {
			return nil
		}
	}
	return errors.New("signature does not match")
}
