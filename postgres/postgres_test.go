package postgres_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/url"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/imaged/imaged/internal/testenv"

	"github.com/jackc/pgx/v5"

	"github.com/imaged/imaged"
	"github.com/imaged/imaged/postgres"
	"github.com/imaged/imaged/storetest"
)

// The tests run against a real PostgreSQL, each store in a schema of its own that is dropped
// afterwards, so they can share one database with other packages' tests.

func testURL() string { return testenv.PostgresURL() }

// baseConfig is the test URL as ParseURL reads it, without any schema it may name.
func baseConfig(t *testing.T) postgres.Config {
	t.Helper()
	cfg, err := postgres.ParseURL(testURL())
	if err != nil {
		t.Fatalf("IMAGED_TEST_POSTGRES_URL: %v", err)
	}
	cfg.Schema = ""
	return cfg
}

func redacted(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return "(an unparsable URL)"
	}
	return u.Redacted()
}

var reach struct {
	once sync.Once
	err  error
}

// requireServer skips the test, loudly, when the test database cannot be reached, or fails it
// when IMAGED_TEST_REQUIRE_SERVICES=1.
func requireServer(t *testing.T) {
	t.Helper()
	reach.once.Do(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		conn, err := pgx.Connect(ctx, baseConfig(t).URL)
		if err == nil {
			err = conn.Ping(ctx)
			conn.Close(ctx)
		}
		reach.err = err
	})
	if reach.err != nil {
		msg := fmt.Sprintf("PostgreSQL at %s is unreachable: %v. Start it or point IMAGED_TEST_POSTGRES_URL at one; "+
			"IMAGED_TEST_REQUIRE_SERVICES=1 makes this a failure", redacted(testURL()), reach.err)
		if os.Getenv("IMAGED_TEST_REQUIRE_SERVICES") == "1" {
			t.Fatal(msg)
		}
		t.Skip("SKIPPED, NOT PASSED: " + msg)
	}
}

// freshSchema returns the name of a schema that does not exist yet and is dropped, with all it
// holds, when the test ends.
func freshSchema(t *testing.T) string {
	t.Helper()
	requireServer(t)
	b := make([]byte, 6)
	rand.Read(b)
	name := "imaged_test_" + hex.EncodeToString(b)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		conn, err := pgx.Connect(ctx, baseConfig(t).URL)
		if err != nil {
			t.Errorf("drop schema %s: %v", name, err)
			return
		}
		defer conn.Close(ctx)
		if _, err := conn.Exec(ctx, `DROP SCHEMA IF EXISTS `+name+` CASCADE`); err != nil {
			t.Errorf("drop schema %s: %v", name, err)
		}
	})
	return name
}

