package http

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"image"
	"image/color"
	"image/png"
	"mime/multipart"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"

	"github.com/imaged/imaged"
	"github.com/imaged/imaged/auth"
	"github.com/imaged/imaged/dbqueue"
	"github.com/imaged/imaged/signedurl"
)

// cacheEnv serves the API with the processed-output cache on, over a backend, with keys of two
// tenants.
type cacheEnv struct {
	*stack
	be         backend
	signer     *signedurl.Signer
	keyA, keyB string
}

func newCacheEnv(t *testing.T, be backend, retention time.Duration) *cacheEnv {
	signer := testSigner(t)
	proc := &fakeProcessor{}
	q := dbqueue.New(be.store, dbqueue.Options{})
	t.Cleanup(func() { q.Close() })
	api := NewServer(Config{OutputCache: true, OutputRetention: retention, Engine: "test-engine 1"},
		Deps{Store: be.store, Blobs: be.blobs, Queue: q, Processor: proc, Log: quietLog(),
			Auth: auth.New(be.keys, auth.Options{Log: quietLog()}), Signer: signer})
	srv := httptest.NewServer(api)
	t.Cleanup(srv.Close)
	e := &cacheEnv{stack: &stack{t: t, srv: srv, api: api, proc: proc}, be: be, signer: signer}
	key := func(tenant string) string {
		token, err := auth.Create(t.Context(), be.keys, &imaged.APIKey{Name: tenant, Tenant: tenant})
		if err != nil {
			t.Fatal(err)
		}
		return token
	}
	e.keyA, e.keyB = key(tenantA), key(tenantB)
	return e
}

// upload stores data as key's tenant and returns the image's id.
func (e *cacheEnv) upload(key string, data []byte) string {
	e.t.Helper()
	r := e.do("POST", "/v1/images", data, map[string]string{"X-API-Key": key, "Content-Type": "image/png"})
	if r.status != 201 {
		e.t.Fatalf("upload: %d %s", r.status, r.body)
	}
	var img imaged.Image
	_ = json.Unmarshal(r.body, &img)
	return img.ID
}

// process runs ops over the stored image id as key's tenant.
func (e *cacheEnv) process(key, id, ops string, header map[string]string) resp {
	e.t.Helper()
	h := map[string]string{"X-API-Key": key, "Content-Type": "application/json"}
	for k, v := range header {
		h[k] = v
	}
	return e.do("POST", "/v1/process", []byte(`{"image_id":"`+id+`","ops":`+ops+`}`), h)
}

// want checks an answer's status, X-Cache and the pipelines run so far.
func (e *cacheEnv) want(r resp, what, xcache string, calls int64) {
	e.t.Helper()
	if r.status != 200 || r.header.Get("X-Cache") != xcache || e.proc.calls.Load() != calls {
		e.t.Fatalf("%s: %d, X-Cache %q, %d pipelines run; want 200, %q, %d (%s)", what, r.status,
			r.header.Get("X-Cache"), e.proc.calls.Load(), xcache, calls, r.body)
	}
}

func (e *cacheEnv) count(result string) float64 {
	var m dto.Metric
	if err := e.api.deps.Metrics.OutputCache.WithLabelValues(result).Write(&m); err != nil {
		e.t.Fatal(err)
	}
	return m.GetCounter().GetValue()
}

func TestOutputCacheSQLite(t *testing.T) { runOutputCache(t, sqliteBackend(t)) }

// On PostgreSQL, S3 (versitygw) and the Redis index in front of the store.
func TestOutputCacheProductionBackends(t *testing.T) { runOutputCache(t, productionBackend(t)) }

