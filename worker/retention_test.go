package worker_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"log/slog"
	"maps"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/imaged/imaged/internal/testenv"

	"github.com/jackc/pgx/v5"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/imaged/imaged"
	"github.com/imaged/imaged/fs"
	"github.com/imaged/imaged/internal/versitygw"
	"github.com/imaged/imaged/postgres"
	"github.com/imaged/imaged/prom"
	"github.com/imaged/imaged/s3"
	"github.com/imaged/imaged/sqlite"
	"github.com/imaged/imaged/worker"
)

// retentionStore is what a sweeper and the test need of one process's database handle.
type retentionStore interface {
	imaged.TaskStore
	imaged.RetentionStore
}

// countingBlobs counts the deletions of every key, across the sweepers that share it.
type countingBlobs struct {
	imaged.BlobStore
	mu      *sync.Mutex
	deletes map[string]int
}

func (c countingBlobs) Delete(ctx context.Context, key string) error {
	c.mu.Lock()
	c.deletes[key]++
	c.mu.Unlock()
	return c.BlobStore.Delete(ctx, key)
}

// On SQLite and the local disk: two handles on one database file and one directory, as two
// processes on one host have.
func TestRetentionSQLiteDisk(t *testing.T) {
	path := filepath.Join(t.TempDir(), "imaged.db")
	dir := t.TempDir()
	open := func() (retentionStore, imaged.BlobStore) {
		s, err := sqlite.Open(t.Context(), path, sqlite.OpenOptions{Logger: quiet})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Close() })
		b, err := fs.New(dir, fs.Options{})
		if err != nil {
			t.Fatal(err)
		}
		return s, b
	}
	testRetention(t, open)
}

// On PostgreSQL and S3 (a private versitygw): two pools on one schema and two clients of one
// bucket.
func TestRetentionPostgresS3(t *testing.T) {
	srv := versitygw.Start(t)
	schema := pgSchema(t)
	bucket := "imaged-" + randomHex(4)
	open := func() (retentionStore, imaged.BlobStore) {
		s, err := postgres.Open(t.Context(), postgres.Config{URL: pgURL(), Schema: schema, MinConns: 1, MaxConns: 4, Logger: quiet})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Close() })
		b, err := s3.New(t.Context(), s3.Config{Bucket: bucket, Endpoint: srv.Endpoint, Region: "us-east-1", PathStyle: true,
			AccessKey: srv.AccessKey, SecretKey: srv.SecretKey, CreateBucket: true})
		if err != nil {
			t.Fatal(err)
		}
		return s, b
	}
	testRetention(t, open)
}

var quiet = slog.New(slog.DiscardHandler)

