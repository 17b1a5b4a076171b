package redis

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/imaged/imaged/internal/testenv"

	"github.com/imaged/imaged"
	"github.com/imaged/imaged/sqlite"
	"github.com/prometheus/client_golang/prometheus"
)

func TestMain(m *testing.M) {
	// go-redis prints each failed dial of the outage tests to stderr otherwise.
	RouteLibraryLogs(quietLog())
	os.Exit(m.Run())
}

// sharedURL is the Redis the tests use: IMAGED_TEST_REDIS_URL, else the local one.
func sharedURL() string {
	return testenv.RedisURL()
}

// missing skips the test when a service or program it needs is absent, or fails it when
// IMAGED_TEST_REQUIRE_SERVICES=1.
func missing(t *testing.T, format string, args ...any) {
	t.Helper()
	msg := fmt.Sprintf(format, args...)
	if os.Getenv("IMAGED_TEST_REQUIRE_SERVICES") == "1" {
		t.Fatalf("%s (IMAGED_TEST_REQUIRE_SERVICES=1)", msg)
	}
	t.Skipf("SKIPPED: %s; set IMAGED_TEST_REQUIRE_SERVICES=1 to make this a failure", msg)
}

func randomHex(n int) string {
	b := make([]byte, n)
	rand.Read(b)
	return hex.EncodeToString(b)
}

func quietLog() *slog.Logger { return slog.New(slog.DiscardHandler) }

// testCache is a client on the shared Redis with a key prefix of its own, whose keys are
// deleted when the test ends.
type testCache struct {
	*Client
	reg *prometheus.Registry
}

func openShared(t *testing.T, opts Options) *testCache {
	t.Helper()
	reg := prometheus.NewPedanticRegistry()
	if opts.Metrics == nil {
		opts.Metrics = NewMetrics(reg)
	}
	opts.KeyPrefix = "imaged-test-" + randomHex(6) + ":"
	c, err := Open(t.Context(), sharedURL(), opts)
	if err != nil {
		t.Fatalf("Open(%s): %v", sharedURL(), err)
	}
	if err := c.Ping(t.Context()); err != nil {
		c.Close()
		missing(t, "Redis at %s does not answer: %v", sharedURL(), err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		var keys []string
		iter := c.rdb.Scan(ctx, 0, c.prefix+"*", 100).Iterator()
		for iter.Next(ctx) {
			keys = append(keys, iter.Val())
		}
		err := iter.Err()
		if err == nil && len(keys) > 0 {
			err = c.rdb.Del(ctx, keys...).Err()
		}
		if err != nil {
			t.Errorf("deleting the test's keys: %v", err)
		}
		c.Close()
	})
	return &testCache{Client: c, reg: reg}
}

// requests returns cache_requests_total{cache,result}.
func requests(t *testing.T, reg *prometheus.Registry, cache, result string) float64 {
	t.Helper()
	families, err := reg.Gather()
	if err != nil {
		t.Fatalf("Gather: %v", err)
	}
	for _, f := range families {
		if f.GetName() != "cache_requests_total" {
			continue
		}
		for _, m := range f.GetMetric() {
			labels := map[string]string{}
			for _, l := range m.GetLabel() {
				labels[l.GetName()] = l.GetValue()
			}
			if labels["cache"] == cache && labels["result"] == result {
				return m.GetCounter().GetValue()
			}
		}
	}
	return 0
}

// countingStore is a real SQLite store that counts the reads the cache may save.
type countingStore struct {
	imaged.TaskStore
	mu                         sync.Mutex
	taskReads, images, outputs int
}

func openDatabase(t *testing.T) *countingStore {
	t.Helper()
	s, err := sqlite.Open(t.Context(), filepath.Join(t.TempDir(), "imaged.db"), sqlite.OpenOptions{Logger: quietLog()})
	if err != nil {
		t.Fatalf("sqlite.Open: %v", err)
	}
	t.Cleanup(func() { s.Close() })
	return &countingStore{TaskStore: s}
}

func (s *countingStore) Task(ctx context.Context, tenant, id string) (*imaged.Task, error) {
	s.mu.Lock()
	s.taskReads++
	s.mu.Unlock()
	return s.TaskStore.Task(ctx, tenant, id)
}

