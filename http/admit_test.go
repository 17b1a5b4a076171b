package http

import (
	"bytes"
	"testing"
	"time"
)

// With every slot busy and the waiting line full, a synchronous request is refused before its
// body is read: an upload over the size limit gets 503 (busy), not 413 (which reading would
// have found), and the processor is not called.
func TestOverloadRefusesBeforeReadingTheBody(t *testing.T) {
	st := newStack(t, Config{MaxInflight: 1, MaxWaiting: 1, WaitTimeout: 30 * time.Second}, Deps{}, true)
	gate := make(chan struct{})
	st.proc.gate = gate
	t.Cleanup(func() {
		select {
		case <-gate:
		default:
			close(gate)
		}
	})
	id := st.uploadImage()
	body := []byte(`{"image_id":"` + id + `","ops":[{"op":"resize","width":2}]}`)
	done := make(chan int, 2)
	for range 2 { // one runs (blocked on the gate), one waits for the slot
		go func() {
			done <- st.do("POST", "/v1/process", body, map[string]string{"Content-Type": "application/json"}).status
		}()
	}
	deadline := time.Now().Add(10 * time.Second)
	for !st.api.slots.full() {
		if time.Now().After(deadline) {
			t.Fatal("the two requests never took the slot and the line")
		}
		time.Sleep(5 * time.Millisecond)
	}
	huge := bytes.Repeat([]byte{0xFF}, 51<<20)
	r := st.do("POST", "/v1/process", huge, map[string]string{"Content-Type": "multipart/form-data; boundary=x"})
	if r.status != 503 || r.header.Get("Retry-After") == "" || r.errorCode() != "unavailable" {
		t.Fatalf("overloaded: %d %s (Retry-After %q)", r.status, r.body, r.header.Get("Retry-After"))
	}
	if calls := st.proc.calls.Load(); calls != 1 {
		t.Fatalf("the processor ran %d times, want 1 (the blocked request)", calls)
	}
	close(gate)
	for range 2 {
		if s := <-done; s != 200 {
			t.Fatalf("a request admitted before the overload answered %d", s)
		}
	}
}
