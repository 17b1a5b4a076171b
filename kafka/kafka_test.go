package kafka

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/imaged/imaged/internal/tcpproxy"

	"github.com/imaged/imaged"
)

func TestParseURL(t *testing.T) {
	cfg, err := ParseURL("kafka://h1:9092,h2:9092?topic_prefix=p&group=g&partitions=3&session_timeout=2s&replication=1")
	if err != nil {
		t.Fatal(err)
	}
	if len(cfg.Brokers) != 2 || cfg.Brokers[1] != "h2:9092" || cfg.TopicPrefix != "p" || cfg.Group != "g" ||
		cfg.Partitions != 3 || cfg.SessionTimeout != 2*time.Second || cfg.ReplicationFactor != 1 {
		t.Fatalf("got %+v", cfg)
	}
	cfg, err = ParseURL("kafka://127.0.0.1:9092")
	if err != nil || cfg.TopicPrefix != DefaultTopicPrefix || cfg.Group != DefaultGroup {
		t.Fatalf("defaults: %+v %v", cfg, err)
	}
	for _, bad := range []string{"amqp://x", "kafka://", "kafka://h?topic_prefix=", "kafka://h?partitions=0", "kafka://h?colour=red",
		"kafka://h?session_timeout=x"} {
		if _, err := ParseURL(bad); err == nil {
			t.Errorf("ParseURL(%q) accepted", bad)
		}
	}
}

func TestOpenUnreachableFails(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if _, err := Open(ctx, Config{Brokers: []string{"127.0.0.1:1"}}); err == nil {
		t.Fatal("Open of an unreachable broker succeeded")
	}
}

func TestPublishConsumeCommitsAndLagFalls(t *testing.T) {
	k := startKafka(t, nil)
	b := openBroker(t, k.addr, nil)
	ctx := context.Background()
	want := map[string]*imaged.Task{}
	for range 20 {
		tk := task(imaged.TaskTypeTransform)
		want[tk.ID] = tk
		if err := b.Publish(ctx, tk, 0); err != nil {
			t.Fatal(err)
		}
	}
	if n := lag(t, b); n != 20 {
		t.Fatalf("lag before consuming = %d, want 20", n)
	}
	if d, err := b.Depth(ctx); err != nil || d[imaged.TaskTypeTransform] != 20 || d[imaged.TaskTypeOCR] != 0 {
		t.Fatalf("depth %v %v", d, err)
	}
	var mu sync.Mutex
	got := map[string]*imaged.Delivery{}
	stop := consume(t, b, imaged.ConsumeOptions{WorkerID: "w1", Concurrency: 4}, func(ctx context.Context, d *imaged.Delivery) error {
		mu.Lock()
		defer mu.Unlock()
		got[d.TaskID] = d
		return nil
	})
	waitFor(t, 20*time.Second, "20 deliveries", func() bool { mu.Lock(); defer mu.Unlock(); return len(got) == 20 })
	waitFor(t, 10*time.Second, "lag 0", func() bool { return lag(t, b) == 0 })
	stop()
	for id, tk := range want {
		d := got[id]
		if d == nil || d.Type != imaged.TaskTypeTransform || d.CorrelationID != tk.CorrelationID || d.Task != nil {
			t.Errorf("delivery of %s = %+v", id, d)
		}
	}
}

func TestTwoConsumersShareTheGroupAndSurviveARebalance(t *testing.T) {
	k := startKafka(t, nil)
	b := openBroker(t, k.addr, nil)
	ctx := context.Background()
	var mu sync.Mutex
	by := map[string]map[string]int{"a": {}, "b": {}}
	handler := func(who string) imaged.Handler {
		return func(ctx context.Context, d *imaged.Delivery) error {
			time.Sleep(5 * time.Millisecond)
			mu.Lock()
			by[who][d.TaskID]++
			mu.Unlock()
			return nil
		}
	}
	stopA := consume(t, b, imaged.ConsumeOptions{WorkerID: "a", Concurrency: 2}, handler("a"))
	consume(t, b, imaged.ConsumeOptions{WorkerID: "b", Concurrency: 2}, handler("b"))
	var ids []string
	publish := func(n int) {
		for range n {
			tk := task(imaged.TaskTypeTransform)
			ids = append(ids, tk.ID)
			if err := b.Publish(ctx, tk, 0); err != nil {
				t.Fatal(err)
			}
		}
	}
	seen := func() int {
		mu.Lock()
		defer mu.Unlock()
		n := 0
		for _, id := range ids {
			if by["a"][id]+by["b"][id] > 0 {
				n++
			}
		}
		return n
	}
	// The second consumer joins the group a moment after the first: publish in rounds until
	// both have taken work, rather than betting on the join beating the first round.
	deadline := time.Now().Add(30 * time.Second)
	for {
		publish(20)
		waitFor(t, 30*time.Second, "the published tasks", func() bool { return seen() == len(ids) })
		mu.Lock()
		na, nb := len(by["a"]), len(by["b"])
		mu.Unlock()
		if na > 0 && nb > 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("one consumer did all the work: a=%d b=%d", na, nb)
		}
	}
	// Deliveries during the join above may repeat (at least once). From here on they may not:
	// a leaves cleanly, b takes over its partitions, and what a committed is not done again.
	waitFor(t, 10*time.Second, "lag 0 before a leaves", func() bool { return lag(t, b) == 0 })
	mu.Lock()
	before := map[string]int{}
	for _, id := range ids {
		before[id] = by["a"][id] + by["b"][id]
	}
	mu.Unlock()
	stopA()
	publish(50)
	waitFor(t, 30*time.Second, "every task", func() bool { return seen() == len(ids) })
	waitFor(t, 10*time.Second, "lag 0", func() bool { return lag(t, b) == 0 })
	mu.Lock()
	dups := 0
	for _, id := range ids {
		n := by["a"][id] + by["b"][id]
		if (before[id] > 0 && n > before[id]) || (before[id] == 0 && n > 1) {
			dups++
		}
	}
	mu.Unlock()
	if dups > 0 {
		t.Errorf("%d tasks delivered again across a clean rebalance", dups)
	}
}

func TestReconnectAfterConnectionCut(t *testing.T) {
	p := tcpproxy.Start(t, "")
	k := startKafka(t, p.Addr)
	p.SetTarget(k.real)
	b := openBroker(t, p.Addr(), nil)
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
	waitFor(t, 20*time.Second, "the first 10", func() bool { mu.Lock(); defer mu.Unlock(); return len(seen) == 10 })
	p.Cut()
	errc := make(chan error, 1)
	tk := task(imaged.TaskTypeTransform)
	ids = append(ids, tk.ID)
	go func() { errc <- b.Publish(ctx, tk, 0) }()
	time.Sleep(time.Second)
	p.Restore()
	if err := <-errc; err != nil {
		t.Fatalf("publish across the outage: %v", err)
	}
	publish(10)
	waitFor(t, 30*time.Second, "all 21", func() bool { mu.Lock(); defer mu.Unlock(); return len(seen) == 21 })
	for _, id := range ids {
		if seen[id] == 0 {
			t.Errorf("task %s lost", id)
		}
	}
	waitFor(t, 15*time.Second, "lag 0", func() bool { return lag(t, b) == 0 })
}