// openStore opens a store for the test, closed when it ends. Fields of cfg left empty are the
// test database, a fresh schema and a small pool (the database is shared).
func openStore(t *testing.T, cfg postgres.Config) *postgres.Store {
	t.Helper()
	requireServer(t)
	if cfg.URL == "" {
		cfg.URL = baseConfig(t).URL
	}
	if cfg.Schema == "" {
		cfg.Schema = freshSchema(t)
	}
	if cfg.MinConns == 0 {
		cfg.MinConns = 1
	}
	if cfg.MaxConns == 0 {
		cfg.MaxConns = 4
	}
	cfg.Logger = slog.New(slog.DiscardHandler)
	s, err := postgres.Open(t.Context(), cfg)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func TestStoreContract(t *testing.T) {
	requireServer(t)
	storetest.Run(t, func(t *testing.T) imaged.TaskStore {
		return openStore(t, postgres.Config{})
	})
}

func TestRetentionContract(t *testing.T) {
	requireServer(t)
	storetest.RunRetention(t, func(t *testing.T) storetest.RetentionTaskStore {
		return openStore(t, postgres.Config{})
	})
}

func mustOps(t *testing.T, js string) []imaged.Op {
	t.Helper()
	ops, err := imaged.ParseOps([]byte(js))
	if err != nil {
		t.Fatalf("ParseOps: %v", err)
	}
	return ops
}

func createImage(t *testing.T, s *postgres.Store) *imaged.Image {
	t.Helper()
	img := &imaged.Image{Key: "images/2026/11/28/a1b2.jpg", Format: "jpeg", ContentType: "image/jpeg",
		Width: 640, Height: 480, Bytes: 1234}
	if err := s.CreateImage(t.Context(), img); err != nil {
		t.Fatalf("CreateImage: %v", err)
	}
	return img
}

func wantCode(t *testing.T, err error, code string) *imaged.Error {
	t.Helper()
	var e *imaged.Error
	if !errors.As(err, &e) || e.Code != code {
		t.Fatalf("error %v has code %q, want %s", err, imaged.ErrorCode(err), code)
	}
	return e
}

// TestTwoStoresClaimEachTaskOnce claims from two pools at once, as two imaged processes sharing
// the database would: FOR UPDATE SKIP LOCKED must hand every task to exactly one of them.
func TestTwoStoresClaimEachTaskOnce(t *testing.T) {
	ctx := t.Context()
	schema := freshSchema(t)
	a := openStore(t, postgres.Config{Schema: schema})
	b := openStore(t, postgres.Config{Schema: schema})
	if a.Pool() == b.Pool() {
		t.Fatal("two stores share one pool")
	}
	img := createImage(t, a)
	const n, workersPerStore = 100, 4
	ops := mustOps(t, `[{"op":"resize","width":100}]`)
	for range n {
		if _, err := a.CreateTasks(ctx, []*imaged.Task{{ImageID: img.ID, Ops: ops, MaxAttempts: 3}}, nil); err != nil {
			t.Fatalf("CreateTasks: %v", err)
		}
	}
	var mu sync.Mutex
	claimed := map[string][]string{} // task id → the workers that claimed it
	var wg sync.WaitGroup
	errs := make(chan error, 2*workersPerStore)
	start := make(chan struct{})
	began := time.Now()
	for i := range 2 * workersPerStore {
		s, name := a, fmt.Sprintf("a-%d", i)
		if i%2 == 1 {
			s, name = b, fmt.Sprintf("b-%d", i)
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			for {
				c, err := s.ClaimTask(ctx, "", []string{imaged.TaskTypeTransform}, name, time.Minute)
				if err != nil {
					errs <- err
					return
				}
				if c == nil {
					return
				}
				mu.Lock()
				claimed[c.ID] = append(claimed[c.ID], name)
				mu.Unlock()
				if _, err := s.CompleteTask(ctx, c.ID, c.Attempts, &imaged.TaskResult{}); err != nil {
					errs <- fmt.Errorf("CompleteTask(%s) by %s: %w", c.ID, name, err)
					return
				}
			}
		}()
	}
	close(start)
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatalf("claiming from two stores: %v", err)
	}
	t.Logf("%d tasks claimed and completed by %d workers over two pools in %s", n, 2*workersPerStore, time.Since(began))
	if len(claimed) != n {
		t.Fatalf("%d tasks claimed, want %d", len(claimed), n)
	}
	perStore := map[byte]int{}
	for id, by := range claimed {
		if len(by) != 1 {
			t.Fatalf("task %s claimed by %v, want exactly one worker", id, by)
		}
		perStore[by[0][0]]++
	}
	t.Logf("claims per store: a %d, b %d", perStore['a'], perStore['b'])
	counts, err := b.CountQueued(ctx)
	if err != nil || counts[imaged.TaskTypeTransform] != 0 {
		t.Fatalf("CountQueued = %v, %v; want nothing queued", counts, err)
	}
	page, _, err := b.ListTasks(ctx, imaged.TaskFilter{Tenant: imaged.DefaultTenant, Status: imaged.StatusCompleted, Limit: n})
	if err != nil || len(page) != n {
		t.Fatalf("completed tasks = %d, %v; want %d", len(page), err, n)
	}
}

