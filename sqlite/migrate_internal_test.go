package sqlite

import (
	"log/slog"
	"path/filepath"
	"testing"

	"github.com/imaged/imaged"
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
	if _, err := p.DownTo(ctx, 3); err != nil {
		t.Fatalf("down to 3: %v", err)
	}
	if err := s.MigrateUp(ctx); err != nil {
		t.Fatalf("up again: %v", err)
	}
	check()
}
