package http

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"time"

	"github.com/imaged/imaged"
)

// taskView is a task as the API shows it: the task, with its id echoed as task_id.
type taskView struct {
	*imaged.Task
	TaskID string `json:"task_id"`
}

func viewTask(t *imaged.Task) taskView { return taskView{Task: t, TaskID: t.ID} }

const maxIdempotencyKey = 255

func idempotencyKey(r *http.Request) (string, error) {
	k := r.Header.Get("Idempotency-Key")
	if len(k) > maxIdempotencyKey {
		return "", imaged.FieldErrorf("Idempotency-Key", "Idempotency-Key is over %d characters", maxIdempotencyKey)
	}
	return k, nil
}

// enqueue hands recorded tasks to the queue. A task the queue refused is cancelled with the
// reason, so that no task is left queued that no worker will ever see.
func (s *Server) enqueue(ctx context.Context, tasks []*imaged.Task) error {
	for _, t := range tasks {
		if err := s.deps.Queue.Publish(ctx, t, 0); err != nil {
			if _, cerr := s.deps.Store.CancelTask(context.WithoutCancel(ctx), t.Tenant, t.ID); cerr != nil {
				s.log.ErrorContext(ctx, "cancelling an unqueued task failed", "task_id", t.ID, "error", cerr.Error())
			}
			return imaged.WrapError(imaged.EUnavailable, err, "the queue refused the task; try again")
		}
		s.publish(ctx, imaged.Event{Type: imaged.EventTaskQueued, TaskID: t.ID, BatchID: t.BatchID,
			ImageID: t.ImageID, Status: imaged.StatusQueued})
	}
	return nil
}

func (s *Server) handleTaskCreate() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ctx := r.Context()
		key, err := idempotencyKey(r)
		if err != nil {
			s.writeError(w, r, err)
			return
		}
		req, ops, up, err := s.readPipelineRequest(w, r)
		var opts imaged.TaskOptions
		if err == nil {
			opts = imaged.TaskOptions{MaxAttempts: req.MaxAttempts, CallbackURL: req.CallbackURL}
			err = opts.Validate(s.cfg.MaxAttempts)
		}
		if err == nil {
			err = s.checkCallback(ctx, opts.CallbackURL)
		}
		if err != nil {
			s.writeError(w, r, err)
			return
		}
		imageID := req.ImageID
		if req.SourceURL != "" {
			img, _, err := s.fetchSource(ctx, req.SourceURL)
			if err != nil {
				s.writeError(w, r, err)
				return
			}
			imageID = img.ID
		} else if up != nil && up.file != nil {
			img, err := s.storeImage(ctx, up.file, up.filename)
			if err != nil {
				s.writeError(w, r, err)
				return
			}
			imageID = img.ID
		} else if _, err := s.deps.Store.Image(ctx, imaged.TenantOf(ctx), imageID); err != nil {
			s.writeError(w, r, err)
			return
		}
		t := imaged.NewTask(ctx, imageID, ops, opts, time.Now().UTC())
		t.IdempotencyKey = key
		existed, err := s.deps.Store.CreateTasks(ctx, []*imaged.Task{t}, nil)
		if err != nil {
			s.writeError(w, r, err)
			return
		}
		if !existed {
			if err := s.enqueue(ctx, []*imaged.Task{t}); err != nil {
				s.writeError(w, r, err)
				return
			}
		} else {
			if !sameRequest(t, imageID, ops) && (up == nil || up.file == nil) && req.SourceURL == "" {
				s.writeError(w, r, &imaged.Error{Code: imaged.EConflict, Field: "Idempotency-Key",
					Message: "the Idempotency-Key was used for task " + t.ID + " with another image or pipeline"})
				return
			}
			w.Header().Set("Idempotent-Replayed", "true")
		}
		w.Header().Set("Location", "/v1/tasks/"+t.ID)
		writeJSON(w, http.StatusAccepted, viewTask(t))
	})
}

func (s *Server) handleTaskGet() http.Handler {
	return owned(s, s.deps.Store.Task, func(w http.ResponseWriter, _ *http.Request, t *imaged.Task) error {
		writeJSON(w, http.StatusOK, viewTask(t))
		return nil
	})
}

// handleTaskResult streams a completed task's output image; 404 saying when once it expired
// or its image was deleted.
func (s *Server) handleTaskResult() http.Handler {
	return owned(s, s.deps.Store.Task, func(w http.ResponseWriter, r *http.Request, t *imaged.Task) error {
		if t.Status != imaged.StatusCompleted {
			return imaged.Errorf(imaged.EConflict, "the task is %s; its result exists once it is completed", t.Status)
		}
		if err := imaged.ResultGone(t); err != nil {
			return err
		}
		if t.Result == nil || t.Result.Output == nil {
			return imaged.Errorf(imaged.ENotFound, "the task's pipeline made no image; its analyses are in GET /v1/tasks/%s", t.ID)
		}
		s.serveBlob(w, r, t.Result.Output.Key, t.Result.Output.ContentType, t.Result.Output.SHA256,
			t.ID+"."+imaged.ExtensionOf(t.Result.Output.Format))
		return nil
	})
}

func (s *Server) handleTaskList() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		q := r.URL.Query()
		f := imaged.TaskFilter{Tenant: tenantOf(r), Status: q.Get("status"), BatchID: q.Get("batch_id"), Cursor: q.Get("cursor")}
		if f.Status != "" && !contains(imaged.Statuses, f.Status) {
			s.writeError(w, r, imaged.FieldErrorf("status", "status must be one of %v", imaged.Statuses))
			return
		}
		n, err := pageLimit(q)
		if err != nil {
			s.writeError(w, r, err)
			return
		}
		f.Limit = n
		tasks, next, err := s.deps.Store.ListTasks(r.Context(), f)
		if err != nil {
			s.writeError(w, r, err)
			return
		}
		out := list[taskView]{Items: make([]taskView, 0, len(tasks)), NextCursor: next}
		for _, t := range tasks {
			out.Items = append(out.Items, viewTask(t))
		}
		writeJSON(w, http.StatusOK, out)
	})
}

func (s *Server) handleTaskCancel() http.Handler {
	return owned(s, s.deps.Store.CancelTask, func(w http.ResponseWriter, r *http.Request, t *imaged.Task) error {
		s.publish(r.Context(), imaged.Event{Type: imaged.EventTaskCancelled, TaskID: t.ID, BatchID: t.BatchID,
			ImageID: t.ImageID, Status: t.Status})
		writeJSON(w, http.StatusOK, viewTask(t))
		return nil
	})
}

// sameRequest reports whether a replayed task was made from the same image and pipeline.
func sameRequest(t *imaged.Task, imageID string, ops []imaged.Op) bool {
	if t.ImageID != imageID {
		return false
	}
	a, _ := json.Marshal(t.Ops)
	b, _ := json.Marshal(ops)
	return bytes.Equal(compactJSON(a), compactJSON(b))
}

func compactJSON(b []byte) []byte {
	var buf bytes.Buffer
	if err := json.Compact(&buf, b); err != nil {
		return b
	}
	return buf.Bytes()
}

func contains(list []string, v string) bool {
	for _, x := range list {
		if x == v {
			return true
		}
	}
	return false
}

func fieldf(format string, args ...any) string { return fmt.Sprintf(format, args...) }