// TestConcurrentIdempotentCreate creates with one idempotency key from several goroutines and
// two pools at once: one creates, every other one gets the stored record, none an error.
func TestConcurrentIdempotentCreate(t *testing.T) {
	ctx := t.Context()
	schema := freshSchema(t)
	stores := []*postgres.Store{openStore(t, postgres.Config{Schema: schema}), openStore(t, postgres.Config{Schema: schema})}
	img := createImage(t, stores[0])
	ops := mustOps(t, `[{"op":"blur","sigma":2}]`)
	const callers = 8

	race := func(t *testing.T, create func(s *postgres.Store) (existed bool, ids []string, err error)) {
		var mu sync.Mutex
		created := 0
		var seen [][]string
		var wg sync.WaitGroup
		start := make(chan struct{})
		errs := make(chan error, callers)
		for i := range callers {
			wg.Add(1)
			go func() {
				defer wg.Done()
				<-start
				existed, ids, err := create(stores[i%2])
				if err != nil {
					errs <- err
					return
				}
				mu.Lock()
				defer mu.Unlock()
				if !existed {
					created++
				}
				seen = append(seen, ids)
			}()
		}
		close(start)
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Fatalf("CreateTasks with a shared key: %v", err)
		}
		if created != 1 {
			t.Fatalf("%d callers created, want exactly 1", created)
		}
		for _, ids := range seen[1:] {
			if !slices.Equal(ids, seen[0]) {
				t.Fatalf("callers got different records: %v and %v", ids, seen[0])
			}
		}
	}

	t.Run("task", func(t *testing.T) {
		race(t, func(s *postgres.Store) (bool, []string, error) {
			task := &imaged.Task{ImageID: img.ID, Ops: ops, IdempotencyKey: "task-key"}
			existed, err := s.CreateTasks(ctx, []*imaged.Task{task}, nil)
			return existed, []string{task.ID}, err
		})
	})
	t.Run("batch", func(t *testing.T) {
		race(t, func(s *postgres.Store) (bool, []string, error) {
			tasks := []*imaged.Task{{ImageID: img.ID, Ops: ops}, {ImageID: img.ID, Ops: ops}}
			batch := &imaged.Batch{IdempotencyKey: "batch-key"}
			existed, err := s.CreateTasks(ctx, tasks, batch)
			return existed, []string{batch.ID, tasks[0].ID, tasks[1].ID}, err
		})
	})
	page, _, err := stores[0].ListTasks(ctx, imaged.TaskFilter{Tenant: imaged.DefaultTenant})
	if err != nil || len(page) != 3 {
		t.Fatalf("stored %d tasks, %v; want 3 (one single, a batch of two)", len(page), err)
	}
}

func schemaExists(t *testing.T, s *postgres.Store, schema string) bool {
	t.Helper()
	var ok bool
	if err := s.Pool().QueryRow(t.Context(), `SELECT EXISTS (SELECT 1 FROM pg_namespace WHERE nspname = $1)`,
		schema).Scan(&ok); err != nil {
		t.Fatalf("schema lookup: %v", err)
	}
	return ok
}

