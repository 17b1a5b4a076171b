package rabbitmq

import (
	"context"
	"log/slog"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/imaged/imaged"
	"github.com/imaged/imaged/internal/tcpproxy"
	"github.com/imaged/imaged/sqlite"
	"github.com/imaged/imaged/webhook"
)

// Events published while the publisher's connection to the broker is cut wait in the outbox
// and reach the other processes once it is back: none is dropped.
func TestEventsPublishedDuringAnOutageArriveAfterIt(t *testing.T) {
	direct := brokerURL(t)
	p := tcpproxy.Start(t, hostOf(direct))
	pub := openBroker(t, func(c *Config) { c.URL = viaProxy(direct, p.Addr()); c.Heartbeat = time.Second })
	sub := openBroker(t, func(c *Config) { c.Exchange, c.Prefix = pub.cfg.Exchange, pub.cfg.Prefix })

	store, err := sqlite.Open(t.Context(), filepath.Join(t.TempDir(), "imaged.db"), sqlite.OpenOptions{Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { store.Close() })
	out := pub.Events(EventsOptions{Outbox: store})
	t.Cleanup(func() { out.Close() })
	in := sub.Events(EventsOptions{})
	t.Cleanup(func() { in.Close() })

	// The outbox sender, as every imaged process runs it.
	sender, err := webhook.New(webhook.Config{Secret: []byte("s"), Outbox: store, Events: out, Poll: 50 * time.Millisecond,
		Backoff: 100 * time.Millisecond, MaxBackoff: 500 * time.Millisecond, Timeout: 2 * time.Second,
		Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	ctx, stop := context.WithCancel(context.Background())
	senderDone := make(chan struct{})
	go func() { defer close(senderDone); sender.Run(ctx) }()
	t.Cleanup(func() { stop(); <-senderDone })

	var mu sync.Mutex
	got := map[string]int{}
	ch, unsubscribe := in.Subscribe()
	t.Cleanup(unsubscribe)
	go func() {
		for ev := range ch {
			mu.Lock()
			got[ev.ID]++
			mu.Unlock()
		}
	}()
	arrived := func(ids []string) func() bool {
		return func() bool {
			mu.Lock()
			defer mu.Unlock()
			for _, id := range ids {
				if got[id] == 0 {
					return false
				}
			}
			return true
		}
	}
	publish := func(n int) []string {
		var ids []string
		for range n {
			ev := imaged.Event{ID: imaged.NewID(), Type: imaged.EventTaskCompleted, TaskID: imaged.NewID()}
			if err := out.Publish(context.Background(), ev); err != nil {
				t.Fatal(err)
			}
			ids = append(ids, ev.ID)
		}
		return ids
	}

	// The subscriber's queue binds asynchronously: wait until an event gets through.
	var before []string
	waitFor(t, 15*time.Second, "events to flow", func() bool {
		before = append(before, publish(1)...)
		mu.Lock()
		defer mu.Unlock()
		return len(got) > 0
	})

	p.Cut()
	during := publish(50)
	waitFor(t, 15*time.Second, "the events of the outage to wait in the outbox", func() bool {
		backlog, err := store.OutboxBacklog(context.Background())
		return err == nil && !backlog[imaged.OutboxEvent].IsZero()
	})
	time.Sleep(time.Second) // the outage goes on for a while
	if arrived(during[:1])() {
		t.Fatal("an event of the outage arrived while the connection was cut")
	}
	p.Restore()
	waitFor(t, 30*time.Second, "every event of the outage to arrive", arrived(during))
	waitFor(t, 10*time.Second, "the outbox to empty", func() bool {
		backlog, err := store.OutboxBacklog(context.Background())
		return err == nil && len(backlog) == 0
	})
	after := publish(10)
	waitFor(t, 15*time.Second, "events after the outage", arrived(after))
	if n := out.Dropped(); n != 0 {
		t.Fatalf("%d events dropped", n)
	}
}
