package http

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http/httptest"
	"net/url"
	"os"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/imaged/imaged/internal/testenv"

	"github.com/jackc/pgx/v5"

	"github.com/imaged/imaged"
	"github.com/imaged/imaged/auth"
	"github.com/imaged/imaged/dbqueue"
	"github.com/imaged/imaged/internal/versitygw"
	"github.com/imaged/imaged/postgres"
	"github.com/imaged/imaged/redis"
	"github.com/imaged/imaged/s3"
	"github.com/imaged/imaged/signedurl"
)

// The route table: every route of routes.go has a row. Two tenants, A and B, each with a key,
// and an admin key of B's. For a route that takes an id, B calls it with A's ids and gets 404,
// and the row, the blob and the queue are as they were; B's admin gets the same without
// ?tenant=A and reaches A's ids with it; A itself succeeds. For a list, B sees none of A's
// items. A route that takes no id says why it is tenant-free.

const (
	tenantA = "tenant-a"
	tenantB = "tenant-b"
)

// backend is what a tenancy server stores into: the store the API uses (decorated as in
// production), the key store and the blob store.
type backend struct {
	store  imaged.TaskStore
	keys   imaged.APIKeyStore
	blobs  imaged.BlobStore
	outbox imaged.Outbox
}

func sqliteBackend(t *testing.T) backend {
	db, blobs := openSQLite(t)
	return backend{store: db, keys: db, blobs: blobs, outbox: db}
}

// serviceMissing skips the test loudly, or fails it when IMAGED_TEST_REQUIRE_SERVICES=1.
func serviceMissing(t *testing.T, format string, args ...any) {
	t.Helper()
	msg := fmt.Sprintf(format, args...)
	if os.Getenv("IMAGED_TEST_REQUIRE_SERVICES") == "1" {
		t.Fatal(msg)
	}
	t.Skip("SKIPPED, NOT PASSED: " + msg + "; set IMAGED_TEST_REQUIRE_SERVICES=1 to make this a failure")
}

// productionBackend is PostgreSQL (a schema of its own), S3 (a private versitygw) and the Redis
// cache in front of the store (a key prefix of its own).
func productionBackend(t *testing.T) backend {
	ctx := t.Context()
	pgURL := testenv.PostgresURL()
	conn, err := pgx.Connect(ctx, pgURL)
	if err != nil {
		serviceMissing(t, "PostgreSQL is unreachable: %v", err)
	}
	conn.Close(ctx)
	b := make([]byte, 6)
	rand.Read(b)
	id := hex.EncodeToString(b)
	schema := "imaged_test_" + id
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if conn, err := pgx.Connect(ctx, pgURL); err == nil {
			conn.Exec(ctx, `DROP SCHEMA IF EXISTS `+schema+` CASCADE`)
			conn.Close(ctx)
		}
	})
	db, err := postgres.Open(ctx, postgres.Config{URL: pgURL, Schema: schema, MinConns: 1, MaxConns: 8, Logger: quietLog()})
	if err != nil {
		t.Fatalf("postgres.Open: %v", err)
	}
	t.Cleanup(func() { db.Close() })

	cache, err := redis.Open(ctx, testenv.RedisURL(), redis.Options{KeyPrefix: "imaged-test-" + id + ":"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cache.Close() })
	if err := cache.Ping(ctx); err != nil {
		serviceMissing(t, "Redis does not answer: %v", err)
	}

	gw := versitygw.Start(t)
	cfg, err := s3.ParseURL(gw.StorageURL("imaged-" + id))
	if err != nil {
		t.Fatal(err)
	}
	blobs, err := s3.New(ctx, cfg)
	if err != nil {
		t.Fatalf("s3.New: %v", err)
	}
	return backend{store: redis.CachedStore(db, cache, quietLog()), keys: db, blobs: blobs, outbox: db}
}

