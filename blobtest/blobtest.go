// Package blobtest is the contract every imaged.BlobStore must meet, written once and run by
// each store's tests, so that the local disk and S3 behave the same to their callers.
package blobtest

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/imaged/imaged"
)

// LargeSize is the size of the large-object round trip: above one network buffer and the
// usual single-request sizes, below the multipart threshold of the S3 store.
const LargeSize = 12 << 20

// Run checks store against the BlobStore contract. Every key it uses lies under prefix
// (plus a random run directory, so runs never collide) and is deleted when the test ends.
func Run(t *testing.T, store imaged.BlobStore, prefix string) {
	t.Helper()
	h := &harness{store: store, base: joinKey(prefix, "run-"+randomHex(6))}
	t.Cleanup(h.cleanup)

	t.Run("PutGetHead", h.testPutGetHead)
	t.Run("ContentTypeRoundTrip", h.testContentType)
	t.Run("EmptyObject", h.testEmptyObject)
	t.Run("MissingKeyIsNotFound", h.testMissing)
	t.Run("PrefixOfKeyIsNotFound", h.testPrefixNotObject)
	t.Run("Delete", h.testDelete)
	t.Run("DeleteMissingIsNil", h.testDeleteMissing)
	t.Run("OverwriteReplacesWholeObject", h.testOverwrite)
	t.Run("LargeObjectRoundTrip", h.testLarge)
	t.Run("ConcurrentPutsLeaveOneWholeObject", h.testConcurrentPuts)
	t.Run("CancelledPutStoresNothing", h.testCancelledPut)
	t.Run("URLServesBytes", h.testURL)
	t.Run("ListInKeyOrder", h.testList)
	t.Run("Ping", h.testPing)
}

type harness struct {
	store imaged.BlobStore
	base  string

	mu   sync.Mutex
	keys map[string]bool
}

// key returns a key under the run directory and remembers it for cleanup.
func (h *harness) key(name string) string {
	k := joinKey(h.base, name)
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.keys == nil {
		h.keys = map[string]bool{}
	}
	h.keys[k] = true
	return k
}

func (h *harness) cleanup() {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	h.mu.Lock()
	defer h.mu.Unlock()
	for k := range h.keys {
		// Best effort: a failing store has already failed the test that used the key.
		_ = h.store.Delete(ctx, k)
	}
}

func (h *harness) testPutGetHead(t *testing.T) {
	ctx := t.Context()
	key := h.key("images/2024/01/02/abc.png")
	data := randomBytes(t, 4096)
	before := time.Now()
	mustPut(t, h.store, key, data, "image/png")

	got, info := mustGet(t, h.store, key)
	if !bytes.Equal(got, data) {
		t.Fatalf("Get returned %d bytes that differ from the %d put", len(got), len(data))
	}
	checkInfo(t, "Get", info, key, int64(len(data)), "image/png", before)

	hinfo, err := h.store.Head(ctx, key)
	if err != nil {
		t.Fatalf("Head(%q): %v", key, err)
	}
	checkInfo(t, "Head", hinfo, key, int64(len(data)), "image/png", before)
}

func (h *harness) testContentType(t *testing.T) {
	// The type is whatever the caller said, even where the key's extension says otherwise.
	cases := []struct{ name, contentType string }{
		{"a.jpg", "image/jpeg"},
		{"b.webp", "image/webp"},
		{"c.avif", "image/avif"},
		{"d.bin", "application/octet-stream"},
		{"e.jpg", "image/png"},
		{"f", "application/json"},
		{"g.txt", "text/plain; charset=utf-8"},
	}
	for _, c := range cases {
		key := h.key("types/" + c.name)
		mustPut(t, h.store, key, []byte("content of "+c.name), c.contentType)
		_, info := mustGet(t, h.store, key)
		if info.ContentType != c.contentType {
			t.Errorf("Get(%q).ContentType = %q, want %q", key, info.ContentType, c.contentType)
		}
		hinfo, err := h.store.Head(t.Context(), key)
		if err != nil {
			t.Fatalf("Head(%q): %v", key, err)
		}
		if hinfo.ContentType != c.contentType {
			t.Errorf("Head(%q).ContentType = %q, want %q", key, hinfo.ContentType, c.contentType)
		}
	}
}

func (h *harness) testEmptyObject(t *testing.T) {
	key := h.key("empty.bin")
	mustPut(t, h.store, key, nil, "application/octet-stream")
	got, info := mustGet(t, h.store, key)
	if len(got) != 0 || info.Size != 0 {
		t.Fatalf("empty object read back as %d bytes, Size %d", len(got), info.Size)
	}
}

