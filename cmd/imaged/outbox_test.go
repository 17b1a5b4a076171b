package main

import (
	"fmt"
	"io"
	"net"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/imaged/imaged"
	"github.com/imaged/imaged/webhook"
)

const outboxSecret = "outbox-test-webhook-secret"

// deliveryReceiver records every callback by webhook id; it starts down (nothing listens on
// its port) and comes up with up.
type deliveryReceiver struct {
	addr string
	srv  *http.Server
	mu   sync.Mutex
	got  map[string][]string // webhook id → the URL paths it was sent to
	bad  []string            // requests whose signatures did not verify
}

func newDeliveryReceiver(t *testing.T) *deliveryReceiver {
	r := &deliveryReceiver{addr: fmt.Sprintf("127.0.0.1:%d", freePort(t)), got: map[string][]string{}}
	r.srv = &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		body, _ := io.ReadAll(req.Body)
		h := req.Header
		id := h.Get(webhook.HeaderWebhookID)
		r.mu.Lock()
		defer r.mu.Unlock()
		if err := webhook.VerifyStandard([]byte(outboxSecret), id, h.Get(webhook.HeaderWebhookTimestamp),
			h.Get(webhook.HeaderWebhookSignature), body, 0); err != nil {
			r.bad = append(r.bad, id+": "+err.Error())
		}
		if err := webhook.Verify([]byte(outboxSecret), h.Get(webhook.HeaderSignature), body, 0); err != nil {
			r.bad = append(r.bad, id+": "+err.Error())
		}
		r.got[id] = append(r.got[id], req.URL.Path)
		w.WriteHeader(http.StatusNoContent)
	})}
	t.Cleanup(func() { r.srv.Close() })
	return r
}

func (r *deliveryReceiver) up(t *testing.T) {
	ln, err := net.Listen("tcp", r.addr)
	if err != nil {
		t.Fatalf("the receiver cannot listen on %s again: %v", r.addr, err)
	}
	go r.srv.Serve(ln)
}

func (r *deliveryReceiver) sent(id string) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.got[id])
}

// kill -9 with 100 webhook deliveries pending and the receiver down: after the restart and the
// receiver's recovery, each is delivered (at least once, with the webhook id it had before),
// none lost.
func TestWebhooksSurviveKill9(t *testing.T) {
	if testing.Short() {
		t.Skip("runs 100 tasks over two imaged processes")
	}
	rcv := newDeliveryReceiver(t)
	dir := t.TempDir()
	env := []string{"IMAGED_WORKERS=4", "IMAGED_WEBHOOK_SECRET=" + outboxSecret, "IMAGED_OUTBOUND_ALLOW=127.0.0.0/8",
		"IMAGED_WEBHOOK_BACKOFF=100ms", "IMAGED_WEBHOOK_BACKOFF_MAX=1s", "IMAGED_WEBHOOK_TIMEOUT=2s"}
	s := startServer(t, dir, env...)
	img := s.upload(readTestdata(t, "chelsea.png"))
	const n = 100
	ids := make([]string, n)
	for i := range ids {
		r := s.postJSON("/v1/tasks", map[string]any{"image_id": img, "ops": []map[string]any{{"op": "resize", "width": 32}},
			"callback_url": fmt.Sprintf("http://%s/hook/%d", rcv.addr, i)})
		if r.status != 202 {
			t.Fatalf("create: %d %s", r.status, r.body)
		}
		ids[i] = r.json(t)["id"].(string)
	}
	webhookIDs := map[string]string{}
	for _, id := range ids {
		if task := s.waitTask(id, 2*time.Minute); task["status"] != imaged.StatusCompleted {
			t.Fatalf("task %s ended %v", id, task["status"])
		}
	}
	// Every delivery exists, pending, and has been tried against the receiver that is down.
	waitFor(t, time.Minute, "every delivery to be tried", func() bool {
		for _, id := range ids {
			items := deliveriesOf(t, s, id)
			if len(items) != 1 || items[0]["status"] != imaged.DeliveryPending || items[0]["attempts"].(float64) < 1 {
				return false
			}
			webhookIDs[id] = items[0]["webhook_id"].(string)
		}
		return true
	})
	s.kill() // SIGKILL while every delivery is pending

	rcv.up(t)
	s2 := startServer(t, dir, env...)
	waitFor(t, 2*time.Minute, "every webhook to arrive", func() bool {
		for _, id := range ids {
			if rcv.sent(webhookIDs[id]) == 0 {
				return false
			}
		}
		return true
	})
	rcv.mu.Lock()
	if len(rcv.bad) > 0 {
		t.Errorf("signatures that did not verify: %v", rcv.bad)
	}
	dup := 0
	for i, id := range ids {
		paths := rcv.got[webhookIDs[id]]
		if webhookIDs[id] != imaged.WebhookID(imaged.EventTaskCompleted, id) || paths[0] != fmt.Sprintf("/hook/%d", i) {
			t.Errorf("task %s: webhook id %s sent to %v", id, webhookIDs[id], paths)
		}
		dup += len(paths) - 1
	}
	if len(rcv.got) != n {
		t.Errorf("the receiver got %d webhook ids, want %d", len(rcv.got), n)
	}
	rcv.mu.Unlock()
	t.Logf("%d webhooks delivered after kill -9 and restart (%d duplicates)", n, dup)
	waitFor(t, 30*time.Second, "every delivery to be recorded delivered", func() bool {
		for _, id := range ids {
			if items := deliveriesOf(t, s2, id); len(items) != 1 || items[0]["status"] != imaged.DeliveryDelivered {
				return false
			}
		}
		return true
	})

	// A delivery asked for again goes out again, with the same webhook id.
	d := deliveriesOf(t, s2, ids[0])[0]
	before := rcv.sent(webhookIDs[ids[0]])
	if r := s2.postJSON("/v1/deliveries/"+d["id"].(string)+"/redeliver", nil); r.status != 202 || r.json(t)["status"] != imaged.DeliveryPending {
		t.Fatalf("redeliver: %d %s", r.status, r.body)
	}
	waitFor(t, 30*time.Second, "the redelivery", func() bool { return rcv.sent(webhookIDs[ids[0]]) > before })
	if r := s2.postJSON("/v1/deliveries/no-such-delivery/redeliver", nil); r.status != 404 {
		t.Fatalf("redeliver of an unknown delivery: %d %s", r.status, r.body)
	}
}

func deliveriesOf(t *testing.T, s *server, taskID string) []map[string]any {
	t.Helper()
	r := s.get("/v1/tasks/" + taskID + "/deliveries")
	if r.status != 200 {
		t.Fatalf("deliveries of %s: %d %s", taskID, r.status, r.body)
	}
	var out []map[string]any
	for _, it := range r.json(t)["items"].([]any) {
		out = append(out, it.(map[string]any))
	}
	return out
}