// tenancyProcessor is the fake processor that also knows the analysis ops and the watermark,
// whose image it reads as the server's engines do: through imaged.ReadImage within the tenant
// the context carries.
type tenancyProcessor struct {
	fakeProcessor
	store imaged.TaskStore
	blobs imaged.BlobStore
}

func (p *tenancyProcessor) Validate(ops []imaged.Op) error {
	var rest []imaged.Op
	for _, o := range ops {
		if o.Name != "ocr" && o.Name != "detect" && o.Name != "watermark" {
			rest = append(rest, o)
		}
	}
	return p.fakeProcessor.Validate(rest)
}

func (p *tenancyProcessor) Process(ctx context.Context, src []byte, ops []imaged.Op, opts imaged.ProcessOptions) (*imaged.Result, error) {
	for _, o := range ops {
		var a struct {
			Image string `json:"image"`
		}
		if o.Name == "watermark" && json.Unmarshal(o.Args, &a) == nil && a.Image != "" {
			if _, _, err := imaged.ReadImage(ctx, p.store, p.blobs, imaged.TenantOf(ctx), a.Image, 0); err != nil {
				return nil, err
			}
		}
	}
	return p.fakeProcessor.Process(ctx, src, ops, opts)
}

// tenancyEnv is a server on a backend with keys of two tenants.
type tenancyEnv struct {
	*stack
	be                 backend
	signer             *signedurl.Signer
	keyA, keyB, adminB string
	ownB               *fixture // B's own image, for pipelines that lay A's image on B's
}

func declareAnalysisOps() {
	for _, spec := range []imaged.OpSpec{
		{Name: "ocr", Kind: imaged.OpAnalysis, TaskType: imaged.TaskTypeOCR},
		{Name: "detect", Kind: imaged.OpAnalysis, TaskType: imaged.TaskTypeDetect},
	} {
		if _, ok := imaged.LookupOp(spec.Name); !ok {
			imaged.RegisterOp(spec)
		}
	}
}

func newTenancyEnv(t *testing.T, be backend) *tenancyEnv {
	declareAnalysisOps()
	signer := testSigner(t)
	proc := &tenancyProcessor{store: be.store, blobs: be.blobs}
	q := dbqueue.New(be.store, dbqueue.Options{})
	t.Cleanup(func() { q.Close() })
	// The processed-output cache is on, as by default: A's cached outputs stay A's.
	api := NewServer(Config{OutputCache: true, OutputRetention: time.Hour}, Deps{Store: be.store, Outbox: be.outbox, Blobs: be.blobs, Queue: q, Processor: proc, Log: quietLog(),
		Auth: auth.New(be.keys, auth.Options{Log: quietLog()}), Signer: signer})
	srv := httptest.NewServer(api)
	t.Cleanup(srv.Close)
	env := &tenancyEnv{stack: &stack{t: t, srv: srv, api: api}, be: be, signer: signer}
	key := func(k *imaged.APIKey) string {
		token, err := auth.Create(t.Context(), be.keys, k)
		if err != nil {
			t.Fatal(err)
		}
		return token
	}
	env.keyA = key(&imaged.APIKey{Name: "a", Tenant: tenantA})
	env.keyB = key(&imaged.APIKey{Name: "b", Tenant: tenantB})
	env.adminB = key(&imaged.APIKey{Name: "b-admin", Tenant: tenantB, Admin: true})
	env.ownB = &fixture{img: env.upload(env.keyB)}
	return env
}

// call sends a request with key ("" for none) and extra query parameters.
func (e *tenancyEnv) call(key string, r request, query string) resp {
	e.t.Helper()
	path := r.path
	if query != "" {
		if strings.Contains(path, "?") {
			path += "&" + query
		} else {
			path += "?" + query
		}
	}
	h := map[string]string{}
	if r.body != nil {
		h["Content-Type"] = "application/json"
	}
	if key != "" {
		h["X-API-Key"] = key
	}
	return e.do(r.method, path, r.body, h)
}

