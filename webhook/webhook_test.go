package webhook

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/imaged/imaged"
	"github.com/imaged/imaged/inmem"
	"github.com/imaged/imaged/outbound"
)

var secret = []byte("test-secret")

// fakeStore answers Task and Batch from maps; the rest of TaskStore is not used.
type fakeStore struct {
	imaged.TaskStore
	mu      sync.Mutex
	tasks   map[string]*imaged.Task
	batches map[string]*imaged.Batch
}

func (s *fakeStore) Task(_ context.Context, tenant, id string) (*imaged.Task, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if t, ok := s.tasks[id]; ok {
		return t, nil
	}
	return nil, imaged.Errorf(imaged.ENotFound, "task %s not found", id)
}

func (s *fakeStore) Batch(_ context.Context, tenant, id string) (*imaged.Batch, []*imaged.Task, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	b, ok := s.batches[id]
	if !ok {
		return nil, nil, imaged.Errorf(imaged.ENotFound, "batch %s not found", id)
	}
	var ts []*imaged.Task
	for _, t := range s.tasks {
		if t.BatchID == id {
			ts = append(ts, t)
		}
	}
	return b, ts, nil
}

// received is one request the test receiver got.
type received struct {
	header http.Header
	body   []byte
	at     time.Time
}

type receiver struct {
	srv   *httptest.Server
	mu    sync.Mutex
	got   []received
	fails int // answer 500 this many times first
}

func newReceiver(t *testing.T, fails int) *receiver {
	r := &receiver{fails: fails}
	r.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		body, _ := io.ReadAll(req.Body)
		r.mu.Lock()
		r.got = append(r.got, received{header: req.Header.Clone(), body: body, at: time.Now()})
		fail := len(r.got) <= r.fails
		r.mu.Unlock()
		if fail {
			http.Error(w, "not now", http.StatusInternalServerError)
			return
		}
		w.WriteHeader(http.StatusNoContent)
	}))
	t.Cleanup(r.srv.Close)
	return r
}

func (r *receiver) requests() []received {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]received(nil), r.got...)
}

// loopbackClient is the outbound client with the test's loopback receiver allow-listed.
func loopbackClient() *http.Client {
	return outbound.New(outbound.Config{Allow: []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}}).HTTPClient()
}

func start(t *testing.T, cfg Config) (*Dispatcher, *inmem.Events, *MemoryRecorder) {
	t.Helper()
	rec := NewMemoryRecorder(0)
	cfg.Secret = secret
	cfg.Recorder = rec
	if cfg.Client == nil {
		cfg.Client = loopbackClient()
	}
	d, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	bus := inmem.NewEvents(inmem.EventsOptions{})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); _ = d.Run(ctx, bus) }()
	t.Cleanup(func() { cancel(); <-done; bus.Close() })
	// Run subscribes asynchronously: wait until it has.
	waitFor(t, 2*time.Second, "the subscription", func() bool { return bus.Subscribers() == 1 })
	return d, bus, rec
}

func waitFor(t *testing.T, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", timeout, what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func completedTask(url string) *imaged.Task {
	now := time.Now().UTC()
	return &imaged.Task{ID: imaged.NewID(), Type: imaged.TaskTypeTransform, Status: imaged.StatusCompleted, ImageID: "img",
		Attempts: 1, MaxAttempts: 3, CorrelationID: "corr-1", CallbackURL: url, CreatedAt: now, FinishedAt: &now,
		Result: &imaged.TaskResult{ProcessingSeconds: 0.01, Output: &imaged.Output{Key: "results/x.png", Format: "png"}}}
}

