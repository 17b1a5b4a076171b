package webhook

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/imaged/imaged"
	"github.com/imaged/imaged/outbound"
	"github.com/imaged/imaged/prom"
	"github.com/imaged/imaged/sqlite"
)

var secret = []byte("test-secret")

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
	// inFlight counts requests being answered per webhook id; overlap records any id that
	// had two at once.
	inFlight map[string]int
	overlap  []string
	hold     time.Duration // how long each answer takes
}

func newReceiver(t *testing.T, fails int) *receiver {
	r := &receiver{fails: fails, inFlight: map[string]int{}}
	r.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		body, _ := io.ReadAll(req.Body)
		id := req.Header.Get(HeaderWebhookID)
		r.mu.Lock()
		r.got = append(r.got, received{header: req.Header.Clone(), body: body, at: time.Now()})
		fail := len(r.got) <= r.fails
		r.inFlight[id]++
		if r.inFlight[id] > 1 {
			r.overlap = append(r.overlap, id)
		}
		hold := r.hold
		r.mu.Unlock()
		time.Sleep(hold) // a slow receiver, so that a second sender of the same row would overlap
		r.mu.Lock()
		r.inFlight[id]--
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

func openStore(t *testing.T, path string) *sqlite.Store {
	t.Helper()
	if path == "" {
		path = filepath.Join(t.TempDir(), "imaged.db")
	}
	s, err := sqlite.Open(t.Context(), path, sqlite.OpenOptions{Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// start runs a sender over store until the test ends.
func start(t *testing.T, store *sqlite.Store, cfg Config) *Sender {
	t.Helper()
	cfg.Secret = secret
	cfg.Outbox = store
	if cfg.Client == nil {
		cfg.Client = loopbackClient()
	}
	if cfg.Poll == 0 {
		cfg.Poll = 20 * time.Millisecond
	}
	cfg.Logger = slog.New(slog.DiscardHandler)
	s, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); s.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
	return s
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

// finished creates a task with callback url (none when "") and records its outcome: completed,
// or failed with f.
func finished(t *testing.T, s *sqlite.Store, url string, f *imaged.TaskFailure, batch *imaged.Batch) *imaged.Task {
	t.Helper()
	ctx := t.Context()
	img := &imaged.Image{Key: "images/x.png", Format: "png", ContentType: "image/png", Width: 1, Height: 1, Bytes: 1}
	if err := s.CreateImage(ctx, img); err != nil {
		t.Fatal(err)
	}
	ops, _ := imaged.ParseOps([]byte(`[{"op":"blur","sigma":1}]`))
	task := &imaged.Task{ImageID: img.ID, Ops: ops, MaxAttempts: 3, CorrelationID: "corr-1", CallbackURL: url}
	if batch == nil {
		if _, err := s.CreateTasks(ctx, []*imaged.Task{task}, nil); err != nil {
			t.Fatal(err)
		}
	}
	if batch != nil {
		task.CallbackURL = ""
		if _, err := s.CreateTasks(ctx, []*imaged.Task{task}, batch); err != nil {
			t.Fatal(err)
		}
	}
	return finish(t, s, task.ID, f)
}

func finish(t *testing.T, s *sqlite.Store, id string, f *imaged.TaskFailure) *imaged.Task {
	t.Helper()
	ctx := t.Context()
	c, err := s.ClaimTask(ctx, id, nil, "w", time.Minute)
	if err != nil || c == nil {
		t.Fatalf("ClaimTask: %v, %v", c, err)
	}
	var done *imaged.Task
	if f != nil {
		done, err = s.FailTask(ctx, c.ID, c.Attempts, f)
	} else {
		done, err = s.CompleteTask(ctx, c.ID, c.Attempts, &imaged.TaskResult{ProcessingSeconds: 0.01,
			Output: &imaged.Output{Key: "results/x.png", Format: "png"}})
	}
	if err != nil {
		t.Fatal(err)
	}
	return done
}

// delivery returns the one webhook delivery of task.
func delivery(t *testing.T, s *sqlite.Store, taskID string) *imaged.OutboxItem {
	t.Helper()
	ds, err := s.Deliveries(t.Context(), imaged.DefaultTenant, taskID)
	if err != nil || len(ds) != 1 {
		t.Fatalf("Deliveries(%s) = %d, %v; want 1", taskID, len(ds), err)
	}
	return ds[0]
}

func status(t *testing.T, s *sqlite.Store, taskID, want string) func() bool {
	return func() bool { return delivery(t, s, taskID).Status == want }
}

func TestEachCompletionIsDeliveredOnceWithValidSignatures(t *testing.T) {
	r := newReceiver(t, 0)
	store := openStore(t, "")
	var ids []string
	for range 5 {
		ids = append(ids, finished(t, store, r.srv.URL+"/hook", nil, nil).ID)
	}
	silent := finished(t, store, "", nil, nil) // no callback: nothing is sent
	metrics := prom.New()
	start(t, store, Config{Metrics: metrics})
	for _, id := range ids {
		waitFor(t, 5*time.Second, "delivery of "+id, status(t, store, id, imaged.DeliveryDelivered))
	}
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
		h := req.header
		if err := VerifyStandard(secret, h.Get(HeaderWebhookID), h.Get(HeaderWebhookTimestamp), h.Get(HeaderWebhookSignature), req.body, 0); err != nil {
			t.Errorf("Standard Webhooks signature does not verify: %v (%v)", err, h)
		}
		if err := VerifyStandard([]byte("other"), h.Get(HeaderWebhookID), h.Get(HeaderWebhookTimestamp), h.Get(HeaderWebhookSignature), req.body, 0); err == nil {
			t.Error("a Standard Webhooks signature verified with the wrong secret")
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
		want := imaged.WebhookID(imaged.EventTaskCompleted, p.Task.TaskID)
		if h.Get(HeaderDelivery) != want || h.Get(HeaderWebhookID) != want || p.ID != want {
			t.Errorf("delivery id %q, webhook-id %q, payload id %q; want %q", h.Get(HeaderDelivery), h.Get(HeaderWebhookID), p.ID, want)
		}
		if h.Get(HeaderEvent) != imaged.EventTaskCompleted || h.Get("X-Correlation-ID") != "corr-1" ||
			h.Get("Content-Type") != "application/json" {
			t.Errorf("headers %v", h)
		}
		seen[p.Task.TaskID] = true
	}
	for _, id := range ids {
		if !seen[id] {
			t.Errorf("task %s got no callback", id)
		}
		if d := delivery(t, store, id); d.Attempts != 1 || d.LastStatus != http.StatusNoContent || d.DeliveredAt == nil {
			t.Errorf("delivery %+v", d)
		}
	}
	if ds, _ := store.Deliveries(t.Context(), imaged.DefaultTenant, silent.ID); len(ds) != 0 {
		t.Errorf("a task without a callback has %d deliveries", len(ds))
	}
	if n := counter(t, metrics, "outbox_attempts_total", "webhook", prom.OutboxDelivered); n != 5 {
		t.Errorf("outbox_attempts_total{delivered} = %v, want 5", n)
	}
}

// counter reads a value of a metric with labels kind and outcome.
func counter(t *testing.T, m *prom.Metrics, name, kind, outcome string) float64 {
	t.Helper()
	mfs, err := m.Registry.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, metric := range mf.GetMetric() {
			labels := map[string]string{}
			for _, l := range metric.GetLabel() {
				labels[l.GetName()] = l.GetValue()
			}
			if labels["kind"] == kind && (outcome == "" || labels["outcome"] == outcome) {
				if metric.GetCounter() != nil {
					return metric.GetCounter().GetValue()
				}
				return metric.GetGauge().GetValue()
			}
		}
	}
	return 0
}

func TestAReceiverThatFailsTwiceGetsItOnTheThirdTry(t *testing.T) {
	r := newReceiver(t, 2)
	store := openStore(t, "")
	tk := finished(t, store, r.srv.URL, nil, nil)
	start(t, store, Config{Backoff: 100 * time.Millisecond})
	waitFor(t, 10*time.Second, "the delivery", status(t, store, tk.ID, imaged.DeliveryDelivered))
	got := r.requests()
	if len(got) != 3 {
		t.Fatalf("receiver got %d requests, want 3", len(got))
	}
	// Backoff 100ms, then 200ms, each with ±25 % jitter.
	if gap := got[1].at.Sub(got[0].at); gap < 75*time.Millisecond {
		t.Errorf("second try after %s, want ≥ 75ms", gap)
	}
	if gap := got[2].at.Sub(got[1].at); gap < 150*time.Millisecond {
		t.Errorf("third try after %s, want ≥ 150ms (backoff doubles)", gap)
	}
	id := got[0].header.Get(HeaderWebhookID)
	for _, req := range got {
		if req.header.Get(HeaderWebhookID) != id || req.header.Get(HeaderDelivery) != id {
			t.Error("the webhook id changed between tries")
		}
		if err := Verify(secret, req.header.Get(HeaderSignature), req.body, 0); err != nil {
			t.Error(err)
		}
	}
	if d := delivery(t, store, tk.ID); d.Attempts != 3 || d.LastStatus != http.StatusNoContent || d.LastError != "" {
		t.Errorf("delivery %+v, want 3 attempts, the last 204", d)
	}
}

func TestDeliveryGivesUpAfterMaxAge(t *testing.T) {
	r := newReceiver(t, 1000)
	store := openStore(t, "")
	tk := finished(t, store, r.srv.URL, &imaged.TaskFailure{Code: imaged.EInvalid, Message: "bad op"}, nil)
	metrics := prom.New()
	start(t, store, Config{Backoff: 20 * time.Millisecond, MaxAge: 300 * time.Millisecond, Metrics: metrics})
	waitFor(t, 10*time.Second, "giving up", status(t, store, tk.ID, imaged.DeliveryFailed))
	d := delivery(t, store, tk.ID)
	n := len(r.requests())
	if n < 2 || d.Attempts != n || d.LastStatus != http.StatusInternalServerError || !strings.Contains(d.LastError, "500") {
		t.Fatalf("after %d requests the delivery is %+v", n, d)
	}
	if !strings.Contains(string(r.requests()[0].body), `"bad op"`) || d.Event != imaged.EventTaskFailed {
		t.Errorf("failure payload lacks the error: %s", r.requests()[0].body)
	}
	if got := counter(t, metrics, "outbox_attempts_total", "webhook", prom.OutboxFailed); got != 1 {
		t.Errorf("outbox_attempts_total{failed} = %v, want 1", got)
	}
	if got := counter(t, metrics, "outbox_attempts_total", "webhook", prom.OutboxRetrying); int(got) != n-1 {
		t.Errorf("outbox_attempts_total{retrying} = %v, want %d", got, n-1)
	}
	// A redelivery asked for by the tenant is tried again.
	if _, err := store.Redeliver(t.Context(), imaged.DefaultTenant, d.ID); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 5*time.Second, "the redelivery's try", func() bool { return len(r.requests()) > n })
}

func TestBacklogGaugeShowsTheOldestPendingDelivery(t *testing.T) {
	r := newReceiver(t, 1000)
	store := openStore(t, "")
	finished(t, store, r.srv.URL, nil, nil)
	metrics := prom.New()
	start(t, store, Config{Backoff: time.Hour, Metrics: metrics})
	waitFor(t, 5*time.Second, "a try", func() bool { return len(r.requests()) > 0 })
	waitFor(t, 5*time.Second, "the gauge to pass 100ms", func() bool {
		return counter(t, metrics, "outbox_oldest_pending_seconds", "webhook", "") > 0.1
	})
}

func TestLoopbackCallbackIsRefusedWithoutTheAllowList(t *testing.T) {
	r := newReceiver(t, 0)
	store := openStore(t, "")
	tk := finished(t, store, r.srv.URL, nil, nil)
	start(t, store, Config{Client: outbound.New(outbound.Config{}).HTTPClient(), Backoff: 10 * time.Millisecond})
	waitFor(t, 5*time.Second, "the refusal", status(t, store, tk.ID, imaged.DeliveryFailed))
	d := delivery(t, store, tk.ID)
	if d.Attempts != 1 || !strings.Contains(d.LastError, "refused") && !strings.Contains(d.LastError, "loopback") {
		t.Fatalf("delivery %+v, want one refused try, not retried", d)
	}
	if n := len(r.requests()); n != 0 {
		t.Fatalf("the loopback receiver got %d requests", n)
	}
}

func TestBatchCallback(t *testing.T) {
	r := newReceiver(t, 0)
	store := openStore(t, "")
	b := &imaged.Batch{CallbackURL: r.srv.URL}
	img := &imaged.Image{Key: "images/x.png", Format: "png", ContentType: "image/png", Width: 1, Height: 1, Bytes: 1}
	if err := store.CreateImage(t.Context(), img); err != nil {
		t.Fatal(err)
	}
	ops, _ := imaged.ParseOps([]byte(`[{"op":"blur","sigma":1}]`))
	tasks := []*imaged.Task{{ImageID: img.ID, Ops: ops, MaxAttempts: 1}, {ImageID: img.ID, Ops: ops, MaxAttempts: 1}}
	if _, err := store.CreateTasks(t.Context(), tasks, b); err != nil {
		t.Fatal(err)
	}
	start(t, store, Config{})
	finish(t, store, tasks[0].ID, nil)
	finish(t, store, tasks[1].ID, &imaged.TaskFailure{Code: imaged.EInvalid, Message: "x"})
	waitFor(t, 5*time.Second, "the batch callback", func() bool { return len(r.requests()) >= 1 })
	got := r.requests()
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
	if p.Event != imaged.EventBatchCompleted || p.Batch.BatchID != b.ID || len(p.Batch.Items) != 2 ||
		got[0].header.Get(HeaderWebhookID) != imaged.WebhookID(imaged.EventBatchCompleted, b.ID) {
		t.Errorf("payload %s, headers %v", got[0].body, got[0].header)
	}
}

// Two senders on one database (two processes sharing the data directory) never send one row at
// once, and between them send each once.
func TestTwoSendersNeverDeliverOneRowAtOnce(t *testing.T) {
	r := newReceiver(t, 0)
	r.hold = 20 * time.Millisecond
	path := filepath.Join(t.TempDir(), "imaged.db")
	a, b := openStore(t, path), openStore(t, path)
	var ids []string
	for range 40 {
		ids = append(ids, finished(t, a, r.srv.URL, nil, nil).ID)
	}
	start(t, a, Config{Concurrency: 4})
	start(t, b, Config{Concurrency: 4})
	for _, id := range ids {
		waitFor(t, 20*time.Second, "delivery of "+id, status(t, a, id, imaged.DeliveryDelivered))
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.overlap) != 0 {
		t.Fatalf("rows sent by two senders at once: %v", r.overlap)
	}
	perID := map[string]int{}
	for _, req := range r.got {
		perID[req.header.Get(HeaderWebhookID)]++
	}
	if len(perID) != len(ids) || len(r.got) != len(ids) {
		t.Fatalf("%d requests for %d webhook ids; want %d each once", len(r.got), len(perID), len(ids))
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

// The Standard Webhooks signature matches the specification's own test vector, so receivers can
// verify with a stock library given StandardSecret.
func TestStandardSignatureMatchesTheSpecification(t *testing.T) {
	key, err := base64.StdEncoding.DecodeString("MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw")
	if err != nil {
		t.Fatal(err)
	}
	if got := StandardSecret(key); got != "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw" {
		t.Errorf("StandardSecret = %s", got)
	}
	at := time.Unix(1614265330, 0)
	got := SignStandard(key, "msg_p5jXN8AQM9LWM0D4loKWxJek", at, []byte(`{"test": 2432232314}`))
	if want := "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="; got != want {
		t.Fatalf("SignStandard = %s, want %s", got, want)
	}
	now := time.Now()
	sig := SignStandard(key, "msg_1", now, []byte("body"))
	ts := strconv.FormatInt(now.Unix(), 10)
	if err := VerifyStandard(key, "msg_1", ts, "v1,bm90IGl0 "+sig, []byte("body"), 0); err != nil {
		t.Errorf("VerifyStandard with two signatures, one right: %v", err)
	}
	if err := VerifyStandard(key, "msg_2", ts, sig, []byte("body"), 0); err == nil {
		t.Error("a signature verified for another webhook id")
	}
	if err := VerifyStandard(key, "msg_1", strconv.FormatInt(now.Add(-time.Hour).Unix(), 10), sig, []byte("body"), 0); err == nil {
		t.Error("an hour-old timestamp verified")
	}
}