func (e *tenancyEnv) upload(key string) string {
	e.t.Helper()
	r := e.do("POST", "/v1/images", pngBytes(e.t), map[string]string{"X-API-Key": key, "Content-Type": "image/png"})
	if r.status != 201 {
		e.t.Fatalf("upload: %d %s", r.status, r.body)
	}
	var img imaged.Image
	json.Unmarshal(r.body, &img)
	return img.ID
}

func (e *tenancyEnv) post(key, path string, body any) map[string]any {
	e.t.Helper()
	b, _ := json.Marshal(body)
	r := e.do("POST", path, b, map[string]string{"X-API-Key": key, "Content-Type": "application/json"})
	if r.status != 202 {
		e.t.Fatalf("POST %s: %d %s", path, r.status, r.body)
	}
	var out map[string]any
	json.Unmarshal(r.body, &out)
	return out
}

// fixture is one tenant's image, a queued task, a completed task with an output image and a
// webhook delivery, and a finished batch.
type fixture struct {
	tenant   string
	img      string
	task     string
	done     string
	delivery string
	batch    string
}

var blurOps = []map[string]any{{"op": "blur"}}

func (e *tenancyEnv) fixture(key, tenant string) *fixture {
	e.t.Helper()
	ctx := e.t.Context()
	fx := &fixture{tenant: tenant, img: e.upload(key)}
	fx.task = e.post(key, "/v1/tasks", map[string]any{"image_id": fx.img, "ops": blurOps})["id"].(string)
	fx.done = e.post(key, "/v1/tasks", map[string]any{"image_id": fx.img, "ops": blurOps,
		"callback_url": "https://example.com/hook"})["id"].(string)
	claimed, err := e.be.store.ClaimTask(ctx, fx.done, nil, "w", time.Minute)
	if err != nil || claimed == nil {
		e.t.Fatalf("ClaimTask: %v, %v", claimed, err)
	}
	out := &imaged.Output{Key: "results/" + fx.done + ".webp", Format: "webp", ContentType: "image/webp", Width: 1, Height: 1, Bytes: 3}
	if err := e.be.blobs.Put(ctx, out.Key, []byte("out"), out.ContentType); err != nil {
		e.t.Fatal(err)
	}
	if _, err := e.be.store.CompleteTask(ctx, fx.done, claimed.Attempts, &imaged.TaskResult{Output: out}); err != nil {
		e.t.Fatalf("CompleteTask: %v", err)
	}
	ds, err := e.be.outbox.Deliveries(ctx, tenant, fx.done)
	if err != nil || len(ds) != 1 {
		e.t.Fatalf("Deliveries: %d, %v", len(ds), err)
	}
	fx.delivery = ds[0].ID
	b := e.post(key, "/v1/batches", map[string]any{"items": []map[string]any{{"image_id": fx.img, "ops": blurOps}}})
	fx.batch = b["batch_id"].(string)
	// A finished batch, so that its event stream ends at once.
	for _, id := range b["task_ids"].([]any) {
		if _, err := e.be.store.CancelTask(ctx, imaged.AnyTenant, id.(string)); err != nil {
			e.t.Fatal(err)
		}
	}
	return fx
}

// state is what a refused call must leave as it was: the fixture's rows and blob, and what is
// queued and stored in every tenant.
type state struct {
	Image, Blob       bool
	Task, Done        string
	Delivery          string // status and next try
	Batch             string
	BatchCounts       map[string]int
	Queued            map[string]int
	UsageA, UsageB    imaged.Usage
	TasksA, TasksB    int
	BatchesA, BatchsB int
}

