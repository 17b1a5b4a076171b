package redis

import (
	"testing"
	"time"

	"github.com/imaged/imaged"
)

func cachedOutput(tenant string) *imaged.CachedOutput {
	key := randomHex(32)
	return &imaged.CachedOutput{Key: key, Tenant: tenant, ImageSHA256: randomHex(32), BlobKey: imaged.CachedOutputBlobKey(tenant, key),
		Format: "webp", ContentType: "image/webp", Width: 800, Height: 600, Bytes: 4321}
}

// The index of the processed-output cache answers reads of an entry written or read once,
// within its tenant only.
func TestCachedOutputsAreIndexed(t *testing.T) {
	c := openShared(t, Options{})
	db := openDatabase(t)
	s := CachedStore(db, c.Client, quietLog())
	ctx := t.Context()

	written := cachedOutput("tenant-a")
	if err := s.PutCachedOutput(ctx, written); err != nil {
		t.Fatal(err)
	}
	for range 3 {
		got, err := s.CachedOutput(ctx, "tenant-a", written.Key)
		if err != nil || got.BlobKey != written.BlobKey || got.Bytes != written.Bytes || !got.CreatedAt.Equal(written.CreatedAt) ||
			got.CreatedAt.Location() != time.UTC {
			t.Fatalf("CachedOutput = %+v, %v; want %+v", got, err, written)
		}
	}
	if n := db.outputReads(); n != 0 {
		t.Errorf("database read %d times for an entry written through the cache; want 0", n)
	}
	if d := ttl(t, c, c.outputKey("tenant-a", written.Key)); d <= DefaultMetadataTTL-time.Minute || d > DefaultMetadataTTL {
		t.Errorf("TTL of the index entry = %v; want about %v", d, DefaultMetadataTTL)
	}

	// Written past the cache (another process without Redis, say): read once from the database.
	past := cachedOutput("tenant-a")
	if err := db.PutCachedOutput(ctx, past); err != nil {
		t.Fatal(err)
	}
	for range 2 {
		if got, err := s.CachedOutput(ctx, "tenant-a", past.Key); err != nil || got.BlobKey != past.BlobKey {
			t.Fatalf("CachedOutput = %+v, %v", got, err)
		}
	}
	if n := db.outputReads(); n != 1 {
		t.Errorf("database read %d times; want 1", n)
	}
	if h, m := requests(t, c.reg, "output", "hit"), requests(t, c.reg, "output", "miss"); h != 4 || m != 1 {
		t.Errorf("cache_requests_total{cache=output}: hit %v, miss %v; want 4, 1", h, m)
	}

	// Another tenant asking for the key finds nothing, from the index or the database.
	if _, err := s.CachedOutput(ctx, "tenant-b", written.Key); !imaged.IsCode(err, imaged.ENotFound) {
		t.Fatalf("CachedOutput of another tenant's key: %v; want ENotFound", err)
	}
	// An index entry that is not the one asked for is replaced by the database's answer.
	if err := c.rdb.Set(ctx, c.outputKey("tenant-a", past.Key), `{"key":"other"}`, time.Minute).Err(); err != nil {
		t.Fatal(err)
	}
	if got, err := s.CachedOutput(ctx, "tenant-a", past.Key); err != nil || got.BlobKey != past.BlobKey {
		t.Fatalf("CachedOutput over a wrong index entry = %+v, %v", got, err)
	}
	if got, err := s.CachedOutput(ctx, "tenant-a", past.Key); err != nil || got.BlobKey != past.BlobKey || db.outputReads() != 3 {
		t.Fatalf("CachedOutput after the repair = %+v, %v, %d database reads; want 3 (tenant-b and the repair read it)", got, err, db.outputReads())
	}
}

// Deleting an image drops the index entries of the outputs made from its content.
func TestDeleteImageDropsIndexedOutputs(t *testing.T) {
	c := openShared(t, Options{})
	db := openDatabase(t)
	s := CachedStore(db, c.Client, quietLog())
	ctx := t.Context()
	img, _ := seed(t, s)
	e := cachedOutput(imaged.DefaultTenant)
	e.ImageSHA256 = img.SHA256
	if err := s.PutCachedOutput(ctx, e); err != nil {
		t.Fatal(err)
	}
	if n, _ := c.rdb.Exists(ctx, c.outputKey(e.Tenant, e.Key), c.outputsKey(e.Tenant, img.SHA256)).Result(); n != 2 {
		t.Fatalf("%d of the index entry and its content's set exist; want 2", n)
	}
	if err := s.DeleteImage(ctx, imaged.DefaultTenant, img.ID); err != nil {
		t.Fatal(err)
	}
	if n, _ := c.rdb.Exists(ctx, c.outputKey(e.Tenant, e.Key), c.outputsKey(e.Tenant, img.SHA256)).Result(); n != 0 {
		t.Fatalf("%d of the index entry and its content's set remain after DeleteImage; want 0", n)
	}
	if _, err := s.CachedOutput(ctx, imaged.DefaultTenant, e.Key); !imaged.IsCode(err, imaged.ENotFound) {
		t.Fatalf("CachedOutput after DeleteImage: %v; want ENotFound", err)
	}
}
