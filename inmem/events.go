// Package inmem holds the in-process adapters of the embedded mode: the event bus that SSE,
// webhooks and metrics read from when no broker is configured.
package inmem

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"sync"
	"sync/atomic"
	"time"

	"github.com/imaged/imaged"
)

// DefaultBuffer is the number of events a subscriber may fall behind before it loses events.
const DefaultBuffer = 256

// EventsOptions tune an Events bus.
type EventsOptions struct {
	// Buffer is each subscriber's channel capacity; DefaultBuffer when zero or less.
	Buffer int
}

// Events is an in-memory imaged.Events: every event fans out to every subscriber. Publish
// never waits: a subscriber whose buffer is full misses the event, and the miss is counted.
//
// Subscribers share the events they receive (pointers and Data included) and must not
// modify them.
type Events struct {
	buffer  int
	dropped atomic.Uint64

	// mu orders publishes: every subscriber sees events in one order, the order of Publish.
	mu     sync.Mutex
	subs   map[*subscriber]struct{}
	closed bool
}

type subscriber struct {
	ch chan imaged.Event
}

var _ imaged.Events = (*Events)(nil)

// NewEvents returns an empty bus.
func NewEvents(opts EventsOptions) *Events {
	if opts.Buffer <= 0 {
		opts.Buffer = DefaultBuffer
	}
	return &Events{buffer: opts.Buffer, subs: map[*subscriber]struct{}{}}
}

// Publish stamps e with an ID and time where they are empty and hands it to every
// subscriber that has room. After Close it does nothing. It never returns an error.
func (b *Events) Publish(_ context.Context, e imaged.Event) error {
	if e.ID == "" {
		e.ID = newID()
	}
	if e.Time.IsZero() {
		e.Time = time.Now().UTC()
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		return nil
	}
	for s := range b.subs {
		select {
		case s.ch <- e:
		default:
			b.dropped.Add(1)
		}
	}
	return nil
}

// Subscribe returns a channel of the events published from now on and a function that ends
// the subscription and closes the channel; calling it again does nothing. After Close the
// channel is already closed.
func (b *Events) Subscribe() (<-chan imaged.Event, func()) {
	s := &subscriber{ch: make(chan imaged.Event, b.buffer)}
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		close(s.ch)
		return s.ch, func() {}
	}
	b.subs[s] = struct{}{}
	return s.ch, func() { b.unsubscribe(s) }
}

func (b *Events) unsubscribe(s *subscriber) {
	b.mu.Lock()
	defer b.mu.Unlock()
	// Close only while subscribed: Close may have closed the channel already.
	if _, ok := b.subs[s]; ok {
		delete(b.subs, s)
		close(s.ch)
	}
}

// Dropped returns how many deliveries were skipped because a subscriber's buffer was full,
// over all subscribers since the bus was made.
func (b *Events) Dropped() uint64 { return b.dropped.Load() }

// Subscribers returns the number of live subscriptions.
func (b *Events) Subscribers() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return len(b.subs)
}

// Close ends every subscription (closing their channels) and turns later publishes into
// no-ops. It is safe to call more than once.
func (b *Events) Close() error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		return nil
	}
	b.closed = true
	for s := range b.subs {
		close(s.ch)
	}
	clear(b.subs)
	return nil
}

func newID() string {
	var b [16]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails on supported platforms
	return hex.EncodeToString(b[:])
}
