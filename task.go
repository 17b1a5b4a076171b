package imaged

import (
	"context"
	"encoding/json"
	"net/url"
	"time"
)

// Task statuses.
const (
	StatusQueued     = "queued"
	StatusProcessing = "processing"
	StatusCompleted  = "completed"
	StatusFailed     = "failed"
	StatusCancelled  = "cancelled"
)

// Statuses lists every task status.
var Statuses = []string{StatusQueued, StatusProcessing, StatusCompleted, StatusFailed, StatusCancelled}

// IsTerminal reports whether a task in this status will never change again.
func IsTerminal(status string) bool {
	return status == StatusCompleted || status == StatusFailed || status == StatusCancelled
}

// Task is one pipeline run over one image, processed asynchronously.
type Task struct {
	ID             string `json:"id"`
	Tenant         string `json:"tenant"`
	Type           string `json:"type"`
	Status         string `json:"status"`
	ImageID        string `json:"image_id"`
	Ops            []Op   `json:"ops"`
	BatchID        string `json:"batch_id,omitempty"`
	Attempts       int    `json:"attempts"`
	MaxAttempts    int    `json:"max_attempts"`
	WorkerID       string `json:"worker_id,omitempty"`
	CorrelationID  string `json:"correlation_id,omitempty"`
	CallbackURL    string `json:"callback_url,omitempty"`
	IdempotencyKey string `json:"-"`
	// TraceParent is the W3C traceparent of the request that created the task, so that a
	// worker reading the task from the database continues that trace ("" when untraced).
	TraceParent string       `json:"-"`
	CreatedAt   time.Time    `json:"created_at"`
	StartedAt   *time.Time   `json:"started_at,omitempty"`
	FinishedAt  *time.Time   `json:"finished_at,omitempty"`
	RunAfter    time.Time    `json:"-"`
	LeaseUntil  *time.Time   `json:"-"`
	Result      *TaskResult  `json:"result,omitempty"`
	Error       *TaskFailure `json:"error,omitempty"`
	// ResultExpiredAt is when the result's image was deleted, and ResultExpiredReason why
	// (ResultExpiredAge, ResultExpiredImageDeleted); the analyses stay with the task.
	ResultExpiredAt     *time.Time `json:"result_expired_at,omitempty"`
	ResultExpiredReason string     `json:"result_expired_reason,omitempty"`
}

// MaxTaskAttempts is the most attempts a task may be given.
const MaxTaskAttempts = 10

// TaskOptions are what a client may choose of a new task besides its image and pipeline; a
// batch's options hold for each of its tasks.
type TaskOptions struct {
	// MaxAttempts is the attempts the task gets before it fails; 0 is the service's default.
	MaxAttempts int
	// CallbackURL receives the task's (or batch's) outcome as a webhook; "" for none.
	CallbackURL string
}

// Validate checks the options by themselves (the outbound policy checks the callback's host
// when it is called) and sets a MaxAttempts of 0 to defaultAttempts. Errors are EInvalid and
// name the field.
func (o *TaskOptions) Validate(defaultAttempts int) error {
	if o.CallbackURL != "" {
		u, err := url.Parse(o.CallbackURL)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return FieldErrorf("callback_url", "callback_url must be an absolute http or https URL")
		}
	}
	switch {
	case o.MaxAttempts == 0:
		o.MaxAttempts = defaultAttempts
	case o.MaxAttempts < 1 || o.MaxAttempts > MaxTaskAttempts:
		return FieldErrorf("max_attempts", "max_attempts must be between 1 and %d", MaxTaskAttempts)
	}
	return nil
}

// NewTask returns a queued task that runs ops over the image imageID, created (and runnable)
// at now, carrying the correlation id and the tenant of ctx. o must have been validated.
func NewTask(ctx context.Context, imageID string, ops []Op, o TaskOptions, now time.Time) *Task {
	return &Task{
		ID: NewID(), Tenant: TenantOf(ctx), Type: TaskTypeOf(ops), Status: StatusQueued, ImageID: imageID, Ops: ops,
		MaxAttempts: o.MaxAttempts, CorrelationID: CorrelationID(ctx), CallbackURL: o.CallbackURL,
		CreatedAt: now, RunAfter: now,
	}
}

// TaskResult is what a completed task produced: the stored output image (when the pipeline
// changed it) and the analyses (info, ocr, detect) in pipeline order.
type TaskResult struct {
	Output            *Output    `json:"output,omitempty"`
	Analyses          []Analysis `json:"analyses,omitempty"`
	ProcessingSeconds float64    `json:"processing_seconds"`
}

// Output describes a stored result image.
type Output struct {
	Key         string `json:"key"`
	Format      string `json:"format"`
	ContentType string `json:"content_type"`
	Width       int    `json:"width"`
	Height      int    `json:"height"`
	Bytes       int64  `json:"bytes"`
	SHA256      string `json:"sha256,omitempty"`
	URL         string `json:"url,omitempty"`
}

// Analysis is the JSON result of an analysis op.
type Analysis struct {
	Op     string          `json:"op"`
	Result json.RawMessage `json:"result"`
}

// TaskFailure records why a task failed (or why its last attempt failed).
type TaskFailure struct {
	Code    string `json:"code"`
	Message string `json:"message"`
}

// Batch groups tasks created together.
type Batch struct {
	ID             string         `json:"id"`
	Tenant         string         `json:"tenant"`
	Status         string         `json:"status"`
	Total          int            `json:"total"`
	Counts         map[string]int `json:"counts"`
	CorrelationID  string         `json:"correlation_id,omitempty"`
	CallbackURL    string         `json:"callback_url,omitempty"`
	IdempotencyKey string         `json:"-"`
	CreatedAt      time.Time      `json:"created_at"`
	FinishedAt     *time.Time     `json:"finished_at,omitempty"`
}