func (e *tenancyEnv) state(fx *fixture) state {
	e.t.Helper()
	ctx := e.t.Context()
	s := e.be.store
	var st state
	if img, err := s.Image(ctx, fx.tenant, fx.img); err == nil {
		st.Image = true
		_, err := e.be.blobs.Head(ctx, img.Key)
		st.Blob = err == nil
	}
	if t, err := s.Task(ctx, fx.tenant, fx.task); err == nil {
		st.Task = t.Status
	}
	if t, err := s.Task(ctx, fx.tenant, fx.done); err == nil {
		st.Done = t.Status
	}
	if d, err := e.be.outbox.Delivery(ctx, fx.tenant, fx.delivery); err == nil {
		st.Delivery = d.Status + " " + d.NextAttemptAt.String()
	}
	if b, _, err := s.Batch(ctx, fx.tenant, fx.batch); err == nil {
		st.Batch, st.BatchCounts = b.Status, b.Counts
	}
	var err error
	if st.Queued, err = s.CountQueued(ctx); err != nil {
		e.t.Fatal(err)
	}
	st.UsageA, _ = s.Usage(ctx, tenantA)
	st.UsageB, _ = s.Usage(ctx, tenantB)
	count := func(tenant string) (int, int) {
		tasks, _, _ := s.ListTasks(ctx, imaged.TaskFilter{Tenant: tenant, Limit: 1000})
		batches, _, _ := s.ListBatches(ctx, imaged.BatchFilter{Tenant: tenant, Limit: 1000})
		return len(tasks), len(batches)
	}
	st.TasksA, st.BatchesA = count(tenantA)
	st.TasksB, st.BatchsB = count(tenantB)
	return st
}

type request struct {
	method, path string
	body         []byte
}

func jsonBody(v any) []byte {
	b, _ := json.Marshal(v)
	return b
}

// row is one route's line in the table. Exactly one of id, list and free is set.
type row struct {
	pattern string
	// id builds the request naming target's ids; caller is the caller's own fixture (B's
	// image, for a pipeline that lays A's image on B's), the target itself when it succeeds.
	id     func(e *tenancyEnv, target, caller *fixture) request
	ok     int  // the status of a successful call
	signed bool // no key: the URL's signature authorises (no admin rows)
	// list builds a list request and names the one of target's ids it must show.
	list func(target *fixture) (request, string)
	// free says why the route is tenant-free; check, when set, shows the caller's tenant is
	// kept all the same.
	free  string
	check func(e *tenancyEnv)
}

