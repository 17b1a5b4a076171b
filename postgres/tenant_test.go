package postgres_test

import (
	"testing"

	"github.com/imaged/imaged"
	"github.com/imaged/imaged/postgres"
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
	check := func() {
		t.Helper()
		if img, err := s.Image(ctx, imaged.DefaultTenant, "img-old"); err != nil || img.Tenant != imaged.DefaultTenant {
			t.Fatalf("old image = %+v, %v", img, err)
		}
		if task, err := s.Task(ctx, imaged.DefaultTenant, "task-old"); err != nil || task.Tenant != imaged.DefaultTenant {
			t.Fatalf("old task = %+v, %v", task, err)
		}
		if b, _, err := s.Batch(ctx, imaged.DefaultTenant, "batch-old"); err != nil || b.Tenant != imaged.DefaultTenant {
			t.Fatalf("old batch = %+v, %v", b, err)
		}
		if k, err := s.APIKeyByPrefix(ctx, "oldprefix"); err != nil || k.Tenant != imaged.DefaultTenant {
			t.Fatalf("old key = %+v, %v", k, err)
		}
		if _, err := s.Tenant(ctx, imaged.DefaultTenant); err != nil {
			t.Fatalf("the default tenant: %v", err)
		}
		if u, err := s.Usage(ctx, imaged.DefaultTenant); err != nil || u != (imaged.Usage{Bytes: 10, Images: 1}) {
			t.Fatalf("usage of the default tenant = %+v, %v", u, err)
		}
	}
	if err := s.MigrateUp(ctx); err != nil {
		t.Fatal(err)
	}
	check()
	if err := postgres.MigrateTo(ctx, s, 3); err != nil {
		t.Fatalf("down to 3: %v", err)
	}
	if err := s.MigrateUp(ctx); err != nil {
		t.Fatalf("up again: %v", err)
	}
	check()
}