func runOutputCache(t *testing.T, be backend) {
	ctx := t.Context()
	e := newCacheEnv(t, be, time.Hour)
	const ops = `[{"op":"resize","width":800,"height":600},{"op":"convert","format":"webp"}]`
	png := pngBytes(t)
	imgA := e.upload(e.keyA, png)

	// A miss runs the pipeline and stores its output; a hit answers the same bytes and headers
	// without running it.
	miss := e.process(e.keyA, imgA, ops, nil)
	e.want(miss, "first request", "miss", 1)
	hit := e.process(e.keyA, imgA, ops, nil)
	e.want(hit, "second request", "hit", 1)
	if !bytes.Equal(hit.body, miss.body) {
		t.Fatalf("a hit answered %q, the miss %q", hit.body, miss.body)
	}
	etag := miss.header.Get("ETag")
	if len(etag) != 34 || strings.HasPrefix(etag, "W/") || hit.header.Get("ETag") != etag {
		t.Fatalf("ETags: miss %q, hit %q; want one strong ETag for both", etag, hit.header.Get("ETag"))
	}
	for _, h := range []string{"Content-Type", "Content-Length", "X-Image-Width", "X-Image-Height", "Vary"} {
		if miss.header.Get(h) == "" || hit.header.Get(h) != miss.header.Get(h) {
			t.Errorf("%s: miss %q, hit %q", h, miss.header.Get(h), hit.header.Get(h))
		}
	}
	wantMaxAge(t, miss, time.Hour)
	wantMaxAge(t, hit, time.Hour)

	// The same pipeline spelt otherwise (keys in another order, 800.0), and the signed URL of
	// the same pipeline, are the same output.
	e.want(e.process(e.keyA, imgA, `[{"height":600,"width":800.0,"op":"RESIZE"},{"format":"webp","op":"convert"}]`, nil),
		"the pipeline spelt otherwise", "hit", 1)
	signed := e.do("GET", e.signer.URL("resize:w=800,h=600/convert:f=webp/"+imgA), nil, nil)
	e.want(signed, "the signed URL of the pipeline", "hit", 1)
	if !bytes.Equal(signed.body, miss.body) || signed.header.Get("ETag") != etag ||
		!strings.HasPrefix(signed.header.Get("Cache-Control"), "public, ") {
		t.Fatalf("signed URL: body %q, ETag %q, Cache-Control %q", signed.body, signed.header.Get("ETag"), signed.header.Get("Cache-Control"))
	}

	// Another tenant with the very same bytes never gets A's output: its own miss, its own
	// entry, its own ETag.
	imgB := e.upload(e.keyB, png)
	b := e.process(e.keyB, imgB, ops, nil)
	e.want(b, "tenant B, same content", "miss", 2)
	if b.header.Get("ETag") == etag {
		t.Fatal("tenant B's answer has tenant A's ETag")
	}
	e.want(e.process(e.keyB, imgB, ops, nil), "tenant B again", "hit", 2)
	// and A's image id is not found for B, before any cache is asked.
	if r := e.process(e.keyB, imgA, ops, nil); r.status != 404 || r.header.Get("X-Cache") != "" {
		t.Fatalf("B asking for A's image: %d, X-Cache %q; want 404 and no cache", r.status, r.header.Get("X-Cache"))
	}

	// Other content (another image) is another output.
	imgOther := e.upload(e.keyA, otherPNG(t))
	e.want(e.process(e.keyA, imgOther, ops, nil), "other content", "miss", 3)

	// Cache-Control: no-cache runs the pipeline and stores again; no-store runs it and stores
	// nothing, and says so.
	e.want(e.process(e.keyA, imgA, ops, map[string]string{"Cache-Control": "no-cache"}), "no-cache", "bypass", 4)
	const blur = `[{"op":"blur","sigma":3}]`
	ns := e.process(e.keyA, imgA, blur, map[string]string{"Cache-Control": "max-age=0, no-store"})
	e.want(ns, "no-store", "bypass", 5)
	if ns.header.Get("Cache-Control") != "no-store" || ns.header.Get("ETag") == "" {
		t.Fatalf("no-store: Cache-Control %q, ETag %q; want no-store and an ETag", ns.header.Get("Cache-Control"), ns.header.Get("ETag"))
	}
	e.want(e.process(e.keyA, imgA, blur, nil), "after no-store", "miss", 6)
	if hits, misses, bypasses := e.count("hit"), e.count("miss"), e.count("bypass"); hits != 4 || misses != 4 || bypasses != 2 {
		t.Fatalf("processed_output_cache_requests_total: hit %v, miss %v, bypass %v; want 4, 4, 2", hits, misses, bypasses)
	}

	// Expired by the retention sweep (the entries, then their blobs): run again.
	rs := be.keys.(imaged.RetentionStore)
	if _, err := rs.ExpireCachedOutputs(ctx, time.Now().Add(time.Hour), 100); err != nil {
		t.Fatal(err)
	}
	trash, err := rs.TakeTrash(ctx, 100)
	if err != nil || len(trash) != 4 {
		t.Fatalf("trash after expiry = %v, %v; want the 4 outputs", trash, err)
	}
	for _, b := range trash {
		if err := be.blobs.Delete(ctx, b.Key); err != nil {
			t.Fatal(err)
		}
	}
	e.want(e.process(e.keyA, imgA, ops, nil), "after expiry", "miss", 7)
	e.want(e.process(e.keyB, imgB, ops, nil), "tenant B after expiry", "miss", 8)

	// Deleting the image removes its outputs: its blob goes to the trash, and the same content
	// uploaded again is computed again.
	key, err := imaged.OutputCacheKey(tenantA, sha256Hex(png), mustParseOps(t, ops), "", e.api.outputEngine())
	if err != nil {
		t.Fatal(err)
	}
	entry, err := be.store.CachedOutput(ctx, tenantA, key)
	if err != nil {
		t.Fatalf("the entry of A's output: %v", err)
	}
	if r := e.do("DELETE", "/v1/images/"+imgA, nil, map[string]string{"X-API-Key": e.keyA}); r.status != 204 {
		t.Fatalf("DELETE: %d %s", r.status, r.body)
	}
	if r := e.process(e.keyA, imgA, ops, nil); r.status != 404 || e.proc.calls.Load() != 8 {
		t.Fatalf("the deleted image: %d, %d pipelines run; want 404, 8", r.status, e.proc.calls.Load())
	}
	if _, err := be.store.CachedOutput(ctx, tenantA, key); !imaged.IsCode(err, imaged.ENotFound) {
		t.Fatalf("the entry after the image was deleted: %v; want not found", err)
	}
	trash, err = rs.TakeTrash(ctx, 100)
	if err != nil || !containsBlob(trash, entry.BlobKey, imaged.BlobCache) {
		t.Fatalf("trash after the delete = %v, %v; want %s among it", trash, err, entry.BlobKey)
	}
	again := e.upload(e.keyA, png)
	e.want(e.process(e.keyA, again, ops, nil), "the same content uploaded again", "miss", 9)
	// B's output of the same content was never A's to delete.
	e.want(e.process(e.keyB, imgB, ops, nil), "tenant B after A's delete", "hit", 9)
}

