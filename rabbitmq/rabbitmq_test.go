package rabbitmq

import (
	"context"
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
