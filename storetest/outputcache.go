package storetest

import (
	"crypto/sha256"
	"encoding/hex"
	"testing"
	"time"

	"github.com/imaged/imaged"
)

// outputCacheTests are the contract of imaged.OutputCacheStore, part of Run: every store and
// decorator keeps it.
var outputCacheTests = []struct {
	name string
	fn   func(t *testing.T, s imaged.TaskStore)
}{
	{"CachedOutputs", testCachedOutputs},
	{"CachedOutputsOfTenants", testCachedOutputsOfTenants},
}

// cachedOutputTests are the retention side of the processed-output cache, part of
// RunRetention.
var cachedOutputTests = []struct {
	name string
	fn   func(t *testing.T, s RetentionTaskStore)
}{
	{"ExpireCachedOutputs", testExpireCachedOutputs},
	{"DeleteImageDropsCachedOutputsOfItsContent", testDeleteImageDropsCachedOutputs},
	{"DeleteImagesDropsCachedOutputs", testDeleteImagesDropsCachedOutputs},
	{"PutCachedOutputTakesItsBlobOutOfTheTrash", testPutCachedOutputUntrashes},
}

// newCachedOutput is an entry of tenant made from content.
func newCachedOutput(tenant, content string) *imaged.CachedOutput {
	sum := sha256.Sum256([]byte(uniq("key")))
	key := hex.EncodeToString(sum[:])
	return &imaged.CachedOutput{Key: key, Tenant: tenant, ImageSHA256: content, BlobKey: imaged.CachedOutputBlobKey(tenant, key),
		Format: "webp", ContentType: "image/webp", Width: 800, Height: 600, Bytes: 4321}
}

func putCachedOutput(t *testing.T, s imaged.TaskStore, e *imaged.CachedOutput) *imaged.CachedOutput {
	t.Helper()
	if err := s.PutCachedOutput(t.Context(), e); err != nil {
		t.Fatalf("PutCachedOutput: %v", err)
	}
	return e
}

func wantCachedOutput(t *testing.T, s imaged.TaskStore, want *imaged.CachedOutput) {
	t.Helper()
	got, err := s.CachedOutput(t.Context(), want.Tenant, want.Key)
	if err != nil {
		t.Fatalf("CachedOutput(%s): %v", want.Key, err)
	}
	if got.Key != want.Key || got.Tenant != want.Tenant || got.ImageSHA256 != want.ImageSHA256 || got.BlobKey != want.BlobKey ||
		got.Format != want.Format || got.ContentType != want.ContentType || got.Width != want.Width ||
		got.Height != want.Height || got.Bytes != want.Bytes {
		t.Fatalf("CachedOutput = %+v, want %+v", got, want)
	}
	wantTime(t, "CreatedAt", got.CreatedAt, want.CreatedAt)
	if got.CreatedAt.Location() != time.UTC {
		t.Fatalf("CreatedAt %v is not UTC", got.CreatedAt)
	}
}

func testCachedOutputs(t *testing.T, s imaged.TaskStore) {
	ctx := t.Context()
	e := putCachedOutput(t, s, newCachedOutput(imaged.DefaultTenant, "content-a"))
	if e.CreatedAt.IsZero() {
		t.Fatal("PutCachedOutput left CreatedAt zero")
	}
	wantCachedOutput(t, s, e)
	_, err := s.CachedOutput(ctx, imaged.DefaultTenant, "0000")
	wantCode(t, err, imaged.ENotFound, "CachedOutput of an unknown key")

	// A second write of the same key (the output made again) replaces the entry.
	again := *e
	again.Width, again.Bytes, again.CreatedAt = 400, 99, time.Now().UTC().Add(time.Minute).Truncate(time.Millisecond)
	putCachedOutput(t, s, &again)
	wantCachedOutput(t, s, &again)

	_, err = s.CachedOutput(ctx, "", e.Key)
	if err == nil {
		t.Fatal("CachedOutput with no tenant succeeded")
	}
	if err := s.PutCachedOutput(ctx, &imaged.CachedOutput{Key: "k", BlobKey: "cache/x/k"}); err == nil {
		t.Fatal("PutCachedOutput with no tenant succeeded")
	}
}

// An entry is found only within its tenant, whatever its key.
func testCachedOutputsOfTenants(t *testing.T, s imaged.TaskStore) {
	a := putCachedOutput(t, s, newCachedOutput("tenant-a", "same-content"))
	b := putCachedOutput(t, s, newCachedOutput("tenant-b", "same-content"))
	wantCachedOutput(t, s, a)
	wantCachedOutput(t, s, b)
	_, err := s.CachedOutput(t.Context(), "tenant-b", a.Key)
	wantCode(t, err, imaged.ENotFound, "CachedOutput of another tenant's key")
}

func testExpireCachedOutputs(t *testing.T, s RetentionTaskStore) {
	ctx := t.Context()
	now := time.Now().UTC()
	old := newCachedOutput(imaged.DefaultTenant, "content-old")
	old.CreatedAt = now.Add(-2 * time.Hour)
	putCachedOutput(t, s, old)
	young := putCachedOutput(t, s, newCachedOutput(imaged.DefaultTenant, "content-young"))

	refs, err := s.Referenced(ctx, []string{old.BlobKey, young.BlobKey})
	if err != nil || !refs[old.BlobKey] || !refs[young.BlobKey] {
		t.Fatalf("Referenced = %v, %v; want both cached outputs", refs, err)
	}
	n, err := s.ExpireCachedOutputs(ctx, now.Add(-time.Hour), 10)
	if err != nil || n != 1 {
		t.Fatalf("ExpireCachedOutputs = %d, %v; want 1", n, err)
	}
	_, err = s.CachedOutput(ctx, imaged.DefaultTenant, old.Key)
	wantCode(t, err, imaged.ENotFound, "CachedOutput of an expired entry")
	wantCachedOutput(t, s, young)
	wantTrash(t, takeAll(t, s), map[string]string{old.BlobKey: imaged.BlobCache})
	refs, err = s.Referenced(ctx, []string{old.BlobKey, young.BlobKey})
	if err != nil || refs[old.BlobKey] || !refs[young.BlobKey] {
		t.Fatalf("Referenced after expiry = %v, %v; want only the young output", refs, err)
	}
	if n, err := s.ExpireCachedOutputs(ctx, now.Add(-time.Hour), 10); err != nil || n != 0 {
		t.Fatalf("ExpireCachedOutputs again = %d, %v; want 0", n, err)
	}
}

