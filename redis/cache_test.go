package redis

import (
	"bytes"
	"encoding/json"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/imaged/imaged"
	"github.com/imaged/imaged/resilience"
	"github.com/imaged/imaged/storetest"
	"github.com/prometheus/client_golang/prometheus"
)

// seed stores an image and a queued task through s.
func seed(t *testing.T, s imaged.TaskStore) (*imaged.Image, *imaged.Task) {
	t.Helper()
	ctx := t.Context()
	img := &imaged.Image{Key: "images/2026/11/01/ab.png", Format: "png", ContentType: "image/png",
		Width: 640, Height: 480, Bytes: 1234, SHA256: strings.Repeat("a", 64), Filename: "cat.png"}
	if err := s.CreateImage(ctx, img); err != nil {
		t.Fatalf("CreateImage: %v", err)
	}
	task := &imaged.Task{ImageID: img.ID, Ops: []imaged.Op{{Name: "info"}}, MaxAttempts: 3,
		CorrelationID: "corr-1", IdempotencyKey: "key-" + randomHex(4)}
	if _, err := s.CreateTasks(ctx, []*imaged.Task{task}, nil); err != nil {
		t.Fatalf("CreateTasks: %v", err)
	}
	return img, task
}

func claim(t *testing.T, s imaged.TaskStore, id string) *imaged.Task {
	t.Helper()
	c, err := s.ClaimTask(t.Context(), id, nil, "worker-1", time.Minute)
	if err != nil || c == nil {
		t.Fatalf("ClaimTask: %v, %v", c, err)
	}
	return c
}

func result() *imaged.TaskResult {
	return &imaged.TaskResult{
		Output:            &imaged.Output{Key: "results/2026/11/01/x.webp", Format: "webp", ContentType: "image/webp", Width: 320, Height: 240, Bytes: 99},
		Analyses:          []imaged.Analysis{{Op: "info", Result: json.RawMessage(`{"width":640,"height":480}`)}},
		ProcessingSeconds: 0.25,
	}
}

// sameTask compares every field, those JSON leaves out included.
func sameTask(t *testing.T, got, want *imaged.Task) {
	t.Helper()
	g, _ := encodeTask(got)
	w, _ := encodeTask(want)
	if !bytes.Equal(g, w) {
		t.Errorf("task differs:\n got %s\nwant %s", g, w)
	}
	if got.CreatedAt.Location() != time.UTC || (got.FinishedAt != nil && got.FinishedAt.Location() != time.UTC) {
		t.Errorf("times of the cached task are not UTC: %v, %v", got.CreatedAt, got.FinishedAt)
	}
}

func ttl(t *testing.T, c *testCache, key string) time.Duration {
	t.Helper()
	d, err := c.rdb.PTTL(t.Context(), key).Result()
	if err != nil {
		t.Fatalf("PTTL %s: %v", key, err)
	}
	return d
}

func TestFinishedTaskIsServedFromTheCache(t *testing.T) {
	c := openShared(t, Options{})
	db := openDatabase(t)
	s := CachedStore(db, c.Client, quietLog())
	ctx := t.Context()
	_, task := seed(t, s)
	cl := claim(t, s, task.ID)
	if _, err := s.CompleteTask(ctx, task.ID, cl.Attempts, result()); err != nil {
		t.Fatalf("CompleteTask: %v", err)
	}
	if d := ttl(t, c, c.resultKey(task.Tenant, task.ID)); d <= DefaultResultTTL-time.Minute || d > DefaultResultTTL {
		t.Errorf("TTL of the result entry = %v; want about %v", d, DefaultResultTTL)
	}
	want, err := db.TaskStore.Task(ctx, imaged.DefaultTenant, task.ID)
	if err != nil {
		t.Fatal(err)
	}
	reads, _ := db.counts()
	for range 2 {
		got, err := s.Task(ctx, imaged.DefaultTenant, task.ID)
		if err != nil {
			t.Fatalf("Task: %v", err)
		}
		sameTask(t, got, want)
	}
	if after, _ := db.counts(); after != reads {
		t.Errorf("the database was read %d times for a cached task", after-reads)
	}
	if h, m := requests(t, c.reg, "result", "hit"), requests(t, c.reg, "result", "miss"); h != 2 || m != 0 {
		t.Errorf("cache_requests_total{cache=result}: hit %v, miss %v; want 2, 0", h, m)
	}
}

