package http

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"time"

	"github.com/imaged/imaged"
)

// Live progress as Server-Sent Events. A stream first sends the current state (event "task" or
// "batch", data: the same JSON GET answers), then every event about the task or batch as it
// happens (event: its type, id: its id, data: the event JSON), and ends after the terminal one.
// The events come from Deps.Events, which carries every process's events when a broker is
// configured; the store is also read every ssePoll, so a stream ends even if an event was lost.

var (
	ssePoll      = 2 * time.Second
	sseKeepAlive = 15 * time.Second
)

// sseStream writes one event stream.
type sseStream struct {
	w  http.ResponseWriter
	rc *http.ResponseController
}

func (s *Server) startSSE(w http.ResponseWriter) *sseStream {
	rc := http.NewResponseController(w)
	// A stream outlives the server's write timeout; it ends on its own terms.
	_ = rc.SetWriteDeadline(time.Time{})
	h := w.Header()
	h.Set("Content-Type", "text/event-stream")
	h.Set("Cache-Control", "no-cache")
	h.Set("Connection", "keep-alive")
	h.Set("X-Accel-Buffering", "no")
	w.WriteHeader(http.StatusOK)
	st := &sseStream{w: w, rc: rc}
	fmt.Fprintf(w, "retry: %d\n\n", (2 * time.Second).Milliseconds())
	_ = rc.Flush()
	return st
}

// send writes one event; an error means the client went away.
func (st *sseStream) send(event, id string, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	if id != "" {
		if _, err := fmt.Fprintf(st.w, "id: %s\n", id); err != nil {
			return err
		}
	}
	if _, err := fmt.Fprintf(st.w, "event: %s\ndata: %s\n\n", event, b); err != nil {
		return err
	}
	return st.rc.Flush()
}

func (st *sseStream) ping() error {
	if _, err := fmt.Fprint(st.w, ": ping\n\n"); err != nil {
		return err
	}
	return st.rc.Flush()
}

// subscribe returns the event channel, or a closed-never one when there is no event stream
// (then the store poll alone drives the stream).
func (s *Server) subscribe() (<-chan imaged.Event, func()) {
	if s.deps.Events == nil {
		return make(chan imaged.Event), func() {}
	}
	return s.deps.Events.Subscribe()
}

func (s *Server) handleTaskEvents() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ctx := r.Context()
		id := r.PathValue("id")
		// Subscribe before reading the state, so nothing falls between the two.
		events, unsubscribe := s.subscribe()
		defer unsubscribe()
		t, err := s.deps.Store.Task(ctx, imaged.TenantOf(ctx), id)
		if err != nil {
			s.writeError(w, r, err)
			return
		}
		st := s.startSSE(w)
		if st.send("task", "", viewTask(t)) != nil || imaged.IsTerminal(t.Status) {
			return
		}
		status := t.Status
		s.stream(ctx, st, events, func(e imaged.Event) (bool, bool) {
			return e.TaskID == id, e.TaskID == id && isTerminalEvent(e.Type)
		}, func() (bool, error) {
			cur, err := s.deps.Store.Task(ctx, imaged.TenantOf(ctx), id)
			if err != nil || cur.Status == status {
				return false, nil
			}
			status = cur.Status
			if !imaged.IsTerminal(cur.Status) {
				return false, st.send("task", "", viewTask(cur))
			}
			// The terminal event went missing (a broker outage, a full buffer): say it now.
			return true, st.send("task."+cur.Status, "", imaged.Event{Type: "task." + cur.Status, TaskID: cur.ID,
				BatchID: cur.BatchID, ImageID: cur.ImageID, Status: cur.Status, Result: cur.Result, Error: cur.Error,
				CorrelationID: cur.CorrelationID, WorkerID: cur.WorkerID, Attempt: cur.Attempts, Time: time.Now().UTC()})
		})
	})
}

func (s *Server) handleBatchEvents() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ctx := r.Context()
		id := r.PathValue("id")
		events, unsubscribe := s.subscribe()
		defer unsubscribe()
		b, tasks, err := s.deps.Store.Batch(ctx, imaged.TenantOf(ctx), id)
		if err != nil {
			s.writeError(w, r, err)
			return
		}
		st := s.startSSE(w)
		if st.send("batch", "", batchSnapshot(b, tasks)) != nil || imaged.IsTerminal(b.Status) {
			return
		}
		s.stream(ctx, st, events, func(e imaged.Event) (bool, bool) {
			return e.BatchID == id, e.BatchID == id && e.Type == imaged.EventBatchCompleted
		}, func() (bool, error) {
			cur, tasks, err := s.deps.Store.Batch(ctx, imaged.TenantOf(ctx), id)
			if err != nil || !imaged.IsTerminal(cur.Status) {
				return false, nil
			}
			// batch.completed went missing or is still on its way: the store says it is done.
			data, _ := json.Marshal(batchSnapshot(cur, tasks))
			return true, st.send(imaged.EventBatchCompleted, "", imaged.Event{Type: imaged.EventBatchCompleted,
				BatchID: cur.ID, Status: cur.Status, CorrelationID: cur.CorrelationID, Data: data, Time: time.Now().UTC()})
		})
	})
}

func isTerminalEvent(typ string) bool {
	return typ == imaged.EventTaskCompleted || typ == imaged.EventTaskFailed || typ == imaged.EventTaskCancelled
}

// stream forwards the events match selects until one it calls final, the poll reports the end,
// the client leaves or the server shuts down.
func (s *Server) stream(ctx context.Context, st *sseStream, events <-chan imaged.Event,
	match func(imaged.Event) (selected, final bool), poll func() (done bool, err error)) {
	tick := time.NewTicker(ssePoll)
	defer tick.Stop()
	keep := time.NewTicker(sseKeepAlive)
	defer keep.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-s.deps.Shutdown:
			return
		case e, ok := <-events:
			if !ok {
				return
			}
			sel, final := match(e)
			if !sel {
				continue
			}
			if st.send(e.Type, e.ID, e) != nil || final {
				return
			}
		case <-tick.C:
			done, err := poll()
			if err != nil || done {
				return
			}
		case <-keep.C:
			if st.ping() != nil {
				return
			}
		}
	}
}
