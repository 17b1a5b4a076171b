package inmem

import (
	"context"
	"regexp"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/imaged/imaged"
)

func recv(t *testing.T, ch <-chan imaged.Event) imaged.Event {
	t.Helper()
	select {
	case e, ok := <-ch:
		if !ok {
			t.Fatal("channel closed, want an event")
		}
		return e
	case <-time.After(5 * time.Second):
		t.Fatal("no event within 5s")
	}
	panic("unreachable")
}

func TestEverySubscriberGetsEveryEventInOrder(t *testing.T) {
	bus := NewEvents(EventsOptions{})
	defer bus.Close()
	const subs, events = 5, 200
	chans := make([]<-chan imaged.Event, subs)
	for i := range chans {
		ch, cancel := bus.Subscribe()
		defer cancel()
		chans[i] = ch
	}
	for i := range events {
		if err := bus.Publish(t.Context(), imaged.Event{Type: imaged.EventTaskQueued, TaskID: strconv.Itoa(i)}); err != nil {
			t.Fatal(err)
		}
	}
	for s, ch := range chans {
		for i := range events {
			e := recv(t, ch)
			if e.TaskID != strconv.Itoa(i) {
				t.Fatalf("subscriber %d event %d has task %q, want %d", s, i, e.TaskID, i)
			}
		}
	}
	if d := bus.Dropped(); d != 0 {
		t.Fatalf("Dropped = %d, want 0", d)
	}
}

func TestPublishStampsIDAndTime(t *testing.T) {
	bus := NewEvents(EventsOptions{})
	defer bus.Close()
	ch, cancel := bus.Subscribe()
	defer cancel()

	before := time.Now()
	bus.Publish(t.Context(), imaged.Event{Type: imaged.EventTaskCompleted})
	bus.Publish(t.Context(), imaged.Event{Type: imaged.EventTaskCompleted})
	a, b := recv(t, ch), recv(t, ch)
	hexID := regexp.MustCompile(`^[0-9a-f]{32}$`)
	if !hexID.MatchString(a.ID) || !hexID.MatchString(b.ID) || a.ID == b.ID {
		t.Fatalf("IDs %q and %q: want two distinct random hex IDs", a.ID, b.ID)
	}
	if a.Time.Before(before.Add(-time.Second)) || a.Time.After(time.Now().Add(time.Second)) {
		t.Fatalf("Time = %v, want about now", a.Time)
	}

	// Given values are kept.
	at := time.Date(2024, 1, 2, 3, 4, 5, 0, time.UTC)
	bus.Publish(t.Context(), imaged.Event{ID: "given", Time: at, Type: imaged.EventTaskFailed})
	if e := recv(t, ch); e.ID != "given" || !e.Time.Equal(at) {
		t.Fatalf("given ID and Time replaced: %q %v", e.ID, e.Time)
	}
}

func TestSlowSubscriberDoesNotBlockOthers(t *testing.T) {
	bus := NewEvents(EventsOptions{Buffer: 4})
	defer bus.Close()
	_, cancelSlow := bus.Subscribe() // never read
	defer cancelSlow()
	fast, cancelFast := bus.Subscribe()
	defer cancelFast()

	const events = 100
	done := make(chan string, 1)
	go func() {
		for i := range events {
			bus.Publish(context.Background(), imaged.Event{Type: imaged.EventTaskQueued, TaskID: strconv.Itoa(i)})
			if e := <-fast; e.TaskID != strconv.Itoa(i) {
				done <- "fast subscriber event " + strconv.Itoa(i) + " has task " + e.TaskID
				return
			}
		}
		done <- ""
	}()
	select {
	case msg := <-done:
		if msg != "" {
			t.Fatal(msg)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Publish blocked on a subscriber that does not read")
	}
	// The slow subscriber kept the first 4 and missed the rest.
	if d := bus.Dropped(); d != events-4 {
		t.Fatalf("Dropped = %d, want %d", d, events-4)
	}
}

func TestCancelClosesChannelAndIsIdempotent(t *testing.T) {
	bus := NewEvents(EventsOptions{})
	defer bus.Close()
	ch, cancel := bus.Subscribe()
	cancel()
	cancel()
	if _, ok := <-ch; ok {
		t.Fatal("channel still open after cancel")
	}
	if n := bus.Subscribers(); n != 0 {
		t.Fatalf("Subscribers = %d after cancel", n)
	}
	// Publishing to no one is fine and counts nothing as dropped.
	bus.Publish(t.Context(), imaged.Event{Type: imaged.EventHealth})
	if d := bus.Dropped(); d != 0 {
		t.Fatalf("Dropped = %d after publishing to no subscriber", d)
	}
}

func TestClose(t *testing.T) {
	bus := NewEvents(EventsOptions{})
	ch, cancel := bus.Subscribe()
	if err := bus.Close(); err != nil {
		t.Fatal(err)
	}
	if err := bus.Close(); err != nil {
		t.Fatal(err)
	}
	if _, ok := <-ch; ok {
		t.Fatal("channel still open after Close")
	}
	cancel() // after Close: must not close the channel twice
	if err := bus.Publish(t.Context(), imaged.Event{Type: imaged.EventHealth}); err != nil {
		t.Fatalf("Publish after Close: %v", err)
	}
	late, lateCancel := bus.Subscribe()
	if _, ok := <-late; ok {
		t.Fatal("a subscription made after Close is open")
	}
	lateCancel()
}

func TestConcurrentPublishSubscribeCancel(t *testing.T) {
	bus := NewEvents(EventsOptions{Buffer: 8})
	var wg sync.WaitGroup
	stop := make(chan struct{})
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				default:
					bus.Publish(context.Background(), imaged.Event{Type: imaged.EventTaskStarted})
				}
			}
		}()
	}
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				ch, cancel := bus.Subscribe()
				for range i % 5 {
					select {
					case <-ch:
					case <-stop:
					}
				}
				cancel()
				if i%3 == 0 {
					cancel()
				}
				for range ch { // drain what was buffered; ends because cancel closed it
				}
			}
		}()
	}
	// A long-lived subscriber keeps receiving while the others churn.
	ch, cancel := bus.Subscribe()
	got := 0
	deadline := time.After(500 * time.Millisecond)
loop:
	for {
		select {
		case <-ch:
			got++
		case <-deadline:
			break loop
		}
	}
	close(stop)
	wg.Wait()
	cancel()
	if got == 0 {
		t.Fatal("long-lived subscriber received nothing")
	}
	bus.Close()
}
