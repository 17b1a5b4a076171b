package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"image"
	"image/color"
	"image/png"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/imaged/imaged/internal/imagedtest"
	"github.com/imaged/imaged/internal/testenv"

	"github.com/imaged/imaged/internal/tcpproxy"

	"github.com/jackc/pgx/v5"
	amqp "github.com/rabbitmq/amqp091-go"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/imaged/imaged"
	"github.com/imaged/imaged/kafka"
	"github.com/imaged/imaged/rabbitmq"
	"github.com/imaged/imaged/webhook"
)

// Scale-out on the brokers, as users run it: one API process and `imaged worker` processes,
// sharing a PostgreSQL schema and a blob directory, talking to RabbitMQ (a vhost of the test's
// own on the shared server) or to kfake (a Kafka-protocol server in the test process) through
// a TCP proxy the test can cut.

const testWebhookSecret = "broker-test-webhook-secret"

// requireService skips (or, with IMAGED_TEST_REQUIRE_SERVICES=1, fails) when addr does not
// answer.
func requireService(tb testing.TB, what, addr string) {
	tb.Helper()
	testenv.Require(tb, what, addr)
}

func pgTestURL() string {
	return testenv.PostgresURL()
}

// pgSchema returns a fresh schema name, dropped when the test ends, and a connection to the
// test database for counting.
func pgSchema(tb testing.TB) (string, *pgx.Conn) {
	tb.Helper()
	u, _ := url.Parse(pgTestURL())
	requireService(tb, "PostgreSQL", u.Host)
	name := "imaged_test_" + imaged.NewID()[:12]
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, pgTestURL())
	if err != nil {
		tb.Fatalf("PostgreSQL: %v", err)
	}
	tb.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if _, err := conn.Exec(ctx, `DROP SCHEMA IF EXISTS `+name+` CASCADE`); err != nil {
			tb.Errorf("drop schema %s: %v", name, err)
		}
		conn.Close(ctx)
	})
	return name, conn
}

// broker is one broker set up for a test: the queue URL imaged processes use (through the
// proxy) and a way to read its dead letters.
type broker struct {
	name        string
	queueURL    string
	proxy       *tcpproxy.Proxy
	deadLetters func(ctx context.Context) ([]string, error)
	// watch returns the events on the wire from now on (RabbitMQ: a queue bound to every event
	// type; Kafka: the events topic from its start). Call it once the API process runs.
	watch func(tb testing.TB) <-chan wireEvent
}

// wireEvent is an event message as the broker carries it.
type wireEvent struct {
	key           string // routing key (RabbitMQ) or record key (Kafka)
	correlationID string // the correlation_id header
	event         imaged.Event
}

func rabbitBroker(tb testing.TB) *broker {
	tb.Helper()
	requireService(tb, "RabbitMQ", testenv.AMQPAddr())
	vhost := "imaged-cmd-" + imaged.NewID()[:8]
	for _, args := range [][]string{{"add_vhost", vhost}, {"set_permissions", "-p", vhost, "guest", ".*", ".*", ".*"}} {
		if out, err := exec.Command("rabbitmqctl", append([]string{"-q"}, args...)...).CombinedOutput(); err != nil {
			tb.Fatalf("rabbitmqctl %v: %v\n%s", args, err, out)
		}
	}
	tb.Cleanup(func() { _ = exec.Command("rabbitmqctl", "-q", "delete_vhost", vhost).Run() })
	p := tcpproxy.Start(tb, testenv.AMQPAddr())
	query := "?exchange=image_processing&prefix=imaged.&publish_timeout=60s"
	direct := testenv.AMQPVhostURL(vhost, query)
	return &broker{name: "rabbitmq", proxy: p,
		queueURL: "amqp://guest:guest@" + p.Addr() + "/" + vhost + query,
		deadLetters: func(ctx context.Context) ([]string, error) {
			cfg, err := rabbitmq.ParseURL(direct)
			if err != nil {
				return nil, err
			}
			b, err := rabbitmq.Open(ctx, cfg)
			if err != nil {
				return nil, err
			}
			defer b.Close()
			return b.DeadLetters(ctx)
		},
		watch: func(tb testing.TB) <-chan wireEvent {
			conn, err := amqp.Dial(testenv.AMQPVhostURL(vhost, ""))
			if err != nil {
				tb.Fatal(err)
			}
			tb.Cleanup(func() { conn.Close() })
			ch, err := conn.Channel()
			if err != nil {
				tb.Fatal(err)
			}
			q, err := ch.QueueDeclare("", false, true, true, false, nil)
			if err != nil {
				tb.Fatal(err)
			}
			for _, key := range rabbitmq.EventTypes {
				if err := ch.QueueBind(q.Name, key, "image_processing", false, nil); err != nil {
					tb.Fatal(err)
				}
			}
			dels, err := ch.Consume(q.Name, "", true, true, false, false, nil)
			if err != nil {
				tb.Fatal(err)
			}
			out := make(chan wireEvent, 1024)
			go func() {
				for d := range dels {
					we := wireEvent{key: d.RoutingKey}
					we.correlationID, _ = d.Headers["correlation_id"].(string)
					_ = json.Unmarshal(d.Body, &we.event)
					select {
					case out <- we:
					default:
					}
				}
			}()
			return out
		}}
}

