package http

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"mime/multipart"
	"net/http/httptest"
	"net/netip"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"

	"github.com/imaged/imaged"
	"github.com/imaged/imaged/auth"
	"github.com/imaged/imaged/outbound"
	"github.com/imaged/imaged/prom"
	"github.com/imaged/imaged/ratelimit"
)

// waitFor polls cond until it holds, failing the test after 5 s.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting until %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// uploadImageAs stores a PNG with key ("" sends none) and returns its id.
func (st *stack) uploadImageAs(key string) string {
	st.t.Helper()
	h := map[string]string{"Content-Type": "image/png"}
	if key != "" {
		h["X-API-Key"] = key
	}
	r := st.do("POST", "/v1/images", pngBytes(st.t), h)
	if r.status != 201 {
		st.t.Fatalf("upload: %d %s", r.status, r.body)
	}
	var img imaged.Image
	json.Unmarshal(r.body, &img)
	return img.ID
}

// as sends a request with key and a JSON body (nil: none).
func (st *stack) as(key, method, path string, body any) resp {
	st.t.Helper()
	var b []byte
	h := map[string]string{"X-API-Key": key}
	if body != nil {
		b, _ = json.Marshal(body)
		h["Content-Type"] = "application/json"
	}
	return st.do(method, path, b, h)
}

// createKey makes a key through POST /v1/keys with the admin key and returns the answer.
func (st *stack) createKey(admin string, req map[string]any) keyCreated {
	st.t.Helper()
	r := st.as(admin, "POST", "/v1/keys", req)
	if r.status != 201 {
		st.t.Fatalf("POST /v1/keys %v: %d %s", req, r.status, r.body)
	}
	var k keyCreated
	if err := json.Unmarshal(r.body, &k); err != nil || k.APIKey == nil || k.Key == "" {
		st.t.Fatalf("POST /v1/keys answered %s (%v)", r.body, err)
	}
	return k
}

func TestKeyManagementOverTheAPI(t *testing.T) {
	st := newStack(t, Config{}, Deps{}, false)
	admin := st.newKey(&imaged.APIKey{Name: "admin", Admin: true})
	// A second process sharing the database: its own authenticator, its own server.
	deps := st.api.deps
	deps.Auth = auth.New(st.store.Store, auth.Options{Log: quietLog()})
	second := httptest.NewServer(NewServer(st.api.cfg, deps))
	t.Cleanup(second.Close)
	other := &stack{t: t, srv: second, store: st.store}

	k := st.createKey(admin, map[string]any{"name": "ci", "rate_limit": 100, "burst": 10, "concurrency": 3})
	if k.Tenant == "" || k.Tenant == imaged.DefaultTenant || k.Admin || k.RateLimit != 100 || k.Burst != 10 || k.Concurrency != 3 {
		t.Fatalf("a key created without a tenant: %+v, want a tenant of its own and the limits given", k.APIKey)
	}
	if _, err := st.store.Tenant(t.Context(), k.Tenant); err != nil {
		t.Fatalf("the new key's tenant was not recorded: %v", err)
	}
	// The new key works, in its own tenant: it sees nothing of the default tenant's.
	mine := st.uploadImageAs(k.Key)
	theirs := st.uploadImage()
	if r := st.as(k.Key, "GET", "/v1/images/"+theirs, nil); r.status != 404 {
		t.Fatalf("the new key reading another tenant's image: %d", r.status)
	}
	if r := st.as(k.Key, "GET", "/v1/images/"+mine, nil); r.status != 200 {
		t.Fatalf("the new key reading its own image: %d %s", r.status, r.body)
	}
	if r := other.as(k.Key, "GET", "/v1/images/"+mine, nil); r.status != 200 {
		t.Fatalf("the new key on the second server: %d %s", r.status, r.body)
	}
	inDefault := st.createKey(admin, map[string]any{"name": "team", "tenant": imaged.DefaultTenant})
	if inDefault.Tenant != imaged.DefaultTenant {
		t.Fatalf("a key created in the default tenant: %+v", inDefault.APIKey)
	}
	if r := st.as(inDefault.Key, "GET", "/v1/images/"+theirs, nil); r.status != 200 {
		t.Fatalf("a key of the default tenant reading its tenant's image: %d", r.status)
	}

	// The list has the CLI's fields and never a secret.
	r := st.as(admin, "GET", "/v1/keys", nil)
	var all list[map[string]any]
	if err := json.Unmarshal(r.body, &all); r.status != 200 || err != nil || len(all.Items) != 4 {
		t.Fatalf("GET /v1/keys: %d %s", r.status, r.body)
	}
	secret := k.Key[strings.LastIndex(k.Key, "_")+1:]
	if strings.Contains(string(r.body), secret) || strings.Contains(string(r.body), `"hash"`) {
		t.Fatalf("the key list shows a secret: %s", r.body)
	}
	for _, f := range []string{"id", "name", "tenant", "prefix", "admin", "rate_limit", "burst", "concurrency", "created_at"} {
		if _, ok := all.Items[0][f]; !ok {
			t.Fatalf("a listed key lacks %s: %v", f, all.Items[0])
		}
	}
	r = st.as(admin, "GET", "/v1/keys?tenant="+k.Tenant, nil)
	var one list[imaged.APIKey]
	if json.Unmarshal(r.body, &one); r.status != 200 || len(one.Items) != 1 || one.Items[0].ID != k.ID {
		t.Fatalf("GET /v1/keys?tenant=%s: %d %s", k.Tenant, r.status, r.body)
	}

	// Revoking bites on the very next request, in this process and in the other.
	r = st.as(admin, "DELETE", "/v1/keys/"+k.ID, nil)
	var revoked imaged.APIKey
	if json.Unmarshal(r.body, &revoked); r.status != 200 || revoked.RevokedAt == nil {
		t.Fatalf("DELETE /v1/keys/%s: %d %s", k.ID, r.status, r.body)
	}
	for name, s := range map[string]*stack{"this server": st, "the second server": other} {
		if r := s.as(k.Key, "GET", "/v1/images/"+mine, nil); r.status != 401 || r.errorCode() != imaged.EUnauthenticated {
			t.Fatalf("the revoked key on %s: %d %s", name, r.status, r.body)
		}
	}
	if r := st.as(admin, "DELETE", "/v1/keys/nosuchkey", nil); r.status != 404 {
		t.Fatalf("revoking an unknown key: %d", r.status)
	}
	if r := st.as(admin, "POST", "/v1/keys", map[string]any{"name": " "}); r.status != 400 {
		t.Fatalf("a key without a name: %d %s", r.status, r.body)
	}
	// A non-admin key, even a new one, manages nothing.
	if r := st.as(inDefault.Key, "POST", "/v1/keys", map[string]any{"name": "mine", "admin": true}); r.status != 403 || r.errorCode() != imaged.EPermissionDenied {
		t.Fatalf("a non-admin key creating a key: %d %s", r.status, r.body)
	}
}

