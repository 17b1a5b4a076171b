package inmem

import (
	"context"
	"encoding/json"
	"sync/atomic"
	"time"

	"github.com/imaged/imaged"
)

// Relay is the in-process end of an event stream that crosses processes through a broker: the
// broker adapters send what Publish returns and hand what comes in to Receive. Subscribers see
// every process's events; Local subscribers see only this process's, for work that must happen
// once per event across processes (webhook deliveries). In-process readers keep working while
// the broker is away.
type Relay struct {
	all     *Events // events of every process
	local   *Events // events published by this process
	origin  string
	dropped atomic.Uint64
}

// NewRelay returns a relay whose events carry origin (random when empty) to tell this process's
// events from others' when they come back from the broker.
func NewRelay(origin string) *Relay {
	if origin == "" {
		origin = imaged.NewID()
	}
	return &Relay{all: NewEvents(EventsOptions{}), local: NewEvents(EventsOptions{}), origin: origin}
}

// Origin names this process in the events it sends.
func (r *Relay) Origin() string { return r.origin }

// Publish stamps ev with an ID and time where they are empty, hands it to this process's
// subscribers and returns it, for the broker.
func (r *Relay) Publish(ev imaged.Event) imaged.Event {
	if ev.ID == "" {
		ev.ID = imaged.NewID()
	}
	if ev.Time.IsZero() {
		ev.Time = time.Now().UTC()
	}
	_ = r.local.Publish(context.Background(), ev)
	_ = r.all.Publish(context.Background(), ev)
	return ev
}

// Receive hands an event that came in from the broker to the subscribers of every process's
// events, unless this process sent it (its subscribers had it already) or it is unreadable.
func (r *Relay) Receive(origin string, body []byte) {
	if origin == r.origin {
		return
	}
	var ev imaged.Event
	if err := json.Unmarshal(body, &ev); err != nil || ev.Type == "" {
		return
	}
	_ = r.all.Publish(context.Background(), ev)
}

// Subscribe returns the events of every process from now on.
func (r *Relay) Subscribe() (<-chan imaged.Event, func()) { return r.all.Subscribe() }

// Local is the stream of the events this process published.
func (r *Relay) Local() imaged.Events { return r.local }

// Drop counts an event that never reached the broker.
func (r *Relay) Drop() { r.dropped.Add(1) }

// Dropped returns how many events never reached the broker.
func (r *Relay) Dropped() uint64 { return r.dropped.Load() }

// Close ends every subscription.
func (r *Relay) Close() error {
	_ = r.all.Close()
	return r.local.Close()
}