// advertisedListener makes kfake announce the proxy's address, so clients keep going through it.
type advertisedListener struct {
	net.Listener
	addr net.Addr
}

func (a advertisedListener) Addr() net.Addr { return a.addr }

func kafkaBroker(tb testing.TB) *broker {
	tb.Helper()
	p := tcpproxy.Start(tb, "")
	var real string
	c, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.Ports(0), kfake.GroupMinSessionTimeout(100*time.Millisecond),
		kfake.ListenFn(func(network, address string) (net.Listener, error) {
			ln, err := net.Listen(network, address)
			if err != nil {
				return nil, err
			}
			real = ln.Addr().String()
			return advertisedListener{ln, p.NetAddr()}, nil
		}))
	if err != nil {
		tb.Fatalf("kfake: %v", err)
	}
	tb.Cleanup(c.Close)
	p.SetTarget(real)
	prefix := "imaged" + imaged.NewID()[:6]
	raw := "kafka://" + p.Addr() + "?topic_prefix=" + prefix + "&group=imaged-workers&session_timeout=3s&partitions=6&publish_timeout=60s"
	return &broker{name: "kafka", proxy: p, queueURL: raw,
		deadLetters: func(ctx context.Context) ([]string, error) {
			cfg, err := kafka.ParseURL(raw)
			if err != nil {
				return nil, err
			}
			b, err := kafka.Open(ctx, cfg)
			if err != nil {
				return nil, err
			}
			defer b.Close()
			return b.DeadLetters(ctx)
		},
		watch: func(tb testing.TB) <-chan wireEvent {
			cl, err := kgo.NewClient(kgo.SeedBrokers(p.Addr()), kgo.ConsumeTopics(prefix+".events"),
				kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
			if err != nil {
				tb.Fatal(err)
			}
			ctx, cancel := context.WithCancel(context.Background())
			out := make(chan wireEvent, 1024)
			done := make(chan struct{})
			tb.Cleanup(func() { cancel(); <-done; cl.Close() })
			go func() {
				defer close(done)
				for ctx.Err() == nil {
					cl.PollFetches(ctx).EachRecord(func(r *kgo.Record) {
						we := wireEvent{key: string(r.Key)}
						for _, h := range r.Headers {
							if h.Key == "correlation_id" {
								we.correlationID = string(h.Value)
							}
						}
						_ = json.Unmarshal(r.Value, &we.event)
						select {
						case out <- we:
						default:
						}
					})
				}
			}()
			return out
		}}
}

// imagedProc is one imaged process: `serve` (with its HTTP address) or `worker`.
type imagedProc struct {
	tb       testing.TB
	cmd      *exec.Cmd
	logs     *syncBuffer
	done     chan struct{}
	base     string
	workerID string
}

var workerStarted = regexp.MustCompile(`"msg":"workers started","worker_id":"([^"]+)"`)

// brokerBinary builds (once per test binary, shared with the other tests) and returns imaged.
func brokerBinary(tb testing.TB) string {
	tb.Helper()
	return imagedtest.Binary(tb)
}