func TestMigrationStatus(t *testing.T) {
	ctx := t.Context()
	schema := freshSchema(t)
	s := openStore(t, postgres.Config{Schema: schema, NoMigrate: true})
	st, err := s.MigrationStatus(ctx)
	if err != nil {
		t.Fatalf("MigrationStatus: %v", err)
	}
	if len(st) == 0 {
		t.Fatal("no migrations known")
	}
	for _, m := range st {
		if m.Applied || !m.AppliedAt.IsZero() {
			t.Fatalf("fresh schema reports %+v applied", m)
		}
		if m.Version <= 0 || m.Name == "" {
			t.Fatalf("migration %+v has no version or name", m)
		}
	}
	if schemaExists(t, s, schema) {
		t.Fatal("MigrationStatus created the schema")
	}
	if _, err := s.Task(ctx, imaged.DefaultTenant, "x"); err == nil || imaged.IsCode(err, imaged.ENotFound) {
		t.Fatalf("Task before migrating = %v; want a missing-table error", err)
	}

	if err := s.MigrateUp(ctx); err != nil {
		t.Fatalf("MigrateUp: %v", err)
	}
	st, err = s.MigrationStatus(ctx)
	if err != nil {
		t.Fatalf("MigrationStatus: %v", err)
	}
	for _, m := range st {
		if !m.Applied || time.Since(m.AppliedAt).Abs() > time.Minute || m.AppliedAt.Location() != time.UTC {
			t.Fatalf("after MigrateUp: %+v (now %v)", m, time.Now().UTC())
		}
	}
	if err := s.MigrateUp(ctx); err != nil {
		t.Fatalf("MigrateUp with nothing pending: %v", err)
	}
	if _, err := s.Task(ctx, imaged.DefaultTenant, "x"); !imaged.IsCode(err, imaged.ENotFound) {
		t.Fatalf("Task after migrating = %v; want not_found", err)
	}
	var tables []string
	rows, _ := s.Pool().Query(ctx, `SELECT table_name FROM information_schema.tables WHERE table_schema = $1 `, schema)
	tables, err = pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		t.Fatalf("tables: %v", err)
	}
	slices.Sort(tables)
	if want := []string{"api_keys", "batches", "blob_trash", "deliveries", "imaged_migrations", "images", "leases", "output_cache", "tasks", "tenants"}; !slices.Equal(tables, want) {
		t.Fatalf("tables in %s = %v, want %v", schema, tables, want)
	}

	// Open migrates by default and finds nothing to do.
	s2 := openStore(t, postgres.Config{Schema: schema})
	st2, err := s2.MigrationStatus(ctx)
	if err != nil || !slices.Equal(st2, st) {
		t.Fatalf("MigrationStatus after reopen = %v, %v; want %v", st2, err, st)
	}
}

// TestConcurrentOpensMigrateOnce opens several stores on one new schema at once, as processes
// starting together do: the advisory lock lets one migrate and the others find it done.
func TestConcurrentOpensMigrateOnce(t *testing.T) {
	requireServer(t)
	schema := freshSchema(t)
	const n = 4
	stores := make([]*postgres.Store, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	start := make(chan struct{})
	began := time.Now()
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			stores[i], errs[i] = postgres.Open(t.Context(), postgres.Config{URL: baseConfig(t).URL, Schema: schema,
				MinConns: -1, MaxConns: 2, Logger: slog.New(slog.DiscardHandler)})
		}()
	}
	close(start)
	wg.Wait()
	t.Logf("%d concurrent opens of a new schema took %s", n, time.Since(began))
	for i, err := range errs {
		if err != nil {
			t.Fatalf("Open %d: %v", i, err)
		}
		t.Cleanup(func() { stores[i].Close() })
	}
	st, err := stores[0].MigrationStatus(t.Context())
	if err != nil {
		t.Fatalf("MigrationStatus: %v", err)
	}
	var applied int
	if err := stores[1].Pool().QueryRow(t.Context(),
		`SELECT count(*) FROM `+schema+`.imaged_migrations WHERE version_id > 0`).Scan(&applied); err != nil {
		t.Fatalf("count applied: %v", err)
	}
	if applied != len(st) {
		t.Fatalf("%d migrations recorded for %d known: a migration ran more than once", applied, len(st))
	}
	for _, m := range st {
		if !m.Applied {
			t.Fatalf("migration %+v not applied", m)
		}
	}
}