func TestEachCompletionIsDeliveredOnceWithAValidSignature(t *testing.T) {
	r := newReceiver(t, 0)
	store := &fakeStore{tasks: map[string]*imaged.Task{}}
	var ids []string
	for range 5 {
		tk := completedTask(r.srv.URL + "/hook")
		store.tasks[tk.ID] = tk
		ids = append(ids, tk.ID)
	}
	silent := completedTask("") // no callback: nothing is sent
	store.tasks[silent.ID] = silent
	_, bus, rec := start(t, Config{Store: store})
	for _, id := range append(ids, silent.ID) {
		_ = bus.Publish(context.Background(), imaged.Event{Type: imaged.EventTaskStarted, TaskID: id})
		_ = bus.Publish(context.Background(), imaged.Event{Type: imaged.EventTaskCompleted, TaskID: id})
	}
	waitFor(t, 5*time.Second, "5 deliveries", func() bool { return len(r.requests()) >= 5 })
	time.Sleep(200 * time.Millisecond) // a duplicate would arrive now
	got := r.requests()
	if len(got) != 5 {
		t.Fatalf("receiver got %d requests, want 5", len(got))
	}
	seen := map[string]bool{}
	for _, req := range got {
		if err := Verify(secret, req.header.Get(HeaderSignature), req.body, 0); err != nil {
			t.Errorf("signature does not verify: %v (%s)", err, req.header.Get(HeaderSignature))
		}
		if err := Verify([]byte("other"), req.header.Get(HeaderSignature), req.body, 0); err == nil {
			t.Error("a signature verified with the wrong secret")
		}
		var p struct {
			ID    string `json:"id"`
			Event string `json:"event"`
			Task  struct {
				TaskID string             `json:"task_id"`
				Status string             `json:"status"`
				Result *imaged.TaskResult `json:"result"`
			} `json:"task"`
		}
		if err := json.Unmarshal(req.body, &p); err != nil {
			t.Fatal(err)
		}
		if p.Event != imaged.EventTaskCompleted || p.Task.Status != imaged.StatusCompleted || p.Task.Result == nil ||
			p.Task.Result.Output.Key != "results/x.png" {
			t.Errorf("payload %s", req.body)
		}
		if req.header.Get(HeaderDelivery) != DeliveryID(imaged.EventTaskCompleted, p.Task.TaskID) || p.ID != req.header.Get(HeaderDelivery) {
			t.Errorf("delivery id %q, payload id %q", req.header.Get(HeaderDelivery), p.ID)
		}
		if req.header.Get(HeaderEvent) != imaged.EventTaskCompleted || req.header.Get("X-Correlation-ID") != "corr-1" ||
			req.header.Get("Content-Type") != "application/json" {
			t.Errorf("headers %v", req.header)
		}
		seen[p.Task.TaskID] = true
	}
	for _, id := range ids {
		if !seen[id] {
			t.Errorf("task %s got no callback", id)
		}
	}
	delivered := 0
	for _, a := range rec.Attempts() {
		if a.Outcome == OutcomeDelivered && a.StatusCode == http.StatusNoContent && a.Try == 1 {
			delivered++
		}
	}
	if delivered != 5 {
		t.Errorf("recorded %d delivered attempts, want 5: %+v", delivered, rec.Attempts())
	}
}

func TestAReceiverThatFailsTwiceGetsItOnTheThirdTry(t *testing.T) {
	r := newReceiver(t, 2)
	store := &fakeStore{tasks: map[string]*imaged.Task{}}
	tk := completedTask(r.srv.URL)
	store.tasks[tk.ID] = tk
	_, bus, rec := start(t, Config{Store: store, Backoff: 100 * time.Millisecond})
	_ = bus.Publish(context.Background(), imaged.Event{Type: imaged.EventTaskCompleted, TaskID: tk.ID})
	waitFor(t, 5*time.Second, "3 requests", func() bool { return len(r.requests()) >= 3 })
	time.Sleep(400 * time.Millisecond)
	got := r.requests()
	if len(got) != 3 {
		t.Fatalf("receiver got %d requests, want 3", len(got))
	}
	if gap := got[1].at.Sub(got[0].at); gap < 100*time.Millisecond {
		t.Errorf("second try after %s, want ≥ 100ms", gap)
	}
	if gap := got[2].at.Sub(got[1].at); gap < 200*time.Millisecond {
		t.Errorf("third try after %s, want ≥ 200ms (backoff doubles)", gap)
	}
	id := got[0].header.Get(HeaderDelivery)
	for _, req := range got {
		if req.header.Get(HeaderDelivery) != id {
			t.Error("the delivery id changed between tries")
		}
		if err := Verify(secret, req.header.Get(HeaderSignature), req.body, 0); err != nil {
			t.Error(err)
		}
	}
	var outcomes []string
	for _, a := range rec.Attempts() {
		outcomes = append(outcomes, a.Outcome+"/"+http.StatusText(a.StatusCode))
	}
	want := "retrying/Internal Server Error retrying/Internal Server Error delivered/No Content"
	if strings.Join(outcomes, " ") != want {
		t.Errorf("recorded %v, want %s", outcomes, want)
	}
}

