package http

import (
	"context"
	"slices"
	"sync"
	"time"
)

// slots hands out the synchronous pipeline slots (IMAGED_MAX_INFLIGHT of them) and keeps the
// line of requests waiting for one (at most IMAGED_MAX_WAITING). It is work-conserving and
// fair between clients (an API key, or a client address without one):
//   - a free slot goes to whoever asks while nobody waits, so a lone client may use every slot;
//   - when a slot frees, it goes to the waiting client that holds the fewest slots (ties: the
//     client served longest ago, round-robin), so a light client's request starts at the next
//     free slot however many requests a heavy client keeps sending;
//   - a client's own requests start in the order they came;
//   - a request that finds every slot busy and the line full is refused at once (503 with
//     Retry-After), and one that waited WaitTimeout gives up the same way.
type slots struct {
	mu      sync.Mutex
	size    int
	maxWait int
	busy    int
	waiting int
	held    map[string]int       // slots each client holds
	queues  map[string][]*waiter // each client's waiting requests, oldest first
	ring    []string             // the clients with waiting requests, least recently served first
	onTake  func(delta int)      // the in-flight gauge
}

type waiter struct {
	ready   chan struct{}
	granted bool
}

func newSlots(size, maxWait int, onTake func(int)) *slots {
	return &slots{size: size, maxWait: maxWait, held: map[string]int{}, queues: map[string][]*waiter{}, onTake: onTake}
}

// full reports whether a new request would be refused now: every slot busy, the line full.
func (p *slots) full() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.busy >= p.size && p.waiting >= p.maxWait
}

// acquire takes a slot for client, waiting in line for at most timeout. The returned function
// gives the slot back (to the next client in fair order).
func (p *slots) acquire(ctx context.Context, client string, timeout time.Duration) (func(), error) {
	p.mu.Lock()
	if p.busy < p.size && p.waiting == 0 {
		p.take(client)
		p.mu.Unlock()
		return p.releaser(client), nil
	}
	if p.waiting >= p.maxWait {
		p.mu.Unlock()
		return nil, errBusy(time.Second)
	}
	w := &waiter{ready: make(chan struct{})}
	if len(p.queues[client]) == 0 {
		p.ring = append(p.ring, client)
	}
	p.queues[client] = append(p.queues[client], w)
	p.waiting++
	p.mu.Unlock()

	t := time.NewTimer(timeout)
	defer t.Stop()
	var err error
	select {
	case <-w.ready:
		return p.releaser(client), nil
	case <-t.C:
		err = errBusy(2 * time.Second)
	case <-ctx.Done():
		err = ctx.Err()
	}
	p.mu.Lock()
	if w.granted { // granted while giving up: hand the slot on
		p.mu.Unlock()
		p.releaser(client)()
		return nil, err
	}
	p.leave(client, w, false)
	p.mu.Unlock()
	return nil, err
}

// take counts a slot as client's; p.mu is held.
func (p *slots) take(client string) {
	p.busy++
	p.held[client]++
	p.onTake(1)
}

// releaser returns the function that gives client's slot back, once.
func (p *slots) releaser(client string) func() {
	var once sync.Once
	return func() {
		once.Do(func() {
			p.mu.Lock()
			defer p.mu.Unlock()
			p.busy--
			if p.held[client]--; p.held[client] <= 0 {
				delete(p.held, client)
			}
			p.onTake(-1)
			p.dispatch()
		})
	}
}

// dispatch gives free slots to waiting requests in fair order; p.mu is held.
func (p *slots) dispatch() {
	for p.busy < p.size && p.waiting > 0 {
		best := 0
		for i, c := range p.ring {
			if p.held[c] < p.held[p.ring[best]] {
				best = i
			}
		}
		client := p.ring[best]
		q := p.queues[client]
		w := q[0]
		p.leave(client, w, true)
		p.take(client)
		w.granted = true
		close(w.ready)
	}
}

// leave takes w out of client's line; a client just served that still waits moves to the
// back of the ring; p.mu is held.
func (p *slots) leave(client string, w *waiter, served bool) {
	q := slices.DeleteFunc(p.queues[client], func(x *waiter) bool { return x == w })
	p.waiting--
	if len(q) > 0 && !served {
		p.queues[client] = q
		return
	}
	p.ring = slices.DeleteFunc(p.ring, func(c string) bool { return c == client })
	if len(q) == 0 {
		delete(p.queues, client)
		return
	}
	p.queues[client] = q
	p.ring = append(p.ring, client)
}
