package imaged

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"io"
	"time"
)

// The processed-output cache keeps the image a synchronous pipeline made from a stored image, so
// that the same content through the same pipeline is answered from storage instead of being
// computed again. It is not the task result cache in Redis (package redis), which keeps task
// records. An entry is content-addressed: its key (OutputCacheKey) is a hash of the tenant, the
// source image's content hash, the canonical pipeline, what the request negotiates and the
// engine's version, so a change of any of them is another key and never a stale answer. Its
// bytes live on the blob store under CachedOutputBlobKey, its row in the task store
// (OutputCacheStore), where the retention sweep expires it (IMAGED_RETENTION_RESULTS) and the
// deletion of the last image of a tenant holding its content removes it.

// CachedOutput is one entry of the processed-output cache.
type CachedOutput struct {
	Key         string    `json:"key"` // OutputCacheKey
	Tenant      string    `json:"tenant"`
	ImageSHA256 string    `json:"image_sha256"` // the content hash of the image it was made from
	BlobKey     string    `json:"blob_key"`     // CachedOutputBlobKey(Tenant, Key)
	Format      string    `json:"format"`
	ContentType string    `json:"content_type"`
	Width       int       `json:"width"`
	Height      int       `json:"height"`
	Bytes       int64     `json:"bytes"`
	CreatedAt   time.Time `json:"created_at"`
}

// OutputCacheStore records the entries of the processed-output cache; every TaskStore is one.
// DeleteImage (and the retention store's DeleteImages) removes the tenant's entries of the
// deleted image's content once no image of the tenant holds that content, trashing their blobs
// in the same transaction.
type OutputCacheStore interface {
	// CachedOutput returns the tenant's entry of key; ENotFound when there is none.
	CachedOutput(ctx context.Context, tenant, key string) (*CachedOutput, error)
	// PutCachedOutput records e, replacing an entry of the same key, and takes its blob out of
	// the retention trash (the blob was just written again). CreatedAt is set when zero.
	PutCachedOutput(ctx context.Context, e *CachedOutput) error
}

// BlobCachePrefix is where the processed-output cache keeps its blobs.
const BlobCachePrefix = "cache/"

// OutputCacheKey is the key of one output in the processed-output cache, in hex: a SHA-256 of
// the tenant, the source's content hash, the canonical pipeline (CanonicalOps), negotiated (what
// the request decides of the output beyond the pipeline, such as the Accept header a convert to
// format auto reads; "" when nothing) and engine (the processor's name and version, so that an
// upgrade invalidates every entry). Each part is length-prefixed, so no two tuples share a key.
func OutputCacheKey(tenant, contentSHA256 string, ops []Op, negotiated, engine string) (string, error) {
	canon, err := CanonicalOps(ops)
	if err != nil {
		return "", err
	}
	h := sha256.New()
	for _, part := range [][]byte{[]byte("imaged-output-cache/1"), []byte(tenant), []byte(contentSHA256), canon, []byte(negotiated), []byte(engine)} {
		var n [binary.MaxVarintLen64]byte
		h.Write(n[:binary.PutUvarint(n[:], uint64(len(part)))])
		h.Write(part)
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

// CanonicalOps writes a pipeline as canonical JSON: each op's object with its keys sorted, its
// name lower case and its numbers in one spelling (800, 800.0 and 8e2 alike), so pipelines that
// differ only in how they were written share their cached outputs.
func CanonicalOps(ops []Op) ([]byte, error) {
	out := make([]any, len(ops))
	for i, o := range ops {
		m := map[string]any{}
		if len(o.Args) > 0 {
			if err := json.Unmarshal(o.Args, &m); err != nil {
				return nil, FieldErrorf("ops", "operation %d is not a JSON object", i)
			}
		}
		m["op"] = o.Name
		out[i] = m
	}
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(out); err != nil {
		return nil, err
	}
	return bytes.TrimSuffix(b.Bytes(), []byte("\n")), nil
}

// CachedOutputBlobKey is where the output of key is stored: cache/<tenant>/<key>. A tenant
// whose name is not plain (letters, digits, '-', '_'; at most 64) is written as "~" and a hash of
// it, so that every name makes a valid key on every blob store.
func CachedOutputBlobKey(tenant, key string) string {
	return BlobCachePrefix + tenantSegment(tenant) + "/" + key
}

func tenantSegment(tenant string) string {
	plain := tenant != "" && len(tenant) <= 64
	for _, c := range tenant {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
			plain = false
			break
		}
	}
	if plain {
		return tenant
	}
	sum := sha256.Sum256([]byte(tenant))
	return "~" + hex.EncodeToString(sum[:16])
}

// ReadCachedOutput returns the tenant's entry of key and its bytes. ENotFound when there is no
// entry, or when its blob is gone or not what the entry describes (the retention sweep deleted
// it, or a writer is replacing it): the caller computes the output again.
func ReadCachedOutput(ctx context.Context, store OutputCacheStore, blobs BlobStore, tenant, key string) (*CachedOutput, []byte, error) {
	e, err := store.CachedOutput(ctx, tenant, key)
	if err != nil {
		return nil, nil, err
	}
	rc, _, err := blobs.Get(ctx, e.BlobKey)
	if err != nil {
		return nil, nil, err
	}
	defer rc.Close()
	data, err := io.ReadAll(io.LimitReader(rc, e.Bytes+1))
	if err != nil {
		return nil, nil, WrapError(EUnavailable, err, "reading cached output %s failed", e.BlobKey)
	}
	if int64(len(data)) != e.Bytes {
		return nil, nil, Errorf(ENotFound, "cached output %s holds %d bytes, not the %d its entry records", e.BlobKey, len(data), e.Bytes)
	}
	return e, data, nil
}

// SaveCachedOutput stores res, the output of key made from content contentSHA256 of tenant: the
// blob first, then the entry, so that a crash in between leaves an unreferenced blob for the
// orphan sweep, never an entry without its blob. It returns the entry.
func SaveCachedOutput(ctx context.Context, store OutputCacheStore, blobs BlobStore, tenant, key, contentSHA256 string, res *Result) (*CachedOutput, error) {
	e := &CachedOutput{Key: key, Tenant: tenant, ImageSHA256: contentSHA256, BlobKey: CachedOutputBlobKey(tenant, key),
		Format: res.Format, ContentType: res.ContentType, Width: res.Width, Height: res.Height, Bytes: int64(len(res.Data)),
		CreatedAt: time.Now().UTC()}
	if err := blobs.Put(ctx, e.BlobKey, res.Data, res.ContentType); err != nil {
		return nil, err
	}
	if err := store.PutCachedOutput(ctx, e); err != nil {
		return nil, err
	}
	return e, nil
}