func (h *harness) testMissing(t *testing.T) {
	ctx := t.Context()
	key := h.key("missing/none.png")
	rc, info, err := h.store.Get(ctx, key)
	if err == nil {
		rc.Close()
		t.Fatalf("Get(%q) of a missing key succeeded", key)
	}
	if rc != nil || info != nil {
		t.Errorf("Get(%q) of a missing key returned a reader (%v) or info (%v) with its error", key, rc, info)
	}
	if !imaged.IsCode(err, imaged.ENotFound) {
		t.Errorf("Get(%q) of a missing key: code %q (%v), want %q", key, imaged.ErrorCode(err), err, imaged.ENotFound)
	}
	if _, err := h.store.Head(ctx, key); !imaged.IsCode(err, imaged.ENotFound) {
		t.Errorf("Head(%q) of a missing key: code %q (%v), want %q", key, imaged.ErrorCode(err), err, imaged.ENotFound)
	}
}

func (h *harness) testPrefixNotObject(t *testing.T) {
	// A "directory" that holds objects is not itself an object.
	ctx := t.Context()
	mustPut(t, h.store, h.key("dir/inner/x.png"), []byte("x"), "image/png")
	for _, name := range []string{"dir", "dir/inner"} {
		key := h.key(name)
		rc, _, err := h.store.Get(ctx, key)
		if err == nil {
			rc.Close()
			t.Errorf("Get(%q) of a key prefix succeeded", key)
		} else if !imaged.IsCode(err, imaged.ENotFound) {
			t.Errorf("Get(%q) of a key prefix: code %q (%v), want %q", key, imaged.ErrorCode(err), err, imaged.ENotFound)
		}
		if _, err := h.store.Head(ctx, key); !imaged.IsCode(err, imaged.ENotFound) {
			t.Errorf("Head(%q) of a key prefix: code %q (%v), want %q", key, imaged.ErrorCode(err), err, imaged.ENotFound)
		}
	}
}

func (h *harness) testDelete(t *testing.T) {
	ctx := t.Context()
	key := h.key("delete/me.png")
	mustPut(t, h.store, key, []byte("bye"), "image/png")
	if err := h.store.Delete(ctx, key); err != nil {
		t.Fatalf("Delete(%q): %v", key, err)
	}
	if _, err := h.store.Head(ctx, key); !imaged.IsCode(err, imaged.ENotFound) {
		t.Fatalf("Head after Delete: code %q (%v), want %q", imaged.ErrorCode(err), err, imaged.ENotFound)
	}
	rc, _, err := h.store.Get(ctx, key)
	if err == nil {
		rc.Close()
		t.Fatalf("Get after Delete succeeded")
	}
	if !imaged.IsCode(err, imaged.ENotFound) {
		t.Fatalf("Get after Delete: code %q (%v), want %q", imaged.ErrorCode(err), err, imaged.ENotFound)
	}
	// The key can be used again.
	mustPut(t, h.store, key, []byte("again"), "image/png")
	if got, _ := mustGet(t, h.store, key); string(got) != "again" {
		t.Fatalf("Get after re-Put = %q, want %q", got, "again")
	}
}

func (h *harness) testDeleteMissing(t *testing.T) {
	key := h.key("delete/never-existed.png")
	if err := h.store.Delete(t.Context(), key); err != nil {
		t.Fatalf("Delete(%q) of a missing key: %v, want nil", key, err)
	}
	if err := h.store.Delete(t.Context(), key); err != nil {
		t.Fatalf("second Delete(%q): %v, want nil", key, err)
	}
}

func (h *harness) testOverwrite(t *testing.T) {
	key := h.key("overwrite/result.webp")
	long := bytes.Repeat([]byte("L"), 100_000)
	short := []byte("short")
	mustPut(t, h.store, key, long, "image/webp")
	mustPut(t, h.store, key, short, "image/png")
	got, info := mustGet(t, h.store, key)
	if !bytes.Equal(got, short) {
		t.Fatalf("after overwrite Get returned %d bytes (%q…), want %q", len(got), head(got), short)
	}
	if info.Size != int64(len(short)) || info.ContentType != "image/png" {
		t.Fatalf("after overwrite info = size %d type %q, want size %d type image/png", info.Size, info.ContentType, len(short))
	}
}

func (h *harness) testLarge(t *testing.T) {
	key := h.key("large/big.tif")
	data := randomBytes(t, LargeSize)
	mustPut(t, h.store, key, data, "image/tiff")
	got, info := mustGet(t, h.store, key)
	if len(got) != len(data) || sha256.Sum256(got) != sha256.Sum256(data) {
		t.Fatalf("large object read back as %d bytes that differ from the %d put", len(got), len(data))
	}
	if info.Size != int64(len(data)) {
		t.Fatalf("large object Size = %d, want %d", info.Size, len(data))
	}
}

