package fs

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/imaged/imaged"
	"github.com/imaged/imaged/blobtest"
)

var testSecret = []byte("0123456789abcdef0123456789abcdef")

// serveBlobs answers GET /v1/blobs/{key...} the way the HTTP server does: verify, then stream.
func serveBlobs(store **Store) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /v1/blobs/{key...}", func(w http.ResponseWriter, r *http.Request) {
		key := r.PathValue("key")
		expires, err := strconv.ParseInt(r.URL.Query().Get("expires"), 10, 64)
		if err != nil || !(*store).Verify(key, expires, r.URL.Query().Get("sig"), time.Now()) {
			http.Error(w, "forbidden", http.StatusForbidden)
			return
		}
		rc, info, err := (*store).Get(r.Context(), key)
		if err != nil {
			http.Error(w, "not found", http.StatusNotFound)
			return
		}
		defer rc.Close()
		w.Header().Set("Content-Type", info.ContentType)
		w.Header().Set("Content-Length", strconv.FormatInt(info.Size, 10))
		io.Copy(w, rc)
	})
	return mux
}

func newServedStore(t *testing.T) (*Store, *httptest.Server) {
	t.Helper()
	var store *Store
	srv := httptest.NewServer(serveBlobs(&store))
	t.Cleanup(srv.Close)
	s, err := New(t.TempDir(), Options{BaseURL: srv.URL, Secret: testSecret})
	if err != nil {
		t.Fatal(err)
	}
	store = s
	return s, srv
}

func TestContract(t *testing.T) {
	store, _ := newServedStore(t)
	blobtest.Run(t, store, "contract")
}

func TestContractWithoutURLs(t *testing.T) {
	store, err := New(t.TempDir(), Options{})
	if err != nil {
		t.Fatal(err)
	}
	u, err := store.URL(t.Context(), "images/a.png", time.Minute)
	if err != nil || u != "" {
		t.Fatalf("URL without base URL and secret = %q, %v; want \"\", nil", u, err)
	}
	blobtest.Run(t, store, "")
}

func TestNewNeedsBothBaseURLAndSecret(t *testing.T) {
	for _, opts := range []Options{
		{BaseURL: "http://localhost:8000"},
		{Secret: testSecret},
		{BaseURL: "localhost:8000", Secret: testSecret},
	} {
		if _, err := New(t.TempDir(), opts); !imaged.IsCode(err, imaged.EInvalid) {
			t.Errorf("New(%+v): %v, want %s", opts, err, imaged.EInvalid)
		}
	}
}

