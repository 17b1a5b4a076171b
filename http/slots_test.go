package http

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"testing"
	"time"

	"github.com/imaged/imaged"
)

func (p *slots) state() (busy, waiting int, held map[string]int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.busy, p.waiting, maps.Clone(p.held)
}

// queue starts n requests of client that wait for a slot; each sends its release function (or
// its error) on the returned channels once it is decided.
func queue(p *slots, client string, n int) (<-chan func(), <-chan error) {
	got, failed := make(chan func(), n), make(chan error, n)
	for range n {
		go func() {
			release, err := p.acquire(context.Background(), client, time.Minute)
			if err != nil {
				failed <- err
				return
			}
			got <- release
		}()
	}
	return got, failed
}

// A lone client takes every slot at once, then waits in line: it is never refused for
// holding "too many".
func TestSlotsLoneClientUsesEverySlot(t *testing.T) {
	p := newSlots(4, 16, func(int) {})
	var releases []func()
	for i := range 4 {
		r, err := p.acquire(context.Background(), "solo", time.Second)
		if err != nil {
			t.Fatalf("slot %d of 4 for a lone client: %v", i+1, err)
		}
		releases = append(releases, r)
	}
	got, failed := queue(p, "solo", 12) // 4× the slots in all
	waitFor(t, "12 requests wait", func() bool { _, w, _ := p.state(); return w == 12 })
	for len(releases) > 0 {
		releases[0]()
		releases = releases[1:]
		select {
		case r := <-got:
			releases = append(releases, r)
		case err := <-failed:
			t.Fatalf("a waiting request of a lone client failed: %v", err)
		case <-time.After(5 * time.Second):
			if _, w, _ := p.state(); w > 0 {
				t.Fatal("a freed slot did not go to a waiting request")
			}
		}
	}
	if busy, waiting, _ := p.state(); busy != 0 || waiting != 0 {
		t.Fatalf("after every release: %d busy, %d waiting", busy, waiting)
	}
}

// Once a light client's request waits, the next free slot is its own, however many
// requests the heavy client has queued before it.
func TestSlotsLightClientGetsTheNextFreeSlot(t *testing.T) {
	p := newSlots(2, 16, func(int) {})
	var heavy []func()
	for range 2 {
		r, err := p.acquire(context.Background(), "heavy", time.Second)
		if err != nil {
			t.Fatal(err)
		}
		heavy = append(heavy, r)
	}
	heavyGot, _ := queue(p, "heavy", 6)
	waitFor(t, "the heavy client's 6 requests wait", func() bool { _, w, _ := p.state(); return w == 6 })
	lightGot, _ := queue(p, "light", 1)
	waitFor(t, "the light request waits", func() bool { _, w, _ := p.state(); return w == 7 })

	heavy[0]() // one slot frees: it must go to the light client
	if _, waiting, held := p.state(); held["light"] != 1 || held["heavy"] != 1 || waiting != 6 {
		t.Fatalf("after one release: held %v, %d waiting; want the light client to hold the freed slot", held, waiting)
	}
	light := <-lightGot
	heavy[1]()
	<-heavyGot // the heavy client's oldest waiting request
	light()
	<-heavyGot
	if busy, waiting, held := p.state(); busy != 2 || waiting != 4 || held["heavy"] != 2 {
		t.Fatalf("after the light request: %d busy, %d waiting, held %v", busy, waiting, held)
	}
}

// Between clients that hold as many slots, freed slots alternate.
func TestSlotsRoundRobinBetweenEqualClients(t *testing.T) {
	p := newSlots(1, 16, func(int) {})
	first, err := p.acquire(context.Background(), "a", time.Second)
	if err != nil {
		t.Fatal(err)
	}
	aGot, _ := queue(p, "a", 3)
	waitFor(t, "a's requests wait", func() bool { _, w, _ := p.state(); return w == 3 })
	bGot, _ := queue(p, "b", 3)
	waitFor(t, "b's requests wait", func() bool { _, w, _ := p.state(); return w == 6 })
	release := first
	var order string
	for range 6 {
		release()
		_, _, held := p.state()
		for c := range held {
			order += c
		}
		select {
		case release = <-aGot:
		case release = <-bGot:
		}
	}
	release()
	if order != "ababab" {
		t.Fatalf("slots went to %q, want them to alternate", order)
	}
}

// With every slot busy and the line full a request is refused at once; one that waits too
// long, or whose caller leaves, gives its place in line up.
func TestSlotsRefuseWhenFullAndGiveUp(t *testing.T) {
	p := newSlots(1, 1, func(int) {})
	r, _ := p.acquire(context.Background(), "a", time.Second)
	defer r()
	_, failed := queue(p, "a", 1)
	waitFor(t, "the line fills", p.full)
	start := time.Now()
	_, err := p.acquire(context.Background(), "b", time.Minute)
	var e *imaged.Error
	if !errors.As(err, &e) || e.Code != imaged.EUnavailable || e.RetryAfter <= 0 {
		t.Fatalf("a request beyond slots and line: %v, want unavailable with Retry-After", err)
	}
	if d := time.Since(start); d > time.Second {
		t.Fatalf("the refusal took %v; it must not wait", d)
	}
	_ = failed

	p2 := newSlots(1, 4, func(int) {})
	r2, _ := p2.acquire(context.Background(), "a", time.Second)
	defer r2()
	if _, err := p2.acquire(context.Background(), "b", 20*time.Millisecond); !errors.As(err, &e) || e.Code != imaged.EUnavailable {
		t.Fatalf("a request that waited past the timeout: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := p2.acquire(ctx, "c", time.Minute); !errors.Is(err, context.Canceled) {
		t.Fatalf("a request whose caller left: %v", err)
	}
	if _, waiting, _ := p2.state(); waiting != 0 {
		t.Fatalf("%d requests still counted in line after giving up", waiting)
	}
}

// The in-flight gauge follows the slots taken and given back.
func TestSlotsReportInflight(t *testing.T) {
	n := 0
	p := newSlots(3, 3, func(d int) { n += d })
	var rs []func()
	for i := range 3 {
		r, err := p.acquire(context.Background(), fmt.Sprint(i), time.Second)
		if err != nil {
			t.Fatal(err)
		}
		rs = append(rs, r)
	}
	if n != 3 {
		t.Fatalf("gauge %d with 3 slots taken", n)
	}
	for _, r := range rs {
		r()
		r() // a second call does nothing
	}
	if n != 0 {
		t.Fatalf("gauge %d after every release", n)
	}
}