func (h *harness) testConcurrentPuts(t *testing.T) {
	ctx := t.Context()
	key := h.key("concurrent/same.bin")
	const writers = 8
	// Each version has its own length and fill, so a torn read is always detectable.
	versions := make([][]byte, writers)
	for i := range versions {
		versions[i] = bytes.Repeat([]byte{byte('a' + i)}, 256<<10+i*4099)
	}
	match := func(b []byte) int {
		for i, v := range versions {
			if bytes.Equal(b, v) {
				return i
			}
		}
		return -1
	}

	var (
		wg      sync.WaitGroup
		errs    = make(chan error, 4*writers)
		writing = make(chan struct{})
	)
	for i := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range 3 {
				if err := h.store.Put(ctx, key, versions[i], "application/octet-stream"); err != nil {
					errs <- fmt.Errorf("Put version %d: %w", i, err)
					return
				}
			}
		}()
	}
	// Readers race the writers: each read is a whole version or not found, never a mix.
	var rg sync.WaitGroup
	for range 2 {
		rg.Add(1)
		go func() {
			defer rg.Done()
			for {
				select {
				case <-writing:
					return
				default:
				}
				rc, _, err := h.store.Get(ctx, key)
				if imaged.IsCode(err, imaged.ENotFound) {
					continue
				}
				if err != nil {
					errs <- fmt.Errorf("Get during writes: %w", err)
					return
				}
				b, err := io.ReadAll(rc)
				rc.Close()
				if err != nil {
					errs <- fmt.Errorf("reading during writes: %w", err)
					return
				}
				if match(b) < 0 {
					errs <- fmt.Errorf("Get during writes returned %d bytes that are no version written (%q…)", len(b), head(b))
					return
				}
			}
		}()
	}
	wg.Wait()
	close(writing)
	rg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	got, info := mustGet(t, h.store, key)
	i := match(got)
	if i < 0 {
		t.Fatalf("after concurrent Puts the object is %d bytes that are no version written (%q…)", len(got), head(got))
	}
	if info.Size != int64(len(versions[i])) {
		t.Fatalf("after concurrent Puts Size = %d, want %d", info.Size, len(versions[i]))
	}
}

func (h *harness) testCancelledPut(t *testing.T) {
	key := h.key("cancelled/never.png")
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	if err := h.store.Put(ctx, key, []byte("never"), "image/png"); err == nil {
		t.Fatalf("Put with a cancelled context succeeded")
	}
	if _, err := h.store.Head(t.Context(), key); !imaged.IsCode(err, imaged.ENotFound) {
		t.Fatalf("Head after a cancelled Put: code %q (%v), want %q", imaged.ErrorCode(err), err, imaged.ENotFound)
	}
}

func (h *harness) testURL(t *testing.T) {
	ctx := t.Context()
	key := h.key("url/served image.png")
	data := randomBytes(t, 70_000)
	mustPut(t, h.store, key, data, "image/png")
	u, err := h.store.URL(ctx, key, time.Minute)
	if err != nil {
		t.Fatalf("URL(%q): %v", key, err)
	}
	if u == "" {
		t.Skip("store offers no URLs")
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		t.Fatalf("URL(%q) = %q is not a valid request URL: %v", key, u, err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("GET %s: %v", u, err)
	}
	defer resp.Body.Close()
	got, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("reading GET %s: %v", u, err)
	}
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: status %d, body %q", u, resp.StatusCode, head(got))
	}
	if !bytes.Equal(got, data) {
		t.Fatalf("GET %s returned %d bytes that differ from the %d put", u, len(got), len(data))
	}
	if ct := resp.Header.Get("Content-Type"); ct != "image/png" {
		t.Errorf("GET %s: Content-Type %q, want image/png", u, ct)
	}
}

