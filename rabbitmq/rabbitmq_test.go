package rabbitmq

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/imaged/imaged/internal/tcpproxy"

	"github.com/imaged/imaged"
)

// consume runs Consume in the background and returns a function that stops it and waits.
func consume(t *testing.T, b *Broker, opts imaged.ConsumeOptions, h imaged.Handler) func() {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- b.Consume(ctx, opts, h) }()
	var once sync.Once
	stop := func() {
		once.Do(func() {
			cancel()
			select {
			case err := <-done:
				if err != nil {
					t.Errorf("Consume returned %v", err)
				}
			case <-time.After(20 * time.Second):
				t.Error("Consume did not return within 20s of cancel")
			}
		})
	}
	t.Cleanup(stop)
	return stop
}

func depth(t *testing.T, b *Broker, typ string) int {
	t.Helper()
	d, err := b.Depth(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return d[typ]
}

func TestParseURL(t *testing.T) {
	cfg, err := ParseURL("amqp://guest:guest@127.0.0.1:5672/vh?exchange=ex&prefix=p.&heartbeat=10")
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Exchange != "ex" || cfg.Prefix != "p." || cfg.URL != "amqp://guest:guest@127.0.0.1:5672/vh?heartbeat=10" {
		t.Fatalf("got %+v", cfg)
	}
	cfg, err = ParseURL("amqp://127.0.0.1/")
	if err != nil || cfg.Exchange != DefaultExchange || cfg.Prefix != DefaultPrefix {
		t.Fatalf("defaults: %+v, %v", cfg, err)
	}
	cfg, err = ParseURL("amqp://127.0.0.1/?prefix=")
	if err != nil || cfg.Prefix != "" {
		t.Fatalf("empty prefix: %+v, %v", cfg, err)
	}
	for _, bad := range []string{"http://x/", "amqp:///vh", "amqp://h/?exchange=", "amqp://h/?publish_timeout=soon"} {
		if _, err := ParseURL(bad); err == nil {
			t.Errorf("ParseURL(%q) accepted", bad)
		}
	}
}

func TestOpenUnreachableFails(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_, err := Open(ctx, Config{URL: "amqp://guest:guest@127.0.0.1:1/", DialTimeout: time.Second})
	if err == nil {
		t.Fatal("Open of an unreachable broker succeeded")
	}
}

func TestPublishConsumeAckEmptiesTheQueue(t *testing.T) {
	b := openBroker(t, nil)
	ctx := context.Background()
	want := map[string]*imaged.Task{}
	for range 5 {
		tk := task(imaged.TaskTypeTransform)
		want[tk.ID] = tk
		if err := b.Publish(ctx, tk, 0); err != nil {
			t.Fatal(err)
		}
	}
	ocr := task(imaged.TaskTypeOCR)
	if err := b.Publish(ctx, ocr, 0); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 5*time.Second, "depth 5 transform, 1 ocr", func() bool {
		d, err := b.Depth(ctx)
		return err == nil && d[imaged.TaskTypeTransform] == 5 && d[imaged.TaskTypeOCR] == 1
	})

	var mu sync.Mutex
	got := map[string]*imaged.Delivery{}
	stop := consume(t, b, imaged.ConsumeOptions{WorkerID: "w1", Types: []string{imaged.TaskTypeTransform}, Concurrency: 2},
		func(ctx context.Context, d *imaged.Delivery) error {
			mu.Lock()
			defer mu.Unlock()
			got[d.TaskID] = d
			return nil
		})
	waitFor(t, 10*time.Second, "5 deliveries", func() bool { mu.Lock(); defer mu.Unlock(); return len(got) == 5 })
	waitFor(t, 5*time.Second, "transform queue empty", func() bool { return depth(t, b, imaged.TaskTypeTransform) == 0 })
	stop()
	for id, tk := range want {
		d := got[id]
		if d == nil || d.Type != imaged.TaskTypeTransform || d.CorrelationID != tk.CorrelationID || d.Task != nil || d.Redelivered {
			t.Errorf("delivery of %s = %+v", id, d)
		}
	}
	if n := depth(t, b, imaged.TaskTypeOCR); n != 1 {
		t.Errorf("the ocr task was consumed by a transform-only consumer: depth %d", n)
	}
}

