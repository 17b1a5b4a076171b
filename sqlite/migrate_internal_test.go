package sqlite

import (
	"log/slog"
	"path/filepath"
	"testing"

	"github.com/imaged/imaged/storetest"
)

// Migration 00004 gives rows made before tenants existed to the default tenant, and can be
// rolled back and applied again.
func TestTenantMigrationKeepsExistingRows(t *testing.T) {
	ctx := t.Context()
	s, err := Open(ctx, filepath.Join(t.TempDir(), "imaged.db"), OpenOptions{NoMigrate: true, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	p, err := s.migrator()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := p.UpTo(ctx, 3); err != nil {
		t.Fatalf("up to 3: %v", err)
	}
	at := formatTime(now())
	for _, q := range []string{
		`INSERT INTO images (id, key, format, content_type, width, height, bytes, created_at)
			VALUES ('img-old', 'images/old.png', 'png', 'image/png', 1, 1, 10, '` + at + `')`,
		`INSERT INTO batches (id, total, created_at) VALUES ('batch-old', 1, '` + at + `')`,
		`INSERT INTO tasks (id, type, status, image_id, ops, batch_id, run_after, created_at)
			VALUES ('task-old', 'transform', 'queued', 'img-old', '[{"op":"blur"}]', 'batch-old', '` + at + `', '` + at + `')`,
		`INSERT INTO api_keys (id, name, prefix, hash, created_at) VALUES ('key-old', 'old', 'oldprefix', 'h', '` + at + `')`,
	} {
		if _, err := s.w.ExecContext(ctx, q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	if err := s.MigrateUp(ctx); err != nil {
		t.Fatal(err)
	}
	storetest.CheckLegacyRows(t, s)
	if _, err := p.DownTo(ctx, 3); err != nil {
		t.Fatalf("down to 3: %v", err)
	}
	if err := s.MigrateUp(ctx); err != nil {
		t.Fatalf("up again: %v", err)
	}
	storetest.CheckLegacyRows(t, s)
}

// Migration 00006 (retention) finds the result keys of tasks completed before it, can be rolled
// back and applied again, and follows 00004 although 00005 may not exist in this build: goose
// applies the versions it has, in order.
func TestRetentionMigrationKeepsExistingRows(t *testing.T) {
	ctx := t.Context()
	s, err := Open(ctx, filepath.Join(t.TempDir(), "imaged.db"), OpenOptions{NoMigrate: true, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	p, err := s.migrator()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := p.UpTo(ctx, 4); err != nil {
		t.Fatalf("up to 4: %v", err)
	}
	at := formatTime(now())
	for _, q := range []string{
		`INSERT INTO images (id, key, format, content_type, width, height, bytes, created_at)
			VALUES ('img-old', 'images/old.png', 'png', 'image/png', 1, 1, 10, '` + at + `')`,
		`INSERT INTO tasks (id, type, status, image_id, ops, run_after, created_at, finished_at, result)
			VALUES ('task-old', 'transform', 'completed', 'img-old', '[{"op":"blur"}]', '` + at + `', '` + at + `', '` + at + `',
			'{"output":{"key":"results/old.webp"}}')`,
	} {
		if _, err := s.w.ExecContext(ctx, q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	check := func() {
		t.Helper()
		refs, err := s.Referenced(ctx, []string{"images/old.png", "results/old.webp"})
		if err != nil || !refs["images/old.png"] || !refs["results/old.webp"] {
			t.Fatalf("Referenced after the migration = %v, %v; want both keys", refs, err)
		}
		task, err := s.Task(ctx, "default", "task-old")
		if err != nil || task.ResultExpiredAt != nil || task.Result == nil {
			t.Fatalf("task after the migration = %+v, %v", task, err)
		}
	}
	if err := s.MigrateUp(ctx); err != nil {
		t.Fatal(err)
	}
	check()
	if _, err := p.DownTo(ctx, 4); err != nil {
		t.Fatalf("down to 4: %v", err)
	}
	var n int
	if err := s.r.QueryRowContext(ctx, `SELECT count(*) FROM sqlite_master WHERE name IN ('blob_trash', 'leases', 'tasks_result_key')`).Scan(&n); err != nil || n != 0 {
		t.Fatalf("after rolling back 00006, %d of its tables and indexes remain (%v)", n, err)
	}
	if err := s.MigrateUp(ctx); err != nil {
		t.Fatalf("up again: %v", err)
	}
	check()
}

// Migration 00005 (the outbox) can be rolled back and applied again.
func TestOutboxMigrationRollsBack(t *testing.T) {
	ctx := t.Context()
	s, err := Open(ctx, filepath.Join(t.TempDir(), "imaged.db"), OpenOptions{Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	p, err := s.migrator()
	if err != nil {
		t.Fatal(err)
	}
	storetest.CheckOutboxRollback(t, s, func() error {
		_, err := p.DownTo(ctx, 4)
		return err
	}, func() error { return s.MigrateUp(ctx) })
}

// Migration 00007 (the processed-output cache) can be rolled back and applied again.
func TestOutputCacheMigrationRollsBack(t *testing.T) {
	ctx := t.Context()
	s, err := Open(ctx, filepath.Join(t.TempDir(), "imaged.db"), OpenOptions{Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	p, err := s.migrator()
	if err != nil {
		t.Fatal(err)
	}
	storetest.CheckOutputCacheRollback(t, s, func() error {
		_, err := p.DownTo(ctx, 6)
		return err
	}, func() error { return s.MigrateUp(ctx) })
}