// countingBlobs counts stored objects.
type countingBlobs struct {
	imaged.BlobStore
	puts atomic.Int64
}

func (b *countingBlobs) Put(ctx context.Context, key string, data []byte, contentType string) error {
	b.puts.Add(1)
	return b.BlobStore.Put(ctx, key, data, contentType)
}

func TestQuota(t *testing.T) {
	st := newStack(t, Config{}, Deps{}, false)
	blobs := &countingBlobs{BlobStore: st.api.deps.Blobs}
	st.api.deps.Blobs = blobs
	admin := st.newKey(&imaged.APIKey{Name: "admin", Admin: true})
	if r := st.as(admin, "PUT", "/v1/tenants/"+imaged.DefaultTenant, map[string]any{"quota_images": 2}); r.status != 200 {
		t.Fatalf("PUT /v1/tenants/default: %d %s", r.status, r.body)
	}
	refused := func(want string) {
		t.Helper()
		puts := blobs.puts.Load()
		before, _ := st.store.Usage(t.Context(), imaged.DefaultTenant)
		r := st.withKey("POST", "/v1/images", pngBytes(t), map[string]string{"Content-Type": "image/png"})
		if r.status != 403 || r.errorCode() != imaged.EQuotaExceeded || !strings.Contains(string(r.body), want) {
			t.Fatalf("an upload past the quota: %d %s, want 403 quota_exceeded naming %q", r.status, r.body, want)
		}
		after, _ := st.store.Usage(t.Context(), imaged.DefaultTenant)
		if blobs.puts.Load() != puts || after != before {
			t.Fatalf("a refused upload stored something: %d blobs, usage %+v → %+v", blobs.puts.Load()-puts, before, after)
		}
	}
	first, _ := st.uploadImage(), st.uploadImage()
	refused("2 of its quota of 2 images")
	// Deleting an image frees room for one more.
	if r := st.withKey("DELETE", "/v1/images/"+first, nil, nil); r.status != 204 && r.status != 200 {
		t.Fatalf("DELETE: %d %s", r.status, r.body)
	}
	st.uploadImage()
	refused("quota of 2 images")
	// Another tenant's quota is its own.
	k := st.createKey(admin, map[string]any{"name": "elsewhere"})
	st.uploadImageAs(k.Key)
	st.uploadImageAs(k.Key)
	st.uploadImageAs(k.Key)

	// A quota in bytes: room for exactly one more image of this size.
	size := int64(len(pngBytes(t)))
	u, _ := st.store.Usage(t.Context(), imaged.DefaultTenant)
	r := st.as(admin, "PUT", "/v1/tenants/"+imaged.DefaultTenant, map[string]any{"quota_images": 0, "quota_bytes": u.Bytes + size})
	var v tenantView
	if json.Unmarshal(r.body, &v); r.status != 200 || v.QuotaBytes != u.Bytes+size || v.QuotaImages != 0 || v.Usage != u {
		t.Fatalf("PUT quota_bytes: %d %s", r.status, r.body)
	}
	st.uploadImage()
	refused(fmt.Sprintf("quota of %d bytes", u.Bytes+size))
	r = st.as(admin, "GET", "/v1/tenants/"+imaged.DefaultTenant, nil)
	if json.Unmarshal(r.body, &v); r.status != 200 || v.Usage.Images != 3 || v.Usage.Bytes != u.Bytes+size {
		t.Fatalf("GET /v1/tenants/default: %d %s", r.status, r.body)
	}
	r = st.as(admin, "GET", "/v1/tenants", nil)
	var tenants list[tenantView]
	if json.Unmarshal(r.body, &tenants); r.status != 200 || len(tenants.Items) != 2 {
		t.Fatalf("GET /v1/tenants: %d %s", r.status, r.body)
	}
	if r := st.as(admin, "PUT", "/v1/tenants/x", map[string]any{"quota_bytes": -1}); r.status != 400 {
		t.Fatalf("a negative quota: %d %s", r.status, r.body)
	}
	if r := st.as(admin, "GET", "/v1/tenants/nosuch", nil); r.status != 404 {
		t.Fatalf("an unknown tenant: %d", r.status)
	}
}