// TestUnstorableCharacters stores what PostgreSQL's text and jsonb refuse (NUL, invalid UTF-8)
// where it comes from engines rather than clients: results and failure messages.
func TestUnstorableCharacters(t *testing.T) {
	ctx := t.Context()
	s := openStore(t, postgres.Config{})
	img := createImage(t, s)
	ops := mustOps(t, `[{"op":"ocr","engine":"tesseract"}]`)
	tasks := []*imaged.Task{{ImageID: img.ID, Ops: ops}, {ImageID: img.ID, Ops: ops}}
	if _, err := s.CreateTasks(ctx, tasks, nil); err != nil {
		t.Fatalf("CreateTasks: %v", err)
	}
	c, err := s.ClaimTask(ctx, tasks[0].ID, nil, "w", time.Minute)
	if err != nil || c == nil {
		t.Fatalf("ClaimTask = %v, %v", c, err)
	}
	res := &imaged.TaskResult{Analyses: []imaged.Analysis{{Op: "ocr",
		Result: json.RawMessage(`{"text":"a\u0000b","note":"a\\u0000b"}`)}}}
	done, err := s.CompleteTask(ctx, c.ID, c.Attempts, res)
	if err != nil {
		t.Fatalf("CompleteTask with a NUL in the result: %v", err)
	}
	var got struct{ Text, Note string }
	if err := json.Unmarshal(done.Result.Analyses[0].Result, &got); err != nil {
		t.Fatalf("stored result: %v", err)
	}
	if got.Text != "a\uFFFDb" || got.Note != `a\u0000b` {
		t.Fatalf("stored text %q, note %q; want %q, %q", got.Text, got.Note, "a\uFFFDb", `a\u0000b`)
	}

	c, err = s.ClaimTask(ctx, tasks[1].ID, nil, "w", time.Minute)
	if err != nil || c == nil {
		t.Fatalf("ClaimTask = %v, %v", c, err)
	}
	failed, err := s.FailTask(ctx, c.ID, c.Attempts, &imaged.TaskFailure{Code: imaged.EInvalid, Message: "bad\x00byte \xff"})
	if err != nil {
		t.Fatalf("FailTask with a NUL and invalid UTF-8 in the message: %v", err)
	}
	if failed.Error.Message != "bad\uFFFDbyte \uFFFD" {
		t.Fatalf("stored message %q", failed.Error.Message)
	}

	// Client input that cannot be stored is the client's error.
	err = s.CreateImage(ctx, &imaged.Image{Key: "k", Format: "png", ContentType: "image/png", Filename: "a\x00.png"})
	wantCode(t, err, imaged.EInvalid)
}

func TestParseURL(t *testing.T) {
	ok := []struct {
		raw  string
		want postgres.Config
	}{
		{"postgres://imaged:p%40ss@db.example:5433/imaged?sslmode=require&pool_min_conns=2&pool_max_conns=30&command_timeout=15s&schema=imaged_prod",
			postgres.Config{URL: "postgres://imaged:p%40ss@db.example:5433/imaged?sslmode=require", MinConns: 2, MaxConns: 30,
				CommandTimeout: 15 * time.Second, Schema: "imaged_prod"}},
		{"postgresql://localhost/imaged", postgres.Config{URL: "postgresql://localhost/imaged"}},
		{"postgres://localhost/imaged?command_timeout=90", postgres.Config{URL: "postgres://localhost/imaged", CommandTimeout: 90 * time.Second}},
		{"postgres://localhost/imaged?command_timeout=1.5", postgres.Config{URL: "postgres://localhost/imaged", CommandTimeout: 1500 * time.Millisecond}},
		{"postgres://localhost/imaged?pool_min_conns=0", postgres.Config{URL: "postgres://localhost/imaged", MinConns: -1}},
		{"postgres://localhost/imaged?pool_max_conn_lifetime=1h&application_name=api&pool_max_conns=3",
			postgres.Config{URL: "postgres://localhost/imaged?application_name=api&pool_max_conn_lifetime=1h", MaxConns: 3}},
	}
	for _, c := range ok {
		got, err := postgres.ParseURL(c.raw)
		if err != nil {
			t.Fatalf("ParseURL(%s): %v", c.raw, err)
		}
		if got.URL != c.want.URL || got.MinConns != c.want.MinConns || got.MaxConns != c.want.MaxConns ||
			got.CommandTimeout != c.want.CommandTimeout || got.Schema != c.want.Schema || got.NoMigrate {
			t.Fatalf("ParseURL(%s) = %+v, want %+v", c.raw, got, c.want)
		}
	}

	bad := []struct{ raw, field string }{
		{"mysql://localhost/imaged", "url"},
		{"postgres://imaged:secret@db:port/imaged", "url"},
		{"postgres://localhost/imaged?pool_max_conns=0", "pool_max_conns"},
		{"postgres://localhost/imaged?pool_max_conns=many", "pool_max_conns"},
		{"postgres://localhost/imaged?pool_max_conns=99999999999", "pool_max_conns"},
		{"postgres://localhost/imaged?pool_min_conns=-1", "pool_min_conns"},
		{"postgres://localhost/imaged?pool_min_conns=10&pool_max_conns=5", "pool_min_conns"},
		{"postgres://localhost/imaged?command_timeout=soon", "command_timeout"},
		{"postgres://localhost/imaged?command_timeout=0s", "command_timeout"},
		{"postgres://localhost/imaged?command_timeout=-5s", "command_timeout"},
		{"postgres://localhost/imaged?schema=Imaged", "schema"},
		{"postgres://localhost/imaged?schema=a-b", "schema"},
		{"postgres://localhost/imaged?schema=1abc", "schema"},
		{"postgres://localhost/imaged?schema=pg_imaged", "schema"},
		{"postgres://localhost/imaged?schema=", "schema"},
	}
	for _, c := range bad {
		_, err := postgres.ParseURL(c.raw)
		var e *imaged.Error
		if !errors.As(err, &e) || e.Code != imaged.EInvalid || e.Field != c.field {
			t.Fatalf("ParseURL(%s) = %v; want invalid_argument naming %s", c.raw, err, c.field)
		}
		if c.field != "url" && !strings.Contains(e.Message, c.field) {
			t.Fatalf("ParseURL(%s): message %q does not name %s", c.raw, e.Message, c.field)
		}
		if strings.Contains(err.Error(), "secret") {
			t.Fatalf("ParseURL(%s): error %q repeats the password", c.raw, err)
		}
	}
}