// testRetention stores rows and blobs, waits until a whole second has passed (S3 keeps times to
// the second), stores younger ones, then lets two sweepers, each with its own handles, sweep at
// once with a clock one hour past that second and every age one hour: everything older goes,
// everything younger stays, and each blob is deleted once.
func testRetention(t *testing.T, open func() (retentionStore, imaged.BlobStore)) {
	ctx := t.Context()
	store, blobs := open()
	put := func(key string) string {
		t.Helper()
		if err := blobs.Put(ctx, key, []byte("bytes of "+key), "image/png"); err != nil {
			t.Fatal(err)
		}
		return key
	}
	image := func() *imaged.Image {
		t.Helper()
		img := &imaged.Image{Key: put(imaged.ImageKey("png", time.Now())), Format: "png", ContentType: "image/png", Width: 1, Height: 1, Bytes: 1}
		if err := store.CreateImage(ctx, img); err != nil {
			t.Fatal(err)
		}
		return img
	}
	task := func(img *imaged.Image) *imaged.Task {
		t.Helper()
		ops, _ := imaged.ParseOps([]byte(`[{"op":"blur","sigma":1}]`))
		tk := &imaged.Task{ImageID: img.ID, Ops: ops, MaxAttempts: 1}
		if _, err := store.CreateTasks(ctx, []*imaged.Task{tk}, nil); err != nil {
			t.Fatal(err)
		}
		c, err := store.ClaimTask(ctx, tk.ID, nil, "w", time.Minute)
		if err != nil || c == nil {
			t.Fatalf("ClaimTask = %v, %v", c, err)
		}
		key := put(imaged.ResultKey(tk.ID, "png", tk.CreatedAt))
		done, err := store.CompleteTask(ctx, c.ID, c.Attempts, &imaged.TaskResult{Output: &imaged.Output{Key: key, Format: "png"}})
		if err != nil {
			t.Fatal(err)
		}
		return done
	}
	syncOutput := func() string { return put(imaged.ResultKey(imaged.SyncResultID(), "png", time.Now())) }
	// cached records the processed-output cache entry of key, whose blob is written already.
	cached := func(key string) *imaged.CachedOutput {
		t.Helper()
		e := &imaged.CachedOutput{Key: key, Tenant: imaged.DefaultTenant, ImageSHA256: randomHex(32),
			BlobKey: imaged.CachedOutputBlobKey(imaged.DefaultTenant, key), Format: "png", ContentType: "image/png",
			Width: 1, Height: 1, Bytes: 1}
		if err := store.PutCachedOutput(ctx, e); err != nil {
			t.Fatal(err)
		}
		return e
	}
	cacheBlob := func() string {
		key := randomHex(32)
		put(imaged.CachedOutputBlobKey(imaged.DefaultTenant, key))
		return key
	}

	oldImage := image()
	oldTask := task(oldImage)
	oldOrphan := put(imaged.ImageKey("png", time.Now()))
	oldSync := syncOutput()
	oldCached := cached(cacheBlob())
	oldCacheOrphan := imaged.CachedOutputBlobKey(imaged.DefaultTenant, cacheBlob()) // its entry was never recorded
	keptCacheKey := cacheBlob()
	foreign := put("elsewhere/" + randomHex(4) + ".bin") // not imaged's: never listed
	mid := time.Now().Truncate(time.Second).Add(time.Second)
	for time.Now().Before(mid.Add(10 * time.Millisecond)) {
		time.Sleep(10 * time.Millisecond)
	}
	// An entry recorded after mid over an older blob (stored again): the orphan sweep leaves the
	// blob, whose age no longer counts.
	keptCached := cached(keptCacheKey)
	youngTaskOfOldImage := task(oldImage) // its result is young, but its image is deleted
	youngImage := image()
	youngTask := task(youngImage)
	youngOrphan := put(imaged.ImageKey("png", time.Now()))
	youngSync := syncOutput()

	var mu sync.Mutex
	deletes := map[string]int{}
	metrics := prom.New()
	// Round one keeps tasks forever; round two deletes old tasks as well.
	sweepers := func(tasks time.Duration) []*worker.Retention {
		out := make([]*worker.Retention, 2)
		for i := range out {
			s, b := store, blobs
			if i == 1 {
				s, b = open()
			}
			out[i] = worker.NewRetention(worker.RetentionConfig{Tasks: tasks, Results: time.Hour, Images: time.Hour, Orphans: time.Hour,
				Batch: 2, Now: func() time.Time { return mid.Add(time.Hour) }},
				s, countingBlobs{BlobStore: b, mu: &mu, deletes: deletes}, metrics, quiet)
		}
		return out
	}
	var (
		totals   worker.RetentionStats
		totalsMu sync.Mutex
	)
	totals.BlobsDeleted = map[string]int{}
	// sweepUntil runs both sweepers at once, again and again, until done holds, then twice more.
	sweepUntil := func(rs []*worker.Retention, done func() bool) {
		t.Helper()
		deadline := time.Now().Add(30 * time.Second)
		for extra := 0; extra < 2; {
			if done() {
				extra++
			} else if time.Now().After(deadline) {
				t.Fatal("the sweepers did not finish within 30 s")
			}
			var wg sync.WaitGroup
			for _, r := range rs {
				wg.Add(1)
				go func() {
					defer wg.Done()
					st, err := r.Sweep(ctx)
					if err != nil {
						t.Errorf("Sweep: %v", err)
					}
					totalsMu.Lock()
					totals.ResultsExpired += st.ResultsExpired
					totals.TasksDeleted += st.TasksDeleted
					totals.ImagesDeleted += st.ImagesDeleted
					totals.CachedOutputsExpired += st.CachedOutputsExpired
					for k, n := range st.BlobsDeleted {
						totals.BlobsDeleted[k] += n
					}
					totalsMu.Unlock()
				}()
			}
			wg.Wait()
		}
	}
	exists := func(key string) bool {
		_, err := blobs.Head(ctx, key)
		if err != nil && !imaged.IsCode(err, imaged.ENotFound) {
			t.Fatal(err)
		}
		return err == nil
	}
	gone := []string{oldImage.Key, oldTask.Result.Output.Key, youngTaskOfOldImage.Result.Output.Key, oldOrphan, oldSync,
		oldCached.BlobKey, oldCacheOrphan}
	kept := []string{youngImage.Key, youngTask.Result.Output.Key, youngOrphan, youngSync, foreign, keptCached.BlobKey}
	sweepUntil(sweepers(0), func() bool {
		for _, k := range gone {
			if exists(k) {
				return false
			}
		}
		return true
	})
	for _, k := range kept {
		if !exists(k) {
			t.Errorf("%s was deleted, though younger than its age", k)
		}
	}
	if _, err := store.Image(ctx, imaged.DefaultTenant, oldImage.ID); !imaged.IsCode(err, imaged.ENotFound) {
		t.Errorf("the old image's row is still there: %v", err)
	}
	if _, err := store.Image(ctx, imaged.DefaultTenant, youngImage.ID); err != nil {
		t.Errorf("the young image's row is gone: %v", err)
	}
	if _, err := store.CachedOutput(ctx, imaged.DefaultTenant, oldCached.Key); !imaged.IsCode(err, imaged.ENotFound) {
		t.Errorf("the old cached output's entry is still there: %v", err)
	}
	if _, err := store.CachedOutput(ctx, imaged.DefaultTenant, keptCached.Key); err != nil {
		t.Errorf("the young cached output's entry is gone: %v", err)
	}
	for id, reason := range map[string]string{oldTask.ID: imaged.ResultExpiredAge,
		youngTaskOfOldImage.ID: imaged.ResultExpiredImageDeleted, youngTask.ID: ""} {
		got, err := store.Task(ctx, imaged.DefaultTenant, id)
		if err != nil {
			t.Fatalf("task %s: %v", id, err)
		}
		if got.ResultExpiredReason != reason || (reason != "") != (got.ResultExpiredAt != nil) {
			t.Errorf("task %s: result expired %v because %q; want %q", id, got.ResultExpiredAt, got.ResultExpiredReason, reason)
		}
	}

	sweepUntil(sweepers(time.Hour), func() bool {
		_, err := store.Task(ctx, imaged.DefaultTenant, oldTask.ID)
		return imaged.IsCode(err, imaged.ENotFound)
	})
	for _, id := range []string{youngTask.ID, youngTaskOfOldImage.ID} {
		if _, err := store.Task(ctx, imaged.DefaultTenant, id); err != nil {
			t.Errorf("young task %s: %v", id, err)
		}
	}
	for _, k := range kept {
		if !exists(k) {
			t.Errorf("%s was deleted, though younger than its age", k)
		}
	}

	// Each object once, whichever sweeper took it; nothing else.
	mu.Lock()
	defer mu.Unlock()
	for _, k := range gone {
		if deletes[k] != 1 {
			t.Errorf("%s was deleted %d times, want once", k, deletes[k])
		}
	}
	if len(deletes) != len(gone) {
		t.Errorf("deleted %v, want %v once each", deletes, gone)
	}
	want := worker.RetentionStats{ResultsExpired: 1, TasksDeleted: 1, ImagesDeleted: 1, CachedOutputsExpired: 1,
		BlobsDeleted: map[string]int{imaged.BlobImage: 1, imaged.BlobResult: 3, imaged.BlobCache: 1, imaged.BlobOrphan: 2}}
	if totals.ResultsExpired != want.ResultsExpired || totals.TasksDeleted != want.TasksDeleted ||
		totals.ImagesDeleted != want.ImagesDeleted || totals.CachedOutputsExpired != want.CachedOutputsExpired ||
		!maps.Equal(totals.BlobsDeleted, want.BlobsDeleted) {
		t.Errorf("the sweepers together did %+v, want %+v", totals, want)
	}
	for kind, n := range want.BlobsDeleted {
		if got := counterValue(metrics.RetentionBlobsDeleted.WithLabelValues(kind)); got != float64(n) {
			t.Errorf("retention_blobs_deleted_total{kind=%q} = %v, want %d", kind, got, n)
		}
	}
	for kind, n := range map[string]int{"image": 1, "task": 1, "cached_output": 1} {
		if got := counterValue(metrics.RetentionRowsDeleted.WithLabelValues(kind)); got != float64(n) {
			t.Errorf("retention_rows_deleted_total{kind=%q} = %v, want %d", kind, got, n)
		}
	}
}

