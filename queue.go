package imaged

import (
	"context"
	"encoding/json"
	"time"
)

// Delivery is one message handed to a worker. Task is set when the queue itself claimed the
// task (the database queue does); otherwise the worker claims TaskID through the TaskStore.
type Delivery struct {
	TaskID        string
	Type          string
	CorrelationID string
	Task          *Task
	Redelivered   bool
	// Trace carries the W3C trace context (traceparent, tracestate) the publisher sent with
	// the message, so the worker's span continues the publisher's trace.
	Trace map[string]string
}

// Handler handles one delivery. Returning nil acknowledges it: the outcome is recorded in the
// TaskStore. Returning an error asks the queue to deliver it again later (the outcome could
// not be recorded, e.g. the database was unreachable). A handler recovers its own panics (the
// worker's turns one into an error); a queue only calls it.
type Handler func(ctx context.Context, d *Delivery) error

// TaskMessage is the body of a task's message on a broker. The task row is the truth: the
// message carries the task's id and what routing and logs need, and, in a dead letter, the
// failure. Every broker writes and reads this one shape, so a message can be read whichever
// broker carried it.
type TaskMessage struct {
	TaskID        string `json:"task_id"`
	Type          string `json:"type"`
	CorrelationID string `json:"correlation_id,omitempty"`
	Attempts      int    `json:"attempts,omitempty"`
	ErrorCode     string `json:"error_code,omitempty"`
	ErrorMessage  string `json:"error_message,omitempty"`
}

// NewTaskMessage returns the message of t, with the failure f of a dead letter when f is not
// nil, and its JSON body. It fails with EInvalid for a missing task or one without a type, which
// no queue could route.
func NewTaskMessage(t *Task, f *TaskFailure) (TaskMessage, []byte, error) {
	if t == nil {
		return TaskMessage{}, nil, Errorf(EInvalid, "no task to publish")
	}
	if t.Type == "" {
		return TaskMessage{}, nil, Errorf(EInvalid, "task %s has no type", t.ID)
	}
	m := TaskMessage{TaskID: t.ID, Type: t.Type, CorrelationID: t.CorrelationID, Attempts: t.Attempts}
	if f != nil {
		m.ErrorCode, m.ErrorMessage = f.Code, f.Message
	}
	body, err := json.Marshal(m)
	return m, body, err
}

// ParseTaskMessage reads a message body; it fails with EInvalid when the body is not a task
// message.
func ParseTaskMessage(body []byte) (TaskMessage, error) {
	var m TaskMessage
	if err := json.Unmarshal(body, &m); err != nil || m.TaskID == "" {
		return m, Errorf(EInvalid, "unreadable task message")
	}
	return m, nil
}

// Delivery returns the delivery of m to a handler.
func (m TaskMessage) Delivery(redelivered bool, trace map[string]string) *Delivery {
	return &Delivery{TaskID: m.TaskID, Type: m.Type, CorrelationID: m.CorrelationID, Redelivered: redelivered, Trace: trace}
}

// ConsumeOptions tune a consumer.
type ConsumeOptions struct {
	WorkerID    string
	Types       []string // task types to consume; empty = all
	Concurrency int      // handlers in flight (broker prefetch)
	Lease       time.Duration
	// Ready, when set, is asked before each task is taken (a row claimed, a broker's message
	// handed to a handler): while it blocks, nothing is taken, so that a worker whose
	// dependencies are down claims no work it cannot finish. It returns nil once work may be
	// taken, or ctx's error.
	Ready func(ctx context.Context) error
}

// WaitReady waits for o.Ready (when set): nil once work may be taken, or ctx's error.
func (o ConsumeOptions) WaitReady(ctx context.Context) error {
	if o.Ready == nil {
		return ctx.Err()
	}
	return o.Ready(ctx)
}

// Checked returns o with its defaults filled in (one handler at a time), or an error when there
// is no handler to call: how every Queue.Consume starts.
func (o ConsumeOptions) Checked(h Handler) (ConsumeOptions, error) {
	if h == nil {
		return o, Errorf(EInvalid, "Consume needs a handler")
	}
	if o.Concurrency <= 0 {
		o.Concurrency = 1
	}
	return o, nil
}

// Queue hands queued tasks to workers. The task row in the TaskStore is the truth; the queue
// only carries task ids.
type Queue interface {
	// Publish makes a queued task available to workers, not before delay has passed.
	Publish(ctx context.Context, t *Task, delay time.Duration) error
	// Consume calls h for deliveries, at most opts.Concurrency at a time, until ctx is
	// cancelled; it returns nil after in-flight handlers have returned. Handlers run on a
	// context that carries ctx's values but is not cancelled with it, so a task already
	// handed out may finish and record its outcome during shutdown. A delivery is
	// acknowledged only when h returned nil; one whose consumer dies first comes again.
	// (queuetest holds every queue to this.)
	Consume(ctx context.Context, opts ConsumeOptions, h Handler) error
	// Depth returns the number of waiting tasks per task type.
	Depth(ctx context.Context) (map[string]int, error)
	// Ping checks the queue is reachable.
	Ping(ctx context.Context) error
	Close() error
}

// Event types.
const (
	EventImageUploaded  = "image.uploaded"
	EventTaskQueued     = "task.queued"
	EventTaskStarted    = "task.started"
	EventTaskCompleted  = "task.completed"
	EventTaskFailed     = "task.failed"
	EventTaskCancelled  = "task.cancelled"
	EventBatchCompleted = "batch.completed"
	EventHealth         = "health"
)

// Event is a notification about an image, task or batch.
type Event struct {
	ID                string          `json:"id"`
	Type              string          `json:"type"`
	Time              time.Time       `json:"time"`
	TaskID            string          `json:"task_id,omitempty"`
	BatchID           string          `json:"batch_id,omitempty"`
	ImageID           string          `json:"image_id,omitempty"`
	Status            string          `json:"status,omitempty"`
	Result            *TaskResult     `json:"result,omitempty"`
	Error             *TaskFailure    `json:"error,omitempty"`
	ProcessingSeconds float64         `json:"processing_seconds,omitempty"`
	CorrelationID     string          `json:"correlation_id,omitempty"`
	WorkerID          string          `json:"worker_id,omitempty"`
	Attempt           int             `json:"attempt,omitempty"`
	Data              json.RawMessage `json:"data,omitempty"`
}

// Events is the stream of events. In embedded mode it is an in-memory bus; with a broker the
// events travel through it. SSE, webhooks and metrics read from it.
type Events interface {
	// Publish sends e to every subscriber; it never blocks on a slow subscriber.
	Publish(ctx context.Context, e Event) error
	// Subscribe returns a channel of events and a function that ends the subscription.
	Subscribe() (<-chan Event, func())
}
