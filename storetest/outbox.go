package storetest

import (
	"encoding/json"
	"sync"
	"testing"
	"time"

	"github.com/imaged/imaged"
)

// outboxTests are the contract of the outbox (imaged.Outbox, which every SQL store keeps):
// callbacks written with the outcome that calls for them, claims under a lease that never hand
// one item to two senders, outcomes recorded only by the claim that holds the item.
var outboxTests = []struct {
	name string
	fn   func(t *testing.T, s imaged.TaskStore)
}{
	{"OutboxTaskCallbacks", testOutboxTaskCallbacks},
	{"OutboxBatchCallback", testOutboxBatchCallback},
	{"OutboxBatchLastTasksAtOnce", testOutboxBatchLastTasksAtOnce},
	{"OutboxClaimLease", testOutboxClaimLease},
	{"OutboxClaimConcurrently", testOutboxClaimConcurrently},
	{"OutboxRedeliver", testOutboxRedeliver},
}

func outboxOf(t *testing.T, s imaged.TaskStore) imaged.Outbox {
	t.Helper()
	o, ok := s.(imaged.Outbox)
	if !ok {
		t.Skipf("%T keeps no outbox of its own (the outbox is the database store's)", s)
	}
	return o
}

func deliveries(t *testing.T, o imaged.Outbox, tenant, taskID string) []*imaged.OutboxItem {
	t.Helper()
	got, err := o.Deliveries(t.Context(), tenant, taskID)
	if err != nil {
		t.Fatalf("Deliveries(%s): %v", taskID, err)
	}
	return got
}

func claimAll(t *testing.T, o imaged.Outbox, kind string) []*imaged.OutboxItem {
	t.Helper()
	got, err := o.ClaimOutbox(t.Context(), kind, 1000, time.Minute)
	if err != nil {
		t.Fatalf("ClaimOutbox(%s): %v", kind, err)
	}
	return got
}