func pgURL() string {
	return testenv.PostgresURL()
}

// pgSchema returns a schema of the test's own, dropped when it ends, or skips (fails with
// IMAGED_TEST_REQUIRE_SERVICES=1) when PostgreSQL is unreachable.
func pgSchema(t *testing.T) string {
	t.Helper()
	base, err := postgres.ParseURL(pgURL())
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, base.URL)
	if err != nil {
		if os.Getenv("IMAGED_TEST_REQUIRE_SERVICES") == "1" {
			t.Fatalf("PostgreSQL is unreachable: %v", err)
		}
		t.Skipf("SKIPPED, NOT PASSED: PostgreSQL is unreachable: %v", err)
	}
	conn.Close(ctx)
	schema := "imaged_test_" + randomHex(6)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		conn, err := pgx.Connect(ctx, base.URL)
		if err != nil {
			t.Errorf("drop schema %s: %v", schema, err)
			return
		}
		defer conn.Close(ctx)
		if _, err := conn.Exec(ctx, `DROP SCHEMA IF EXISTS `+schema+` CASCADE`); err != nil {
			t.Errorf("drop schema %s: %v", schema, err)
		}
	})
	return schema
}

func randomHex(n int) string {
	b := make([]byte, n)
	rand.Read(b)
	return hex.EncodeToString(b)
}