// TaskFilter selects tasks for listing. Cursor is opaque and comes from a previous page.
type TaskFilter struct {
	// Tenant is whose tasks are listed (AnyTenant: everyone's); required.
	Tenant  string
	Status  string
	BatchID string
	Limit   int
	Cursor  string
}

// ImageFilter selects images for listing, paged as TaskFilter.
type ImageFilter struct {
	Tenant string
	Limit  int
	Cursor string
}

// BatchFilter selects batches for listing, paged as TaskFilter.
type BatchFilter struct {
	Tenant string
	Limit  int
	Cursor string
}

// TaskStore keeps images, tasks and batches. Every state change of a task is a conditional
// update, so a task reaches exactly one terminal state with one result (DESIGN §7).
type TaskStore interface {
	// CreateImage records an uploaded image.
	CreateImage(ctx context.Context, img *Image) error
	// Image returns the tenant's image; ENotFound when absent or another tenant's. Every
	// method taking a tenant treats another tenant's id as absent, accepts AnyTenant for
	// system callers, and refuses "" (CheckTenant).
	Image(ctx context.Context, tenant, id string) (*Image, error)
	// DeleteImage removes the tenant's record and expires the results made from it
	// (ResultExpiredImageDeleted), putting their blobs in the retention trash, and removes the
	// tenant's processed-output cache entries of its content when no other image of the
	// tenant holds that content (their blobs to the trash too); the caller deletes the image's
	// own blob. ENotFound when absent.
	DeleteImage(ctx context.Context, tenant, id string) error
	// ListImages returns one page of the tenant's images, newest first, and the cursor of
	// the next page ("" at the end).
	ListImages(ctx context.Context, f ImageFilter) ([]*Image, string, error)

	// CreateTasks records queued tasks and, when batch is not nil, their batch, in one
	// transaction. With an IdempotencyKey set on the (single) task or the batch, an existing
	// record with that key wins: it is returned through the EConflict-free path by filling
	// the arguments with the stored values and returning existed=true.
	CreateTasks(ctx context.Context, tasks []*Task, batch *Batch) (existed bool, err error)
	// Task returns the tenant's task; ENotFound when absent.
	Task(ctx context.Context, tenant, id string) (*Task, error)
	// ListTasks returns one page of tasks, newest first, and the cursor of the next page ("" at
	// the end).
	ListTasks(ctx context.Context, f TaskFilter) ([]*Task, string, error)
	// CancelTask moves a queued task to cancelled; EConflict when it is no longer queued,
	// ENotFound when absent.
	CancelTask(ctx context.Context, tenant, id string) (*Task, error)
	// Batch returns the tenant's batch with counts per status and its tasks; ENotFound when
	// absent.
	Batch(ctx context.Context, tenant, id string) (*Batch, []*Task, error)
	// ListBatches returns one page of the tenant's batches (with their counts), newest first,
	// and the cursor of the next page ("" at the end).
	ListBatches(ctx context.Context, f BatchFilter) ([]*Batch, string, error)

	// ClaimTask moves one queued task (of the given id, or when id is "" the oldest runnable
	// one of the given types) to processing, increments its attempts, sets the worker id and a
	// lease, and returns it. It returns (nil, nil) when there is nothing to claim: the task is
	// not queued any more, not yet runnable, or another worker won.
	ClaimTask(ctx context.Context, id string, types []string, workerID string, lease time.Duration) (*Task, error)
	// CompleteTask records the result of the given attempt of a processing task. EConflict when
	// the task is not processing at that attempt (another execution finished it).
	CompleteTask(ctx context.Context, id string, attempt int, res *TaskResult) (*Task, error)
	// FailTask records the final failure of the given attempt; EConflict as CompleteTask.
	FailTask(ctx context.Context, id string, attempt int, f *TaskFailure) (*Task, error)
	// RetryTask puts the given attempt of a processing task back to queued, runnable after
	// runAfter, keeping f as the last error; EConflict as CompleteTask.
	RetryTask(ctx context.Context, id string, attempt int, runAfter time.Time, f *TaskFailure) (*Task, error)
	// DeferTask puts the given attempt of a processing task back to queued, runnable after
	// runAfter, keeping f as the last error, and takes the attempt back: attempts goes down by
	// one, so that an attempt a dependency's outage cut short (not the task's fault) is not
	// counted and the next claim has the same attempt number. EConflict as CompleteTask.
	DeferTask(ctx context.Context, id string, attempt int, runAfter time.Time, f *TaskFailure) (*Task, error)
	// ExtendLease moves the lease of the given attempt of a processing task to until: the
	// worker running it says it is still alive. EConflict as CompleteTask (the lease was lost:
	// the task was queued again, or finished elsewhere).
	ExtendLease(ctx context.Context, id string, attempt int, until time.Time) error
	// RequeueExpired puts processing tasks whose lease has run out back to queued and returns
	// their ids. With all=true every processing task is requeued (embedded start-up, when no
	// other process can hold one).
	RequeueExpired(ctx context.Context, now time.Time, all bool) ([]string, error)
	// CountQueued returns the number of queued tasks per task type.
	CountQueued(ctx context.Context) (map[string]int, error)

	// The tenants, their limits and usage live in the same database.
	TenantStore
	// So do the entries of the processed-output cache.
	OutputCacheStore

	// Ping checks the database answers.
	Ping(ctx context.Context) error
	Close() error
}
