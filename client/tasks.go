package client

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"strconv"

	"github.com/imaged/imaged"
)

// TaskRequest is an asynchronous pipeline (POST /v1/tasks) over a file sent with it (stored as
// an image first), an uploaded image or a URL the server fetches; exactly one of the three.
type TaskRequest struct {
	File      *File
	ImageID   string
	SourceURL string
	Ops       []imaged.Op
	// CallbackURL receives the outcome as a signed webhook; MaxAttempts 0 is the server's default.
	CallbackURL string
	MaxAttempts int
	// IdempotencyKey makes a repeated submission answer the first task instead of a new one.
	IdempotencyKey string
}

// SubmitTask queues a task and returns it, queued (or as it is, when the idempotency key was
// used before).
func (c *Client) SubmitTask(ctx context.Context, req TaskRequest) (*imaged.Task, error) {
	ops, err := opsJSON(req.Ops)
	if err != nil {
		return nil, err
	}
	r := request{route: "POST /v1/tasks", header: idempotency(req.IdempotencyKey)}
	var t imaged.Task
	if req.File != nil {
		attempts := ""
		if req.MaxAttempts != 0 {
			attempts = strconv.Itoa(req.MaxAttempts)
		}
		r.body, r.contentType = multipartBody(req.File, map[string]string{"ops": ops, "image_id": req.ImageID,
			"source_url": req.SourceURL, "callback_url": req.CallbackURL, "max_attempts": attempts})
		err = c.call(ctx, r, &t)
	} else {
		err = c.callJSON(ctx, r, map[string]any{"image_id": req.ImageID, "source_url": req.SourceURL, "ops": json.RawMessage(ops),
			"callback_url": req.CallbackURL, "max_attempts": req.MaxAttempts}, &t)
	}
	if err != nil {
		return nil, err
	}
	return &t, nil
}

func idempotency(key string) http.Header {
	h := http.Header{}
	if key != "" {
		h.Set("Idempotency-Key", key)
	}
	return h
}

// Task returns a task as it is now (GET /v1/tasks/{id}).
func (c *Client) Task(ctx context.Context, id string) (*imaged.Task, error) {
	var t imaged.Task
	if err := c.call(ctx, request{route: "GET /v1/tasks/{id}", params: []string{id}}, &t); err != nil {
		return nil, err
	}
	return &t, nil
}

// CancelTask cancels a queued task (DELETE /v1/tasks/{id}); a task that runs is a conflict.
func (c *Client) CancelTask(ctx context.Context, id string) (*imaged.Task, error) {
	var t imaged.Task
	if err := c.call(ctx, request{route: "DELETE /v1/tasks/{id}", params: []string{id}}, &t); err != nil {
		return nil, err
	}
	return &t, nil
}

// TaskResult writes a completed task's output image to w (GET /v1/tasks/{id}/result) and returns
// its content type. A task that is not completed is a conflict; an expired result is not found.
func (c *Client) TaskResult(ctx context.Context, id string, w io.Writer) (string, error) {
	return c.download(ctx, request{route: "GET /v1/tasks/{id}/result", params: []string{id}}, w)
}

// TaskList is one page of tasks; NextCursor is "" on the last.
type TaskList struct {
	Items      []imaged.Task `json:"items"`
	NextCursor string        `json:"next_cursor,omitempty"`
}

// TaskFilter selects the tasks Tasks lists; zero values select all.
type TaskFilter struct {
	Status  string
	BatchID string
	Limit   int
	Cursor  string
}

// Tasks lists the caller's tasks, newest first (GET /v1/tasks).
func (c *Client) Tasks(ctx context.Context, f TaskFilter) (*TaskList, error) {
	q := url.Values{}
	for k, v := range map[string]string{"status": f.Status, "batch_id": f.BatchID, "cursor": f.Cursor} {
		if v != "" {
			q.Set(k, v)
		}
	}
	if f.Limit > 0 {
		q.Set("limit", strconv.Itoa(f.Limit))
	}
	var l TaskList
	if err := c.call(ctx, request{route: "GET /v1/tasks", query: q}, &l); err != nil {
		return nil, err
	}
	return &l, nil
}

// BatchRequest is a batch (POST /v1/batches) in one of its three shapes: many images through
// one pipeline (ImageIDs and Ops), one image through many pipelines (ImageID and Pipelines), or
// explicit Items.
type BatchRequest struct {
	ImageIDs    []string
	Ops         []imaged.Op
	ImageID     string
	Pipelines   [][]imaged.Op
	Items       []BatchItem
	CallbackURL string
	MaxAttempts int
	// IdempotencyKey makes a repeated submission answer the first batch instead of a new one.
	IdempotencyKey string
}

// BatchItem is one image and its pipeline.
type BatchItem struct {
	ImageID string      `json:"image_id"`
	Ops     []imaged.Op `json:"ops"`
}

// Batch is a batch as the API shows it: its counts per status and progress (0 to 1), the ids of
// its tasks when just created, and every task (Items) when read.
type Batch struct {
	imaged.Batch
	Progress float64       `json:"progress"`
	TaskIDs  []string      `json:"task_ids,omitempty"`
	Items    []imaged.Task `json:"items,omitempty"`
}

// CreateBatch queues a batch and returns it with its task ids.
func (c *Client) CreateBatch(ctx context.Context, req BatchRequest) (*Batch, error) {
	body := map[string]any{}
	if len(req.ImageIDs) > 0 {
		body["image_ids"], body["ops"] = req.ImageIDs, orEmpty(req.Ops)
	}
	if req.ImageID != "" {
		body["image_id"] = req.ImageID
	}
	if len(req.Pipelines) > 0 {
		body["pipelines"] = req.Pipelines
	}
	if len(req.Items) > 0 {
		body["items"] = req.Items
	}
	if req.CallbackURL != "" {
		body["callback_url"] = req.CallbackURL
	}
	if req.MaxAttempts != 0 {
		body["max_attempts"] = req.MaxAttempts
	}
	var b Batch
	if err := c.callJSON(ctx, request{route: "POST /v1/batches", header: idempotency(req.IdempotencyKey)}, body, &b); err != nil {
		return nil, err
	}
	return &b, nil
}

func orEmpty(ops []imaged.Op) []imaged.Op {
	if ops == nil {
		return []imaged.Op{}
	}
	return ops
}

// Batch returns a batch with every task (GET /v1/batches/{id}).
func (c *Client) Batch(ctx context.Context, id string) (*Batch, error) {
	var b Batch
	if err := c.call(ctx, request{route: "GET /v1/batches/{id}", params: []string{id}}, &b); err != nil {
		return nil, err
	}
	return &b, nil
}

// CancelBatch cancels the batch's tasks that have not started (DELETE /v1/batches/{id}) and
// returns the batch as it then is.
func (c *Client) CancelBatch(ctx context.Context, id string) (*Batch, error) {
	var b Batch
	if err := c.call(ctx, request{route: "DELETE /v1/batches/{id}", params: []string{id}}, &b); err != nil {
		return nil, err
	}
	return &b, nil
}