func (h *harness) testList(t *testing.T) {
	ctx := t.Context()
	before := time.Now()
	// Names whose key order differs from a plain walk of directories: "a.b.png" < "a/…" < "a0.png".
	names := []string{"a.png", "a/b.png", "a.b.png", "a0.png", "b/c/d.png", "b/c.png", "a/z/y.png"}
	var keys []string
	for i, n := range names {
		k := h.key("list/" + n)
		mustPut(t, h.store, k, bytes.Repeat([]byte("x"), i+1), "image/png")
		keys = append(keys, k)
	}
	outside := h.key("listx.png") // shares the prefix "list" but not "list/"
	mustPut(t, h.store, outside, []byte("x"), "image/png")
	slices.Sort(keys) // bytewise, as the contract orders keys
	prefix := joinKey(h.base, "list") + "/"
	list := func(prefix, after string, limit int) []string {
		t.Helper()
		got, err := h.store.List(ctx, prefix, after, limit)
		if err != nil {
			t.Fatalf("List(%q, %q, %d): %v", prefix, after, limit, err)
		}
		out := []string{}
		for _, b := range got {
			out = append(out, b.Key)
		}
		return out
	}
	if got := list(prefix, "", 100); !slices.Equal(got, keys) {
		t.Fatalf("List(%q) = %q, want %q", prefix, got, keys)
	}
	var paged []string
	for after := ""; ; {
		page := list(prefix, after, 2)
		paged = append(paged, page...)
		if len(page) < 2 {
			break
		}
		after = page[len(page)-1]
	}
	if !slices.Equal(paged, keys) {
		t.Fatalf("List in pages of 2 = %q, want %q", paged, keys)
	}
	if got := list(prefix, keys[2], 100); !slices.Equal(got, keys[3:]) {
		t.Fatalf("List after %q = %q, want %q", keys[2], got, keys[3:])
	}
	if got := list(strings.TrimSuffix(prefix, "/"), "", 100); !slices.Equal(got, append(slices.Clone(keys), outside)) {
		t.Fatalf("List(%q) = %q, want %q", strings.TrimSuffix(prefix, "/"), got, append(keys, outside))
	}
	if got := list(joinKey(h.base, "none")+"/", "", 10); len(got) != 0 {
		t.Fatalf("List of an empty prefix = %q", got)
	}
	infos, err := h.store.List(ctx, joinKey(h.base, "list/b/c/"), "", 10)
	if err != nil || len(infos) != 1 {
		t.Fatalf("List(b/c/) = %v, %v; want one object", infos, err)
	}
	if infos[0].Size != 5 || infos[0].ModTime.Before(before.Add(-5*time.Minute)) || infos[0].ModTime.After(time.Now().Add(5*time.Minute)) {
		t.Fatalf("List(b/c/) = %+v; want size 5 and a time near %v", infos[0], before)
	}
	mustDelete(t, h.store, keys[0])
	if got := list(prefix, "", 100); !slices.Equal(got, keys[1:]) {
		t.Fatalf("List after a Delete = %q, want %q", got, keys[1:])
	}
}

func mustDelete(t *testing.T, s imaged.BlobStore, key string) {
	t.Helper()
	if err := s.Delete(t.Context(), key); err != nil {
		t.Fatalf("Delete(%q): %v", key, err)
	}
}

func (h *harness) testPing(t *testing.T) {
	if err := h.store.Ping(t.Context()); err != nil {
		t.Fatalf("Ping: %v", err)
	}
}

func mustPut(t *testing.T, s imaged.BlobStore, key string, data []byte, contentType string) {
	t.Helper()
	if err := s.Put(t.Context(), key, data, contentType); err != nil {
		t.Fatalf("Put(%q, %d bytes, %q): %v", key, len(data), contentType, err)
	}
}

func mustGet(t *testing.T, s imaged.BlobStore, key string) ([]byte, *imaged.BlobInfo) {
	t.Helper()
	rc, info, err := s.Get(t.Context(), key)
	if err != nil {
		t.Fatalf("Get(%q): %v", key, err)
	}
	defer rc.Close()
	if info == nil {
		t.Fatalf("Get(%q) returned no BlobInfo", key)
	}
	b, err := io.ReadAll(rc)
	if err != nil {
		t.Fatalf("reading Get(%q): %v", key, err)
	}
	return b, info
}

func checkInfo(t *testing.T, op string, info *imaged.BlobInfo, key string, size int64, contentType string, before time.Time) {
	t.Helper()
	if info == nil {
		t.Fatalf("%s(%q) returned no BlobInfo", op, key)
	}
	if info.Key != key {
		t.Errorf("%s(%q).Key = %q", op, key, info.Key)
	}
	if info.Size != size {
		t.Errorf("%s(%q).Size = %d, want %d", op, key, info.Size, size)
	}
	if info.ContentType != contentType {
		t.Errorf("%s(%q).ContentType = %q, want %q", op, key, info.ContentType, contentType)
	}
	// Remote clocks drift and some stores keep whole seconds: allow a generous window.
	if info.ModTime.IsZero() || info.ModTime.Before(before.Add(-5*time.Minute)) || info.ModTime.After(time.Now().Add(5*time.Minute)) {
		t.Errorf("%s(%q).ModTime = %v, want close to %v", op, key, info.ModTime, before)
	}
}

func joinKey(prefix, name string) string {
	prefix = strings.Trim(prefix, "/")
	if prefix == "" {
		return name
	}
	return prefix + "/" + name
}

func randomBytes(t *testing.T, n int) []byte {
	t.Helper()
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return b
}

func randomHex(n int) string {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		panic(errors.New("blobtest: no randomness: " + err.Error()))
	}
	return hex.EncodeToString(b)
}

// head shortens b for a failure message.
func head(b []byte) []byte {
	if len(b) > 16 {
		return b[:16]
	}
	return b
}