// imageOf records an image of tenant with the given content hash.
func imageOf(t *testing.T, s imaged.TaskStore, tenant, content string, created time.Time) *imaged.Image {
	t.Helper()
	img := &imaged.Image{Tenant: tenant, Key: "images/2026/11/28/" + uniq("k") + ".png", Format: "png", ContentType: "image/png",
		Width: 1, Height: 1, Bytes: 1, SHA256: content, CreatedAt: created}
	if err := s.CreateImage(t.Context(), img); err != nil {
		t.Fatalf("CreateImage: %v", err)
	}
	return img
}

// Deleting an image removes the tenant's entries of its content once no image of the tenant
// holds that content; another tenant's entries of the same content stay.
func testDeleteImageDropsCachedOutputs(t *testing.T, s RetentionTaskStore) {
	ctx := t.Context()
	content := uniq("content")
	a1 := imageOf(t, s, "tenant-a", content, time.Time{})
	a2 := imageOf(t, s, "tenant-a", content, time.Time{})
	imageOf(t, s, "tenant-b", content, time.Time{})
	other := imageOf(t, s, "tenant-a", uniq("other"), time.Time{})
	ea := putCachedOutput(t, s, newCachedOutput("tenant-a", content))
	eb := putCachedOutput(t, s, newCachedOutput("tenant-b", content))
	eo := putCachedOutput(t, s, newCachedOutput("tenant-a", other.SHA256))

	if err := s.DeleteImage(ctx, "tenant-a", a1.ID); err != nil {
		t.Fatal(err)
	}
	wantCachedOutput(t, s, ea) // a2 holds the content still
	if err := s.DeleteImage(ctx, "tenant-a", a2.ID); err != nil {
		t.Fatal(err)
	}
	_, err := s.CachedOutput(ctx, "tenant-a", ea.Key)
	wantCode(t, err, imaged.ENotFound, "CachedOutput of content the tenant no longer holds")
	wantCachedOutput(t, s, eb)
	wantCachedOutput(t, s, eo)
	wantTrash(t, takeAll(t, s), map[string]string{ea.BlobKey: imaged.BlobCache})
}

func testDeleteImagesDropsCachedOutputs(t *testing.T, s RetentionTaskStore) {
	ctx := t.Context()
	now := time.Now().UTC()
	content := uniq("content")
	old := imageOf(t, s, imaged.DefaultTenant, content, now.Add(-2*time.Hour))
	e := putCachedOutput(t, s, newCachedOutput(imaged.DefaultTenant, content))
	if n, err := s.DeleteImages(ctx, now.Add(-time.Hour), now, 10); err != nil || n != 1 {
		t.Fatalf("DeleteImages = %d, %v; want 1", n, err)
	}
	_, err := s.CachedOutput(ctx, imaged.DefaultTenant, e.Key)
	wantCode(t, err, imaged.ENotFound, "CachedOutput of a deleted image's content")
	wantTrash(t, takeAll(t, s), map[string]string{old.Key: imaged.BlobImage, e.BlobKey: imaged.BlobCache})
}

// An output stored again after its entry went (and its blob to the trash) is not deleted by the
// sweep that empties the trash later.
func testPutCachedOutputUntrashes(t *testing.T, s RetentionTaskStore) {
	ctx := t.Context()
	content := uniq("content")
	img := imageOf(t, s, imaged.DefaultTenant, content, time.Time{})
	e := putCachedOutput(t, s, newCachedOutput(imaged.DefaultTenant, content))
	if err := s.DeleteImage(ctx, imaged.DefaultTenant, img.ID); err != nil {
		t.Fatal(err)
	}
	imageOf(t, s, imaged.DefaultTenant, content, time.Time{}) // the same content, uploaded again
	again := *e
	again.CreatedAt = time.Time{}
	putCachedOutput(t, s, &again)
	wantTrash(t, takeAll(t, s), map[string]string{})
	wantCachedOutput(t, s, &again)
}

// CheckOutputCacheRollback checks that the migration of the processed-output cache can be
// rolled back (down) and applied again (up) on s, a migrated store.
func CheckOutputCacheRollback(t *testing.T, s imaged.TaskStore, down, up func() error) {
	t.Helper()
	ctx := t.Context()
	e := putCachedOutput(t, s, newCachedOutput(imaged.DefaultTenant, "content"))
	if err := down(); err != nil {
		t.Fatalf("rolling the output cache migration back: %v", err)
	}
	if err := s.PutCachedOutput(ctx, newCachedOutput(imaged.DefaultTenant, "content")); err == nil {
		t.Fatal("the output cache takes entries after its migration was rolled back")
	}
	if err := up(); err != nil {
		t.Fatalf("applying the output cache migration again: %v", err)
	}
	_, err := s.CachedOutput(ctx, imaged.DefaultTenant, e.Key)
	wantCode(t, err, imaged.ENotFound, "CachedOutput after the table was made again")
	wantCachedOutput(t, s, putCachedOutput(t, s, newCachedOutput(imaged.DefaultTenant, "content")))
}
