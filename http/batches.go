package http

import (
	"encoding/json"
	"net/http"
	"time"

	"github.com/imaged/imaged"
)

// batchRequest accepts three shapes: many images × one pipeline (image_ids + ops), one image ×
// many pipelines (image_id + pipelines), or explicit items.
type batchRequest struct {
	ImageIDs    []string          `json:"image_ids"`
	Ops         json.RawMessage   `json:"ops"`
	ImageID     string            `json:"image_id"`
	Pipelines   []json.RawMessage `json:"pipelines"`
	Items       []batchItem       `json:"items"`
	CallbackURL string            `json:"callback_url,omitempty"`
	MaxAttempts int               `json:"max_attempts,omitempty"`
}

type batchItem struct {
	ImageID string          `json:"image_id"`
	Ops     json.RawMessage `json:"ops"`
}

// items flattens the request into (image, ops) pairs, naming the field at fault on error.
func (req *batchRequest) items() ([]batchItem, error) {
	shapes := 0
	if len(req.ImageIDs) > 0 {
		shapes++
	}
	if len(req.Pipelines) > 0 {
		shapes++
	}
	if len(req.Items) > 0 {
		shapes++
	}
	if shapes != 1 {
		return nil, imaged.FieldErrorf("items",
			"send exactly one of: image_ids with ops, image_id with pipelines, or items")
	}
	switch {
	case len(req.ImageIDs) > 0:
		out := make([]batchItem, len(req.ImageIDs))
		for i, id := range req.ImageIDs {
			out[i] = batchItem{ImageID: id, Ops: req.Ops}
		}
		return out, nil
	case len(req.Pipelines) > 0:
		if req.ImageID == "" {
			return nil, imaged.FieldErrorf("image_id", "pipelines need an image_id")
		}
		out := make([]batchItem, len(req.Pipelines))
		for i, p := range req.Pipelines {
			out[i] = batchItem{ImageID: req.ImageID, Ops: p}
		}
		return out, nil
	}
	return req.Items, nil
}

type batchView struct {
	*imaged.Batch
	BatchID  string     `json:"batch_id"`
	Progress float64    `json:"progress"`
	TaskIDs  []string   `json:"task_ids,omitempty"`
	Items    []taskView `json:"items,omitempty"`
}

// batchSnapshot is a batch as GET /v1/batches/{id} shows it.
func batchSnapshot(b *imaged.Batch, tasks []*imaged.Task) batchView {
	view := batchView{Batch: b, BatchID: b.ID, Items: make([]taskView, 0, len(tasks))}
	done := 0
	for _, t := range tasks {
		view.Items = append(view.Items, viewTask(t))
		if imaged.IsTerminal(t.Status) {
			done++
		}
	}
	if b.Total > 0 {
		view.Progress = float64(done) / float64(b.Total)
	}
	return view
}