func containsBlob(trash []imaged.TrashedBlob, key, kind string) bool {
	for _, b := range trash {
		if b.Key == key && b.Kind == kind {
			return true
		}
	}
	return false
}

func wantMaxAge(t *testing.T, r resp, retention time.Duration) {
	t.Helper()
	cc := r.header.Get("Cache-Control")
	age, err := strconv.Atoi(strings.TrimPrefix(cc, "private, max-age="))
	if !strings.HasPrefix(cc, "private, max-age=") || err != nil || age > int(retention.Seconds()) || age < int(retention.Seconds())-60 {
		t.Fatalf("Cache-Control %q; want private, max-age= about %d", cc, int(retention.Seconds()))
	}
}

// multipartBody is a /v1/process form: the file and the ops.
func multipartBody(t *testing.T, file []byte, ops string) ([]byte, string) {
	t.Helper()
	var form bytes.Buffer
	mw := multipart.NewWriter(&form)
	fw, err := mw.CreateFormFile("file", "in.png")
	if err != nil {
		t.Fatal(err)
	}
	fw.Write(file)
	mw.WriteField("ops", ops)
	mw.Close()
	return form.Bytes(), mw.FormDataContentType()
}

// otherPNG is a PNG whose pixels differ from pngBytes'.
func otherPNG(t *testing.T) []byte {
	img := image.NewRGBA(image.Rect(0, 0, 8, 6))
	img.Set(1, 1, color.RGBA{0, 0, 255, 255})
	var buf bytes.Buffer
	if err := png.Encode(&buf, img); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func sha256Hex(b []byte) string {
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])
}

