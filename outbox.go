package imaged

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"time"
)

// Kinds of outbox items.
const (
	// OutboxWebhook is a callback to a task's or batch's callback_url.
	OutboxWebhook = "webhook"
	// OutboxEvent is an event that could not reach the broker when it was published.
	OutboxEvent = "event"
)

// Delivery statuses of an outbox item.
const (
	DeliveryPending   = "pending"
	DeliveryDelivered = "delivered"
	DeliveryFailed    = "failed"
)

// OutboxItem is something that must leave the service at least once: a webhook delivery, or an
// event waiting for the broker. Items are rows in the task store, written in the same
// transaction as the outcome they tell of, and sent by whichever process is alive.
type OutboxItem struct {
	ID     string `json:"id"`
	Tenant string `json:"-"`
	Kind   string `json:"kind"`
	// Event is the event type the item carries (task.completed, batch.completed, …).
	Event   string `json:"event"`
	TaskID  string `json:"task_id,omitempty"`
	BatchID string `json:"batch_id,omitempty"`
	URL     string `json:"url,omitempty"`
	// WebhookID is the same on every try and for the same outcome written twice; receivers
	// deduplicate on it (the Standard Webhooks webhook-id header).
	WebhookID     string          `json:"webhook_id"`
	Payload       json.RawMessage `json:"-"`
	CorrelationID string          `json:"correlation_id,omitempty"`
	Status        string          `json:"status"`
	Attempts      int             `json:"attempts"`
	NextAttemptAt time.Time       `json:"next_attempt_at"`
	LastError     string          `json:"last_error,omitempty"`
	LastStatus    int             `json:"last_status_code,omitempty"`
	// PendingSince is when the item became pending: created, or asked to be delivered again.
	// A sender gives up on an item pending for longer than its maximum age.
	PendingSince time.Time  `json:"pending_since"`
	DeliveredAt  *time.Time `json:"delivered_at,omitempty"`
	CreatedAt    time.Time  `json:"created_at"`
	// Claim is the token of the sender holding the item (ClaimOutbox); "" otherwise.
	Claim string `json:"-"`
}

// OutboxOutcome is what one try of an outbox item came to.
type OutboxOutcome struct {
	// Delivered: the receiver (or broker) took it. A delivered event is forgotten.
	Delivered bool
	// GiveUp: no more tries (refused by the outbound policy, or pending for too long).
	GiveUp bool
	// NextAttemptAt is when to try again, unless Delivered or GiveUp.
	NextAttemptAt time.Time
	StatusCode    int
	Error         string
}

// Outbox keeps the outbox items of a task store. Items are claimed under a lease, so that
// several processes never send one item at once, and a sender that dies gives its items back
// when the lease runs out.
type Outbox interface {
	// AddToOutbox records pending items (their ID, Status, times and Attempts are set here); an
	// item whose WebhookID is already stored is skipped.
	AddToOutbox(ctx context.Context, items ...*OutboxItem) error
	// ClaimOutbox leases up to limit due pending items of kind to the caller for lease, counts
	// a try of each and returns them, oldest due first, each with the claim token that
	// FinishOutbox wants.
	ClaimOutbox(ctx context.Context, kind string, limit int, lease time.Duration) ([]*OutboxItem, error)
	// FinishOutbox records the outcome of a try of a claimed item; EConflict when the claim was
	// lost (the lease ran out and another sender took the item), ENotFound when absent.
	FinishOutbox(ctx context.Context, id, claim string, o OutboxOutcome) error
	// Deliveries returns the webhook deliveries of the tenant's task, oldest first (none for an
	// unknown task).
	Deliveries(ctx context.Context, tenant, taskID string) ([]*OutboxItem, error)
	// Delivery returns the tenant's webhook delivery; ENotFound when absent or another tenant's.
	Delivery(ctx context.Context, tenant, id string) (*OutboxItem, error)
	// Redeliver makes the tenant's webhook delivery pending and due now, whatever its status,
	// with a fresh maximum age; ENotFound as Delivery.
	Redeliver(ctx context.Context, tenant, id string) (*OutboxItem, error)
	// OutboxBacklog returns, per kind with pending items, when the oldest became pending.
	OutboxBacklog(ctx context.Context) (map[string]time.Time, error)
}

// WebhookID is the id of the callback for an event about a task or batch: the same for every
// try, and for the same event written twice.
func WebhookID(event, id string) string {
	sum := sha256.Sum256([]byte(event + ":" + id))
	return "msg_" + hex.EncodeToString(sum[:16])
}

type taskView struct {
	*Task
	TaskID string `json:"task_id"`
}

type batchView struct {
	*Batch
	BatchID string     `json:"batch_id"`
	Items   []taskView `json:"items"`
}

// webhookBody is the JSON a callback carries: the event and the task (with its result or
// error) or the batch (with its tasks).
type webhookBody struct {
	ID    string     `json:"id"`
	Event string     `json:"event"`
	Time  time.Time  `json:"created_at"`
	Task  *taskView  `json:"task,omitempty"`
	Batch *batchView `json:"batch,omitempty"`
}

// TaskWebhook returns the callback of t, which has just reached a terminal status at now;
// nil when t has no callback URL.
func TaskWebhook(t *Task, now time.Time) (*OutboxItem, error) {
	if t.CallbackURL == "" || !IsTerminal(t.Status) {
		return nil, nil
	}
	event := "task." + t.Status
	id := WebhookID(event, t.ID)
	body, err := json.Marshal(webhookBody{ID: id, Event: event, Time: now.UTC(), Task: &taskView{Task: t, TaskID: t.ID}})
	if err != nil {
		return nil, err
	}
	return &OutboxItem{Tenant: t.Tenant, Kind: OutboxWebhook, Event: event, TaskID: t.ID, BatchID: t.BatchID,
		URL: t.CallbackURL, WebhookID: id, Payload: body, CorrelationID: t.CorrelationID}, nil
}

// BatchWebhook returns the callback of b, whose last task has just finished at now; nil when
// b has no callback URL or is not finished.
func BatchWebhook(b *Batch, tasks []*Task, now time.Time) (*OutboxItem, error) {
	if b.CallbackURL == "" || !IsTerminal(b.Status) {
		return nil, nil
	}
	event := EventBatchCompleted
	id := WebhookID(event, b.ID)
	items := make([]taskView, len(tasks))
	for i, t := range tasks {
		items[i] = taskView{Task: t, TaskID: t.ID}
	}
	body, err := json.Marshal(webhookBody{ID: id, Event: event, Time: now.UTC(),
		Batch: &batchView{Batch: b, BatchID: b.ID, Items: items}})
	if err != nil {
		return nil, err
	}
	return &OutboxItem{Tenant: b.Tenant, Kind: OutboxWebhook, Event: event, BatchID: b.ID, URL: b.CallbackURL,
		WebhookID: id, Payload: body, CorrelationID: b.CorrelationID}, nil
}

// EventItem returns the outbox item of an event that could not reach the broker.
func EventItem(e Event) (*OutboxItem, error) {
	body, err := json.Marshal(e)
	if err != nil {
		return nil, err
	}
	return &OutboxItem{Kind: OutboxEvent, Event: e.Type, TaskID: e.TaskID, BatchID: e.BatchID, WebhookID: e.ID,
		Payload: body, CorrelationID: e.CorrelationID}, nil
}

// EventSender publishes an event to the broker and returns once the broker has it (a publisher
// confirm, acks=all); the outbox sender sends the events that waited through it.
type EventSender interface {
	SendEvent(ctx context.Context, e Event) error
}
