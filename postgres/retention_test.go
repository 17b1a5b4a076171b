package postgres_test

import (
	"testing"

	"github.com/imaged/imaged/postgres"
	"github.com/imaged/imaged/storetest"
)

// Migration 00006 (retention) finds the result keys of tasks completed before it, can be rolled
// back and applied again, and follows 00004 although 00005 may not exist in this build: goose
// applies the versions it has, in order.
func TestRetentionMigrationKeepsExistingRows(t *testing.T) {
	ctx := t.Context()
	s := openStore(t, postgres.Config{NoMigrate: true})
	if err := postgres.MigrateTo(ctx, s, 4); err != nil {
		t.Fatalf("up to 4: %v", err)
	}
	for _, q := range []string{
		`INSERT INTO images (id, key, format, content_type, width, height, bytes)
			VALUES ('img-old', 'images/old.png', 'png', 'image/png', 1, 1, 10)`,
		`INSERT INTO tasks (id, type, status, image_id, ops, run_after, finished_at, result)
			VALUES ('task-old', 'transform', 'completed', 'img-old', '[{"op":"blur"}]', now(), now(),
			'{"output":{"key":"results/old.webp"}}')`,
	} {
		if _, err := s.Pool().Exec(ctx, q); err != nil {
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
	if err := postgres.MigrateTo(ctx, s, 4); err != nil {
		t.Fatalf("down to 4: %v", err)
	}
	var n int
	if err := s.Pool().QueryRow(ctx, `SELECT count(*) FROM pg_class WHERE relnamespace = $1::regnamespace
		AND relname IN ('blob_trash', 'leases', 'tasks_result_key')`, s.Schema()).Scan(&n); err != nil || n != 0 {
		t.Fatalf("after rolling back 00006, %d of its tables and indexes remain (%v)", n, err)
	}
	if err := s.MigrateUp(ctx); err != nil {
		t.Fatalf("up again: %v", err)
	}
	check()
}

// Migration 00007 (the processed-output cache) can be rolled back and applied again.
func TestOutputCacheMigrationRollsBack(t *testing.T) {
	ctx := t.Context()
	s := openStore(t, postgres.Config{})
	storetest.CheckOutputCacheRollback(t, s, func() error { return postgres.MigrateTo(ctx, s, 6) },
		func() error { return s.MigrateUp(ctx) })
}
