package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/imaged/imaged/internal/testenv"

	"github.com/imaged/imaged"
	"github.com/imaged/imaged/internal/tcpproxy"
	"github.com/imaged/imaged/internal/versitygw"
)

// backends, when set, gives the settings that put a server's data on production backends
// instead of the embedded defaults. It is called once per server with the server's data
// directory, so that servers sharing a directory (restarts) share their backends.
var backends func(t *testing.T, dataDir string) []string

func redisTestAddr() string {
	return testenv.RedisAddr()
}

// productionBackends runs each server on PostgreSQL (its own schema), a private versitygw (its
// own bucket) and Redis (its own key prefix, expiring with the cache TTLs).
func productionBackends(t *testing.T) func(t *testing.T, dataDir string) []string {
	requireService(t, "PostgreSQL", testenv.PostgresAddr())
	requireService(t, "Redis", redisTestAddr())
	gw := versitygw.Start(t)
	envs := map[string][]string{}
	return func(t *testing.T, dataDir string) []string {
		if env, ok := envs[dataDir]; ok {
			return env
		}
		id := imaged.NewID()[:8]
		env := []string{
			"IMAGED_DATABASE_URL=" + pgTestURL() + "&schema=" + schemaName(t),
			"IMAGED_STORAGE_URL=" + gw.StorageURL("imaged-"+id),
			"IMAGED_REDIS_URL=redis://" + redisTestAddr() + "/0?key_prefix=imaged-test-" + id + ":",
		}
		envs[dataDir] = env
		return env
	}
}

// The API suite again, on PostgreSQL + versitygw + Redis instead of the embedded defaults.
// (kill -9 with PostgreSQL, where a dead worker's task returns when its lease runs out, is
// TestBrokerWorkersSurviveKill9.)
func TestAPIOnProductionBackends(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the API suite a second time")
	}
	backends = productionBackends(t)
	defer func() { backends = nil }()
	for name, test := range map[string]func(*testing.T){
		"images":     TestImagesEndpoints,
		"process":    TestProcessSync,
		"tasks":      TestTaskLifecycle,
		"cancel":     TestCancelQueuedTask,
		"batch":      TestBatch,
		"idempotent": TestIdempotencyKey,
		"bad input":  TestBadInputIsRefusedAndNothingIsKept,
		"health":     TestHealthAndMetrics,
	} {
		t.Run(name, test)
	}
	// The cache is in the health report, and task reads were served from it.
	s := startServer(t, "")
	if h := s.get("/health").json(t); h["dependencies"].(map[string]any)["cache"].(map[string]any)["status"] != "healthy" {
		t.Fatalf("cache health: %v", h)
	}
}

// countObjects counts the objects versitygw holds under dir (its posix backend is plain files).
func countObjects(dir string) int {
	n := 0
	filepath.Walk(dir, func(p string, info os.FileInfo, err error) error {
		if err == nil && info.Mode().IsRegular() && !strings.Contains(p, "/.") {
			n++
		}
		return nil
	})
	return n
}

// outageOps make a task take a moment (a few hundred milliseconds), so that an outage lands
// while tasks run.
var outageOps = []map[string]any{
	{"op": "resize", "width": 1600, "height": 1200, "fit": "exact", "enlarge": true},
	{"op": "blur", "sigma": 3},
	{"op": "convert", "format": "jpeg", "quality": 80},
}

// Storage (a private versitygw) stops for outageLength while 50 tasks run: /health/ready answers
// 503, uploads fail fast with 503 once the breaker opens and store nothing, the tasks the outage
// cuts short go back to the queue without spending attempts and the worker claims no more until
// storage answers; afterwards every task completes once, at attempt 1, and the breaker's trip
// and recovery are in the metrics.
func TestStorageOutage(t *testing.T) {
	if testing.Short() {
		t.Skip("fault test")
	}
	gw := versitygw.Start(t)
	bucket := "imaged-outage-" + imaged.NewID()[:6]
	rcv := newDeliveryReceiver(t)
	rcv.up(t)
	s := startServer(t, "",
		"IMAGED_STORAGE_URL="+gw.StorageURL(bucket),
		"IMAGED_BREAKER_FAILURES=2", "IMAGED_BREAKER_RECOVERY=1s",
		"IMAGED_BREAKER_UPLOAD_FAILURES=2", "IMAGED_BREAKER_UPLOAD_RECOVERY=1s",
		"IMAGED_STORE_RETRIES=2", "IMAGED_STORE_RETRY_WAIT=50ms",
		"IMAGED_RETRY_BACKOFF=500ms", "IMAGED_WORKERS=2",
		"IMAGED_WEBHOOK_SECRET="+outboxSecret, "IMAGED_OUTBOUND_ALLOW=127.0.0.0/8")
	photo := readTestdata(t, "chelsea.jpg")
	id := s.upload(photo)

	o := &outage{call: s.call, cut: gw.Stop, restore: gw.Restart, logs: s.logs.String,
		results: func() []string { return resultObjects(filepath.Join(gw.Dir(), bucket, "results")) }}
	o.during = func() {
		var fast time.Duration
		for i := 0; i < 6; i++ {
			start := time.Now()
			r := s.postMultipart("/v1/images", "x.jpg", photo, nil)
			took := time.Since(start)
			if r.status != 503 || r.header.Get("Retry-After") == "" {
				t.Fatalf("upload during the outage: %d (Retry-After %q) %s", r.status, r.header.Get("Retry-After"), r.body)
			}
			fast = took
		}
		if fast > time.Second {
			t.Fatalf("with the breaker open an upload still took %s", fast)
		}
		t.Logf("upload refused in %s once the breaker is open", fast)
	}
	o.ride(t, func(i int) map[string]any {
		return map[string]any{"image_id": id, "ops": outageOps, "callback_url": fmt.Sprintf("http://%s/hook/%d", rcv.addr, i)}
	})

	waitFor(t, 30*time.Second, "uploads to succeed again", func() bool {
		return s.postMultipart("/v1/images", "x.jpg", photo, nil).status == 201
	})
	m := string(s.get("/metrics").body)
	for _, want := range []string{
		`circuit_breaker_transitions_total{from="closed",name="storage_upload",to="open"}`,
		`circuit_breaker_transitions_total{from="half-open",name="storage_upload",to="closed"}`,
		`circuit_breaker_state{name="storage_upload"} 0`,
		`retries_total{name="storage`, // storage or storage_upload: where the outage met the tasks
		`task_outage_deferrals_total{task_type="transform"}`,
	} {
		if !strings.Contains(m, want) {
			t.Errorf("metrics lack %s:\n%s", want, grepLines(m, "circuit_breaker|retries_total|task_outage"))
		}
	}
	// Two images were stored (before and after), plus the results: nothing from the refused
	// uploads.
	if n := countObjects(filepath.Join(gw.Dir(), bucket)); n != 2+outageTasks {
		t.Fatalf("%d objects in the bucket, want %d (2 images, %d results)", n, 2+outageTasks, outageTasks)
	}
}