func counterValue(c prometheus.Counter) float64 {
	var m dto.Metric
	if err := c.Write(&m); err != nil {
		return -1
	}
	return m.GetCounter().GetValue()
}

// Without an orphan sweep, synchronous outputs still age as results, and unreferenced blobs
// stay.
func TestRetentionAgesSyncOutputsWithoutOrphanSweep(t *testing.T) {
	ctx := t.Context()
	store, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "imaged.db"), sqlite.OpenOptions{Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	blobs, err := fs.New(t.TempDir(), fs.Options{})
	if err != nil {
		t.Fatal(err)
	}
	syncOut := imaged.ResultKey(imaged.SyncResultID(), "png", time.Now())
	orphan := imaged.ImageKey("png", time.Now())
	for _, k := range []string{syncOut, orphan} {
		if err := blobs.Put(ctx, k, []byte("x"), "image/png"); err != nil {
			t.Fatal(err)
		}
	}
	r := worker.NewRetention(worker.RetentionConfig{Results: time.Hour, Now: func() time.Time { return time.Now().Add(2 * time.Hour) }},
		store, blobs, nil, quiet)
	deadline := time.Now().Add(10 * time.Second)
	for {
		if _, err := r.Sweep(ctx); err != nil {
			t.Fatal(err)
		}
		if _, err := blobs.Head(ctx, syncOut); imaged.IsCode(err, imaged.ENotFound) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the old synchronous output was never deleted")
		}
	}
	if _, err := blobs.Head(ctx, orphan); err != nil {
		t.Fatalf("an unreferenced blob was deleted with IMAGED_RETENTION_ORPHANS off: %v", err)
	}
}