// A task with a callback URL that completes, fails or is cancelled has one pending webhook
// delivery, written with the outcome: its event, URL, the task as it ended, a stable webhook
// id. A task without one has none; another tenant sees none.
func testOutboxTaskCallbacks(t *testing.T, s imaged.TaskStore) {
	ctx := t.Context()
	o := outboxOf(t, s)
	tasks := make([]*imaged.Task, 4)
	img := createImage(t, s)
	for i := range tasks {
		tasks[i] = newTask(t, img.ID, opsTransform)
		if i < 3 {
			tasks[i].CallbackURL = "https://example.com/hook"
			tasks[i].CorrelationID = "corr-hook"
		}
		if _, err := s.CreateTasks(ctx, []*imaged.Task{tasks[i]}, nil); err != nil {
			t.Fatal(err)
		}
	}
	c := claim(t, s, tasks[0].ID)
	if _, err := s.CompleteTask(ctx, c.ID, c.Attempts, &imaged.TaskResult{ProcessingSeconds: 0.5}); err != nil {
		t.Fatal(err)
	}
	c = claim(t, s, tasks[1].ID)
	if _, err := s.FailTask(ctx, c.ID, c.Attempts, &imaged.TaskFailure{Code: imaged.EInvalid, Message: "bad op"}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.CancelTask(ctx, imaged.DefaultTenant, tasks[2].ID); err != nil {
		t.Fatal(err)
	}
	c = claim(t, s, tasks[3].ID)
	if _, err := s.CompleteTask(ctx, c.ID, c.Attempts, &imaged.TaskResult{}); err != nil {
		t.Fatal(err)
	}
	for i, want := range []string{imaged.StatusCompleted, imaged.StatusFailed, imaged.StatusCancelled} {
		got := deliveries(t, o, imaged.DefaultTenant, tasks[i].ID)
		if len(got) != 1 {
			t.Fatalf("task %s (%s) has %d deliveries, want 1", tasks[i].ID, want, len(got))
		}
		d := got[0]
		event := "task." + want
		if d.Kind != imaged.OutboxWebhook || d.Event != event || d.URL != "https://example.com/hook" ||
			d.TaskID != tasks[i].ID || d.WebhookID != imaged.WebhookID(event, tasks[i].ID) ||
			d.Status != imaged.DeliveryPending || d.Attempts != 0 || d.CorrelationID != "corr-hook" || d.DeliveredAt != nil {
			t.Fatalf("delivery = %+v", d)
		}
		var body struct {
			ID    string `json:"id"`
			Event string `json:"event"`
			Task  struct {
				TaskID string              `json:"task_id"`
				Status string              `json:"status"`
				Error  *imaged.TaskFailure `json:"error"`
			} `json:"task"`
		}
		if err := json.Unmarshal(d.Payload, &body); err != nil {
			t.Fatalf("payload %s: %v", d.Payload, err)
		}
		if body.ID != d.WebhookID || body.Event != event || body.Task.TaskID != tasks[i].ID || body.Task.Status != want {
			t.Fatalf("payload %s", d.Payload)
		}
		if want == imaged.StatusFailed && (body.Task.Error == nil || body.Task.Error.Message != "bad op") {
			t.Fatalf("failure payload %s lacks the error", d.Payload)
		}
		if one, err := o.Delivery(ctx, imaged.DefaultTenant, d.ID); err != nil || one.ID != d.ID || string(one.Payload) != string(d.Payload) {
			t.Fatalf("Delivery(%s) = %+v, %v", d.ID, one, err)
		}
		_, err := o.Delivery(ctx, "someone-else", d.ID)
		wantCode(t, err, imaged.ENotFound, "another tenant's Delivery")
		if other := deliveries(t, o, "someone-else", tasks[i].ID); len(other) != 0 {
			t.Fatalf("another tenant sees %d deliveries", len(other))
		}
	}
	if got := deliveries(t, o, imaged.DefaultTenant, tasks[3].ID); len(got) != 0 {
		t.Fatalf("a task without a callback has %d deliveries", len(got))
	}
	backlog, err := o.OutboxBacklog(ctx)
	if err != nil || backlog[imaged.OutboxWebhook].IsZero() || time.Since(backlog[imaged.OutboxWebhook]) > time.Minute {
		t.Fatalf("OutboxBacklog = %v, %v; want the webhooks pending since just now", backlog, err)
	}
}

func createCallbackBatch(t *testing.T, s imaged.TaskStore, n int) (*imaged.Batch, []*imaged.Task) {
	t.Helper()
	img := createImage(t, s)
	tasks := make([]*imaged.Task, n)
	for i := range tasks {
		tasks[i] = newTask(t, img.ID, opsTransform)
	}
	b := &imaged.Batch{CallbackURL: "https://example.com/batch"}
	if _, err := s.CreateTasks(t.Context(), tasks, b); err != nil {
		t.Fatalf("CreateTasks: %v", err)
	}
	return b, tasks
}

func batchHooks(items []*imaged.OutboxItem, batchID string) []*imaged.OutboxItem {
	var out []*imaged.OutboxItem
	for _, it := range items {
		if it.BatchID == batchID && it.TaskID == "" {
			out = append(out, it)
		}
	}
	return out
}

// A batch's callback is written when its last task finishes, once, with every task's outcome.
func testOutboxBatchCallback(t *testing.T, s imaged.TaskStore) {
	ctx := t.Context()
	o := outboxOf(t, s)
	b, tasks := createCallbackBatch(t, s, 3)
	c := claim(t, s, tasks[0].ID)
	if _, err := s.CompleteTask(ctx, c.ID, c.Attempts, &imaged.TaskResult{}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.CancelTask(ctx, imaged.DefaultTenant, tasks[1].ID); err != nil {
		t.Fatal(err)
	}
	if got := batchHooks(claimAll(t, o, imaged.OutboxWebhook), b.ID); len(got) != 0 {
		t.Fatalf("%d batch callbacks with a task still queued", len(got))
	}
	c = claim(t, s, tasks[2].ID)
	if _, err := s.FailTask(ctx, c.ID, c.Attempts, &imaged.TaskFailure{Code: imaged.EInvalid, Message: "x"}); err != nil {
		t.Fatal(err)
	}
	got := batchHooks(claimAll(t, o, imaged.OutboxWebhook), b.ID)
	if len(got) != 1 {
		t.Fatalf("%d batch callbacks after the last task, want 1", len(got))
	}
	d := got[0]
	if d.Event != imaged.EventBatchCompleted || d.URL != "https://example.com/batch" ||
		d.WebhookID != imaged.WebhookID(imaged.EventBatchCompleted, b.ID) || d.Attempts != 1 || d.Claim == "" {
		t.Fatalf("batch delivery = %+v", d)
	}
	var body struct {
		Batch struct {
			BatchID string         `json:"batch_id"`
			Counts  map[string]int `json:"counts"`
			Items   []struct {
				Status string `json:"status"`
			} `json:"items"`
		} `json:"batch"`
	}
	if err := json.Unmarshal(d.Payload, &body); err != nil {
		t.Fatal(err)
	}
	if body.Batch.BatchID != b.ID || len(body.Batch.Items) != 3 || body.Batch.Counts[imaged.StatusCompleted] != 1 ||
		body.Batch.Counts[imaged.StatusCancelled] != 1 || body.Batch.Counts[imaged.StatusFailed] != 1 {
		t.Fatalf("batch payload %s", d.Payload)
	}
}

// Two attempts finishing a batch's last two tasks at once write its callback once.
func testOutboxBatchLastTasksAtOnce(t *testing.T, s imaged.TaskStore) {
	ctx := t.Context()
	o := outboxOf(t, s)
	for range 5 {
		b, tasks := createCallbackBatch(t, s, 2)
		claimed := []*imaged.Task{claim(t, s, tasks[0].ID), claim(t, s, tasks[1].ID)}
		var wg sync.WaitGroup
		errs := make([]error, 2)
		for i, c := range claimed {
			wg.Go(func() {
				_, errs[i] = s.CompleteTask(ctx, c.ID, c.Attempts, &imaged.TaskResult{})
			})
		}
		wg.Wait()
		for _, err := range errs {
			if err != nil {
				t.Fatalf("CompleteTask: %v", err)
			}
		}
		if got := batchHooks(claimAll(t, o, imaged.OutboxWebhook), b.ID); len(got) != 1 {
			t.Fatalf("%d batch callbacks, want 1", len(got))
		}
	}
}

func addEvents(t *testing.T, o imaged.Outbox, n int) []*imaged.OutboxItem {
	t.Helper()
	items := make([]*imaged.OutboxItem, n)
	for i := range items {
		it, err := imaged.EventItem(imaged.Event{ID: uniq("ev"), Type: imaged.EventTaskStarted, TaskID: uniq("task")})
		if err != nil {
			t.Fatal(err)
		}
		items[i] = it
	}
	if err := o.AddToOutbox(t.Context(), items...); err != nil {
		t.Fatalf("AddToOutbox: %v", err)
	}
	return items
}

// A claim leases items: a second claim gets none of them until the holder records a retry
// that is due, or its lease runs out. Only the claim that holds an item records its outcome;
// a delivered event is forgotten.
func testOutboxClaimLease(t *testing.T, s imaged.TaskStore) {
	ctx := t.Context()
	o := outboxOf(t, s)
	added := addEvents(t, o, 2)
	// Adding an item whose webhook id is stored changes nothing.
	dup := *added[0]
	dup.ID = ""
	if err := o.AddToOutbox(ctx, &dup); err != nil {
		t.Fatalf("AddToOutbox of a stored webhook id: %v", err)
	}
	first := claimAll(t, o, imaged.OutboxEvent)
	if len(first) != 2 {
		t.Fatalf("claimed %d, want 2", len(first))
	}
	for _, it := range first {
		if it.Attempts != 1 || it.Claim == "" || it.Kind != imaged.OutboxEvent || len(it.Payload) == 0 {
			t.Fatalf("claimed %+v", it)
		}
	}
	if again := claimAll(t, o, imaged.OutboxEvent); len(again) != 0 {
		t.Fatalf("a second claim took %d leased items", len(again))
	}
	if got := claimAll(t, o, imaged.OutboxWebhook); len(got) != 0 {
		t.Fatalf("a webhook claim took %d events", len(got))
	}
	// A retry due now comes back at the next claim, with its error.
	a, b := first[0], first[1]
	wantCode(t, o.FinishOutbox(ctx, a.ID, "not-the-claim", imaged.OutboxOutcome{Delivered: true}), imaged.EConflict, "FinishOutbox with another claim")
	wantCode(t, o.FinishOutbox(ctx, "no-such-item", a.Claim, imaged.OutboxOutcome{}), imaged.ENotFound, "FinishOutbox of an unknown item")
	if err := o.FinishOutbox(ctx, a.ID, a.Claim, imaged.OutboxOutcome{NextAttemptAt: time.Now().Add(-time.Second), StatusCode: 503, Error: "down"}); err != nil {
		t.Fatalf("FinishOutbox(retry): %v", err)
	}
	wantCode(t, o.FinishOutbox(ctx, a.ID, a.Claim, imaged.OutboxOutcome{Delivered: true}), imaged.EConflict, "FinishOutbox twice")
	retried := claimAll(t, o, imaged.OutboxEvent)
	if len(retried) != 1 || retried[0].ID != a.ID || retried[0].Attempts != 2 || retried[0].LastError != "down" ||
		retried[0].LastStatus != 503 || retried[0].Claim == a.Claim {
		t.Fatalf("after a due retry claimed %+v", retried)
	}
	if err := o.FinishOutbox(ctx, a.ID, retried[0].Claim, imaged.OutboxOutcome{Delivered: true}); err != nil {
		t.Fatalf("FinishOutbox(delivered): %v", err)
	}
	wantCode(t, o.FinishOutbox(ctx, a.ID, retried[0].Claim, imaged.OutboxOutcome{}), imaged.ENotFound, "FinishOutbox of a delivered event")

	// b's holder dies: when its lease runs out, another claim takes b and the old holder can
	// no longer record anything.
	if err := o.FinishOutbox(ctx, b.ID, b.Claim, imaged.OutboxOutcome{NextAttemptAt: time.Now().Add(-time.Second)}); err != nil {
		t.Fatal(err)
	}
	short, err := o.ClaimOutbox(ctx, imaged.OutboxEvent, 10, 50*time.Millisecond)
	if err != nil || len(short) != 1 {
		t.Fatalf("ClaimOutbox = %d, %v", len(short), err)
	}
	var taken []*imaged.OutboxItem
	deadline := time.Now().Add(10 * time.Second)
	for len(taken) == 0 {
		if time.Now().After(deadline) {
			t.Fatal("an item whose lease ran out never came back")
		}
		time.Sleep(20 * time.Millisecond)
		taken = claimAll(t, o, imaged.OutboxEvent)
	}
	if taken[0].ID != b.ID || taken[0].Attempts != 3 {
		t.Fatalf("after the lease claimed %+v", taken[0])
	}
	wantCode(t, o.FinishOutbox(ctx, b.ID, short[0].Claim, imaged.OutboxOutcome{Delivered: true}), imaged.EConflict, "FinishOutbox after the lease ran out")
	// Given up: never claimed again.
	if err := o.FinishOutbox(ctx, b.ID, taken[0].Claim, imaged.OutboxOutcome{GiveUp: true, Error: "too old"}); err != nil {
		t.Fatal(err)
	}
	if got := claimAll(t, o, imaged.OutboxEvent); len(got) != 0 {
		t.Fatalf("claimed %d items after giving up", len(got))
	}
	if backlog, err := o.OutboxBacklog(ctx); err != nil || len(backlog) != 0 {
		t.Fatalf("OutboxBacklog = %v, %v; want nothing pending", backlog, err)
	}
}

// Senders claiming at once never get one item twice, and together get every item.
func testOutboxClaimConcurrently(t *testing.T, s imaged.TaskStore) {
	o := outboxOf(t, s)
	added := addEvents(t, o, 60)
	var mu sync.Mutex
	seen := map[string]int{}
	var wg sync.WaitGroup
	for range 4 {
		wg.Go(func() {
			for {
				got, err := o.ClaimOutbox(t.Context(), imaged.OutboxEvent, 5, time.Minute)
				if err != nil {
					t.Errorf("ClaimOutbox: %v", err)
					return
				}
				if len(got) == 0 {
					return
				}
				mu.Lock()
				for _, it := range got {
					seen[it.ID]++
				}
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	for _, it := range added {
		if seen[it.ID] != 1 {
			t.Fatalf("item %s claimed %d times", it.ID, seen[it.ID])
		}
	}
	if len(seen) != len(added) {
		t.Fatalf("claimed %d items, added %d", len(seen), len(added))
	}
}

// A delivered (or given-up) webhook can be delivered again: it becomes pending and due now.
func testOutboxRedeliver(t *testing.T, s imaged.TaskStore) {
	ctx := t.Context()
	o := outboxOf(t, s)
	img := createImage(t, s)
	task := newTask(t, img.ID, opsTransform)
	task.CallbackURL = "https://example.com/hook"
	if _, err := s.CreateTasks(ctx, []*imaged.Task{task}, nil); err != nil {
		t.Fatal(err)
	}
	c := claim(t, s, task.ID)
	if _, err := s.CompleteTask(ctx, c.ID, c.Attempts, &imaged.TaskResult{}); err != nil {
		t.Fatal(err)
	}
	got := claimAll(t, o, imaged.OutboxWebhook)
	if len(got) != 1 {
		t.Fatalf("claimed %d, want 1", len(got))
	}
	if err := o.FinishOutbox(ctx, got[0].ID, got[0].Claim, imaged.OutboxOutcome{Delivered: true, StatusCode: 204}); err != nil {
		t.Fatal(err)
	}
	d, err := o.Delivery(ctx, imaged.DefaultTenant, got[0].ID)
	if err != nil || d.Status != imaged.DeliveryDelivered || d.DeliveredAt == nil || d.LastStatus != 204 || d.Attempts != 1 {
		t.Fatalf("delivered: %+v, %v", d, err)
	}
	wantNear(t, "DeliveredAt", d.DeliveredAt, time.Now())
	_, err = o.Redeliver(ctx, "someone-else", d.ID)
	wantCode(t, err, imaged.ENotFound, "Redeliver of another tenant's delivery")
	_, err = o.Redeliver(ctx, imaged.DefaultTenant, "no-such-delivery")
	wantCode(t, err, imaged.ENotFound, "Redeliver of an unknown delivery")
	r, err := o.Redeliver(ctx, imaged.DefaultTenant, d.ID)
	if err != nil || r.Status != imaged.DeliveryPending || r.DeliveredAt != nil || r.WebhookID != d.WebhookID ||
		!r.PendingSince.After(d.PendingSince) {
		t.Fatalf("Redeliver = %+v, %v", r, err)
	}
	again := claimAll(t, o, imaged.OutboxWebhook)
	if len(again) != 1 || again[0].ID != d.ID || again[0].Attempts != 2 {
		t.Fatalf("after Redeliver claimed %+v", again)
	}
}

// CheckOutboxRollback holds a store to its outbox migration: with it applied the outbox takes
// items; rolled back (down) the table is gone and tasks still finish; applied again (up) the
// outbox works, empty.
func CheckOutboxRollback(t *testing.T, s imaged.TaskStore, down, up func() error) {
	t.Helper()
	o := outboxOf(t, s)
	addEvents(t, o, 1)
	if err := down(); err != nil {
		t.Fatalf("rolling the outbox migration back: %v", err)
	}
	if _, err := o.ClaimOutbox(t.Context(), imaged.OutboxEvent, 1, time.Minute); err == nil {
		t.Fatal("the outbox answers after its migration was rolled back")
	}
	if err := up(); err != nil {
		t.Fatalf("applying the outbox migration again: %v", err)
	}
	if got := claimAll(t, o, imaged.OutboxEvent); len(got) != 0 {
		t.Fatalf("the outbox holds %d items after being made again", len(got))
	}
	addEvents(t, o, 1)
	if got := claimAll(t, o, imaged.OutboxEvent); len(got) != 1 {
		t.Fatalf("the outbox made again yields %d items, want 1", len(got))
	}
}