func tenancyRows() []row {
	get := func(path string) func(*tenancyEnv, *fixture, *fixture) request {
		return func(_ *tenancyEnv, target, _ *fixture) request {
			return request{"GET", strings.NewReplacer("{img}", target.img, "{task}", target.task, "{done}", target.done,
				"{batch}", target.batch, "{delivery}", target.delivery).Replace(path), nil}
		}
	}
	withImage := func(path string, extra map[string]any) func(*tenancyEnv, *fixture, *fixture) request {
		return func(_ *tenancyEnv, target, _ *fixture) request {
			body := map[string]any{"image_id": target.img}
			for k, v := range extra {
				body[k] = v
			}
			return request{"POST", path, jsonBody(body)}
		}
	}
	// overlay lays target's image on the caller's own.
	overlay := func(target, _ *fixture) []map[string]any {
		return []map[string]any{{"op": "watermark", "image": target.img}}
	}
	return []row{
		{pattern: "POST /v1/images", free: "takes no id; the upload belongs to the caller's tenant",
			check: func(e *tenancyEnv) {
				id := e.upload(e.keyB)
				if _, err := e.be.store.Image(e.t.Context(), tenantB, id); err != nil {
					e.t.Errorf("B's upload is not B's: %v", err)
				}
				if _, err := e.be.store.Image(e.t.Context(), tenantA, id); !imaged.IsCode(err, imaged.ENotFound) {
					e.t.Errorf("B's upload is visible to A: %v", err)
				}
			}},
		{pattern: "GET /v1/images", list: func(fx *fixture) (request, string) { return request{"GET", "/v1/images", nil}, fx.img }},
		{pattern: "GET /v1/images/{id}", id: get("/v1/images/{img}"), ok: 200},
		{pattern: "GET /v1/images/{id}/content", id: get("/v1/images/{img}/content"), ok: 200},
		{pattern: "DELETE /v1/images/{id}", ok: 204, id: func(_ *tenancyEnv, target, _ *fixture) request {
			return request{"DELETE", "/v1/images/" + target.img, nil}
		}},

		{pattern: "POST /v1/process", id: withImage("/v1/process", map[string]any{"ops": blurOps}), ok: 200},
		{pattern: "POST /v1/process", ok: 200, id: func(_ *tenancyEnv, target, caller *fixture) request {
			return request{"POST", "/v1/process", jsonBody(map[string]any{"image_id": caller.img, "ops": overlay(target, caller)})}
		}},
		{pattern: "POST /v1/ocr", id: withImage("/v1/ocr", nil), ok: 200},
		{pattern: "POST /v1/detect", id: withImage("/v1/detect", nil), ok: 200},

		{pattern: "POST /v1/tasks", id: withImage("/v1/tasks", map[string]any{"ops": blurOps}), ok: 202},
		{pattern: "POST /v1/tasks", ok: 202, id: func(_ *tenancyEnv, target, caller *fixture) request {
			return request{"POST", "/v1/tasks", jsonBody(map[string]any{"image_id": caller.img, "ops": overlay(target, caller)})}
		}},
		{pattern: "GET /v1/tasks", list: func(fx *fixture) (request, string) { return request{"GET", "/v1/tasks", nil}, fx.task }},
		{pattern: "GET /v1/tasks", list: func(fx *fixture) (request, string) {
			return request{"GET", "/v1/tasks?status=completed", nil}, fx.done
		}},
		{pattern: "GET /v1/tasks", list: func(fx *fixture) (request, string) {
			return request{"GET", "/v1/tasks?batch_id=" + fx.batch, nil}, fx.batch
		}},
		{pattern: "GET /v1/tasks/{id}", id: get("/v1/tasks/{task}"), ok: 200},
		{pattern: "DELETE /v1/tasks/{id}", ok: 200, id: func(_ *tenancyEnv, target, _ *fixture) request {
			return request{"DELETE", "/v1/tasks/" + target.task, nil}
		}},
		{pattern: "GET /v1/tasks/{id}/result", id: get("/v1/tasks/{done}/result"), ok: 200},
		{pattern: "GET /v1/tasks/{id}/events", id: get("/v1/tasks/{done}/events"), ok: 200},
		{pattern: "GET /v1/tasks/{id}/deliveries", id: get("/v1/tasks/{done}/deliveries"), ok: 200},
		{pattern: "POST /v1/deliveries/{id}/redeliver", ok: 202, id: func(_ *tenancyEnv, target, _ *fixture) request {
			return request{"POST", "/v1/deliveries/" + target.delivery + "/redeliver", nil}
		}},

		{pattern: "POST /v1/batches", ok: 202, id: func(_ *tenancyEnv, target, _ *fixture) request {
			return request{"POST", "/v1/batches", jsonBody(map[string]any{"items": []map[string]any{{"image_id": target.img, "ops": blurOps}}})}
		}},
		{pattern: "POST /v1/batches", ok: 202, id: func(_ *tenancyEnv, target, caller *fixture) request {
			return request{"POST", "/v1/batches", jsonBody(map[string]any{"items": []map[string]any{
				{"image_id": caller.img, "ops": blurOps}, {"image_id": caller.img, "ops": overlay(target, caller)}}})}
		}},
		{pattern: "GET /v1/batches", list: func(fx *fixture) (request, string) { return request{"GET", "/v1/batches", nil}, fx.batch }},
		{pattern: "GET /v1/batches/{id}", id: get("/v1/batches/{batch}"), ok: 200},
		{pattern: "GET /v1/batches/{id}/events", id: get("/v1/batches/{batch}/events"), ok: 200},
		{pattern: "DELETE /v1/batches/{id}", ok: 200, id: func(_ *tenancyEnv, target, _ *fixture) request {
			return request{"DELETE", "/v1/batches/" + target.batch, nil}
		}},

		{pattern: "GET /i/{signature}/{path...}", ok: 200, signed: true, id: func(e *tenancyEnv, target, caller *fixture) request {
			// A URL signed for the caller's own image cannot lay another tenant's image on it.
			return request{"GET", e.signer.URL("watermark:image=" + target.img + "/" + caller.img), nil}
		}},
		{pattern: "POST /v1/keys", free: adminFree, check: adminOnly("POST", "/v1/keys", map[string]any{"name": "b-made", "tenant": tenantA})},
		{pattern: "GET /v1/keys", free: adminFree, check: adminOnly("GET", "/v1/keys?tenant="+tenantA, nil)},
		{pattern: "DELETE /v1/keys/{id}", free: adminFree, check: adminOnly("DELETE", "/v1/keys/{keyA}", nil)},
		{pattern: "GET /v1/tenants", free: adminFree, check: adminOnly("GET", "/v1/tenants", nil)},
		{pattern: "GET /v1/tenants/{id}", free: adminFree, check: adminOnly("GET", "/v1/tenants/"+tenantA, nil)},
		{pattern: "PUT /v1/tenants/{id}", free: adminFree, check: adminOnly("PUT", "/v1/tenants/"+tenantA, map[string]any{"quota_images": 1})},
		{pattern: "GET /v1/blobs/{key...}", free: "a signed capability URL for one blob key, made for whoever could read " +
			"the task or image it belongs to; it names no tenant's record and its signature is checked before anything is read"},
		{pattern: "GET /health", free: "the service's health; no tenant's data"},
		{pattern: "GET /openapi.json", free: "the API's contract; no tenant's data"},
		{pattern: "GET /v1/ops", free: "the ops the server runs; no tenant's data"},
		{pattern: "GET /health/live", free: "the process's liveness; no tenant's data"},
		{pattern: "GET /health/ready", free: "the service's readiness; no tenant's data"},
		{pattern: "GET /metrics", free: "the process's metrics; no tenant's data"},
		{pattern: "/", free: "the not-found answer for unknown paths; reads nothing"},
	}
}