func startImaged(tb testing.TB, role string, env []string) *imagedProc {
	tb.Helper()
	p := &imagedProc{tb: tb, logs: &syncBuffer{}, done: make(chan struct{})}
	if role == "serve" {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			tb.Fatal(err)
		}
		addr := l.Addr().String()
		l.Close()
		p.base = "http://" + addr
		env = append(env, "IMAGED_ADDR="+addr)
	}
	p.cmd = exec.Command(brokerBinary(tb), role)
	p.cmd.Env = env
	p.cmd.Stdout, p.cmd.Stderr = p.logs, p.logs
	if err := p.cmd.Start(); err != nil {
		tb.Fatal(err)
	}
	go func() { _ = p.cmd.Wait(); close(p.done) }()
	tb.Cleanup(func() {
		p.kill()
		if tb.Failed() {
			tb.Logf("%s logs (tail):\n%s", role, tail(p.logs.String(), 6000))
		}
	})
	deadline := time.Now().Add(60 * time.Second)
	for {
		select {
		case <-p.done:
			tb.Fatalf("imaged %s exited during start-up:\n%s", role, p.logs.String())
		default:
		}
		if role == "serve" {
			if resp, err := http.Get(p.base + "/health/ready"); err == nil {
				resp.Body.Close()
				if resp.StatusCode == 200 {
					return p
				}
			}
		} else if m := workerStarted.FindStringSubmatch(p.logs.String()); m != nil {
			p.workerID = m[1]
			return p
		}
		if time.Now().After(deadline) {
			tb.Fatalf("imaged %s not ready after 60s:\n%s", role, p.logs.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func (p *imagedProc) kill() {
	if p.cmd.Process != nil {
		_ = p.cmd.Process.Signal(syscall.SIGKILL)
	}
	<-p.done
}

func (p *imagedProc) stop() {
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(30 * time.Second):
		p.tb.Errorf("imaged did not stop within 30s of SIGTERM")
	}
}

var httpClient = &http.Client{Timeout: 90 * time.Second}

func (p *imagedProc) call(method, path string, body any, header map[string]string) (int, http.Header, []byte) {
	p.tb.Helper()
	var rd io.Reader
	if b, ok := body.([]byte); ok {
		rd = bytes.NewReader(b)
	} else if body != nil {
		b, _ := json.Marshal(body)
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequest(method, p.base+path, rd)
	if err != nil {
		p.tb.Fatal(err)
	}
	if _, ok := body.([]byte); ok {
		req.Header.Set("Content-Type", "image/png")
	} else if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	for k, v := range header {
		req.Header.Set(k, v)
	}
	resp, err := httpClient.Do(req)
	if err != nil {
		p.tb.Errorf("%s %s: %v", method, path, err)
		return 0, nil, nil
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, resp.Header, b
}

// cluster is an API process and worker processes over one database schema and blob directory.
type cluster struct {
	tb      testing.TB
	api     *imagedProc
	workers []*imagedProc
	db      *pgx.Conn
	schema  string
	env     []string
}

func newCluster(tb testing.TB, queueURL string, extra ...string) *cluster {
	tb.Helper()
	schema, db := pgSchema(tb)
	shared := tb.TempDir()
	c := &cluster{tb: tb, db: db, schema: schema}
	c.env = append([]string{
		"PATH=" + os.Getenv("PATH"), "HOME=" + os.Getenv("HOME"),
		"IMAGED_AUTH=off", "IMAGED_RATE_LIMIT_KEY=0", "IMAGED_RATE_LIMIT_KEY_BURST=0", "IMAGED_RATE_LIMIT_IP=0",
		"IMAGED_RATE_LIMIT_IP_BURST=0", "IMAGED_KEY_CONCURRENCY=0",
		"IMAGED_DATABASE_URL=" + pgTestURL() + "&schema=" + schema + "&pool_min_conns=1&pool_max_conns=6",
		"IMAGED_QUEUE_URL=" + queueURL,
		"IMAGED_STORAGE_URL=file://" + filepath.Join(shared, "blobs"),
		"IMAGED_URL_SECRET=broker-test-url-secret-0123456789abcdef",
		"IMAGED_MODELS_DIR=" + filepath.Join(shared, "no-models"),
		"IMAGED_SHUTDOWN_GRACE=2s", "IMAGED_TASK_DEADLINE=3s", "IMAGED_TASK_LEASE=3s", "IMAGED_LEASE_SWEEP=500ms",
		"IMAGED_RETRY_BACKOFF=200ms", "IMAGED_POLL_INTERVAL=100ms",
		"IMAGED_WEBHOOK_SECRET=" + testWebhookSecret, "IMAGED_WEBHOOK_BACKOFF=200ms", "IMAGED_OUTBOUND_ALLOW=127.0.0.0/8",
		"IMAGED_HEALTH_EVENT_INTERVAL=1s", "IMAGED_ONNX_SESSIONS=1", "IMAGED_TESSERACT_POOL=1",
	}, extra...)
	c.api = startImaged(tb, "serve", append(c.envFor(), "IMAGED_WORKERS=0"))
	return c
}

// envFor is the shared environment with a data directory of the process's own.
func (c *cluster) envFor() []string {
	return append(append([]string{}, c.env...), "IMAGED_DATA_DIR="+c.tb.TempDir())
}

// addWorker starts an `imaged worker` running n tasks at once.
func (c *cluster) addWorker(n int) *imagedProc {
	c.tb.Helper()
	w := startImaged(c.tb, "worker", append(c.envFor(), fmt.Sprintf("IMAGED_WORKERS=%d", n), "IMAGED_NO_MIGRATE=1"))
	c.workers = append(c.workers, w)
	return w
}

// counts returns the number of tasks per status.
func (c *cluster) counts() map[string]int {
	c.tb.Helper()
	rows, err := c.db.Query(context.Background(), `SELECT status, count(*) FROM `+c.schema+`.tasks GROUP BY status`)
	if err != nil {
		c.tb.Fatal(err)
	}
	out := map[string]int{}
	for rows.Next() {
		var s string
		var n int
		if err := rows.Scan(&s, &n); err != nil {
			c.tb.Fatal(err)
		}
		out[s] = n
	}
	return out
}

func (c *cluster) upload(img []byte) string {
	c.tb.Helper()
	status, _, body := c.api.call("POST", "/v1/images", img, nil)
	if status != 201 {
		c.tb.Fatalf("upload: %d %s", status, body)
	}
	var v struct{ ID string }
	json.Unmarshal(body, &v)
	return v.ID
}

func (c *cluster) createTask(req map[string]any) string {
	c.tb.Helper()
	status, _, body := c.api.call("POST", "/v1/tasks", req, nil)
	if status != 202 {
		c.tb.Errorf("create task: %d %s", status, body)
		return ""
	}
	var v struct{ ID string }
	json.Unmarshal(body, &v)
	return v.ID
}

// createTasks creates n tasks from 8 clients at once.
func (c *cluster) createTasks(n int, req func(i int) map[string]any) []string {
	ids := make([]string, n)
	var wg sync.WaitGroup
	next := atomic.Int64{}
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1)) - 1
				if i >= n {
					return
				}
				ids[i] = c.createTask(req(i))
			}
		}()
	}
	wg.Wait()
	return ids
}

