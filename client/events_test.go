package client

import (
	"strings"
	"testing"
	"time"
)

// The event-stream parser reads the fields as the specification says: data lines joined,
// comments skipped, CRLF or LF, retry in milliseconds, a last event without a blank line lost.
func TestReadEvents(t *testing.T) {
	stream := "retry: 1500\n\n: ping\n\nevent: task\ndata: {\"id\":\"a\",\ndata: \"status\":\"queued\"}\n\n" +
		"id: 7\r\nevent: task.started\r\ndata: {}\r\n\r\ndata: plain\n\nevent: cut\ndata: {}"
	type got struct {
		e     Event
		retry time.Duration
	}
	var events []got
	if err := readEvents(strings.NewReader(stream), func(e Event, r time.Duration) error {
		events = append(events, got{e, r})
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	want := []got{
		{Event{}, 1500 * time.Millisecond},
		{Event{Type: "task", Data: []byte("{\"id\":\"a\",\n\"status\":\"queued\"}")}, 0},
		{Event{Type: "task.started", ID: "7", Data: []byte("{}")}, 0},
		{Event{Type: "message", Data: []byte("plain")}, 0},
	}
	if len(events) != len(want) {
		t.Fatalf("got %d events: %+v", len(events), events)
	}
	for i, w := range want {
		g := events[i]
		if g.e.Type != w.e.Type || g.e.ID != w.e.ID || string(g.e.Data) != string(w.e.Data) || g.retry != w.retry {
			t.Errorf("event %d: got %+v, want %+v", i, g, w)
		}
	}
}
