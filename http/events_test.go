package http

import (
	"bufio"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/imaged/imaged"
	"github.com/imaged/imaged/inmem"
)

// sseEvent is one event read off a stream.
type sseEvent struct {
	event, id string
	data      []byte
}

// sseClient reads a stream event by event.
type sseClient struct {
	t      *testing.T
	resp   *http.Response
	events chan sseEvent
}

func (st *stack) openStream(path string) *sseClient {
	st.t.Helper()
	req, _ := http.NewRequest("GET", st.srv.URL+path, nil)
	req.Header.Set("X-API-Key", st.key)
	req.Header.Set("Accept", "text/event-stream")
	res, err := client.Do(req)
	if err != nil {
		st.t.Fatal(err)
	}
	if res.StatusCode != 200 || res.Header.Get("Content-Type") != "text/event-stream" {
		st.t.Fatalf("GET %s: %d %s", path, res.StatusCode, res.Header.Get("Content-Type"))
	}
	c := &sseClient{t: st.t, resp: res, events: make(chan sseEvent, 64)}
	st.t.Cleanup(func() { res.Body.Close() })
	go func() {
		defer close(c.events)
		sc := bufio.NewScanner(res.Body)
		var cur sseEvent
		for sc.Scan() {
			line := sc.Text()
			switch {
			case line == "":
				if cur.event != "" {
					c.events <- cur
				}
				cur = sseEvent{}
			case strings.HasPrefix(line, "event: "):
				cur.event = strings.TrimPrefix(line, "event: ")
			case strings.HasPrefix(line, "id: "):
				cur.id = strings.TrimPrefix(line, "id: ")
			case strings.HasPrefix(line, "data: "):
				cur.data = []byte(strings.TrimPrefix(line, "data: "))
			}
		}
	}()
	return c
}

// next returns the next event, failing the test after 5 s.
func (c *sseClient) next() sseEvent {
	c.t.Helper()
	select {
	case e, ok := <-c.events:
		if !ok {
			c.t.Fatal("the stream ended, want an event")
		}
		return e
	case <-time.After(5 * time.Second):
		c.t.Fatal("no event within 5s")
	}
	return sseEvent{}
}

// ends checks the server closes the stream now.
func (c *sseClient) ends() {
	c.t.Helper()
	select {
	case e, ok := <-c.events:
		if ok {
			c.t.Fatalf("got %s, want the end of the stream", e.event)
		}
	case <-time.After(5 * time.Second):
		c.t.Fatal("the stream did not end")
	}
}

func (st *stack) createTask() string {
	st.t.Helper()
	img := st.uploadImage()
	body, _ := json.Marshal(map[string]any{"image_id": img, "ops": []map[string]any{{"op": "resize", "width": 4}}})
	r := st.withKey("POST", "/v1/tasks", body, map[string]string{"Content-Type": "application/json"})
	if r.status != 202 {
		st.t.Fatalf("create task: %d %s", r.status, r.body)
	}
	var v struct {
		ID string `json:"id"`
	}
	json.Unmarshal(r.body, &v)
	return v.ID
}

// finish completes a queued task in the store, as a worker would.
func (st *stack) finish(id string) *imaged.Task {
	st.t.Helper()
	ctx := context.Background()
	t, err := st.store.ClaimTask(ctx, id, nil, "w", time.Minute)
	if err != nil || t == nil {
		st.t.Fatalf("claim %s: %v %v", id, t, err)
	}
	done, err := st.store.CompleteTask(ctx, id, t.Attempts, &imaged.TaskResult{ProcessingSeconds: 0.5})
	if err != nil {
		st.t.Fatal(err)
	}
	return done
}

func TestTaskEventsStreamStateThenEventsUntilTerminal(t *testing.T) {
	bus := inmem.NewEvents(inmem.EventsOptions{})
	defer bus.Close()
	st := newStack(t, Config{}, Deps{Events: bus}, false)
	id := st.createTask()
	other := st.createTask()
	s := st.openStream("/v1/tasks/" + id + "/events")
	first := s.next()
	var snap taskView
	if err := json.Unmarshal(first.data, &snap); err != nil {
		t.Fatal(err)
	}
	if first.event != "task" || snap.TaskID != id || snap.Status != imaged.StatusQueued {
		t.Fatalf("first event %s %s", first.event, first.data)
	}
	ctx := context.Background()
	_ = bus.Publish(ctx, imaged.Event{ID: "e0", Type: imaged.EventTaskStarted, TaskID: other}) // not this task's
	_ = bus.Publish(ctx, imaged.Event{ID: "e1", Type: imaged.EventTaskStarted, TaskID: id, Status: imaged.StatusProcessing, WorkerID: "w1"})
	e := s.next()
	if e.event != imaged.EventTaskStarted || e.id != "e1" || !strings.Contains(string(e.data), `"worker_id":"w1"`) {
		t.Fatalf("got %s %s %s", e.event, e.id, e.data)
	}
	_ = bus.Publish(ctx, imaged.Event{ID: "e2", Type: imaged.EventTaskCompleted, TaskID: id, Status: imaged.StatusCompleted,
		Result: &imaged.TaskResult{ProcessingSeconds: 0.25}, CorrelationID: "c1"})
	e = s.next()
	var ev imaged.Event
	json.Unmarshal(e.data, &ev)
	if e.event != imaged.EventTaskCompleted || ev.Status != imaged.StatusCompleted || ev.Result == nil || ev.CorrelationID != "c1" {
		t.Fatalf("got %s %s", e.event, e.data)
	}
	s.ends()
}