func (c *cluster) waitCounts(timeout time.Duration, what string, cond func(map[string]int) bool) map[string]int {
	c.tb.Helper()
	deadline := time.Now().Add(timeout)
	for {
		m := c.counts()
		if cond(m) {
			return m
		}
		if time.Now().After(deadline) {
			c.tb.Fatalf("timed out after %s waiting for %s; tasks by status: %v", timeout, what, m)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// queuedGauge sums tasks_queued over its task types on the API's /metrics.
func (c *cluster) queuedGauge() float64 {
	_, _, body := c.api.call("GET", "/metrics", nil, nil)
	var sum float64
	for _, line := range strings.Split(string(body), "\n") {
		if strings.HasPrefix(line, "tasks_queued{") {
			var v float64
			fmt.Sscan(line[strings.LastIndex(line, " ")+1:], &v)
			sum += v
		}
	}
	return sum
}

// testPNG is a real photo-sized PNG, so a blur takes a few milliseconds.
func testPNG(tb testing.TB, w, h int) []byte {
	img := image.NewRGBA(image.Rect(0, 0, w, h))
	for y := range h {
		for x := range w {
			img.Set(x, y, color.RGBA{uint8(x * 7), uint8(y * 5), uint8(x ^ y), 255})
		}
	}
	var buf bytes.Buffer
	if err := png.Encode(&buf, img); err != nil {
		tb.Fatal(err)
	}
	return buf.Bytes()
}

func brokers() []struct {
	name string
	open func(testing.TB) *broker
} {
	return []struct {
		name string
		open func(testing.TB) *broker
	}{{"rabbitmq", rabbitBroker}, {"kafka", kafkaBroker}}
}

// 200 tasks through one API process and two workers; one worker is killed with SIGKILL while it
// runs tasks. Every task still ends completed exactly once: its in-flight tasks come back (when
// their lease runs out) and the survivor finishes them.
func TestBrokerWorkersSurviveKill9(t *testing.T) {
	if testing.Short() {
		t.Skip("multi-process broker test")
	}
	for _, bk := range brokers() {
		t.Run(bk.name, func(t *testing.T) {
			b := bk.open(t)
			c := newCluster(t, b.queueURL)
			img := c.upload(testPNG(t, 512, 384))
			const n = 200
			ids := c.createTasks(n, func(int) map[string]any {
				return map[string]any{"image_id": img, "ops": []map[string]any{{"op": "blur", "sigma": 2}}}
			})
			for _, id := range ids {
				if id == "" {
					t.FailNow()
				}
			}
			// No worker yet: the broker holds all 200, and tasks_queued says so.
			deadline := time.Now().Add(20 * time.Second)
			for c.queuedGauge() != n {
				if time.Now().After(deadline) {
					t.Fatalf("tasks_queued = %v, want %d (the broker's depth)", c.queuedGauge(), n)
				}
				time.Sleep(200 * time.Millisecond)
			}

			victim := c.addWorker(2)
			survivor := c.addWorker(2)
			// Kill the victim while it holds tasks.
			var inflight []string
			deadline = time.Now().Add(60 * time.Second)
			for {
				rows, err := c.db.Query(context.Background(), `SELECT id FROM `+c.schema+`.tasks WHERE status = 'processing' AND worker_id = $1`, victim.workerID)
				if err != nil {
					t.Fatal(err)
				}
				ids, err := pgx.CollectRows(rows, pgx.RowTo[string])
				if err != nil {
					t.Fatal(err)
				}
				done := c.counts()[imaged.StatusCompleted]
				if len(ids) > 0 && done >= 30 {
					victim.kill()
					break
				}
				if time.Now().After(deadline) {
					t.Fatalf("the victim never held a task (completed %d)", done)
				}
				time.Sleep(2 * time.Millisecond)
			}
			rows, err := c.db.Query(context.Background(), `SELECT id FROM `+c.schema+`.tasks WHERE status = 'processing' AND worker_id = $1`, victim.workerID)
			if err != nil {
				t.Fatal(err)
			}
			inflight, _ = pgx.CollectRows(rows, pgx.RowTo[string])
			t.Logf("killed %s with %d tasks in flight", victim.workerID, len(inflight))

			start := time.Now()
			m := c.waitCounts(120*time.Second, "every task completed", func(m map[string]int) bool { return m[imaged.StatusCompleted] == n })
			t.Logf("all %d completed %.1fs after the kill; statuses %v", n, time.Since(start).Seconds(), m)
			if len(m) != 1 {
				t.Errorf("tasks by status %v, want only completed", m)
			}
			var withResult, finished int
			if err := c.db.QueryRow(context.Background(), `SELECT count(*) FILTER (WHERE result IS NOT NULL), count(*) FILTER (WHERE finished_at IS NOT NULL) FROM `+c.schema+`.tasks`).Scan(&withResult, &finished); err != nil {
				t.Fatal(err)
			}
			if withResult != n || finished != n {
				t.Errorf("%d tasks with a result and %d finished, want %d", withResult, finished, n)
			}
			for _, id := range inflight {
				var worker string
				var attempts int
				if err := c.db.QueryRow(context.Background(), `SELECT worker_id, attempts FROM `+c.schema+`.tasks WHERE id = $1`, id).Scan(&worker, &attempts); err != nil {
					t.Fatal(err)
				}
				if worker != survivor.workerID || attempts < 2 {
					t.Errorf("task %s of the killed worker: worker %s, attempts %d; want the survivor, a second attempt", id, worker, attempts)
				}
			}
			// Every result object exists once, under the task's own key.
			files, _ := filepath.Glob(filepath.Join(strings.TrimPrefix(envValue(c.env, "IMAGED_STORAGE_URL"), "file://"), "results", "*", "*", "*", "[^.]*"))
			if len(files) != n {
				t.Errorf("%d result objects, want %d", len(files), n)
			}
			deadline = time.Now().Add(20 * time.Second)
			for c.queuedGauge() != 0 {
				if time.Now().After(deadline) {
					t.Fatalf("tasks_queued = %v after the run, want 0", c.queuedGauge())
				}
				time.Sleep(200 * time.Millisecond)
			}
			survivor.stop()
		})
	}
}

func envValue(env []string, key string) string {
	for _, e := range env {
		if v, ok := strings.CutPrefix(e, key+"="); ok {
			return v
		}
	}
	return ""
}

// hookReceiver is a webhook receiver: it records every request and fails the first two
// requests for paths in flaky.
type hookReceiver struct {
	srv   *httptest.Server
	mu    sync.Mutex
	got   map[string][]hookRequest // by delivery id
	flaky map[string]int
}

type hookRequest struct {
	id, path, event string
	status          int
	verified        error
	body            []byte
}

func newHookReceiver(tb testing.TB) *hookReceiver {
	h := &hookReceiver{got: map[string][]hookRequest{}, flaky: map[string]int{}}
	h.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		h.mu.Lock()
		defer h.mu.Unlock()
		status := 200
		if h.flaky[r.URL.Path] < 2 && strings.HasPrefix(r.URL.Path, "/flaky") {
			h.flaky[r.URL.Path]++
			status = 503
		}
		id := r.Header.Get(webhook.HeaderDelivery)
		h.got[id] = append(h.got[id], hookRequest{id: id, path: r.URL.Path, event: r.Header.Get(webhook.HeaderEvent), status: status,
			verified: webhook.Verify([]byte(testWebhookSecret), r.Header.Get(webhook.HeaderSignature), body, 0), body: body})
		w.WriteHeader(status)
	}))
	tb.Cleanup(h.srv.Close)
	return h
}