func testTenantLimits(t *testing.T, limiter imaged.RateLimiter) {
	st := newStack(t, Config{KeyLimit: imaged.RateLimit{PerMinute: 1000, Burst: 100}}, Deps{Limiter: limiter}, false)
	admin := st.newKey(&imaged.APIKey{Name: "admin", Admin: true})
	one := st.createKey(admin, map[string]any{"name": "one", "tenant": "acme"})
	two := st.createKey(admin, map[string]any{"name": "two", "tenant": "acme"})
	if r := st.as(admin, "PUT", "/v1/tenants/acme", map[string]any{"rate_limit": 5, "burst": 5}); r.status != 200 {
		t.Fatalf("PUT /v1/tenants/acme: %d %s", r.status, r.body)
	}
	for i, key := range []string{one.Key, two.Key, one.Key, two.Key, one.Key} {
		if r := st.as(key, "GET", "/v1/tasks", nil); r.status != 200 {
			t.Fatalf("request %d of a 5/min tenant: %d %s", i, r.status, r.body)
		}
	}
	for _, key := range []string{one.Key, two.Key} {
		if r := st.as(key, "GET", "/v1/tasks", nil); r.status != 429 || r.errorCode() != imaged.ERateLimited || r.header.Get("Retry-After") == "" {
			t.Fatalf("past the tenant's rate, each key well within its own: %d %s", r.status, r.body)
		}
	}
	if r := st.withKey("GET", "/v1/tasks", nil, nil); r.status != 200 {
		t.Fatalf("another tenant's key: %d", r.status)
	}

	// Concurrency: one request at once over both keys.
	if r := st.as(admin, "PUT", "/v1/tenants/acme", map[string]any{"rate_limit": 0, "burst": 0, "concurrency": 1}); r.status != 200 {
		t.Fatalf("PUT /v1/tenants/acme: %d %s", r.status, r.body)
	}
	id := st.uploadImageAs(one.Key)
	st.proc.gate = make(chan struct{})
	done := make(chan int)
	go func() {
		done <- st.as(one.Key, "POST", "/v1/process", map[string]any{"image_id": id, "ops": []map[string]any{{"op": "blur"}}}).status
	}()
	waitFor(t, "the first request reaches the processor", func() bool { return st.proc.calls.Load() == 1 })
	if r := st.as(two.Key, "GET", "/v1/tasks", nil); r.status != 429 || !strings.Contains(string(r.body), "for this tenant") {
		t.Fatalf("the tenant's second key while its first runs a request: %d %s", r.status, r.body)
	}
	if r := st.withKey("GET", "/v1/tasks", nil, nil); r.status != 200 {
		t.Fatalf("another tenant meanwhile: %d", r.status)
	}
	close(st.proc.gate)
	if s := <-done; s != 200 {
		t.Fatalf("the gated request: %d", s)
	}
	if r := st.as(two.Key, "GET", "/v1/tasks", nil); r.status != 200 {
		t.Fatalf("after the slot was released: %d %s", r.status, r.body)
	}
}

func TestTenantLimitsInMemory(t *testing.T) { testTenantLimits(t, ratelimit.NewMemory()) }