func TestEveryRouteHasATenancyRow(t *testing.T) {
	rows := map[string]bool{}
	for _, r := range tenancyRows() {
		rows[r.pattern] = true
	}
	routes := routePatterns(t) // read from routes.go: a route added there without a row fails here
	for _, p := range routes {
		if !rows[p] {
			t.Errorf("route %q has no row in the tenancy table (tenancyRows): add one", p)
		}
	}
	for p := range rows {
		if !slices.Contains(routes, p) {
			t.Errorf("the tenancy table has a row for %q, which routes.go does not register", p)
		}
	}
	t.Logf("%d routes, every one with a row", len(routes))
}

func TestTenancySQLite(t *testing.T) { runTenancy(t, sqliteBackend(t)) }

func TestTenancyProductionBackends(t *testing.T) {
	if testing.Short() {
		t.Skip("the tenancy table again, on PostgreSQL, S3 and Redis")
	}
	runTenancy(t, productionBackend(t))
}

// adminFree is why the admin routes have no ownership rows: keys and tenants are the service's
// administration, open to admin keys across tenants and closed to every other key whatever the
// id, so a plain key learns nothing about another tenant from them.
const adminFree = "an admin resource: a plain key gets 403 for any id, so it learns nothing of another tenant"

// adminOnly checks that B's plain key is refused the admin route with 403 permission_denied
// and that nothing of A's changed: A's key still works and tenant A's limits are as they were.
// {keyA} in path stands for A's key id.
func adminOnly(method, path string, body any) func(e *tenancyEnv) {
	return func(e *tenancyEnv) {
		e.t.Helper()
		var keys struct {
			Items []imaged.APIKey `json:"items"`
		}
		if r := e.call(e.adminB, request{"GET", "/v1/keys?tenant=" + tenantA, nil}, ""); r.status != 200 || json.Unmarshal(r.body, &keys) != nil || len(keys.Items) == 0 {
			e.t.Fatalf("listing A's keys as an admin: %d %s", r.status, r.body)
		}
		path = strings.ReplaceAll(path, "{keyA}", keys.Items[0].ID)
		var b []byte
		if body != nil {
			b = jsonBody(body)
		}
		// A tenant owns data without a record of its own; the record holds its limits.
		if r := e.call(e.adminB, request{"PUT", "/v1/tenants/" + tenantA, jsonBody(map[string]any{})}, ""); r.status != 200 {
			e.t.Fatalf("recording tenant A as an admin: %d %s", r.status, r.body)
		}
		before := e.call(e.adminB, request{"GET", "/v1/tenants/" + tenantA, nil}, "")
		if before.status != 200 {
			e.t.Fatalf("reading tenant A as an admin: %d %s", before.status, before.body)
		}
		if got := e.call(e.keyB, request{method, path, b}, ""); got.status != 403 || got.errorCode() != imaged.EPermissionDenied {
			e.t.Errorf("%s %s with B's plain key: %d %s; want 403 permission_denied", method, path, got.status, got.body)
		}
		if got := e.call(e.keyA, request{"GET", "/v1/images", nil}, ""); got.status != 200 {
			e.t.Errorf("A's key stopped working after B was refused %s %s: %d %s", method, path, got.status, got.body)
		}
		after := e.call(e.adminB, request{"GET", "/v1/tenants/" + tenantA, nil}, "")
		if before.status != after.status || !bytes.Equal(before.body, after.body) {
			e.t.Errorf("tenant A changed after B was refused %s %s: %s -> %s", method, path, before.body, after.body)
		}
	}
}