func grepLines(text, pattern string) string {
	var out []string
	for _, l := range strings.Split(text, "\n") {
		for _, p := range strings.Split(pattern, "|") {
			if strings.Contains(l, p) && !strings.HasPrefix(l, "#") {
				out = append(out, l)
				break
			}
		}
	}
	return strings.Join(out, "\n")
}

// PostgreSQL and Redis go away mid-run (every connection cut, new ones refused, through a
// proxy of the test's own; the shared servers never stop): while only Redis is down every
// request still succeeds; while PostgreSQL is down for outageLength with 50 tasks running,
// /health/ready answers 503, and afterwards every task completes once, at attempt 1.
func TestDatabaseAndCacheOutage(t *testing.T) {
	if testing.Short() {
		t.Skip("fault test")
	}
	requireService(t, "PostgreSQL", testenv.PostgresAddr())
	requireService(t, "Redis", redisTestAddr())
	pg := tcpproxy.Start(t, testenv.PostgresAddr())
	rd := tcpproxy.Start(t, redisTestAddr())
	rcv := newDeliveryReceiver(t)
	rcv.up(t)
	dbURL := strings.Replace(pgTestURL(), testenv.PostgresAddr(), pg.Addr(), 1) + "&schema=" + schemaName(t)
	s := startServer(t, "",
		"IMAGED_DATABASE_URL="+dbURL,
		"IMAGED_REDIS_URL=redis://"+rd.Addr()+"/0?key_prefix=imaged-test-"+imaged.NewID()[:8]+":",
		"IMAGED_STORE_RETRIES=6", "IMAGED_STORE_RETRY_WAIT=250ms", "IMAGED_BREAKER_FAILURES=50", "IMAGED_BREAKER_RECOVERY=2s",
		"IMAGED_TASK_DEADLINE=20s", "IMAGED_SHUTDOWN_GRACE=1s", "IMAGED_WORKERS=2",
		"IMAGED_WEBHOOK_SECRET="+outboxSecret, "IMAGED_OUTBOUND_ALLOW=127.0.0.0/8")
	id := s.upload(readTestdata(t, "chelsea.jpg"))

	// Redis down: reads and writes all succeed (from the database), and quickly.
	first := s.postJSON("/v1/tasks", map[string]any{"image_id": id, "ops": []map[string]any{{"op": "flip"}}}).json(t)["id"].(string)
	s.waitTask(first, time.Minute)
	rd.Cut()
	for i := 0; i < 20; i++ {
		start := time.Now()
		for _, p := range []string{"/v1/tasks/" + first, "/v1/images/" + id} {
			if r := s.get(p); r.status != 200 {
				t.Fatalf("GET %s with Redis down: %d %s", p, r.status, r.body)
			}
		}
		if took := time.Since(start); took > 2*time.Second {
			t.Fatalf("reads with Redis down took %s", took)
		}
	}
	second := s.postJSON("/v1/tasks", map[string]any{"image_id": id, "ops": []map[string]any{{"op": "flop"}}})
	if second.status != 202 {
		t.Fatalf("queueing with Redis down: %d %s", second.status, second.body)
	}
	s.waitTask(second.json(t)["id"].(string), time.Minute)
	rd.Restore()

	// PostgreSQL lost for outageLength while 50 tasks run.
	o := &outage{call: s.call, cut: pg.Cut, restore: pg.Restore, logs: s.logs.String,
		results: func() []string { return resultObjects(filepath.Join(s.dataDir, "blobs", "results")) }}
	ids := o.ride(t, func(i int) map[string]any {
		return map[string]any{"image_id": id, "ops": outageOps, "callback_url": fmt.Sprintf("http://%s/hook/%d", rcv.addr, i)}
	})
	l := s.get("/v1/tasks?status=completed&limit=100").json(t)
	if n := len(l["items"].([]any)); n != len(ids)+2 {
		t.Fatalf("%d completed tasks, want %d", n, len(ids)+2)
	}
}

// schemaName returns a fresh PostgreSQL schema that is dropped when the test ends.
func schemaName(t *testing.T) string {
	name, _ := pgSchema(t)
	return name
}