func TestFinishedTaskIsCachedWhenRead(t *testing.T) {
	c := openShared(t, Options{})
	db := openDatabase(t)
	s := CachedStore(db, c.Client, quietLog())
	ctx := t.Context()
	_, task := seed(t, db)
	cl := claim(t, db, task.ID)
	// Finished behind the cache's back (another process): the first read fills the cache.
	want, err := db.FailTask(ctx, task.ID, cl.Attempts, &imaged.TaskFailure{Code: "invalid_argument", Message: "bad op"})
	if err != nil {
		t.Fatal(err)
	}
	first, err := s.Task(ctx, imaged.DefaultTenant, task.ID)
	if err != nil {
		t.Fatal(err)
	}
	second, err := s.Task(ctx, imaged.DefaultTenant, task.ID)
	if err != nil {
		t.Fatal(err)
	}
	sameTask(t, first, want)
	sameTask(t, second, want)
	if reads, _ := db.counts(); reads != 1 {
		t.Errorf("database read %d times; want 1", reads)
	}
	if h, m := requests(t, c.reg, "result", "hit"), requests(t, c.reg, "result", "miss"); h != 1 || m != 1 {
		t.Errorf("cache_requests_total{cache=result}: hit %v, miss %v; want 1, 1", h, m)
	}
}

func TestUnfinishedTaskIsNeverCached(t *testing.T) {
	c := openShared(t, Options{})
	db := openDatabase(t)
	s := CachedStore(db, c.Client, quietLog())
	ctx := t.Context()
	_, task := seed(t, s)
	key := c.resultKey(task.Tenant, task.ID)
	check := func(status string) {
		t.Helper()
		got, err := s.Task(ctx, imaged.DefaultTenant, task.ID)
		if err != nil || got.Status != status {
			t.Fatalf("Task = %v, %v; want status %s", got, err, status)
		}
		if n, _ := c.rdb.Exists(ctx, key).Result(); n != 0 {
			t.Errorf("a %s task was cached", status)
		}
	}
	check(imaged.StatusQueued)
	check(imaged.StatusQueued)
	cl := claim(t, s, task.ID)
	check(imaged.StatusProcessing)
	if _, err := s.RetryTask(ctx, task.ID, cl.Attempts, time.Now(), &imaged.TaskFailure{Code: "unavailable", Message: "later"}); err != nil {
		t.Fatal(err)
	}
	check(imaged.StatusQueued)

	// An unfinished task found in the cache (written by anything else) is not served.
	stale := *task
	stale.Status = imaged.StatusProcessing
	b, _ := encodeTask(&stale)
	c.rdb.Set(ctx, key, b, time.Minute)
	if got, err := s.Task(ctx, imaged.DefaultTenant, task.ID); err != nil || got.Status != imaged.StatusQueued {
		t.Fatalf("Task with an unfinished entry cached = %v, %v; want the database's queued task", got, err)
	}
	if reads, _ := db.counts(); reads != 5 {
		t.Errorf("database read %d times; want every read (5)", reads)
	}
	if h := requests(t, c.reg, "result", "hit"); h != 0 {
		t.Errorf("%v cache hits for an unfinished task", h)
	}
}

func TestCancelledTaskIsCached(t *testing.T) {
	c := openShared(t, Options{})
	db := openDatabase(t)
	s := CachedStore(db, c.Client, quietLog())
	_, task := seed(t, s)
	want, err := s.CancelTask(t.Context(), imaged.DefaultTenant, task.ID)
	if err != nil {
		t.Fatal(err)
	}
	got, err := s.Task(t.Context(), imaged.DefaultTenant, task.ID)
	if err != nil {
		t.Fatal(err)
	}
	sameTask(t, got, want)
	if reads, _ := db.counts(); reads != 0 {
		t.Errorf("database read %d times; want 0", reads)
	}
}

