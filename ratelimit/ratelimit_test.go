package ratelimit

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"io"
	"log/slog"
	"os"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/imaged/imaged/internal/testenv"

	goredis "github.com/redis/go-redis/v9"

	"github.com/imaged/imaged"
)

// concurrently calls Allow n times at once and returns how many passed.
func concurrently(t *testing.T, n int, allow func() (imaged.RateDecision, error)) int {
	t.Helper()
	var passed atomic.Int64
	var wg sync.WaitGroup
	start := make(chan struct{})
	for range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			d, err := allow()
			if err != nil {
				t.Error(err)
				return
			}
			if d.Allowed {
				passed.Add(1)
			} else if d.RetryAfter <= 0 || d.Remaining != 0 {
				t.Errorf("a refusal with RetryAfter %v, Remaining %d", d.RetryAfter, d.Remaining)
			}
		}()
	}
	close(start)
	wg.Wait()
	return int(passed.Load())
}

func TestMemoryExactUnderConcurrency(t *testing.T) {
	m := NewMemory()
	limit := imaged.RateLimit{PerMinute: 50, Burst: 50}
	if got := concurrently(t, 200, func() (imaged.RateDecision, error) { return m.Allow(t.Context(), "k", limit) }); got != 50 {
		t.Fatalf("%d of 200 concurrent requests passed a limit of 50/min; want exactly 50", got)
	}
	if d, _ := m.Allow(t.Context(), "other", limit); !d.Allowed {
		t.Fatal("another key shares the first key's window")
	}
}

// clock is a fake time source.
type clock struct{ t time.Time }

func (c *clock) now() time.Time      { return c.t }
func (c *clock) add(d time.Duration) { c.t = c.t.Add(d) }
func newFakeMemory() (*Memory, *clock) {
	c := &clock{t: time.Unix(1e9, 0)}
	m := NewMemory()
	m.now = c.now
	return m, c
}

func TestMemorySlidingWindows(t *testing.T) {
	ctx := t.Context()
	m, c := newFakeMemory()
	limit := imaged.RateLimit{PerMinute: 20, Burst: 5}
	allow := func() imaged.RateDecision { d, _ := m.Allow(ctx, "k", limit); return d }

	for i := range 5 {
		d := allow()
		if !d.Allowed || d.Limit != 20 || d.Remaining != 4-i {
			t.Fatalf("request %d: %+v", i, d)
		}
	}
	// The burst is the most in any one second: the 6th within the second waits for the first
	// to leave it.
	c.add(400 * time.Millisecond)
	for range 10 { // refused requests do not count
		d := allow()
		if d.Allowed || d.RetryAfter != 600*time.Millisecond {
			t.Fatalf("over the burst: %+v, want a refusal with RetryAfter 600ms", d)
		}
	}
	c.add(600 * time.Millisecond)
	for i := range 5 {
		if d := allow(); !d.Allowed {
			t.Fatalf("second 2, request %d refused: %+v", i, d)
		}
	}
	// 10 so far. Ten more over two more seconds reach the minute's 20.
	for range 2 {
		c.add(time.Second)
		for range 5 {
			if d := allow(); !d.Allowed {
				t.Fatalf("refused under the limits: %+v", d)
			}
		}
	}
	c.add(time.Second) // t = 4 s; the first request leaves the minute at 60 s
	d := allow()
	if d.Allowed || d.RetryAfter != 56*time.Second || d.Remaining != 0 {
		t.Fatalf("over the minute: %+v, want RetryAfter 56s", d)
	}
	c.add(56 * time.Second) // the 5 first requests leave together
	for i := range 5 {
		if d := allow(); !d.Allowed {
			t.Fatalf("after the window slid, request %d refused: %+v", i, d)
		}
	}
	if d := allow(); d.Allowed {
		t.Fatalf("only 5 left the window but a 6th passed: %+v", d)
	}
}

func TestMemoryForgetsIdleKeys(t *testing.T) {
	m, c := newFakeMemory()
	for i := range 1000 {
		m.Allow(t.Context(), fmt.Sprint(i), imaged.RateLimit{PerMinute: 1})
	}
	c.add(2 * time.Minute)
	m.Allow(t.Context(), "x", imaged.RateLimit{PerMinute: 1})
	if n := len(m.windows); n != 1 {
		t.Fatalf("%d windows kept after two idle minutes, want 1", n)
	}
}