func runTenancy(t *testing.T, be backend) {
	e := newTenancyEnv(t, be)
	for i, r := range tenancyRows() {
		t.Run(fmt.Sprintf("%02d %s", i, r.pattern), func(t *testing.T) {
			e.t = t
			e.stack.t = t
			switch {
			case r.id != nil:
				e.idRow(r)
			case r.list != nil:
				e.listRow(r)
			case r.free != "":
				t.Logf("tenant-free: %s", r.free)
				if r.check != nil {
					r.check(e)
				}
			default:
				t.Fatal("a row with neither id, list nor free")
			}
		})
	}
	t.Run("a plain key naming a tenant", func(t *testing.T) {
		e.t, e.stack.t = t, t
		fx := e.fixture(e.keyA, tenantA)
		for _, r := range []request{{"GET", "/v1/images/" + fx.img, nil}, {"GET", "/v1/tasks", nil}} {
			for _, q := range []string{"tenant=" + tenantA, "tenant=" + tenantB} {
				if got := e.call(e.keyB, r, q); got.status != 403 || got.errorCode() != imaged.EPermissionDenied {
					t.Errorf("%s %s?%s with B's plain key: %d %s; want 403 permission_denied", r.method, r.path, q, got.status, got.body)
				}
			}
		}
	})
}