func TestVerify(t *testing.T) {
	store, err := New(t.TempDir(), Options{BaseURL: "https://img.example.com/", Secret: testSecret})
	if err != nil {
		t.Fatal(err)
	}
	key := "images/2024/05/06/ab cd.png"
	raw, err := store.URL(t.Context(), key, 10*time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	u, err := url.Parse(raw)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := u.Path, "/v1/blobs/"+key; got != want {
		t.Fatalf("URL path = %q, want %q (raw %s)", got, want, raw)
	}
	if !strings.HasPrefix(raw, "https://img.example.com/v1/blobs/images/2024/05/06/ab%20cd.png?") {
		t.Fatalf("URL = %s: want the base URL once and the key escaped", raw)
	}
	expires, err := strconv.ParseInt(u.Query().Get("expires"), 10, 64)
	if err != nil {
		t.Fatal(err)
	}
	sig := u.Query().Get("sig")
	now := time.Now()
	if d := time.Unix(expires, 0).Sub(now); d < 9*time.Minute || d > 11*time.Minute {
		t.Fatalf("expires is %v from now, want about 10m", d)
	}
	if !store.Verify(key, expires, sig, now) {
		t.Fatal("Verify rejected the URL's own signature")
	}

	other, err := New(t.TempDir(), Options{BaseURL: "https://img.example.com", Secret: []byte("another secret, also 32 bytes...")})
	if err != nil {
		t.Fatal(err)
	}
	flipped := []byte(sig)
	if flipped[0] == 'a' {
		flipped[0] = 'b'
	} else {
		flipped[0] = 'a'
	}
	cases := []struct {
		name    string
		store   *Store
		key     string
		expires int64
		sig     string
		now     time.Time
	}{
		{"tampered signature", store, key, expires, string(flipped), now},
		{"truncated signature", store, key, expires, sig[:len(sig)-2], now},
		{"signature not hex", store, key, expires, "zz" + sig[2:], now},
		{"empty signature", store, key, expires, "", now},
		{"other key", store, "images/2024/05/06/other.png", expires, sig, now},
		{"later expiry", store, key, expires + 3600, sig, now},
		{"expired", store, key, expires, sig, time.Unix(expires, 0)},
		{"long expired", store, key, expires, sig, now.Add(time.Hour)},
		{"other secret", other, key, expires, sig, now},
	}
	for _, c := range cases {
		if c.store.Verify(c.key, c.expires, c.sig, c.now) {
			t.Errorf("%s: Verify accepted it", c.name)
		}
	}
}

func TestServedURLRejectsTamperingAndExpiry(t *testing.T) {
	store, _ := newServedStore(t)
	ctx := t.Context()
	if err := store.Put(ctx, "images/x.png", []byte("png bytes"), "image/png"); err != nil {
		t.Fatal(err)
	}
	get := func(u string) int {
		t.Helper()
		resp, err := http.Get(u)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	good, err := store.URL(ctx, "images/x.png", time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	if code := get(good); code != http.StatusOK {
		t.Fatalf("GET signed URL: %d", code)
	}
	u, _ := url.Parse(good)
	q := u.Query()
	q.Set("expires", strconv.FormatInt(time.Now().Add(time.Hour).Unix(), 10))
	u.RawQuery = q.Encode()
	if code := get(u.String()); code != http.StatusForbidden {
		t.Fatalf("GET with a lengthened expiry: %d, want 403", code)
	}
	expired, err := store.URL(ctx, "images/x.png", time.Nanosecond)
	if err != nil {
		t.Fatal(err)
	}
	time.Sleep(1100 * time.Millisecond) // expiry has one-second resolution
	if code := get(expired); code != http.StatusForbidden {
		t.Fatalf("GET expired URL: %d, want 403", code)
	}
}

func TestKeyValidation(t *testing.T) {
	store, err := New(t.TempDir(), Options{})
	if err != nil {
		t.Fatal(err)
	}
	ctx := t.Context()
	bad := []string{
		"",
		"/etc/passwd",
		"../escape.png",
		"images/../../escape.png",
		"images/./a.png",
		"images//a.png",
		"images/",
		`images\a.png`,
		`..\escape.png`,
		"images/a\x00.png",
		".tmp/put-123",
		"images/.a.png.meta",
		"images/.hidden",
		"images/" + strings.Repeat("a", maxSegmentLen+1),
		strings.Repeat("a/", maxKeyLen/2+1) + "a",
		"images/\xff.png",
	}
	for _, key := range bad {
		if err := store.Put(ctx, key, []byte("x"), "image/png"); !imaged.IsCode(err, imaged.EInvalid) {
			t.Errorf("Put(%q): %v, want %s", key, err, imaged.EInvalid)
		}
		if _, _, err := store.Get(ctx, key); !imaged.IsCode(err, imaged.EInvalid) {
			t.Errorf("Get(%q): %v, want %s", key, err, imaged.EInvalid)
		}
		if _, err := store.Head(ctx, key); !imaged.IsCode(err, imaged.EInvalid) {
			t.Errorf("Head(%q): %v, want %s", key, err, imaged.EInvalid)
		}
		if err := store.Delete(ctx, key); !imaged.IsCode(err, imaged.EInvalid) {
			t.Errorf("Delete(%q): %v, want %s", key, err, imaged.EInvalid)
		}
		if _, err := store.URL(ctx, key, time.Minute); !imaged.IsCode(err, imaged.EInvalid) {
			t.Errorf("URL(%q): %v, want %s", key, err, imaged.EInvalid)
		}
	}
	for _, key := range []string{"a", "images/2024/01/02/0123abcd.jpg", "results/x/y.z.webp", "with space/ünïcode.png", "a..b/c"} {
		if err := ValidateKey(key); err != nil {
			t.Errorf("ValidateKey(%q): %v, want nil", key, err)
		}
	}
}

func TestSidecarNeverReadableAsObject(t *testing.T) {
	root := t.TempDir()
	store, err := New(root, Options{})
	if err != nil {
		t.Fatal(err)
	}
	ctx := t.Context()
	if err := store.Put(ctx, "images/a.png", []byte("a"), "image/x-custom"); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(root, "images", ".a.png.meta")); err != nil {
		t.Fatalf("sidecar missing: %v", err)
	}
	if _, _, err := store.Get(ctx, "images/.a.png.meta"); !imaged.IsCode(err, imaged.EInvalid) {
		t.Fatalf("Get of the sidecar's name: %v, want %s", err, imaged.EInvalid)
	}
	// Only the object and its sidecar are in its directory: no temp files linger.
	entries, err := os.ReadDir(filepath.Join(root, "images"))
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	if strings.Join(names, ",") != ".a.png.meta,a.png" {
		t.Fatalf("images/ holds %v, want the object and its sidecar", names)
	}
	if tmp, _ := os.ReadDir(filepath.Join(root, tempDir)); len(tmp) != 0 {
		t.Fatalf("temp directory holds %d files after Put", len(tmp))
	}
}

func TestContentTypeFromExtensionWithoutSidecar(t *testing.T) {
	root := t.TempDir()
	store, err := New(root, Options{})
	if err != nil {
		t.Fatal(err)
	}
	// Files copied into the directory by hand have no sidecar.
	if err := os.MkdirAll(filepath.Join(root, "images"), 0o755); err != nil {
		t.Fatal(err)
	}
	for name, want := range map[string]string{"a.png": "image/png", "b.jpg": "image/jpeg", "c.unknownext": "application/octet-stream"} {
		if err := os.WriteFile(filepath.Join(root, "images", name), []byte("x"), 0o644); err != nil {
			t.Fatal(err)
		}
		info, err := store.Head(t.Context(), "images/"+name)
		if err != nil {
			t.Fatal(err)
		}
		if info.ContentType != want {
			t.Errorf("Head(images/%s).ContentType = %q, want %q", name, info.ContentType, want)
		}
	}
}

func TestStaleSidecarIsNotTrusted(t *testing.T) {
	root := t.TempDir()
	store, err := New(root, Options{})
	if err != nil {
		t.Fatal(err)
	}
	ctx := t.Context()
	if err := store.Put(ctx, "images/a.png", []byte("a"), "image/x-first"); err != nil {
		t.Fatal(err)
	}
	// The data file is replaced behind the store's back (as a writer in another process
	// does between its two renames): the sidecar no longer describes it.
	p := filepath.Join(root, "images", "a.png")
	if err := os.WriteFile(p+".new", []byte("bb"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(p+".new", p); err != nil {
		t.Fatal(err)
	}
	info, err := store.Head(ctx, "images/a.png")
	if err != nil {
		t.Fatal(err)
	}
	if fileID(mustStat(t, p)) != "" && info.ContentType != "image/png" {
		t.Fatalf("ContentType with a stale sidecar = %q, want the extension's image/png", info.ContentType)
	}
}

func mustStat(t *testing.T, p string) os.FileInfo {
	t.Helper()
	fi, err := os.Stat(p)
	if err != nil {
		t.Fatal(err)
	}
	return fi
}

func TestNewCleansStaleTempFiles(t *testing.T) {
	root := t.TempDir()
	store, err := New(root, Options{})
	if err != nil {
		t.Fatal(err)
	}
	ctx := t.Context()
	if err := store.Put(ctx, "images/kept.png", []byte("kept"), "image/png"); err != nil {
		t.Fatal(err)
	}
	tmp := filepath.Join(root, tempDir)
	// What a crash mid-Put leaves: a half-written temp file, an hour old, and one a Put in
	// another process is writing right now.
	stale := filepath.Join(tmp, "put-crashed")
	fresh := filepath.Join(tmp, "put-in-flight")
	for _, p := range []string{stale, fresh} {
		if err := os.WriteFile(p, []byte("half"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	old := time.Now().Add(-2 * staleAfter)
	if err := os.Chtimes(stale, old, old); err != nil {
		t.Fatal(err)
	}

	// The leftovers are invisible to readers.
	info, err := store.Head(ctx, "images/kept.png")
	if err != nil || info.Size != 4 {
		t.Fatalf("Head with leftovers present: %+v, %v", info, err)
	}

	if _, err := New(root, Options{}); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(stale); !os.IsNotExist(err) {
		t.Errorf("stale temp file survived New: %v", err)
	}
	if _, err := os.Stat(fresh); err != nil {
		t.Errorf("a fresh temp file (a Put in flight elsewhere) was removed: %v", err)
	}
	rc, _, err := store.Get(ctx, "images/kept.png")
	if err != nil {
		t.Fatalf("object lost by New's cleanup: %v", err)
	}
	rc.Close()
}

func TestKeyConflicts(t *testing.T) {
	store, err := New(t.TempDir(), Options{})
	if err != nil {
		t.Fatal(err)
	}
	ctx := t.Context()
	if err := store.Put(ctx, "a/b.png", []byte("x"), "image/png"); err != nil {
		t.Fatal(err)
	}
	if err := store.Put(ctx, "a", []byte("x"), "image/png"); !imaged.IsCode(err, imaged.EConflict) {
		t.Errorf("Put over a key prefix: %v, want %s", err, imaged.EConflict)
	}
	if err := store.Put(ctx, "a/b.png/c.png", []byte("x"), "image/png"); !imaged.IsCode(err, imaged.EConflict) {
		t.Errorf("Put below an object: %v, want %s", err, imaged.EConflict)
	}
	if _, err := store.Head(ctx, "a/b.png/c.png"); !imaged.IsCode(err, imaged.ENotFound) {
		t.Errorf("Head below an object: %v, want %s", err, imaged.ENotFound)
	}
	if err := store.Delete(ctx, "a"); err != nil {
		t.Errorf("Delete of a key prefix: %v, want nil", err)
	}
	if _, err := store.Head(ctx, "a/b.png"); err != nil {
		t.Errorf("Delete of a key prefix removed the object below it: %v", err)
	}
}

func TestPingFailsWhenRootIsGone(t *testing.T) {
	root := filepath.Join(t.TempDir(), "blobs")
	store, err := New(root, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if err := store.Ping(t.Context()); err != nil {
		t.Fatalf("Ping: %v", err)
	}
	if err := os.RemoveAll(root); err != nil {
		t.Fatal(err)
	}
	if err := store.Ping(context.Background()); !imaged.IsCode(err, imaged.EUnavailable) {
		t.Fatalf("Ping with the directory gone: %v, want %s", err, imaged.EUnavailable)
	}
}

func TestConcurrentPutsKeepTypeWithData(t *testing.T) {
	store, err := New(t.TempDir(), Options{})
	if err != nil {
		t.Fatal(err)
	}
	ctx := t.Context()
	const key, writers = "results/same.bin", 6
	typeOf := func(b []byte) string { return "image/x-v" + string(b[:1]) }
	var wg sync.WaitGroup
	stop := make(chan struct{})
	errs := make(chan string, 100)
	for i := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			data := []byte(strings.Repeat(string(rune('a'+i)), 1000+i))
			for range 30 {
				if err := store.Put(ctx, key, data, typeOf(data)); err != nil {
					errs <- err.Error()
					return
				}
			}
		}()
	}
	var rg sync.WaitGroup
	rg.Add(1)
	go func() {
		defer rg.Done()
		for {
			select {
			case <-stop:
				return
			default:
			}
			rc, info, err := store.Get(ctx, key)
			if err != nil {
				continue
			}
			b, _ := io.ReadAll(rc)
			rc.Close()
			if len(b) > 0 && info.ContentType != typeOf(b) {
				errs <- "Get returned data of " + typeOf(b) + " with type " + info.ContentType
				return
			}
		}
	}()
	wg.Wait()
	close(stop)
	rg.Wait()
	close(errs)
	for e := range errs {
		t.Error(e)
	}
	rc, info, err := store.Get(ctx, key)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(rc)
	rc.Close()
	if info.ContentType != typeOf(b) {
		t.Fatalf("final object: data of %s with type %s", typeOf(b), info.ContentType)
	}
}