func TestHandlerErrorRedelivers(t *testing.T) {
	b := openBroker(t, nil)
	tk := task(imaged.TaskTypeTransform)
	if err := b.Publish(context.Background(), tk, 0); err != nil {
		t.Fatal(err)
	}
	var calls atomic.Int32
	var redelivered atomic.Bool
	consume(t, b, imaged.ConsumeOptions{WorkerID: "w", Concurrency: 1}, func(ctx context.Context, d *imaged.Delivery) error {
		if calls.Add(1) == 1 {
			return errors.New("database unreachable")
		}
		redelivered.Store(d.Redelivered)
		return nil
	})
	waitFor(t, 15*time.Second, "a second delivery", func() bool { return calls.Load() >= 2 })
	if !redelivered.Load() {
		t.Error("the second delivery is not marked redelivered")
	}
	waitFor(t, 5*time.Second, "queue empty", func() bool { return depth(t, b, imaged.TaskTypeTransform) == 0 })
	time.Sleep(300 * time.Millisecond) // a third delivery would show up now
	if n := calls.Load(); n != 2 {
		t.Errorf("handler called %d times, want 2", n)
	}
}

func TestPrefetchIsConcurrency(t *testing.T) {
	b := openBroker(t, nil)
	for range 6 {
		if err := b.Publish(context.Background(), task(imaged.TaskTypeTransform), 0); err != nil {
			t.Fatal(err)
		}
	}
	release := make(chan struct{})
	var inflight, peak atomic.Int32
	var done atomic.Int32
	consume(t, b, imaged.ConsumeOptions{WorkerID: "w", Concurrency: 2}, func(ctx context.Context, d *imaged.Delivery) error {
		n := inflight.Add(1)
		for {
			p := peak.Load()
			if n <= p || peak.CompareAndSwap(p, n) {
				break
			}
		}
		<-release
		inflight.Add(-1)
		done.Add(1)
		return nil
	})
	waitFor(t, 5*time.Second, "2 in flight", func() bool { return inflight.Load() == 2 })
	// The other 4 wait in the broker, visible to every worker and to the depth gauge.
	waitFor(t, 5*time.Second, "depth 4", func() bool { return depth(t, b, imaged.TaskTypeTransform) == 4 })
	close(release)
	waitFor(t, 10*time.Second, "all 6 handled", func() bool { return done.Load() == 6 })
	if p := peak.Load(); p != 2 {
		t.Errorf("peak concurrency %d, want 2", p)
	}
}

