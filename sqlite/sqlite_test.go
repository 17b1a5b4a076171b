package sqlite_test

import (
	"log/slog"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/imaged/imaged"
	"github.com/imaged/imaged/sqlite"
	"github.com/imaged/imaged/storetest"
)

func open(t *testing.T, path string, opts ...sqlite.OpenOptions) *sqlite.Store {
	t.Helper()
	o := sqlite.OpenOptions{Logger: slog.New(slog.DiscardHandler)}
	if len(opts) > 0 {
		o = opts[0]
		o.Logger = slog.New(slog.DiscardHandler)
	}
	s, err := sqlite.Open(t.Context(), path, o)
	if err != nil {
		t.Fatalf("Open(%s): %v", path, err)
	}
	return s
}

func TestStoreContract(t *testing.T) {
	storetest.Run(t, func(t *testing.T) imaged.TaskStore {
		return open(t, filepath.Join(t.TempDir(), "imaged.db"))
	})
}

func TestRetentionContract(t *testing.T) {
	storetest.RunRetention(t, func(t *testing.T) storetest.RetentionTaskStore {
		return open(t, filepath.Join(t.TempDir(), "imaged.db"))
	})
}

func TestOpenCreatesParentDirectory(t *testing.T) {
	path := filepath.Join(t.TempDir(), "a", "b", "imaged.db")
	s := open(t, path)
	defer s.Close()
	if err := s.Ping(t.Context()); err != nil {
		t.Fatalf("Ping: %v", err)
	}
}

func TestOpenRefusesMemory(t *testing.T) {
	if _, err := sqlite.Open(t.Context(), ":memory:"); err == nil {
		t.Fatal("Open(:memory:) succeeded")
	}
}

func TestDataSurvivesReopen(t *testing.T) {
	ctx := t.Context()
	path := filepath.Join(t.TempDir(), "imaged.db")
	s := open(t, path)
	img := &imaged.Image{Key: "images/k.jpg", Format: "jpeg", ContentType: "image/jpeg", Width: 2, Height: 3, Bytes: 4}
	if err := s.CreateImage(ctx, img); err != nil {
		t.Fatalf("CreateImage: %v", err)
	}
	ops, _ := imaged.ParseOps([]byte(`[{"op":"blur","sigma":2}]`))
	tasks := []*imaged.Task{{ImageID: img.ID, Ops: ops}, {ImageID: img.ID, Ops: ops}}
	batch := &imaged.Batch{IdempotencyKey: "k1"}
	if _, err := s.CreateTasks(ctx, tasks, batch); err != nil {
		t.Fatalf("CreateTasks: %v", err)
	}
	c, err := s.ClaimTask(ctx, tasks[0].ID, nil, "w", time.Hour)
	if err != nil || c == nil {
		t.Fatalf("ClaimTask: %v, %v", c, err)
	}
	if _, err := s.CompleteTask(ctx, c.ID, c.Attempts, &imaged.TaskResult{ProcessingSeconds: 2}); err != nil {
		t.Fatalf("CompleteTask: %v", err)
	}
	if err := s.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}

	s = open(t, path)
	defer s.Close()
	if _, err := s.Image(ctx, imaged.DefaultTenant, img.ID); err != nil {
		t.Fatalf("Image after reopen: %v", err)
	}
	b, got, err := s.Batch(ctx, imaged.DefaultTenant, batch.ID)
	if err != nil {
		t.Fatalf("Batch after reopen: %v", err)
	}
	if len(got) != 2 || b.Counts[imaged.StatusCompleted] != 1 || b.Counts[imaged.StatusQueued] != 1 {
		t.Fatalf("batch after reopen: %d tasks, counts %v", len(got), b.Counts)
	}
	if got[0].Result == nil || got[0].Result.ProcessingSeconds != 2 {
		t.Fatalf("result after reopen = %+v", got[0].Result)
	}
	again := []*imaged.Task{{ImageID: img.ID, Ops: ops}, {ImageID: img.ID, Ops: ops}}
	existed, err := s.CreateTasks(ctx, again, &imaged.Batch{IdempotencyKey: "k1"})
	if err != nil || !existed || again[1].ID != tasks[1].ID {
		t.Fatalf("idempotent replay after reopen = %v, %v, %s", existed, err, again[1].ID)
	}
	n, err := s.CountQueued(ctx)
	if err != nil || n[imaged.TaskTypeTransform] != 1 {
		t.Fatalf("CountQueued after reopen = %v, %v", n, err)
	}
}