func (s *countingStore) Image(ctx context.Context, tenant, id string) (*imaged.Image, error) {
	s.mu.Lock()
	s.images++
	s.mu.Unlock()
	return s.TaskStore.Image(ctx, tenant, id)
}

func (s *countingStore) CachedOutput(ctx context.Context, tenant, key string) (*imaged.CachedOutput, error) {
	s.mu.Lock()
	s.outputs++
	s.mu.Unlock()
	return s.TaskStore.CachedOutput(ctx, tenant, key)
}

func (s *countingStore) outputReads() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.outputs
}

func (s *countingStore) counts() (tasks, images int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.taskReads, s.images
}

// privateRedis is a redis-server of the test's own, which the test may stop and start again
// without touching the shared one.
type privateRedis struct {
	t    *testing.T
	port int
	dir  string
	cmd  *exec.Cmd
}

func startPrivateRedis(t *testing.T) *privateRedis {
	t.Helper()
	if _, err := exec.LookPath("redis-server"); err != nil {
		missing(t, "redis-server is not installed (apt-get install redis-server)")
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	l.Close()
	p := &privateRedis{t: t, port: port, dir: t.TempDir()}
	p.start()
	t.Cleanup(p.stop)
	return p
}

func (p *privateRedis) url() string { return "redis://127.0.0.1:" + strconv.Itoa(p.port) + "/0" }

func (p *privateRedis) start() {
	p.t.Helper()
	p.cmd = exec.Command("redis-server", "--port", strconv.Itoa(p.port), "--bind", "127.0.0.1",
		"--save", "", "--appendonly", "no", "--daemonize", "no", "--dir", p.dir)
	p.cmd.Stdout, p.cmd.Stderr = io.Discard, io.Discard
	if err := p.cmd.Start(); err != nil {
		p.t.Fatalf("starting redis-server: %v", err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		c, err := net.DialTimeout("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(p.port)), 100*time.Millisecond)
		if err == nil {
			fmt.Fprint(c, "PING\r\n")
			buf := make([]byte, 7)
			c.SetReadDeadline(time.Now().Add(time.Second))
			n, _ := io.ReadFull(c, buf)
			c.Close()
			if string(buf[:n]) == "+PONG\r\n" {
				return
			}
		}
		if time.Now().After(deadline) {
			p.t.Fatalf("the private redis-server on port %d did not answer within 10 s", p.port)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// stop kills the private server (an outage, not a shutdown).
func (p *privateRedis) stop() {
	if p.cmd == nil || p.cmd.Process == nil {
		return
	}
	p.cmd.Process.Kill()
	p.cmd.Wait()
	p.cmd = nil
}

// proxy is a TCP proxy of the test's own in front of a Redis: cut drops every connection and
// refuses new ones while Redis itself keeps its data; restore listens again.
type proxy struct {
	t        *testing.T
	addr     string
	upstream string

	mu    sync.Mutex
	l     net.Listener
	conns []net.Conn
}

func newProxy(t *testing.T, upstream string) *proxy {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &proxy{t: t, addr: l.Addr().String(), upstream: upstream}
	p.serve(l)
	t.Cleanup(p.cut)
	return p
}

func (p *proxy) serve(l net.Listener) {
	p.mu.Lock()
	p.l = l
	p.mu.Unlock()
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			u, err := net.Dial("tcp", p.upstream)
			if err != nil {
				c.Close()
				continue
			}
			p.mu.Lock()
			p.conns = append(p.conns, c, u)
			p.mu.Unlock()
			go func() { io.Copy(u, c); u.Close() }()
			go func() { io.Copy(c, u); c.Close() }()
		}
	}()
}

func (p *proxy) cut() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.l != nil {
		p.l.Close()
		p.l = nil
	}
	for _, c := range p.conns {
		c.Close()
	}
	p.conns = nil
}

func (p *proxy) restore() {
	p.t.Helper()
	l, err := net.Listen("tcp", p.addr)
	if err != nil {
		p.t.Fatalf("listening again on %s: %v", p.addr, err)
	}
	p.serve(l)
}

// blackhole accepts connections and never answers, as a host that has stopped responding.
func blackhole(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var conns []net.Conn
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
		}
	}()
	t.Cleanup(func() {
		l.Close()
		mu.Lock()
		defer mu.Unlock()
		for _, c := range conns {
			c.Close()
		}
	})
	return l.Addr().String()
}
