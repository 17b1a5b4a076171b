package worker_test

import (
	"context"
	"encoding/json"
	"log/slog"
	"path/filepath"
	"testing"

	"github.com/imaged/imaged"
	"github.com/imaged/imaged/fs"
	"github.com/imaged/imaged/sqlite"
	"github.com/imaged/imaged/worker"
)

// overlayProcessor reads a watermark's image as the server's engines do, through
// imaged.ReadImage within the tenant the context carries, and otherwise returns its input.
type overlayProcessor struct {
	store imaged.TaskStore
	blobs imaged.BlobStore
}

func (overlayProcessor) Validate([]imaged.Op) error { return nil }

func (p overlayProcessor) Process(ctx context.Context, src []byte, ops []imaged.Op, _ imaged.ProcessOptions) (*imaged.Result, error) {
	for _, o := range ops {
		var a struct {
			Image string `json:"image"`
		}
		if json.Unmarshal(o.Args, &a) == nil && a.Image != "" {
			if _, _, err := imaged.ReadImage(ctx, p.store, p.blobs, imaged.TenantOf(ctx), a.Image, 0); err != nil {
				return nil, err
			}
		}
	}
	return &imaged.Result{Data: src, Format: "png", ContentType: "image/png", Width: 1, Height: 1, Changed: true}, nil
}

// A worker runs a task within the task's tenant: the task's image and any image its pipeline
// lays on it are read there, so another tenant's id fails the task as not found.
func TestWorkerReadsWithinTheTasksTenant(t *testing.T) {
	ctx := t.Context()
	dir := t.TempDir()
	db, err := sqlite.Open(ctx, filepath.Join(dir, "imaged.db"), sqlite.OpenOptions{Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	blobs, err := fs.New(filepath.Join(dir, "blobs"), fs.Options{})
	if err != nil {
		t.Fatal(err)
	}
	image := func(tenant string) string {
		img := &imaged.Image{Tenant: tenant, Key: "images/" + imaged.NewID() + ".png", Format: "png", ContentType: "image/png", Bytes: 3}
		if err := blobs.Put(ctx, img.Key, []byte("png"), img.ContentType); err != nil {
			t.Fatal(err)
		}
		if err := db.CreateImage(ctx, img); err != nil {
			t.Fatal(err)
		}
		return img.ID
	}
	imgA, overlayA, imgB := image("tenant-a"), image("tenant-a"), image("tenant-b")
	w := worker.New(worker.Config{}, db, nil, blobs, overlayProcessor{db, blobs}, nil, nil, slog.New(slog.DiscardHandler))

	run := func(imageID, overlay string) *imaged.Task {
		t.Helper()
		ops, err := imaged.ParseOps([]byte(`[{"op":"watermark","image":"` + overlay + `"}]`))
		if err != nil {
			t.Fatal(err)
		}
		task := &imaged.Task{Tenant: "tenant-a", ImageID: imageID, Ops: ops, MaxAttempts: 3}
		if _, err := db.CreateTasks(ctx, []*imaged.Task{task}, nil); err != nil {
			t.Fatal(err)
		}
		if err := w.Handle(ctx, &imaged.Delivery{TaskID: task.ID}); err != nil {
			t.Fatalf("Handle: %v", err)
		}
		got, err := db.Task(ctx, "tenant-a", task.ID)
		if err != nil {
			t.Fatal(err)
		}
		return got
	}
	if got := run(imgA, overlayA); got.Status != imaged.StatusCompleted {
		t.Fatalf("a task over its tenant's images: %s %+v", got.Status, got.Error)
	}
	for name, ids := range map[string][2]string{"image": {imgB, overlayA}, "overlay": {imgA, imgB}} {
		got := run(ids[0], ids[1])
		if got.Status != imaged.StatusFailed || got.Error == nil || got.Error.Code != imaged.ENotFound {
			t.Errorf("a task whose %s is another tenant's: %s %+v; want failed with not_found", name, got.Status, got.Error)
		}
	}
}
