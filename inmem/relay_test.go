package inmem_test

import (
	"encoding/json"
	"testing"

	"github.com/imaged/imaged"
	"github.com/imaged/imaged/inmem"
)

// A relay stamps what this process publishes and shows it to both streams; what comes back from
// the broker is shown to the all-processes stream once, and never to the local one.
func TestRelay(t *testing.T) {
	r := inmem.NewRelay("me")
	defer r.Close()
	all, stopAll := r.Subscribe()
	defer stopAll()
	local, stopLocal := r.Local().Subscribe()
	defer stopLocal()

	sent := r.Publish(imaged.Event{Type: imaged.EventTaskQueued, TaskID: "t1"})
	if sent.ID == "" || sent.Time.IsZero() {
		t.Fatalf("published event not stamped: %+v", sent)
	}
	if e := <-all; e.ID != sent.ID {
		t.Fatalf("all got %+v", e)
	}
	if e := <-local; e.ID != sent.ID {
		t.Fatalf("local got %+v", e)
	}
	body, _ := json.Marshal(sent)
	r.Receive("me", body) // this process's own event, back from the broker
	r.Receive("other", []byte("not json"))
	other, _ := json.Marshal(imaged.Event{ID: "e2", Type: imaged.EventTaskStarted, TaskID: "t1"})
	r.Receive("other", other)
	if e := <-all; e.ID != "e2" {
		t.Fatalf("all got %+v, want the other process's event (own and unreadable ones skipped)", e)
	}
	select {
	case e := <-local:
		t.Fatalf("local got another process's event %+v", e)
	default:
	}
	r.Drop()
	if r.Dropped() != 1 {
		t.Fatalf("Dropped = %d", r.Dropped())
	}
}