func TestDeliveryGivesUpAfterTheLastTry(t *testing.T) {
	r := newReceiver(t, 100)
	store := &fakeStore{tasks: map[string]*imaged.Task{}}
	tk := completedTask(r.srv.URL)
	tk.Status = imaged.StatusFailed
	tk.Error = &imaged.TaskFailure{Code: imaged.EInvalid, Message: "bad op"}
	store.tasks[tk.ID] = tk
	_, bus, rec := start(t, Config{Store: store, Backoff: 20 * time.Millisecond, Attempts: 2})
	_ = bus.Publish(context.Background(), imaged.Event{Type: imaged.EventTaskFailed, TaskID: tk.ID})
	waitFor(t, 5*time.Second, "a final outcome", func() bool {
		as := rec.Attempts()
		return len(as) > 0 && as[len(as)-1].Outcome == OutcomeFailed
	})
	time.Sleep(200 * time.Millisecond)
	if n := len(r.requests()); n != 2 {
		t.Fatalf("receiver got %d requests, want 2", n)
	}
	if !strings.Contains(string(r.requests()[0].body), `"bad op"`) {
		t.Errorf("failure payload lacks the error: %s", r.requests()[0].body)
	}
}

func TestLoopbackCallbackIsRefusedWithoutTheAllowList(t *testing.T) {
	r := newReceiver(t, 0)
	store := &fakeStore{tasks: map[string]*imaged.Task{}}
	tk := completedTask(r.srv.URL)
	store.tasks[tk.ID] = tk
	_, bus, rec := start(t, Config{Store: store, Client: outbound.New(outbound.Config{}).HTTPClient(), Backoff: 10 * time.Millisecond})
	_ = bus.Publish(context.Background(), imaged.Event{Type: imaged.EventTaskCompleted, TaskID: tk.ID})
	waitFor(t, 5*time.Second, "an attempt", func() bool { return len(rec.Attempts()) > 0 })
	time.Sleep(100 * time.Millisecond)
	as := rec.Attempts()
	if len(as) != 1 || as[0].Outcome != OutcomeFailed || !strings.Contains(as[0].Error, "refused") && !strings.Contains(as[0].Error, "loopback") {
		t.Fatalf("attempts %+v, want one refused, not retried", as)
	}
	if n := len(r.requests()); n != 0 {
		t.Fatalf("the loopback receiver got %d requests", n)
	}
}

func TestBatchCallback(t *testing.T) {
	r := newReceiver(t, 0)
	store := &fakeStore{tasks: map[string]*imaged.Task{}, batches: map[string]*imaged.Batch{}}
	b := &imaged.Batch{ID: imaged.NewID(), Status: imaged.StatusCompleted, Total: 2, CallbackURL: r.srv.URL, CreatedAt: time.Now().UTC()}
	store.batches[b.ID] = b
	for range 2 {
		tk := completedTask("")
		tk.BatchID = b.ID
		store.tasks[tk.ID] = tk
	}
	_, bus, _ := start(t, Config{Store: store})
	// The same batch finishing seen twice (two workers) has one delivery id.
	_ = bus.Publish(context.Background(), imaged.Event{Type: imaged.EventBatchCompleted, BatchID: b.ID})
	_ = bus.Publish(context.Background(), imaged.Event{Type: imaged.EventBatchCompleted, BatchID: b.ID})
	waitFor(t, 5*time.Second, "2 requests", func() bool { return len(r.requests()) >= 2 })
	got := r.requests()
	if got[0].header.Get(HeaderDelivery) != got[1].header.Get(HeaderDelivery) {
		t.Error("the two sends of one batch completion have different delivery ids")
	}
	var p struct {
		Event string `json:"event"`
		Batch struct {
			BatchID string            `json:"batch_id"`
			Items   []json.RawMessage `json:"items"`
		} `json:"batch"`
	}
	if err := json.Unmarshal(got[0].body, &p); err != nil {
		t.Fatal(err)
	}
	if p.Event != imaged.EventBatchCompleted || p.Batch.BatchID != b.ID || len(p.Batch.Items) != 2 {
		t.Errorf("payload %s", got[0].body)
	}
}

func TestVerify(t *testing.T) {
	body := []byte(`{"a":1}`)
	h := Sign(secret, time.Now(), body)
	if err := Verify(secret, h, body, 0); err != nil {
		t.Fatal(err)
	}
	if err := Verify(secret, h, []byte(`{"a":2}`), 0); err == nil {
		t.Error("a changed body verified")
	}
	old := Sign(secret, time.Now().Add(-time.Hour), body)
	if err := Verify(secret, old, body, 0); err == nil {
		t.Error("an hour-old signature verified")
	}
	for _, bad := range []string{"", "t=x,v1=00", "v1=00", "t=1"} {
		if err := Verify(secret, bad, body, 0); err == nil {
			t.Errorf("Verify(%q) passed", bad)
		}
	}
}