// redisClient connects to IMAGED_TEST_REDIS_URL (default the local Redis) or skips.
func redisClient(t *testing.T) *goredis.Client {
	t.Helper()
	u := testenv.RedisURL()
	o, err := goredis.ParseURL(u)
	if err != nil {
		t.Fatal(err)
	}
	o.PoolSize = 50
	c := goredis.NewClient(o)
	t.Cleanup(func() { c.Close() })
	if err := c.Ping(t.Context()).Err(); err != nil {
		if os.Getenv("IMAGED_TEST_REQUIRE_SERVICES") == "1" {
			t.Fatalf("Redis at %s does not answer: %v (IMAGED_TEST_REQUIRE_SERVICES=1)", u, err)
		}
		t.Skipf("SKIPPED: Redis at %s does not answer: %v; set IMAGED_TEST_REQUIRE_SERVICES=1 to make this a failure", u, err)
	}
	return c
}

func testPrefix(t *testing.T, c *goredis.Client) string {
	b := make([]byte, 6)
	rand.Read(b)
	p := "imaged-test-" + hex.EncodeToString(b) + ":"
	t.Cleanup(func() {
		ctx := context.Background()
		keys, _ := c.Keys(ctx, p+"*").Result()
		if len(keys) > 0 {
			c.Del(ctx, keys...)
		}
	})
	return p
}

func quiet() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

func TestRedisExactUnderConcurrency(t *testing.T) {
	c := redisClient(t)
	r := NewRedis(c, RedisOptions{Prefix: testPrefix(t, c), Timeout: 5 * time.Second, Log: quiet()})
	limit := imaged.RateLimit{PerMinute: 50, Burst: 50}
	if got := concurrently(t, 200, func() (imaged.RateDecision, error) { return r.Allow(t.Context(), "k", limit) }); got != 50 {
		t.Fatalf("%d of 200 concurrent requests passed a limit of 50/min; want exactly 50", got)
	}
	if n := c.ZCard(t.Context(), r.prefix+"k").Val(); n != 50 {
		t.Fatalf("the window holds %d entries; refused requests must not be counted", n)
	}
}

func TestRedisSharedByTwoLimiters(t *testing.T) {
	a, b := redisClient(t), redisClient(t)
	prefix := testPrefix(t, a)
	la := NewRedis(a, RedisOptions{Prefix: prefix, Timeout: 5 * time.Second, Log: quiet()})
	lb := NewRedis(b, RedisOptions{Prefix: prefix, Timeout: 5 * time.Second, Log: quiet()})
	limit := imaged.RateLimit{PerMinute: 50, Burst: 50}
	var i atomic.Int64
	got := concurrently(t, 200, func() (imaged.RateDecision, error) {
		if i.Add(1)%2 == 0 {
			return la.Allow(t.Context(), "k", limit)
		}
		return lb.Allow(t.Context(), "k", limit)
	})
	if got != 50 {
		t.Fatalf("two limiters on one Redis let %d of 200 through a shared limit of 50/min", got)
	}
}

func TestRedisBurstAndRetryAfter(t *testing.T) {
	c := redisClient(t)
	r := NewRedis(c, RedisOptions{Prefix: testPrefix(t, c), Timeout: 5 * time.Second, Log: quiet()})
	limit := imaged.RateLimit{PerMinute: 100, Burst: 5}
	ctx := t.Context()
	for i := range 5 {
		d, err := r.Allow(ctx, "k", limit)
		if err != nil || !d.Allowed || d.Limit != 100 || d.Remaining != 4-i || d.Reset <= 59*time.Second {
			t.Fatalf("request %d: %+v, %v", i, d, err)
		}
	}
	d, err := r.Allow(ctx, "k", limit)
	if err != nil || d.Allowed || d.RetryAfter <= 0 || d.RetryAfter > time.Second {
		t.Fatalf("over the burst: %+v, %v; want a refusal within a second", d, err)
	}
	time.Sleep(d.RetryAfter + 20*time.Millisecond)
	if d, err := r.Allow(ctx, "k", limit); err != nil || !d.Allowed {
		t.Fatalf("after RetryAfter: %+v, %v", d, err)
	}
}

func TestRedisDownFallsBackToMemory(t *testing.T) {
	c := goredis.NewClient(&goredis.Options{Addr: "127.0.0.1:1", DialTimeout: 50 * time.Millisecond, MaxRetries: -1})
	defer c.Close()
	r := NewRedis(c, RedisOptions{Log: quiet()})
	limit := imaged.RateLimit{PerMinute: 3, Burst: 3}
	passed := 0
	for range 5 {
		d, err := r.Allow(t.Context(), "k", limit)
		if err != nil {
			t.Fatalf("Allow with Redis down: %v", err)
		}
		if d.Allowed {
			passed++
		}
	}
	if passed != 3 {
		t.Fatalf("with Redis down %d of 5 passed a limit of 3; want the in-memory limit", passed)
	}
}
