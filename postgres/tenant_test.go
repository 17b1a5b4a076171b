package postgres_test

import (
	"testing"

	"github.com/imaged/imaged/postgres"
	"github.com/imaged/imaged/storetest"
)

// Migration 00004 gives rows made before tenants existed to the default tenant, and can be
// rolled back and applied again.
func TestTenantMigrationKeepsExistingRows(t *testing.T) {
	ctx := t.Context()
	s := openStore(t, postgres.Config{NoMigrate: true})
	if err := postgres.MigrateTo(ctx, s, 3); err != nil {
		t.Fatalf("up to 3: %v", err)
	}
	for _, q := range []string{
		`INSERT INTO images (id, key, format, content_type, width, height, bytes)
			VALUES ('img-old', 'images/old.png', 'png', 'image/png', 1, 1, 10)`,
		`INSERT INTO batches (id, total) VALUES ('batch-old', 1)`,
		`INSERT INTO tasks (id, type, status, image_id, ops, batch_id, run_after)
			VALUES ('task-old', 'transform', 'queued', 'img-old', '[{"op":"blur"}]', 'batch-old', now())`,
		`INSERT INTO api_keys (id, name, prefix, hash) VALUES ('key-old', 'old', 'oldprefix', 'h')`,
	} {
		if _, err := s.Pool().Exec(ctx, q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	if err := s.MigrateUp(ctx); err != nil {
		t.Fatal(err)
	}
	storetest.CheckLegacyRows(t, s)
	if err := postgres.MigrateTo(ctx, s, 3); err != nil {
		t.Fatalf("down to 3: %v", err)
	}
	if err := s.MigrateUp(ctx); err != nil {
		t.Fatalf("up again: %v", err)
	}
	storetest.CheckLegacyRows(t, s)
}

// Migration 00005 (the outbox) can be rolled back and applied again.
func TestOutboxMigrationRollsBack(t *testing.T) {
	ctx := t.Context()
	s := openStore(t, postgres.Config{})
	storetest.CheckOutboxRollback(t, s, func() error { return postgres.MigrateTo(ctx, s, 4) },
		func() error { return s.MigrateUp(ctx) })
}