// TestOpenRejectsBadConfig needs no server: a bad setting fails before connecting.
func TestOpenRejectsBadConfig(t *testing.T) {
	cases := []struct {
		cfg   postgres.Config
		field string
	}{
		{postgres.Config{}, "url"},
		{postgres.Config{URL: "redis://localhost"}, "url"},
		{postgres.Config{URL: "postgres://localhost/imaged", Schema: "Imaged"}, "schema"},
		{postgres.Config{URL: "postgres://localhost/imaged?pool_max_conns=2&pool_min_conns=3"}, "pool_min_conns"},
		{postgres.Config{URL: "postgres://localhost/imaged?pool_max_conns=2", MinConns: 3}, "pool_min_conns"},
		{postgres.Config{URL: "postgres://localhost/imaged", MinConns: 10, MaxConns: 2}, "pool_min_conns"},
		{postgres.Config{URL: "postgres://localhost/imaged", MinConns: 30}, "pool_min_conns"},
		{postgres.Config{URL: "postgres://localhost/imaged", MaxConns: -1}, "pool_max_conns"},
		{postgres.Config{URL: "postgres://localhost/imaged", CommandTimeout: -time.Second}, "command_timeout"},
	}
	for _, c := range cases {
		_, err := postgres.Open(t.Context(), c.cfg)
		var e *imaged.Error
		if !errors.As(err, &e) || e.Code != imaged.EInvalid || e.Field != c.field {
			t.Fatalf("Open(%+v) = %v; want invalid_argument naming %s", c.cfg, err, c.field)
		}
	}
}

// TestOpenUnreachable needs no server either: nothing listens on the port.
func TestOpenUnreachable(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	began := time.Now()
	_, err = postgres.Open(t.Context(), postgres.Config{URL: "postgres://postgres@" + addr + "/test?sslmode=disable"})
	wantCode(t, err, imaged.EUnavailable)
	if d := time.Since(began); d > 5*time.Second {
		t.Fatalf("Open of an unreachable server took %s", d)
	}
}

// --- outages ---------------------------------------------------------------------------------

// proxy stands between a store and the shared PostgreSQL, so a test can take "the server" away
// without touching the real one.
type proxy struct {
	target, addr string

	mu    sync.Mutex
	ln    net.Listener          // nil while cut
	conns map[net.Conn]struct{} // every live connection, both sides
	hung  bool
}

func startProxy(t *testing.T, target string) *proxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("proxy: %v", err)
	}
	p := &proxy{target: target, addr: ln.Addr().String(), conns: map[net.Conn]struct{}{}}
	p.serve(ln)
	t.Cleanup(p.cut)
	return p
}