func TestImageMetadataIsCached(t *testing.T) {
	c := openShared(t, Options{})
	db := openDatabase(t)
	s := CachedStore(db, c.Client, quietLog())
	ctx := t.Context()
	img, _ := seed(t, s)
	for range 3 {
		got, err := s.Image(ctx, imaged.DefaultTenant, img.ID)
		if err != nil {
			t.Fatal(err)
		}
		g, _ := json.Marshal(got)
		w, _ := json.Marshal(img)
		if !bytes.Equal(g, w) || got.CreatedAt.Location() != time.UTC {
			t.Errorf("Image:\n got %s\nwant %s", g, w)
		}
	}
	if _, images := db.counts(); images != 1 {
		t.Errorf("database read %d times; want 1", images)
	}
	if h, m := requests(t, c.reg, "image", "hit"), requests(t, c.reg, "image", "miss"); h != 2 || m != 1 {
		t.Errorf("cache_requests_total{cache=image}: hit %v, miss %v; want 2, 1", h, m)
	}
	if d := ttl(t, c, c.imageKey(img.Tenant, img.ID)); d <= DefaultMetadataTTL-time.Minute || d > DefaultMetadataTTL {
		t.Errorf("TTL of the image entry = %v; want about %v", d, DefaultMetadataTTL)
	}

	if err := s.DeleteImage(ctx, imaged.DefaultTenant, img.ID); err != nil {
		t.Fatal(err)
	}
	for range 2 {
		if _, err := s.Image(ctx, imaged.DefaultTenant, img.ID); !imaged.IsCode(err, imaged.ENotFound) {
			t.Fatalf("Image after DeleteImage: %v; want ENotFound", err)
		}
	}
	if v, _ := c.rdb.Get(ctx, c.imageKey(img.Tenant, img.ID)).Result(); v != tombstone {
		t.Errorf("image entry after delete = %q; want the tombstone", v)
	}
}