func TestTaskEventsOfAFinishedTaskEndAfterTheState(t *testing.T) {
	st := newStack(t, Config{}, Deps{Events: inmem.NewEvents(inmem.EventsOptions{})}, false)
	id := st.createTask()
	st.finish(id)
	s := st.openStream("/v1/tasks/" + id + "/events")
	e := s.next()
	if e.event != "task" || !strings.Contains(string(e.data), `"status":"completed"`) {
		t.Fatalf("got %s %s", e.event, e.data)
	}
	s.ends()
}

func TestTaskEventsEndFromTheStoreWhenTheEventIsLost(t *testing.T) {
	defer func(p time.Duration) { ssePoll = p }(ssePoll)
	ssePoll = 50 * time.Millisecond
	st := newStack(t, Config{}, Deps{}, false) // no event stream at all
	id := st.createTask()
	s := st.openStream("/v1/tasks/" + id + "/events")
	if e := s.next(); e.event != "task" {
		t.Fatalf("got %s", e.event)
	}
	st.finish(id)
	e := s.next()
	if e.event != imaged.EventTaskCompleted || !strings.Contains(string(e.data), `"processing_seconds":0.5`) {
		t.Fatalf("got %s %s", e.event, e.data)
	}
	s.ends()
}

func TestBatchEventsStream(t *testing.T) {
	bus := inmem.NewEvents(inmem.EventsOptions{})
	defer bus.Close()
	st := newStack(t, Config{}, Deps{Events: bus}, false)
	img := st.uploadImage()
	body, _ := json.Marshal(map[string]any{"image_ids": []string{img, img}, "ops": []map[string]any{{"op": "resize", "width": 4}}})
	r := st.withKey("POST", "/v1/batches", body, map[string]string{"Content-Type": "application/json"})
	if r.status != 202 {
		t.Fatalf("create batch: %d %s", r.status, r.body)
	}
	var b struct {
		BatchID string   `json:"batch_id"`
		TaskIDs []string `json:"task_ids"`
	}
	json.Unmarshal(r.body, &b)
	s := st.openStream("/v1/batches/" + b.BatchID + "/events")
	first := s.next()
	if first.event != "batch" || !strings.Contains(string(first.data), `"progress":0`) || !strings.Contains(string(first.data), `"total":2`) {
		t.Fatalf("first %s %s", first.event, first.data)
	}
	ctx := context.Background()
	_ = bus.Publish(ctx, imaged.Event{Type: imaged.EventTaskCompleted, TaskID: b.TaskIDs[0], BatchID: b.BatchID, Status: imaged.StatusCompleted})
	if e := s.next(); e.event != imaged.EventTaskCompleted || !strings.Contains(string(e.data), b.TaskIDs[0]) {
		t.Fatalf("got %s %s", e.event, e.data)
	}
	_ = bus.Publish(ctx, imaged.Event{Type: imaged.EventTaskCompleted, TaskID: "elsewhere", BatchID: "another"})
	_ = bus.Publish(ctx, imaged.Event{Type: imaged.EventBatchCompleted, BatchID: b.BatchID, Status: imaged.StatusCompleted})
	if e := s.next(); e.event != imaged.EventBatchCompleted {
		t.Fatalf("got %s %s", e.event, e.data)
	}
	s.ends()
}

func TestEventsOfUnknownTaskOrBatchAre404(t *testing.T) {
	st := newStack(t, Config{}, Deps{}, false)
	for _, p := range []string{"/v1/tasks/nope/events", "/v1/batches/nope/events"} {
		if r := st.withKey("GET", p, nil, nil); r.status != 404 {
			t.Errorf("%s: %d %s", p, r.status, r.body)
		}
	}
}

func TestEventsEndOnShutdown(t *testing.T) {
	shutdown := make(chan struct{})
	st := newStack(t, Config{}, Deps{Events: inmem.NewEvents(inmem.EventsOptions{}), Shutdown: shutdown}, false)
	id := st.createTask()
	s := st.openStream("/v1/tasks/" + id + "/events")
	s.next()
	close(shutdown)
	s.ends()
}

// Open event streams do not take the key's request slots: with a concurrency of 1 a client
// watching a task can still poll and create; streams have places of their own, as many.
func TestEventStreamsCountApartFromRequests(t *testing.T) {
	bus := inmem.NewEvents(inmem.EventsOptions{})
	defer bus.Close()
	st := newStack(t, Config{}, Deps{Events: bus}, false)
	id := st.createTask()
	st.key = st.newKey(&imaged.APIKey{Name: "one", Concurrency: 1})
	s := st.openStream("/v1/tasks/" + id + "/events")
	s.next() // the stream is open and holds its place
	if r := st.do("GET", "/v1/tasks/"+id, nil, map[string]string{"X-API-Key": st.key}); r.status != 200 {
		t.Fatalf("a request while a stream is open: %d %s", r.status, r.body)
	}
	req, _ := http.NewRequest("GET", st.srv.URL+"/v1/tasks/"+id+"/events", nil)
	req.Header.Set("X-API-Key", st.key)
	res, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(res.Body)
	res.Body.Close()
	if res.StatusCode != 429 || !strings.Contains(string(body), "event streams") {
		t.Fatalf("a second stream over the key's concurrency: %d %s", res.StatusCode, body)
	}
}