func TestTenantLimitsInRedis(t *testing.T) { testTenantLimits(t, redisLimiter(t)) }

func TestMetricsTenantLabelIsCapped(t *testing.T) {
	m := prom.New()
	st := newStack(t, Config{}, Deps{Metrics: m}, false)
	for i := range prom.DefaultMaxTenants + 1 {
		key := st.newKey(&imaged.APIKey{Name: "k", Tenant: fmt.Sprintf("t%02d", i)})
		if r := st.as(key, "GET", "/v1/tasks", nil); r.status != 200 {
			t.Fatalf("tenant %d: %d", i, r.status)
		}
	}
	families, err := m.Registry.Gather()
	if err != nil {
		t.Fatal(err)
	}
	counts := map[string]float64{}
	for _, f := range families {
		if f.GetName() == "http_requests_total" {
			for _, mt := range f.GetMetric() {
				counts[label(mt, "tenant")] += mt.GetCounter().GetValue()
			}
		}
	}
	if len(counts) != prom.DefaultMaxTenants+1 || counts[prom.OtherTenant] != 1 || counts["t00"] != 1 || counts["t49"] != 1 {
		t.Fatalf("tenant label values: %v, want t00…t49 and the 51st under %q", counts, prom.OtherTenant)
	}
}

func label(m *dto.Metric, name string) string {
	for _, l := range m.GetLabel() {
		if l.GetName() == name {
			return l.GetValue()
		}
	}
	return ""
}

// Every path that stores an original checks the quota: a source_url in /v1/process and
// /v1/tasks, and a file sent to /v1/tasks.
func TestQuotaOnEveryUpload(t *testing.T) {
	src, _ := sourceServer(t)
	allowed := outbound.New(outbound.Config{Allow: []netip.Prefix{netip.MustParsePrefix("127.0.0.1/32")}})
	st := newStack(t, Config{}, Deps{Fetcher: allowed}, false)
	blobs := &countingBlobs{BlobStore: st.api.deps.Blobs}
	st.api.deps.Blobs = blobs
	if _, err := imaged.SetTenantLimits(t.Context(), st.store, imaged.DefaultTenant, imaged.TenantChange{QuotaImages: ptr[int64](1)}); err != nil {
		t.Fatal(err)
	}
	st.uploadImage()
	ct := map[string]string{"Content-Type": "application/json"}
	source := []byte(`{"source_url":"` + src.URL + `/photo.png","ops":[{"op":"blur"}]}`)
	var form bytes.Buffer
	mw := multipart.NewWriter(&form)
	fw, _ := mw.CreateFormFile("file", "a.png")
	fw.Write(pngBytes(t))
	mw.WriteField("ops", `[{"op":"blur"}]`)
	mw.Close()
	for name, r := range map[string]resp{
		"process source_url": st.withKey("POST", "/v1/process", source, ct),
		"task source_url":    st.withKey("POST", "/v1/tasks", source, ct),
		"task file":          st.withKey("POST", "/v1/tasks", form.Bytes(), map[string]string{"Content-Type": mw.FormDataContentType()}),
	} {
		if r.status != 403 || r.errorCode() != imaged.EQuotaExceeded {
			t.Errorf("%s past the quota: %d %s", name, r.status, r.body)
		}
	}
	if u, _ := st.store.Usage(t.Context(), imaged.DefaultTenant); u.Images != 1 || blobs.puts.Load() != 1 {
		t.Fatalf("refused uploads stored something: usage %+v, %d blobs", u, blobs.puts.Load())
	}
	if tasks, _, _ := st.store.ListTasks(t.Context(), imaged.TaskFilter{Tenant: imaged.DefaultTenant, Limit: 10}); len(tasks) != 0 {
		t.Fatalf("a refused upload queued %d tasks", len(tasks))
	}
}

func ptr[T any](v T) *T { return &v }

// lockedBuffer is a bytes.Buffer safe for the server's goroutines.
type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

func TestRequestLogCarriesTheTenant(t *testing.T) {
	st := newStack(t, Config{}, Deps{}, false)
	var logs lockedBuffer
	st.api.log = slog.New(imaged.ContextHandler{Handler: slog.NewJSONHandler(&logs, nil)})
	key := st.newKey(&imaged.APIKey{Name: "acme", Tenant: "acme"})
	st.as(key, "GET", "/v1/images/missing", nil)
	var line map[string]any
	for _, l := range strings.Split(strings.TrimSpace(logs.String()), "\n") {
		if json.Unmarshal([]byte(l), &line); line["msg"] == "request" {
			break
		}
	}
	if line["msg"] != "request" || line["tenant"] != "acme" || line["status"] != float64(404) {
		t.Fatalf("request log line: %s", logs.String())
	}
}
