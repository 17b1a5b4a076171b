package http

import (
	"bytes"
	"context"
	"encoding/json"
	"image"
	"image/color"
	"image/png"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/imaged/imaged"
	"github.com/imaged/imaged/auth"
	"github.com/imaged/imaged/dbqueue"
	"github.com/imaged/imaged/fs"
	"github.com/imaged/imaged/sqlite"
)

// fakeProcessor runs any known op instantly: its output names the pipeline, so tests can tell
// what ran. Process blocks while gate is set and not closed.
type fakeProcessor struct {
	calls atomic.Int64
	gate  chan struct{}
}

var knownOps = map[string]bool{"resize": true, "convert": true, "blur": true, "grayscale": true, "info": true}

// The packages that implement ops register their traits; these tests link none of them, so the
// fake declares the one that answers with JSON.
func init() {
	imaged.RegisterOp(imaged.OpSpec{Name: "info", Kind: imaged.OpAnalysis, Params: []imaged.Param{}})
	for _, name := range []string{"resize", "convert", "blur", "grayscale"} {
		imaged.RegisterOp(imaged.OpSpec{Name: name})
	}
}

func (p *fakeProcessor) Validate(ops []imaged.Op) error {
	var errs []error
	for i, o := range ops {
		if !knownOps[o.Name] {
			errs = append(errs, imaged.FieldErrorf("ops["+string(rune('0'+i))+"].op", "unknown op %q", o.Name))
		}
	}
	return imaged.Violations(errs)
}

func (p *fakeProcessor) Process(ctx context.Context, src []byte, ops []imaged.Op, opts imaged.ProcessOptions) (*imaged.Result, error) {
	p.calls.Add(1)
	if p.gate != nil {
		select {
		case <-p.gate:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	b, _ := json.Marshal(ops)
	if imaged.HasAnalysis(ops) {
		return &imaged.Result{Analyses: []imaged.Analysis{{Op: "info", Result: json.RawMessage(`{}`)}}}, nil
	}
	return &imaged.Result{Data: append([]byte("out:"), b...), Format: "webp", ContentType: "image/webp", Width: 1, Height: 1, Changed: true}, nil
}

// countingStore counts image lookups, to show work that was not done.
type countingStore struct {
	*sqlite.Store
	imageReads atomic.Int64
}

func (s *countingStore) Image(ctx context.Context, tenant, id string) (*imaged.Image, error) {
	s.imageReads.Add(1)
	return s.Store.Image(ctx, tenant, id)
}

type stack struct {
	t     *testing.T
	srv   *httptest.Server
	api   *Server
	store *countingStore
	proc  *fakeProcessor
	key   string // a valid key with no limits of its own
}

// newStack serves the API over a real SQLite store, local-disk blobs and the database queue,
// with keys required unless noAuth.
func newStack(t *testing.T, cfg Config, deps Deps, noAuth bool) *stack {
	t.Helper()
	db, blobs := openSQLite(t)
	st := &stack{t: t, store: &countingStore{Store: db}, proc: &fakeProcessor{}}
	deps.Store, deps.Blobs, deps.Processor, deps.Log = st.store, blobs, st.proc, quietLog()
	if deps.Queue == nil {
		q := dbqueue.New(db, dbqueue.Options{})
		t.Cleanup(func() { q.Close() })
		deps.Queue = q
	}
	if !noAuth && deps.Auth == nil {
		deps.Auth = auth.New(db, auth.Options{Log: quietLog()})
	}
	if !noAuth {
		st.key = st.newKey(&imaged.APIKey{Name: "test"})
	}
	st.api = NewServer(cfg, deps)
	st.srv = httptest.NewServer(checkContract(t, st.api))
	t.Cleanup(st.srv.Close)
	return st
}

// openSQLite opens a new SQLite store and local-disk blob store, closed when the test ends.
func openSQLite(t *testing.T) (*sqlite.Store, imaged.BlobStore) {
	t.Helper()
	dir := t.TempDir()
	db, err := sqlite.Open(t.Context(), filepath.Join(dir, "imaged.db"), sqlite.OpenOptions{Logger: quietLog()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	blobs, err := fs.New(filepath.Join(dir, "blobs"), fs.Options{})
	if err != nil {
		t.Fatal(err)
	}
	return db, blobs
}

func quietLog() *slog.Logger { return slog.New(slog.DiscardHandler) }

func (st *stack) newKey(k *imaged.APIKey) string {
	st.t.Helper()
	token, err := auth.Create(st.t.Context(), st.store.Store, k)
	if err != nil {
		st.t.Fatal(err)
	}
	return token
}

type resp struct {
	status int
	header http.Header
	body   []byte
}

func (r resp) errorCode() string {
	var b errorBody
	_ = json.Unmarshal(r.body, &b)
	return b.Error.Code
}

var client = &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 256}, CheckRedirect: func(*http.Request, []*http.Request) error {
	return http.ErrUseLastResponse
}}

// do sends a request; header may hold X-API-Key etc.
func (st *stack) do(method, path string, body []byte, header map[string]string) resp {
	st.t.Helper()
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequest(method, st.srv.URL+path, rd)
	if err != nil {
		st.t.Fatal(err)
	}
	for k, v := range header {
		req.Header.Set(k, v)
	}
	res, err := client.Do(req)
	if err != nil {
		st.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	return resp{status: res.StatusCode, header: res.Header, body: b}
}

func (st *stack) withKey(method, path string, body []byte, header map[string]string) resp {
	st.t.Helper()
	h := map[string]string{"X-API-Key": st.key}
	for k, v := range header {
		h[k] = v
	}
	return st.do(method, path, body, h)
}

// pngBytes is a small real PNG.
func pngBytes(t testing.TB) []byte {
	img := image.NewRGBA(image.Rect(0, 0, 8, 6))
	for i := range img.Pix {
		img.Pix[i] = byte(i)
	}
	img.Set(0, 0, color.RGBA{255, 0, 0, 255})
	var buf bytes.Buffer
	if err := png.Encode(&buf, img); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// uploadImage stores a PNG and returns its id.
func (st *stack) uploadImage() string {
	st.t.Helper()
	r := st.withKey("POST", "/v1/images", pngBytes(st.t), map[string]string{"Content-Type": "image/png"})
	if r.status != 201 {
		st.t.Fatalf("upload: %d %s", r.status, r.body)
	}
	var img imaged.Image
	json.Unmarshal(r.body, &img)
	return img.ID
}

// parallel runs n requests at once and counts answers by status.
func parallel(n int, do func() int) map[int]int {
	var mu sync.Mutex
	counts := map[int]int{}
	var wg sync.WaitGroup
	start := make(chan struct{})
	for range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			s := do()
			mu.Lock()
			counts[s]++
			mu.Unlock()
		}()
	}
	close(start)
	wg.Wait()
	return counts
}