func (p *proxy) serve(ln net.Listener) {
	p.mu.Lock()
	p.ln = ln
	p.mu.Unlock()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go p.handle(ln, c)
		}
	}()
}

// track records c as live unless ln has been cut meanwhile.
func (p *proxy) track(ln net.Listener, c net.Conn) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.ln != ln {
		c.Close()
		return false
	}
	p.conns[c] = struct{}{}
	return true
}

func (p *proxy) handle(ln net.Listener, client net.Conn) {
	if !p.track(ln, client) {
		return
	}
	p.mu.Lock()
	hung := p.hung
	p.mu.Unlock()
	if hung {
		return // held open, never answered
	}
	upstream, err := net.DialTimeout("tcp", p.target, 5*time.Second)
	if err != nil {
		client.Close()
		return
	}
	if !p.track(ln, upstream) {
		client.Close()
		return
	}
	go func() {
		io.Copy(upstream, client)
		upstream.Close()
		client.Close()
	}()
	io.Copy(client, upstream)
	client.Close()
	upstream.Close()
}

func (p *proxy) dropConns() {
	for c := range p.conns {
		c.Close()
	}
	clear(p.conns)
}

// cut takes the server away: new connections are refused, live ones dropped.
func (p *proxy) cut() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.ln != nil {
		p.ln.Close()
		p.ln = nil
	}
	p.dropConns()
}

// restore brings the server back on the same address.
func (p *proxy) restore(t *testing.T) {
	t.Helper()
	ln, err := net.Listen("tcp", p.addr)
	if err != nil {
		t.Fatalf("proxy: listen again on %s: %v", p.addr, err)
	}
	p.serve(ln)
}

// hang makes the server stop answering: live connections are dropped and new ones accepted
// but never served.
func (p *proxy) hang() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.hung = true
	p.dropConns()
}

// proxiedStore opens a store through a new proxy, on a schema migrated beforehand.
func proxiedStore(t *testing.T, timeout time.Duration) (*postgres.Store, *proxy) {
	t.Helper()
	direct := openStore(t, postgres.Config{})
	base, err := url.Parse(baseConfig(t).URL)
	if err != nil || base.Host == "" {
		t.Skipf("the test database URL %s names no TCP host to put a proxy before", redacted(testURL()))
	}
	target := base.Host
	if base.Port() == "" {
		target = net.JoinHostPort(base.Hostname(), "5432")
	}
	p := startProxy(t, target)
	via := *base
	via.Host = p.addr
	s := openStore(t, postgres.Config{URL: via.String(), Schema: direct.Schema(), NoMigrate: true,
		MinConns: 2, MaxConns: 4, CommandTimeout: timeout})
	// The proxy goes first at the end, so no connection attempt is left waiting on it when
	// the store closes.
	t.Cleanup(p.cut)
	return s, p
}

// TestServerGoneIsUnavailable cuts the connection to the server: calls fail fast with
// EUnavailable, and once the server is back the next call succeeds on a new connection.
func TestServerGoneIsUnavailable(t *testing.T) {
	ctx := t.Context()
	s, p := proxiedStore(t, 10*time.Second)
	img := createImage(t, s)
	if _, err := s.Image(ctx, imaged.DefaultTenant, img.ID); err != nil {
		t.Fatalf("Image before the outage: %v", err)
	}

	p.cut()
	for i := range 3 {
		began := time.Now()
		_, err := s.Image(ctx, imaged.DefaultTenant, img.ID)
		d := time.Since(began)
		e := wantCode(t, err, imaged.EUnavailable)
		if e.Err == nil {
			t.Fatalf("call %d: %v keeps no cause", i, err)
		}
		if d > 2*time.Second {
			t.Fatalf("call %d during the outage took %s, want fast failure", i, d)
		}
		t.Logf("call %d during the outage: %s after %s", i, err, d)
	}
	began := time.Now()
	wantCode(t, s.Ping(ctx), imaged.EUnavailable)
	_, err := s.ClaimTask(ctx, "", nil, "w", time.Minute)
	wantCode(t, err, imaged.EUnavailable)
	t.Logf("Ping and ClaimTask during the outage failed in %s", time.Since(began))

	p.restore(t)
	began = time.Now()
	got, err := s.Image(ctx, imaged.DefaultTenant, img.ID)
	if err != nil {
		t.Fatalf("first call after the server came back: %v", err)
	}
	t.Logf("first call after the server came back succeeded in %s", time.Since(began))
	if got.ID != img.ID {
		t.Fatalf("Image = %s, want %s", got.ID, img.ID)
	}
	if err := s.Ping(ctx); err != nil {
		t.Fatalf("Ping after the server came back: %v", err)
	}
}