// byPath returns the requests per path.
func (h *hookReceiver) byPath() map[string][]hookRequest {
	h.mu.Lock()
	defer h.mu.Unlock()
	out := map[string][]hookRequest{}
	for _, rs := range h.got {
		for _, r := range rs {
			out[r.path] = append(out[r.path], r)
		}
	}
	return out
}

// sseEvents reads a Server-Sent Events stream into a channel of "event\x00id\x00data".
func sseEvents(tb testing.TB, url string) <-chan [3]string {
	resp, err := http.Get(url)
	if err != nil {
		tb.Fatal(err)
	}
	if resp.StatusCode != 200 {
		tb.Fatalf("GET %s: %d", url, resp.StatusCode)
	}
	ch := make(chan [3]string, 64)
	tb.Cleanup(func() { resp.Body.Close() })
	go func() {
		defer close(ch)
		sc := bufio.NewScanner(resp.Body)
		sc.Buffer(make([]byte, 1<<20), 1<<20)
		var cur [3]string
		for sc.Scan() {
			line := sc.Text()
			switch {
			case line == "":
				if cur[0] != "" {
					ch <- cur
				}
				cur = [3]string{}
			case strings.HasPrefix(line, "event: "):
				cur[0] = line[7:]
			case strings.HasPrefix(line, "id: "):
				cur[1] = line[4:]
			case strings.HasPrefix(line, "data: "):
				cur[2] = line[6:]
			}
		}
	}()
	return ch
}