func TestDelayedPublishArrivesAfterTheDelay(t *testing.T) {
	b := openBroker(t, nil)
	tk := task(imaged.TaskTypeDetect)
	arrived := make(chan time.Time, 1)
	consume(t, b, imaged.ConsumeOptions{WorkerID: "w", Concurrency: 1}, func(ctx context.Context, d *imaged.Delivery) error {
		if d.TaskID == tk.ID {
			arrived <- time.Now()
		}
		return nil
	})
	start := time.Now()
	if err := b.Publish(context.Background(), tk, 400*time.Millisecond); err != nil {
		t.Fatal(err)
	}
	select {
	case at := <-arrived:
		if el := at.Sub(start); el < 400*time.Millisecond || el > 3*time.Second {
			t.Errorf("delayed task arrived after %s, want 400ms..3s (tier %s)", el, tierFor(400*time.Millisecond))
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the delayed task never arrived")
	}
}

func TestTierFor(t *testing.T) {
	for _, c := range []struct{ in, want time.Duration }{
		{time.Millisecond, 100 * time.Millisecond}, {time.Second, time.Second}, {1100 * time.Millisecond, 2 * time.Second},
		{4 * time.Minute, 5 * time.Minute}, {3 * time.Hour, time.Hour},
	} {
		if got := tierFor(c.in); got != c.want {
			t.Errorf("tierFor(%s) = %s, want %s", c.in, got, c.want)
		}
	}
}

func TestDeadLetterQueue(t *testing.T) {
	b := openBroker(t, nil)
	tk := task(imaged.TaskTypeOCR)
	tk.Attempts = 3
	if err := b.DeadLetter(context.Background(), tk, &imaged.TaskFailure{Code: imaged.EInternal, Message: "boom"}); err != nil {
		t.Fatal(err)
	}
	ids, err := b.DeadLetters(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if len(ids) != 1 || ids[0] != tk.ID {
		t.Fatalf("dead letters %v, want [%s]", ids, tk.ID)
	}
	// Reading puts them back.
	ids, _ = b.DeadLetters(context.Background())
	if len(ids) != 1 {
		t.Fatalf("dead letters after a second read: %v", ids)
	}
}

func TestShutdownLetsHandlersFinishAndAcks(t *testing.T) {
	b := openBroker(t, nil)
	if err := b.Publish(context.Background(), task(imaged.TaskTypeTransform), 0); err != nil {
		t.Fatal(err)
	}
	started := make(chan struct{})
	var finished atomic.Bool
	stop := consume(t, b, imaged.ConsumeOptions{WorkerID: "w", Concurrency: 1}, func(ctx context.Context, d *imaged.Delivery) error {
		close(started)
		time.Sleep(300 * time.Millisecond)
		if ctx.Err() != nil {
			return ctx.Err()
		}
		finished.Store(true)
		return nil
	})
	<-started
	stop()
	if !finished.Load() {
		t.Fatal("the handler was cut short by shutdown")
	}
	if n := depth(t, b, imaged.TaskTypeTransform); n != 0 {
		t.Fatalf("a finished message went back to the queue: depth %d", n)
	}
}

func TestReconnectAfterConnectionCut(t *testing.T) {
	direct := brokerURL(t)
	p := tcpproxy.Start(t, hostOf(direct))
	b := openBroker(t, func(c *Config) { c.URL = viaProxy(direct, p.Addr()); c.Heartbeat = time.Second })
	ctx := context.Background()

	var mu sync.Mutex
	seen := map[string]int{}
	consume(t, b, imaged.ConsumeOptions{WorkerID: "w", Concurrency: 4}, func(ctx context.Context, d *imaged.Delivery) error {
		mu.Lock()
		seen[d.TaskID]++
		mu.Unlock()
		return nil
	})
	var ids []string
	publish := func(n int) {
		for range n {
			tk := task(imaged.TaskTypeTransform)
			if err := b.Publish(ctx, tk, 0); err != nil {
				t.Fatalf("publish: %v", err)
			}
			ids = append(ids, tk.ID)
		}
	}
	publish(10)
	waitFor(t, 10*time.Second, "the first 10", func() bool { mu.Lock(); defer mu.Unlock(); return len(seen) == 10 })

	p.Cut()
	waitFor(t, 10*time.Second, "Ping to see the loss", func() bool { return b.Ping(ctx) != nil })
	// A publish during the outage waits for the reconnect instead of failing.
	errc := make(chan error, 1)
	tk := task(imaged.TaskTypeTransform)
	ids = append(ids, tk.ID)
	go func() { errc <- b.Publish(ctx, tk, 0) }()
	time.Sleep(500 * time.Millisecond)
	p.Restore()
	if err := <-errc; err != nil {
		t.Fatalf("publish across the outage: %v", err)
	}
	waitFor(t, 15*time.Second, "Ping after restore", func() bool { return b.Ping(ctx) == nil })
	publish(10)
	waitFor(t, 15*time.Second, "all 21 consumed", func() bool { mu.Lock(); defer mu.Unlock(); return len(seen) == 21 })
	for _, id := range ids {
		if seen[id] == 0 {
			t.Errorf("task %s lost", id)
		}
	}
	waitFor(t, 5*time.Second, "queue empty", func() bool { return depth(t, b, imaged.TaskTypeTransform) == 0 })
}

func TestEventsCrossProcesses(t *testing.T) {
	a := openBroker(t, nil)
	// A second "process": its own connection to the same exchange.
	b := openBroker(t, func(c *Config) { c.Exchange = a.cfg.Exchange; c.Prefix = a.cfg.Prefix })
	ea := a.Events(EventsOptions{})
	defer ea.Close()
	eb := b.Events(EventsOptions{})
	defer eb.Close()
	subA, stopA := ea.Subscribe()
	defer stopA()
	subB, stopB := eb.Subscribe()
	defer stopB()
	localB, stopLB := eb.Local().Subscribe()
	defer stopLB()

	// Wait until b's private queue is bound: publish probes until one arrives.
	waitFor(t, 10*time.Second, "the event subscription of b", func() bool {
		_ = ea.Publish(context.Background(), imaged.Event{Type: imaged.EventHealth})
		select {
		case <-subB:
			return true
		case <-time.After(100 * time.Millisecond):
			return false
		}
	})
	drain := func(ch <-chan imaged.Event) {
		for {
			select {
			case <-ch:
			case <-time.After(300 * time.Millisecond):
				return
			}
		}
	}
	drain(subA)
	drain(subB)

	ev := imaged.Event{Type: imaged.EventTaskCompleted, TaskID: "t1", Status: imaged.StatusCompleted, CorrelationID: "c-42", WorkerID: "w"}
	if err := ea.Publish(context.Background(), ev); err != nil {
		t.Fatal(err)
	}
	recv := func(ch <-chan imaged.Event, who string) imaged.Event {
		select {
		case e := <-ch:
			return e
		case <-time.After(5 * time.Second):
			t.Fatalf("%s got no event", who)
		}
		return imaged.Event{}
	}
	if e := recv(subA, "a"); e.TaskID != "t1" || e.CorrelationID != "c-42" {
		t.Errorf("a got %+v", e)
	}
	if e := recv(subB, "b"); e.TaskID != "t1" || e.CorrelationID != "c-42" || e.Type != imaged.EventTaskCompleted || e.ID == "" {
		t.Errorf("b got %+v", e)
	}
	select {
	case e := <-subA:
		t.Errorf("a got its own event twice: %+v", e)
	case e := <-localB:
		t.Errorf("b's local stream got a's event: %+v", e)
	case <-time.After(500 * time.Millisecond):
	}
}