// TestServerHangsIsUnavailable stops the server answering: a call returns EUnavailable once
// the command timeout runs out, not later.
func TestServerHangsIsUnavailable(t *testing.T) {
	ctx := t.Context()
	const timeout = 300 * time.Millisecond
	s, p := proxiedStore(t, timeout)
	img := createImage(t, s)

	p.hang()
	// The first call may still find a dropped connection (and fail at once); after that the
	// pool has to connect to a server that never answers.
	var last error
	var lastTook time.Duration
	for i := range 2 {
		began := time.Now()
		_, last = s.Image(ctx, imaged.DefaultTenant, img.ID)
		lastTook = time.Since(began)
		wantCode(t, last, imaged.EUnavailable)
		t.Logf("call %d to a hung server: %s after %s", i, last, lastTook)
	}
	if !strings.Contains(imaged.ErrorMessage(last), "did not answer within") {
		t.Fatalf("call to a hung server = %v; want the command timeout", last)
	}
	if lastTook < timeout-50*time.Millisecond || lastTook > timeout+2*time.Second {
		t.Fatalf("call to a hung server took %s; want about the command timeout %s", lastTook, timeout)
	}
}

// TestCommandTimeoutCancelsStatement makes a call wait on a row lock past the command timeout:
// it returns EUnavailable, and the server has stopped the statement, so the change the caller
// was told failed does not happen later when the lock is released.
func TestCommandTimeoutCancelsStatement(t *testing.T) {
	ctx := t.Context()
	const timeout = 300 * time.Millisecond
	s := openStore(t, postgres.Config{CommandTimeout: timeout})
	img := createImage(t, s)
	task := &imaged.Task{ImageID: img.ID, Ops: mustOps(t, `[{"op":"blur","sigma":1}]`)}
	if _, err := s.CreateTasks(ctx, []*imaged.Task{task}, nil); err != nil {
		t.Fatalf("CreateTasks: %v", err)
	}

	holder, err := s.Pool().Begin(ctx)
	if err != nil {
		t.Fatalf("Begin: %v", err)
	}
	defer holder.Rollback(context.Background())
	if _, err := holder.Exec(ctx, `SELECT 1 FROM tasks WHERE id = $1 FOR UPDATE`, task.ID); err != nil {
		t.Fatalf("lock the task: %v", err)
	}
	began := time.Now()
	_, err = s.CancelTask(ctx, imaged.DefaultTenant, task.ID)
	took := time.Since(began)
	e := wantCode(t, err, imaged.EUnavailable)
	if !strings.Contains(e.Message, "did not answer within") {
		t.Fatalf("CancelTask behind a lock = %v; want the command timeout", err)
	}
	// Well before the second after which the connection would be closed instead.
	if took < timeout || took > timeout+900*time.Millisecond {
		t.Fatalf("CancelTask behind a lock returned after %s; want about %s", took, timeout)
	}
	t.Logf("CancelTask behind a lock: %s after %s", err, took)
	if err := holder.Rollback(ctx); err != nil {
		t.Fatalf("Rollback: %v", err)
	}
	got, err := s.Task(ctx, imaged.DefaultTenant, task.ID)
	if err != nil {
		t.Fatalf("Task after the timeout: %v", err)
	}
	if got.Status != imaged.StatusQueued {
		t.Fatalf("task is %s after a cancel that timed out; the statement ran on", got.Status)
	}
}