// The broker connection of every process is cut mid-run (through the proxy) and restored:
// publishers wait and workers reconnect, and no task is lost. On RabbitMQ the cut lasts
// outageLength while 50 more tasks run (the outage tests' course: /health/ready 503 during it
// and 200 after, every task completed once at attempt 1); on Kafka, two seconds. Meanwhile a task that always
// fails ends failed and in the dead-letter queue, live progress reaches the API process
// through the broker, each completion's webhook arrives once and signed (a flaky receiver on
// the third try), and a batch sent twice with one Idempotency-Key is one batch.
func TestBrokerConnectionCutDeadLettersWebhooksAndEvents(t *testing.T) {
	if testing.Short() {
		t.Skip("multi-process broker test")
	}
	for _, bk := range brokers() {
		t.Run(bk.name, func(t *testing.T) {
			b := bk.open(t)
			hooks := newHookReceiver(t)
			c := newCluster(t, b.queueURL)
			c.addWorker(2)
			c.addWorker(2)
			img := c.upload(testPNG(t, 64, 48))
			task := func(i int) map[string]any {
				path := fmt.Sprintf("/hook/%d", i)
				if i == 0 {
					path = "/flaky/0"
				}
				return map[string]any{"image_id": img, "ops": []map[string]any{{"op": "resize", "width": 16}},
					"callback_url": hooks.srv.URL + path}
			}
			// A task that fails at run time (no detection model here): retried, then failed.
			doomed := c.createTask(map[string]any{"image_id": img, "ops": []map[string]any{{"op": "detect"}},
				"callback_url": hooks.srv.URL + "/doomed"})
			live := sseEvents(t, c.api.base+"/v1/tasks/"+doomed+"/events")

			var ids []string
			ids = append(ids, c.createTasks(20, task)...)
			// The doomed task fails before the cut, so its events take the broker, not the
			// stream's store poll (events sent while a subscriber is disconnected are lost).
			c.waitCounts(30*time.Second, "the first tasks done", func(m map[string]int) bool {
				return m[imaged.StatusCompleted] >= 10 && m[imaged.StatusFailed] == 1
			})
			// The worker dead-letters the task just after recording its failure: a cut in
			// between would hold that publish until the broker is back (and, at least once,
			// might repeat it). Cut once it is in the dead-letter queue.
			waitFor(t, 30*time.Second, "the doomed task in the dead-letter queue", func() bool {
				ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
				defer cancel()
				dead, err := b.deadLetters(ctx)
				return err == nil && slices.Contains(dead, doomed)
			})

			var during []string
			var wg sync.WaitGroup
			createDuring := func() {
				wg.Add(1)
				go func() { // these publishes wait for the broker to come back
					defer wg.Done()
					during = c.createTasks(20, func(i int) map[string]any { return task(20 + i) })
				}()
			}
			if bk.name == "rabbitmq" {
				// The long outage: 50 slower tasks run through outageLength without the broker.
				big := c.upload(testPNG(t, 1024, 768))
				o := &outage{
					call: func(method, path string, body any) (int, []byte) {
						status, _, b := c.api.call(method, path, body, nil)
						return status, b
					},
					cut: b.proxy.Cut, restore: b.proxy.Restore, during: createDuring,
					results: func() []string {
						return resultObjects(filepath.Join(strings.TrimPrefix(envValue(c.env, "IMAGED_STORAGE_URL"), "file://"), "results"))
					},
					logs: func() string {
						var all strings.Builder
						for _, w := range c.workers {
							all.WriteString(w.logs.String())
						}
						return all.String()
					},
				}
				ids = append(ids, o.ride(t, func(i int) map[string]any {
					return map[string]any{"image_id": big, "ops": outageOps, "callback_url": fmt.Sprintf("%s/hook/%d", hooks.srv.URL, 60+i)}
				})...)
			} else {
				b.proxy.Cut()
				cutAt := time.Now()
				createDuring()
				time.Sleep(2 * time.Second) // the length of the outage, not a wait for a condition
				b.proxy.Restore()
				t.Logf("connection cut for %.1fs", time.Since(cutAt).Seconds())
			}
			wg.Wait()
			ids = append(ids, during...)
			ids = append(ids, c.createTasks(20, func(i int) map[string]any { return task(40 + i) })...)

			// One batch, sent twice with one Idempotency-Key.
			batchReq := map[string]any{"image_ids": []string{img, img, img}, "ops": []map[string]any{{"op": "resize", "width": 8}},
				"callback_url": hooks.srv.URL + "/batch"}
			s1, h1, b1 := c.api.call("POST", "/v1/batches", batchReq, map[string]string{"Idempotency-Key": "batch-key-1"})
			s2, h2, b2 := c.api.call("POST", "/v1/batches", batchReq, map[string]string{"Idempotency-Key": "batch-key-1"})
			var v1, v2 struct {
				BatchID string   `json:"batch_id"`
				TaskIDs []string `json:"task_ids"`
			}
			json.Unmarshal(b1, &v1)
			json.Unmarshal(b2, &v2)
			if s1 != 202 || s2 != 202 || v1.BatchID == "" || v1.BatchID != v2.BatchID || h2.Get("Idempotent-Replayed") != "true" ||
				h1.Get("Idempotent-Replayed") != "" || strings.Join(v1.TaskIDs, ",") != strings.Join(v2.TaskIDs, ",") {
				t.Fatalf("idempotent batch: %d %s / %d %s %v", s1, b1, s2, b2, h2)
			}

			completed, hooked := 63, 60 // with the long outage's tasks, 50 more of each
			if bk.name == "rabbitmq" {
				completed, hooked = completed+outageTasks, hooked+outageTasks
			}
			m := c.waitCounts(90*time.Second, "all tasks finished", func(m map[string]int) bool {
				return m[imaged.StatusCompleted] == completed && m[imaged.StatusFailed] == 1
			})
			if len(m) != 2 {
				t.Errorf("tasks by status %v, want %d completed and 1 failed", m, completed)
			}
			// The outage spent no attempt: every task ran once.
			var again int
			if err := c.db.QueryRow(context.Background(), `SELECT count(*) FROM `+c.schema+`.tasks WHERE attempts <> 1`).Scan(&again); err != nil {
				t.Fatal(err)
			}
			if again != 0 {
				t.Errorf("%d tasks took more than one attempt", again)
			}
			var attempts int
			var code string
			if err := c.db.QueryRow(context.Background(), `SELECT attempts, error_code FROM `+c.schema+`.tasks WHERE id = $1`, doomed).Scan(&attempts, &code); err != nil {
				t.Fatal(err)
			}
			// A model that is not installed fails the task at once: one attempt, dead-lettered.
			if attempts != 1 || code != imaged.ENotInstalled {
				t.Errorf("the doomed task: %d attempts, error %s; want 1 attempt, %s", attempts, code, imaged.ENotInstalled)
			}
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			dead, err := b.deadLetters(ctx)
			if err != nil {
				t.Fatalf("reading the dead letters: %v", err)
			}
			if len(dead) != 1 || dead[0] != doomed {
				t.Errorf("dead letters %v, want [%s]", dead, doomed)
			}
			var batchTasks int
			c.db.QueryRow(context.Background(), `SELECT count(*) FROM `+c.schema+`.tasks WHERE batch_id = $1`, v1.BatchID).Scan(&batchTasks)
			if batchTasks != 3 {
				t.Errorf("the batch has %d tasks, want 3", batchTasks)
			}

			// Live progress from the worker processes reached the API process's stream.
			var seen []string
			for e := range live {
				seen = append(seen, e[0])
				if e[0] == imaged.EventTaskFailed {
					if e[1] == "" || !strings.Contains(e[2], `"worker_id":"worker-`) {
						t.Errorf("task.failed did not come through the broker: id %q data %s", e[1], e[2])
					}
				}
			}
			if len(seen) < 3 || seen[0] != "task" || seen[len(seen)-1] != imaged.EventTaskFailed ||
				!strings.Contains(strings.Join(seen, " "), imaged.EventTaskStarted) {
				t.Errorf("event stream %v, want the state, task.started events and task.failed", seen)
			}

			// Webhooks: each completion once, signed; the flaky receiver on the third try.
			want := map[string]bool{"/doomed": true, "/batch": true, "/flaky/0": true}
			for i := 1; i < hooked; i++ {
				want[fmt.Sprintf("/hook/%d", i)] = true
			}
			deadline := time.Now().Add(30 * time.Second)
			for len(hooks.byPath()) < len(want) && time.Now().Before(deadline) {
				time.Sleep(50 * time.Millisecond)
			}
			time.Sleep(500 * time.Millisecond) // a duplicate would arrive now
			got := hooks.byPath()
			for path := range want {
				rs := got[path]
				ok := 0
				for _, r := range rs {
					if r.verified != nil {
						t.Errorf("%s: signature does not verify: %v", path, r.verified)
					}
					if r.status == 200 {
						ok++
					}
				}
				wantN := 1
				if path == "/flaky/0" {
					wantN = 3
				}
				if path == "/batch" && len(rs) > 1 && ok == len(rs) && rs[0].id == rs[1].id {
					// Two workers finished the batch's last tasks at once and both announced
					// it: the receiver sees one delivery id and deduplicates.
					ok, wantN = 1, len(rs)
				}
				if ok != 1 || len(rs) != wantN {
					t.Errorf("%s: %d requests, %d accepted; want %d and 1", path, len(rs), ok, wantN)
				}
			}
			if len(got) != len(want) {
				t.Errorf("webhooks to %d paths, want %d", len(got), len(want))
			}
			if rs := got["/doomed"]; len(rs) == 1 && rs[0].event != imaged.EventTaskFailed {
				t.Errorf("the doomed task's webhook is %s", rs[0].event)
			}
			if rs := got["/batch"]; len(rs) == 1 && (rs[0].event != imaged.EventBatchCompleted || !strings.Contains(string(rs[0].body), v1.BatchID)) {
				t.Errorf("the batch webhook: %s %s", rs[0].event, rs[0].body)
			}
			_ = ids
		})
	}
}