// idRow: B and B's admin without ?tenant= get 404 and change nothing; A and B's admin with
// ?tenant=A succeed.
func (e *tenancyEnv) idRow(r row) {
	t := e.t
	fx := e.fixture(e.keyA, tenantA)
	refused := []struct{ who, key, query string }{{"B", e.keyB, ""}}
	if !r.signed {
		refused = append(refused, struct{ who, key, query string }{"B's admin without ?tenant=", e.adminB, ""})
	}
	for _, c := range refused {
		before := e.state(fx)
		req := r.id(e, fx, e.ownB)
		got := e.call(c.key, req, c.query)
		if got.status != 404 || got.errorCode() != imaged.ENotFound {
			t.Errorf("%s: %s %s with A's ids: %d %s; want 404 not_found", c.who, req.method, req.path, got.status, got.body)
		}
		if after := e.state(fx); !reflect.DeepEqual(before, after) {
			t.Errorf("%s: %s %s changed what it must not:\nbefore %+v\nafter  %+v", c.who, req.method, req.path, before, after)
		}
	}
	req := r.id(e, fx, fx)
	key := e.keyA
	if r.signed {
		key = ""
	}
	if got := e.call(key, req, ""); got.status != r.ok {
		t.Errorf("A: %s %s: %d %s; want %d", req.method, req.path, got.status, got.body, r.ok)
	}
	if r.signed {
		return
	}
	fx = e.fixture(e.keyA, tenantA)
	req = r.id(e, fx, fx)
	if got := e.call(e.adminB, req, "tenant="+tenantA); got.status != r.ok {
		t.Errorf("B's admin with ?tenant=%s: %s %s: %d %s; want %d", tenantA, req.method, req.path, got.status, got.body, r.ok)
	}
}

// listRow: B (and B's admin without ?tenant=) see none of A's items; A and B's admin with
// ?tenant=A see them.
func (e *tenancyEnv) listRow(r row) {
	t := e.t
	fx := e.fixture(e.keyA, tenantA)
	req, want := r.list(fx)
	aIDs := []string{fx.img, fx.task, fx.done, fx.batch}
	for _, c := range []struct{ who, key, query string }{{"B", e.keyB, ""}, {"B's admin without ?tenant=", e.adminB, ""}} {
		got := e.call(c.key, req, c.query)
		if got.status != 200 {
			t.Fatalf("%s: %s %s: %d %s", c.who, req.method, req.path, got.status, got.body)
		}
		items := listItems(t, got)
		for _, id := range aIDs {
			if bytes.Contains(items, []byte(id)) {
				t.Errorf("%s: %s %s lists A's %s: %s", c.who, req.method, req.path, id, items)
			}
		}
	}
	for _, c := range []struct{ who, key, query string }{{"A", e.keyA, ""}, {"B's admin with ?tenant=A", e.adminB, "tenant=" + tenantA}} {
		got := e.call(c.key, req, c.query)
		if got.status != 200 || !bytes.Contains(listItems(t, got), []byte(want)) {
			t.Errorf("%s: %s %s: %d %s; want it to list %s", c.who, req.method, req.path, got.status, got.body, want)
		}
	}
}

func listItems(t *testing.T, r resp) []byte {
	t.Helper()
	var page struct {
		Items json.RawMessage `json:"items"`
	}
	if err := json.Unmarshal(r.body, &page); err != nil || page.Items == nil {
		t.Fatalf("not a list page: %s", r.body)
	}
	return page.Items
}

// With authentication off there is one tenant, the default, whatever a request says.
func TestTenancyWithAuthOff(t *testing.T) {
	st := newStack(t, Config{}, Deps{}, true)
	r := st.do("POST", "/v1/images?tenant=other", pngBytes(t), map[string]string{"Content-Type": "image/png"})
	var img imaged.Image
	json.Unmarshal(r.body, &img)
	if r.status != 201 || img.Tenant != imaged.DefaultTenant {
		t.Fatalf("upload with authentication off: %d %s; want the default tenant's", r.status, r.body)
	}
	if got, err := st.store.Image(t.Context(), imaged.DefaultTenant, img.ID); err != nil || got.Tenant != imaged.DefaultTenant {
		t.Fatalf("stored as %+v, %v", got, err)
	}
	if r := st.do("GET", "/v1/images/"+url.PathEscape(img.ID), nil, nil); r.status != 200 {
		t.Fatalf("GET with authentication off: %d %s", r.status, r.body)
	}
}