func (s *Server) handleBatchCreate() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ctx := r.Context()
		key, err := idempotencyKey(r)
		if err != nil {
			s.writeError(w, r, err)
			return
		}
		var req batchRequest
		if err := decodeJSON(w, r, &req); err != nil {
			s.writeError(w, r, err)
			return
		}
		items, err := req.items()
		if err == nil && len(items) > s.cfg.MaxBatch {
			err = imaged.FieldErrorf("items", "a batch holds at most %d items; this one has %d", s.cfg.MaxBatch, len(items))
		}
		opts := imaged.TaskOptions{MaxAttempts: req.MaxAttempts, CallbackURL: req.CallbackURL}
		if err == nil {
			err = opts.Validate(s.cfg.MaxAttempts)
		}
		if err == nil {
			err = s.checkCallback(ctx, opts.CallbackURL)
		}
		if err != nil {
			s.writeError(w, r, err)
			return
		}
		now := time.Now().UTC()
		batch := &imaged.Batch{ID: imaged.NewID(), Tenant: imaged.TenantOf(ctx), Status: imaged.StatusQueued, Total: len(items),
			CorrelationID: imaged.CorrelationID(ctx), CallbackURL: opts.CallbackURL, IdempotencyKey: key, CreatedAt: now}
		// The batch's callback reports the batch; its tasks send none of their own.
		taskOpts := imaged.TaskOptions{MaxAttempts: opts.MaxAttempts}
		tasks := make([]*imaged.Task, len(items))
		seen := map[string]bool{}
		for i, it := range items {
			field := fieldf("items[%d]", i)
			if it.ImageID == "" {
				s.writeError(w, r, imaged.FieldErrorf(field+".image_id", "item %d has no image_id", i))
				return
			}
			ops, err := imaged.ParseOps(it.Ops)
			if err == nil {
				err = s.deps.Processor.Validate(ops)
			}
			if err == nil {
				err = s.checkOverlays(ctx, imaged.TenantOf(ctx), ops, "")
			}
			if err != nil {
				s.writeError(w, r, prefixField(err, field))
				return
			}
			if !seen[it.ImageID] {
				if _, err := s.deps.Store.Image(ctx, imaged.TenantOf(ctx), it.ImageID); err != nil {
					s.writeError(w, r, prefixField(err, field+".image_id"))
					return
				}
				seen[it.ImageID] = true
			}
			tasks[i] = imaged.NewTask(ctx, it.ImageID, ops, taskOpts, now)
			tasks[i].BatchID = batch.ID
		}
		existed, err := s.deps.Store.CreateTasks(ctx, tasks, batch)
		if err != nil {
			s.writeError(w, r, err)
			return
		}
		if existed {
			w.Header().Set("Idempotent-Replayed", "true")
		} else if err := s.enqueue(ctx, tasks); err != nil {
			s.writeError(w, r, err)
			return
		}
		view := batchView{Batch: batch, BatchID: batch.ID}
		for _, t := range tasks {
			view.TaskIDs = append(view.TaskIDs, t.ID)
		}
		w.Header().Set("Location", "/v1/batches/"+batch.ID)
		writeJSON(w, http.StatusAccepted, view)
	})
}

// prefixField puts a batch item's position in front of the field an error names.
func prefixField(err error, prefix string) error {
	e, ok := err.(*imaged.Error)
	if !ok {
		return err
	}
	c := *e
	if c.Field == "" {
		c.Field = prefix
	} else {
		c.Field = prefix + "." + c.Field
	}
	return &c
}

// handleBatchCancel cancels the batch's tasks that have not started (DELETE /v1/batches/{id});
// those already running or finished keep their outcome. It answers the batch as it now is.
func (s *Server) handleBatchCancel() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ctx := r.Context()
		b, tasks, err := s.deps.Store.Batch(ctx, tenantOf(r), r.PathValue("id"))
		if err != nil {
			s.writeError(w, r, err)
			return
		}
		for _, t := range tasks {
			if t.Status != imaged.StatusQueued {
				continue
			}
			// A task a worker claims meanwhile is no longer queued: it runs (EConflict here).
			c, err := s.deps.Store.CancelTask(ctx, b.Tenant, t.ID)
			if imaged.IsCode(err, imaged.EConflict) {
				continue
			}
			if err != nil {
				s.writeError(w, r, err)
				return
			}
			s.publish(ctx, imaged.Event{Type: imaged.EventTaskCancelled, TaskID: c.ID, BatchID: c.BatchID,
				ImageID: c.ImageID, Status: c.Status})
		}
		if b, tasks, err = s.deps.Store.Batch(ctx, b.Tenant, b.ID); err != nil {
			s.writeError(w, r, err)
			return
		}
		if imaged.IsTerminal(b.Status) {
			data, _ := json.Marshal(map[string]any{"total": b.Total, "counts": b.Counts})
			s.publish(ctx, imaged.Event{Type: imaged.EventBatchCompleted, BatchID: b.ID, Status: b.Status, Data: data})
		}
		writeJSON(w, http.StatusOK, batchSnapshot(b, tasks))
	})
}

func (s *Server) handleBatchGet() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, tasks, err := s.deps.Store.Batch(r.Context(), tenantOf(r), r.PathValue("id"))
		if err != nil {
			s.writeError(w, r, err)
			return
		}
		writeJSON(w, http.StatusOK, batchSnapshot(b, tasks))
	})
}