// The events on the broker itself: routing key (RabbitMQ) or record key (Kafka), the
// correlation id as a header and the JSON other systems consume, from the API process
// (image.uploaded, task.queued) and the worker process (task.completed, health).
func TestBrokerEventsOnTheWire(t *testing.T) {
	if testing.Short() {
		t.Skip("multi-process broker test")
	}
	for _, bk := range brokers() {
		t.Run(bk.name, func(t *testing.T) {
			b := bk.open(t)
			c := newCluster(t, b.queueURL)
			wire := b.watch(t)
			w := c.addWorker(1)
			img := c.upload(testPNG(t, 32, 24))
			status, _, body := c.api.call("POST", "/v1/tasks", map[string]any{"image_id": img,
				"ops": []map[string]any{{"op": "resize", "width": 8}}}, map[string]string{"X-Correlation-ID": "wire-corr-1"})
			if status != 202 {
				t.Fatalf("create task: %d %s", status, body)
			}
			var task struct{ ID string }
			json.Unmarshal(body, &task)

			got := map[string]wireEvent{}
			deadline := time.After(30 * time.Second)
			for got[imaged.EventTaskCompleted].event.TaskID == "" || got[imaged.EventHealth].event.Type == "" ||
				got[imaged.EventImageUploaded].event.Type == "" || got[imaged.EventTaskQueued].event.Type == "" {
				select {
				case we := <-wire:
					if we.event.Type == imaged.EventHealth && we.event.WorkerID != w.workerID {
						continue // the API process's health; the worker's is checked
					}
					if we.event.TaskID != "" && we.event.TaskID != task.ID {
						continue
					}
					got[we.event.Type] = we
				case <-deadline:
					t.Fatalf("events seen on the broker: %+v", got)
				}
			}
			done := got[imaged.EventTaskCompleted]
			wantKey := imaged.EventTaskCompleted
			if bk.name == "kafka" {
				wantKey = task.ID
			}
			e := done.event
			if done.key != wantKey || done.correlationID != "wire-corr-1" || e.CorrelationID != "wire-corr-1" ||
				e.Status != imaged.StatusCompleted || e.Result == nil || e.Result.Output == nil || e.ProcessingSeconds <= 0 ||
				e.WorkerID != w.workerID || e.ID == "" {
				t.Errorf("task.completed on the wire: key %q header %q %+v", done.key, done.correlationID, e)
			}
			if q := got[imaged.EventTaskQueued]; q.correlationID != "wire-corr-1" || q.event.Status != imaged.StatusQueued {
				t.Errorf("task.queued on the wire: %+v", q)
			}
			h := got[imaged.EventHealth].event
			var figures map[string]any
			json.Unmarshal(h.Data, &figures)
			if h.Status != "ok" || figures["role"] != "worker" || figures["queue_depth"] == nil || figures["checks"] == nil {
				t.Errorf("health on the wire: %+v %s", h, h.Data)
			}
		})
	}
}