func TestTTLsAreSettings(t *testing.T) {
	c := openShared(t, Options{ResultTTL: 7 * time.Second, MetadataTTL: 11 * time.Second})
	s := CachedStore(openDatabase(t), c.Client, quietLog())
	img, task := seed(t, s)
	if _, err := s.CancelTask(t.Context(), imaged.DefaultTenant, task.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Image(t.Context(), imaged.DefaultTenant, img.ID); err != nil {
		t.Fatal(err)
	}
	if d := ttl(t, c, c.resultKey(task.Tenant, task.ID)); d <= 5*time.Second || d > 7*time.Second {
		t.Errorf("result TTL = %v; want ≈ 7 s", d)
	}
	if d := ttl(t, c, c.imageKey(img.Tenant, img.ID)); d <= 9*time.Second || d > 11*time.Second {
		t.Errorf("image TTL = %v; want ≈ 11 s", d)
	}
}

// The cache changes nothing a caller of the store can see.
func TestCachedStoreContract(t *testing.T) {
	c := openShared(t, Options{})
	storetest.Run(t, func(t *testing.T) imaged.TaskStore {
		return CachedStore(openDatabase(t), c.Client, quietLog())
	})
}

func TestOpenReadsTheURL(t *testing.T) {
	ctx := t.Context()
	c, err := Open(ctx, "redis://127.0.0.1:6390/3?pool_size=7&key_prefix=app:", Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	o := c.rdb.Options()
	if o.PoolSize != 7 || o.DB != 3 || o.Addr != "127.0.0.1:6390" || c.KeyPrefix() != "app:" {
		t.Errorf("pool %d, db %d, addr %s, prefix %q", o.PoolSize, o.DB, o.Addr, c.KeyPrefix())
	}
	if o.DialTimeout != DefaultTimeout || o.ReadTimeout != DefaultTimeout || o.MaxRetries > 0 {
		t.Errorf("dial %v, read %v, retries %d; want short time-outs and no retries", o.DialTimeout, o.ReadTimeout, o.MaxRetries)
	}

	c2, err := Open(ctx, "redis://127.0.0.1:6390", Options{KeyPrefix: "x:"})
	if err != nil {
		t.Fatal(err)
	}
	defer c2.Close()
	if c2.rdb.Options().PoolSize != DefaultPoolSize || c2.KeyPrefix() != "x:" {
		t.Errorf("defaults: pool %d, prefix %q", c2.rdb.Options().PoolSize, c2.KeyPrefix())
	}
	c3, err := Open(ctx, "redis://127.0.0.1:6390?dial_timeout=2s", Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer c3.Close()
	if c3.rdb.Options().DialTimeout != 2*time.Second || c3.KeyPrefix() != DefaultKeyPrefix {
		t.Errorf("dial_timeout from the URL: %v, prefix %q", c3.rdb.Options().DialTimeout, c3.KeyPrefix())
	}

	for _, bad := range []string{"http://127.0.0.1:6379", "redis://127.0.0.1:6379/0?no_such_option=1",
		"redis://user:s3cret-pw@127.0.0.1:6379/zero", "redis://user:s3cret-pw@[::1"} {
		if _, err := Open(ctx, bad, Options{}); err == nil {
			t.Errorf("Open(%q) accepted it", bad)
		} else if strings.Contains(err.Error(), "s3cret-pw") {
			t.Errorf("Open(%q) error shows the password: %v", bad, err)
		}
	}
}

// outageStore opens the cache over url with a breaker of its own and a database.
func outageStore(t *testing.T, url string, failures uint32, recovery time.Duration) (imaged.TaskStore, *countingStore, *Client, *prometheus.Registry) {
	t.Helper()
	reg := prometheus.NewPedanticRegistry()
	b := resilience.NewBreaker(resilience.BreakerConfig{Name: "cache", Failures: failures, Recovery: recovery},
		resilience.NewMetrics(reg))
	c, err := Open(t.Context(), url, Options{Breaker: b, Metrics: NewMetrics(reg)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	db := openDatabase(t)
	return CachedStore(db, c, quietLog()), db, c, reg
}

func breakerState(t *testing.T, reg *prometheus.Registry) float64 {
	t.Helper()
	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range families {
		if f.GetName() == "circuit_breaker_state" {
			return f.GetMetric()[0].GetGauge().GetValue()
		}
	}
	t.Fatal("circuit_breaker_state is missing")
	return 0
}

// timed fails the test when one call takes a second or more.
func timed(t *testing.T, what string, fn func() error) {
	t.Helper()
	start := time.Now()
	err := fn()
	if d := time.Since(start); d >= time.Second {
		t.Errorf("%s took %v during the outage", what, d)
	}
	if err != nil {
		t.Fatalf("%s during the outage: %v", what, err)
	}
}

func TestRedisOutageNeverFailsReads(t *testing.T) {
	r := startPrivateRedis(t)
	const recovery = 300 * time.Millisecond
	s, db, c, reg := outageStore(t, r.url(), 3, recovery)
	ctx := t.Context()
	img, done := seed(t, s)
	cl := claim(t, s, done.ID)
	want, err := s.CompleteTask(ctx, done.ID, cl.Attempts, result())
	if err != nil {
		t.Fatal(err)
	}
	_, queued := seed(t, s)
	if _, err := s.Image(ctx, imaged.DefaultTenant, img.ID); err != nil { // cached now
		t.Fatal(err)
	}
	if err := c.Ping(ctx); err != nil {
		t.Fatalf("Ping with Redis up: %v", err)
	}

	r.stop() // the cache is gone mid-run
	for i := range 20 {
		timed(t, "Task of a finished task", func() error {
			got, err := s.Task(ctx, imaged.DefaultTenant, done.ID)
			if err == nil {
				sameTask(t, got, want)
			}
			return err
		})
		timed(t, "Task of a queued task", func() error {
			got, err := s.Task(ctx, imaged.DefaultTenant, queued.ID)
			if err == nil && got.Status != imaged.StatusQueued {
				t.Errorf("queued task read as %s", got.Status)
			}
			return err
		})
		timed(t, "Image", func() error {
			got, err := s.Image(ctx, imaged.DefaultTenant, img.ID)
			if err == nil && got.ID != img.ID {
				t.Errorf("Image = %+v", got)
			}
			return err
		})
		if i == 0 {
			// Writes that would fill the cache do not fail either.
			_, other := seed(t, s)
			timed(t, "CancelTask", func() error { _, err := s.CancelTask(ctx, imaged.DefaultTenant, other.ID); return err })
		}
	}
	if reads, _ := db.counts(); reads < 40 {
		t.Errorf("database answered %d task reads; want all 40 of the outage", reads)
	}
	if e := requests(t, reg, "result", "error") + requests(t, reg, "image", "error"); e < 60 {
		t.Errorf("cache_requests_total{result=error} = %v; want every outage read (60)", e)
	}
	if st := breakerState(t, reg); st != resilience.StateOpen {
		t.Errorf("cache breaker state %v during the outage; want open", st)
	}
	if err := c.Ping(ctx); !imaged.IsCode(err, imaged.EUnavailable) {
		t.Errorf("Ping during the outage: %v; want EUnavailable", err)
	}

	// Back again: after the recovery time the breaker lets a probe through and the cache
	// fills again (the restarted server is empty).
	r.start()
	time.Sleep(recovery + 50*time.Millisecond)
	for range 2 {
		if _, err := s.Task(ctx, imaged.DefaultTenant, done.ID); err != nil {
			t.Fatal(err)
		}
	}
	if st := breakerState(t, reg); st != resilience.StateClosed {
		t.Errorf("cache breaker state %v after Redis came back; want closed", st)
	}
	if h := requests(t, reg, "result", "hit"); h != 1 {
		t.Errorf("result hits after recovery = %v; want 1", h)
	}
}

func TestUnresponsiveRedisTimesOutQuickly(t *testing.T) {
	addr := blackhole(t)
	ctx := t.Context()

	// Without a breaker, the cache's own time-out bounds every call.
	c, err := Open(ctx, "redis://"+addr+"/0", Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	db := openDatabase(t)
	s := CachedStore(db, c, quietLog())
	img, task := seed(t, db)
	for range 3 {
		timed(t, "Task", func() error { _, err := s.Task(ctx, imaged.DefaultTenant, task.ID); return err })
		timed(t, "Image", func() error { _, err := s.Image(ctx, imaged.DefaultTenant, img.ID); return err })
	}

	// With a breaker, three time-outs open it and Redis is not even asked any more.
	s, db, _, reg := outageStore(t, "redis://"+addr+"/0", 3, time.Minute)
	img, task = seed(t, db)
	for range 3 {
		timed(t, "Task", func() error { _, err := s.Task(ctx, imaged.DefaultTenant, task.ID); return err })
		timed(t, "Image", func() error { _, err := s.Image(ctx, imaged.DefaultTenant, img.ID); return err })
	}
	if st := breakerState(t, reg); st != resilience.StateOpen {
		t.Errorf("cache breaker state %v; want open after 3 time-outs", st)
	}
	start := time.Now()
	for range 100 {
		if _, err := s.Task(ctx, imaged.DefaultTenant, task.ID); err != nil {
			t.Fatal(err)
		}
	}
	if d := time.Since(start); d > time.Second {
		t.Errorf("100 reads with the cache breaker open took %v", d)
	}
}

func TestDeleteDuringAnOutageIsNotServedStale(t *testing.T) {
	shared := openShared(t, Options{}) // checks the shared Redis answers, and cleans up
	p := newProxy(t, shared.rdb.Options().Addr)
	u, err := url.Parse(sharedURL())
	if err != nil {
		t.Fatal(err)
	}
	u.Host = p.addr // same credentials and database, through the proxy
	c, err := Open(t.Context(), u.String(), Options{KeyPrefix: shared.prefix})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	db := openDatabase(t)
	s := CachedStore(db, c, quietLog())
	other := CachedStore(db, shared.Client, quietLog()) // another process, on the same Redis
	ctx := t.Context()
	img, task := seed(t, s)
	if _, err := s.Image(ctx, imaged.DefaultTenant, img.ID); err != nil {
		t.Fatal(err)
	}

	p.cut()
	if err := s.DeleteImage(ctx, imaged.DefaultTenant, img.ID); err != nil {
		t.Fatalf("DeleteImage while the cache is unreachable: %v", err)
	}
	if _, err := s.Image(ctx, imaged.DefaultTenant, img.ID); !imaged.IsCode(err, imaged.ENotFound) {
		t.Fatalf("Image after delete: %v; want ENotFound", err)
	}
	// The entry is still in Redis for now.
	if v, _ := shared.rdb.Get(ctx, shared.imageKey(img.Tenant, img.ID)).Result(); v == tombstone || v == "" {
		t.Fatalf("entry during the outage = %q; want the old metadata", v)
	}

	p.restore()
	if _, err := s.Task(ctx, imaged.DefaultTenant, task.ID); err != nil { // any cache call that succeeds writes what is pending
		t.Fatal(err)
	}
	if v, _ := shared.rdb.Get(ctx, shared.imageKey(img.Tenant, img.ID)).Result(); v != tombstone {
		t.Errorf("entry after Redis came back = %q; want the tombstone", v)
	}
	if _, err := other.Image(ctx, imaged.DefaultTenant, img.ID); !imaged.IsCode(err, imaged.ENotFound) {
		t.Errorf("Image in another process: %v; want ENotFound", err)
	}
}