func mustParseOps(t *testing.T, js string) []imaged.Op {
	t.Helper()
	ops, err := imaged.ParseOps([]byte(js))
	if err != nil {
		t.Fatal(err)
	}
	return ops
}

// With the cache off every request runs its pipeline, and the answers still carry the strong
// ETag; files sent with the request and analysis pipelines are never cached.
func TestOutputCacheOffAndWhatItSkips(t *testing.T) {
	st := newStack(t, Config{}, Deps{}, false)
	id := st.uploadImage()
	const ops = `{"image_id":"%s","ops":[{"op":"grayscale"}]}`
	body := []byte(strings.Replace(ops, "%s", id, 1))
	h := map[string]string{"Content-Type": "application/json"}
	first := st.withKey("POST", "/v1/process", body, h)
	second := st.withKey("POST", "/v1/process", body, h)
	if first.status != 200 || second.status != 200 || st.proc.calls.Load() != 2 || first.header.Get("X-Cache") != "" {
		t.Fatalf("cache off: %d, %d, %d pipelines, X-Cache %q; want 200, 200, 2, none", first.status, second.status,
			st.proc.calls.Load(), first.header.Get("X-Cache"))
	}
	if first.header.Get("ETag") == "" || first.header.Get("ETag") != second.header.Get("ETag") || first.header.Get("Cache-Control") != "no-store" {
		t.Fatalf("cache off: ETags %q %q, Cache-Control %q", first.header.Get("ETag"), second.header.Get("ETag"), first.header.Get("Cache-Control"))
	}

	e := newCacheEnv(t, sqliteBackend(t), 0)
	img := e.upload(e.keyA, pngBytes(t))
	for range 2 {
		r := e.process(e.keyA, img, `[{"op":"info"}]`, nil)
		if r.status != 200 || r.header.Get("X-Cache") != "" || r.header.Get("ETag") != "" {
			t.Fatalf("analysis: %d, X-Cache %q, ETag %q; want 200 and neither", r.status, r.header.Get("X-Cache"), r.header.Get("ETag"))
		}
	}
	form, ct := multipartBody(t, pngBytes(t), `[{"op":"grayscale"}]`)
	up := e.do("POST", "/v1/process", form, map[string]string{"X-API-Key": e.keyA, "Content-Type": ct})
	if up.status != 200 || up.header.Get("X-Cache") != "" || up.header.Get("ETag") != "" || e.proc.calls.Load() != 3 {
		t.Fatalf("upload: %d, X-Cache %q, ETag %q, %d pipelines", up.status, up.header.Get("X-Cache"), up.header.Get("ETag"), e.proc.calls.Load())
	}
	// Kept forever (retention 0): a year, the longest a cache is told.
	e.process(e.keyA, img, `[{"op":"grayscale"}]`, nil)
	r := e.process(e.keyA, img, `[{"op":"grayscale"}]`, nil)
	e.want(r, "grayscale again", "hit", 4)
	if r.header.Get("Cache-Control") != "private, max-age=31536000" {
		t.Fatalf("Cache-Control %q with outputs kept forever", r.header.Get("Cache-Control"))
	}
}