func TestMigrationStatus(t *testing.T) {
	ctx := t.Context()
	path := filepath.Join(t.TempDir(), "imaged.db")
	s := open(t, path, sqlite.OpenOptions{NoMigrate: true})
	defer s.Close()
	st, err := s.MigrationStatus(ctx)
	if err != nil {
		t.Fatalf("MigrationStatus: %v", err)
	}
	if len(st) == 0 {
		t.Fatal("no migrations known")
	}
	for _, m := range st {
		if m.Applied || !m.AppliedAt.IsZero() {
			t.Fatalf("fresh database reports %+v applied", m)
		}
		if m.Version <= 0 || m.Name == "" {
			t.Fatalf("migration %+v has no version or name", m)
		}
	}
	if _, err := s.Task(ctx, imaged.DefaultTenant, "x"); err == nil || imaged.IsCode(err, imaged.ENotFound) {
		t.Fatalf("Task before migrating = %v; want a missing-table error", err)
	}

	before := time.Now().Add(-time.Second)
	if err := s.MigrateUp(ctx); err != nil {
		t.Fatalf("MigrateUp: %v", err)
	}
	st, err = s.MigrationStatus(ctx)
	if err != nil {
		t.Fatalf("MigrationStatus: %v", err)
	}
	for _, m := range st {
		if !m.Applied || m.AppliedAt.Before(before.Truncate(time.Second)) {
			t.Fatalf("after MigrateUp: %+v", m)
		}
	}
	if err := s.MigrateUp(ctx); err != nil {
		t.Fatalf("MigrateUp with nothing pending: %v", err)
	}
	_, err = s.Task(ctx, imaged.DefaultTenant, "x")
	if !imaged.IsCode(err, imaged.ENotFound) {
		t.Fatalf("Task after migrating = %v; want not_found", err)
	}
	s.Close()

	// Open migrates by default and finds nothing to do on a migrated file.
	s2 := open(t, path)
	defer s2.Close()
	st2, err := s2.MigrationStatus(ctx)
	if err != nil || len(st2) != len(st) {
		t.Fatalf("MigrationStatus after reopen = %v, %v", st2, err)
	}
}

// TestTwoStoresOneFile runs claims from two stores over one file, as `imaged serve` and
// `imaged worker` do on one host: the file's locks, not one process's writer, keep them apart.
func TestTwoStoresOneFile(t *testing.T) {
	ctx := t.Context()
	path := filepath.Join(t.TempDir(), "imaged.db")
	a := open(t, path)
	defer a.Close()
	b := open(t, path)
	defer b.Close()
	img := &imaged.Image{Key: "images/k.jpg", Format: "jpeg", ContentType: "image/jpeg", Width: 2, Height: 3, Bytes: 4}
	if err := a.CreateImage(ctx, img); err != nil {
		t.Fatalf("CreateImage: %v", err)
	}
	ops, _ := imaged.ParseOps([]byte(`[{"op":"blur","sigma":2}]`))
	const n = 40
	for range n {
		if _, err := a.CreateTasks(ctx, []*imaged.Task{{ImageID: img.ID, Ops: ops}}, nil); err != nil {
			t.Fatalf("CreateTasks: %v", err)
		}
	}
	var mu sync.Mutex
	seen := map[string]int{}
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for i := range 8 {
		s := a
		if i%2 == 1 {
			s = b
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				c, err := s.ClaimTask(ctx, "", nil, "w", time.Minute)
				if err != nil {
					errs <- err
					return
				}
				if c == nil {
					return
				}
				if _, err := s.CompleteTask(ctx, c.ID, c.Attempts, &imaged.TaskResult{}); err != nil {
					errs <- err
					return
				}
				mu.Lock()
				seen[c.ID]++
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatalf("claim across two stores: %v", err)
	}
	if len(seen) != n {
		t.Fatalf("%d tasks processed, want %d", len(seen), n)
	}
	for id, k := range seen {
		if k != 1 {
			t.Fatalf("task %s processed %d times", id, k)
		}
	}
}

// TestConcurrentOpenOfNewFile opens one new file from several stores at once, as serve and
// worker starting together do: each must end up with a migrated schema.
func TestConcurrentOpenOfNewFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "imaged.db")
	var wg sync.WaitGroup
	errs := make(chan error, 4)
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			s, err := sqlite.Open(t.Context(), path, sqlite.OpenOptions{Logger: slog.New(slog.DiscardHandler)})
			if err != nil {
				errs <- err
				return
			}
			defer s.Close()
			if _, err := s.CountQueued(t.Context()); err != nil {
				errs <- err
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatalf("concurrent Open: %v", err)
	}
}
