package http

import (
	"net/http"
	"net/netip"
	"os"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/imaged/imaged"
	"github.com/imaged/imaged/ratelimit"
)

// routePatterns reads every pattern routes.go registers, so a route added later is covered by
// the access tests without anyone remembering to list it.
func routePatterns(t *testing.T) []string {
	t.Helper()
	src, err := os.ReadFile("routes.go")
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, m := range regexp.MustCompile(`mux\.Handle\("([^"]+)"`).FindAllStringSubmatch(string(src), -1) {
		out = append(out, m[1])
	}
	if len(out) < 15 {
		t.Fatalf("found only %d routes in routes.go", len(out))
	}
	return out
}

// concrete turns a pattern into a method and a path that matches it.
func concrete(pattern string) (string, string) {
	method, path, ok := strings.Cut(pattern, " ")
	if !ok {
		method, path = "GET", "/no-such-route"
	}
	path = regexp.MustCompile(`\{[a-z_]+(\.\.\.)?\}`).ReplaceAllString(path, "x")
	return method, path
}

func TestEveryProtectedRouteRefusesMissingWrongOrRevokedKeys(t *testing.T) {
	st := newStack(t, Config{}, Deps{}, false)
	revoked := st.newKey(&imaged.APIKey{Name: "old"})
	if _, err := st.store.RevokeAPIKey(t.Context(), strings.Split(revoked, "_")[1]); err != nil {
		t.Fatal(err)
	}
	other := st.newKey(&imaged.APIKey{Name: "other"})
	admin := st.newKey(&imaged.APIKey{Name: "admin", Admin: true})
	wrongSecret := other[:len(other)-4] + "aaaa"
	if wrongSecret == other {
		wrongSecret = other[:len(other)-4] + "bbbb"
	}
	// The routes without a key are exactly these; adding one is a decision this test records.
	open := []string{"GET /health", "GET /health/live", "GET /health/ready", "GET /metrics",
		"GET /openapi.json", "GET /v1/blobs/{key...}", "GET /i/{signature}/{path...}"}
	if len(routeAccess) != len(open) {
		t.Fatalf("routeAccess lists %d routes, want exactly %v", len(routeAccess), open)
	}
	for _, p := range open {
		if _, ok := routeAccess[p]; !ok {
			t.Fatalf("routeAccess lacks %s", p)
		}
	}
	protected := 0
	for _, p := range routePatterns(t) {
		if _, open := routeAccess[p]; open {
			continue
		}
		protected++
		method, path := concrete(p)
		for name, h := range map[string]map[string]string{
			"no key":            nil,
			"empty key":         {"X-API-Key": " "},
			"malformed key":     {"X-API-Key": "hello"},
			"unknown key":       {"Authorization": "Bearer imk_aaaaaaaa_" + strings.Repeat("a", 52)},
			"wrong secret":      {"X-API-Key": wrongSecret},
			"revoked key":       {"X-API-Key": revoked},
			"basic auth":        {"Authorization": "Basic " + st.key},
			"key in wrong slot": {"X-Api-Token": st.key},
		} {
			r := st.do(method, path, nil, h)
			if r.status != 401 || r.errorCode() != imaged.EUnauthenticated {
				t.Errorf("%s %s with %s: %d %s, want 401 unauthenticated", method, path, name, r.status, r.body)
			}
			if r.status == 401 && r.header.Get("WWW-Authenticate") == "" {
				t.Errorf("%s %s: a 401 without WWW-Authenticate", method, path)
			}
		}
		key := st.key
		if adminRoute(p) {
			// Keys and tenants are an admin's: a valid key that is not one is refused.
			if r := st.withKey(method, path, nil, nil); r.status != 403 || r.errorCode() != imaged.EPermissionDenied {
				t.Errorf("%s %s with a non-admin key: %d %s, want 403 permission_denied", method, path, r.status, r.body)
			}
			key = admin
		}
		if r := st.do(method, path, nil, map[string]string{"X-API-Key": key}); r.status == 401 || r.status == 403 {
			t.Errorf("%s %s with a valid key: %d %s", method, path, r.status, r.body)
		}
		if r := st.do(method, path, nil, map[string]string{"Authorization": "bearer " + st.key}); r.status == 401 {
			t.Errorf("%s %s with Authorization: bearer: %d", method, path, r.status)
		}
	}
	if protected < 12 {
		t.Fatalf("only %d protected routes", protected)
	}
	// Revoked messages say so; the others do not tell unknown from wrong.
	if r := st.do("GET", "/v1/tasks", nil, map[string]string{"X-API-Key": revoked}); !strings.Contains(string(r.body), "revoked") {
		t.Errorf("revoked key: %s", r.body)
	}
}

func TestOpenRoutesNeedNoKeyAndAreNotCounted(t *testing.T) {
	st := newStack(t, Config{IPLimit: imaged.RateLimit{PerMinute: 2, Burst: 2}}, Deps{Limiter: ratelimit.NewMemory()}, false)
	for range 5 {
		for _, path := range []string{"/health", "/health/live", "/health/ready", "/metrics"} {
			r := st.do("GET", path, nil, nil)
			if r.status != 200 || r.header.Get("RateLimit-Limit") != "" {
				t.Fatalf("GET %s without a key: %d, RateLimit-Limit %q", path, r.status, r.header.Get("RateLimit-Limit"))
			}
		}
	}
	// Signed blob URLs need no key but count against the client address.
	for i := range 3 {
		r := st.do("GET", "/v1/blobs/images/x.png?expires=1&sig=x", nil, nil)
		want := 403
		if i == 2 {
			want = 429
		}
		if r.status != want {
			t.Fatalf("signed blob request %d: %d %s, want %d", i, r.status, r.body, want)
		}
	}
}

func TestMetricsApart(t *testing.T) {
	st := newStack(t, Config{MetricsApart: true}, Deps{}, false)
	if r := st.withKey("GET", "/metrics", nil, nil); r.status != 404 {
		t.Fatalf("GET /metrics on the API with MetricsApart: %d", r.status)
	}
}

func TestKeyLimitsFromTheRecord(t *testing.T) {
	st := newStack(t, Config{KeyLimit: imaged.RateLimit{PerMinute: 1000, Burst: 50}}, Deps{Limiter: ratelimit.NewMemory()}, false)
	small := st.newKey(&imaged.APIKey{Name: "small", RateLimit: 5, Burst: 5})
	for i := range 5 {
		r := st.do("GET", "/v1/tasks", nil, map[string]string{"X-API-Key": small})
		if r.status != 200 || r.header.Get("RateLimit-Limit") != "5" || r.header.Get("RateLimit-Remaining") != strings.TrimSpace(string(rune('0'+4-i))) {
			t.Fatalf("request %d: %d, RateLimit-Limit %s, Remaining %s", i, r.status, r.header.Get("RateLimit-Limit"), r.header.Get("RateLimit-Remaining"))
		}
		if r.header.Get("RateLimit-Policy") != "5;w=60, 5;w=1" {
			t.Fatalf("RateLimit-Policy %q", r.header.Get("RateLimit-Policy"))
		}
	}
	r := st.do("GET", "/v1/tasks", nil, map[string]string{"X-API-Key": small})
	if r.status != 429 || r.errorCode() != imaged.ERateLimited {
		t.Fatalf("6th request of a 5/min key: %d %s", r.status, r.body)
	}
	if ra := r.header.Get("Retry-After"); ra == "" || ra == "0" || r.header.Get("RateLimit-Remaining") != "0" || r.header.Get("RateLimit-Reset") == "" {
		t.Fatalf("429 headers: %v", r.header)
	}
	// Another key is not affected and gets the server's defaults.
	r = st.withKey("GET", "/v1/tasks", nil, nil)
	if r.status != 200 || r.header.Get("RateLimit-Limit") != "1000" || r.header.Get("RateLimit-Remaining") != "49" {
		t.Fatalf("default key: %d, RateLimit-Limit %s, Remaining %s", r.status, r.header.Get("RateLimit-Limit"), r.header.Get("RateLimit-Remaining"))
	}
}

func TestFailedAuthCountsAgainstTheClientAddress(t *testing.T) {
	st := newStack(t, Config{IPLimit: imaged.RateLimit{PerMinute: 60, Burst: 10}, KeyLimit: imaged.RateLimit{PerMinute: 1000, Burst: 50}},
		Deps{Limiter: ratelimit.NewMemory()}, false)
	statuses := map[int]int{}
	for range 15 {
		statuses[st.do("GET", "/v1/tasks", nil, map[string]string{"X-API-Key": "imk_guess"}).status]++
	}
	if statuses[401] != 10 || statuses[429] != 5 {
		t.Fatalf("15 guesses from one address: %v, want 10×401 then 429s", statuses)
	}
	// A valid key from the same address is limited by its own window.
	if r := st.withKey("GET", "/v1/tasks", nil, nil); r.status != 200 {
		t.Fatalf("a valid key after the guesses: %d", r.status)
	}
}

func testExactLimit(t *testing.T, limiter imaged.RateLimiter) {
	st := newStack(t, Config{}, Deps{Limiter: limiter}, false)
	key := st.newKey(&imaged.APIKey{Name: "fifty", RateLimit: 50, Burst: 50})
	counts := parallel(200, func() int {
		return st.do("GET", "/v1/tasks?limit=1", nil, map[string]string{"X-API-Key": key}).status
	})
	if counts[200] != 50 || counts[429] != 150 {
		t.Fatalf("200 concurrent requests against 50/min: %v, want exactly 50 passed and 150 refused", counts)
	}
}

func TestExactLimitInMemory(t *testing.T) { testExactLimit(t, ratelimit.NewMemory()) }

func TestExactLimitInRedis(t *testing.T) { testExactLimit(t, redisLimiter(t)) }

func TestConcurrencyPerKey(t *testing.T) {
	st := newStack(t, Config{Concurrency: 8}, Deps{}, false)
	st.proc.gate = make(chan struct{})
	two := st.newKey(&imaged.APIKey{Name: "two", Concurrency: 2})
	id := st.uploadImage()
	body := []byte(`{"image_id":"` + id + `","ops":[{"op":"blur"}]}`)
	done := make(chan int, 2)
	for range 2 {
		go func() {
			done <- st.do("POST", "/v1/process", body, map[string]string{"X-API-Key": two, "Content-Type": "application/json"}).status
		}()
	}
	deadline := time.Now().Add(5 * time.Second)
	for st.proc.calls.Load() < 2 {
		if time.Now().After(deadline) {
			t.Fatal("the two first requests never reached the processor")
		}
		time.Sleep(5 * time.Millisecond)
	}
	r := st.do("GET", "/v1/tasks", nil, map[string]string{"X-API-Key": two})
	if r.status != 429 || !strings.Contains(string(r.body), "at once") || r.header.Get("Retry-After") == "" {
		t.Fatalf("a third request while two run: %d %s", r.status, r.body)
	}
	if r := st.withKey("GET", "/v1/tasks", nil, nil); r.status != 200 {
		t.Fatalf("another key while the first is at its limit: %d", r.status)
	}
	close(st.proc.gate)
	for range 2 {
		if s := <-done; s != 200 {
			t.Fatalf("a gated request ended with %d", s)
		}
	}
	if r := st.do("GET", "/v1/tasks", nil, map[string]string{"X-API-Key": two}); r.status != 200 {
		t.Fatalf("after the slots were released: %d", r.status)
	}
}

// adminRoute reports whether a route pattern manages keys or tenants (admin keys only).
func adminRoute(pattern string) bool {
	_, path, _ := strings.Cut(pattern, " ")
	return strings.HasPrefix(path, "/v1/keys") || strings.HasPrefix(path, "/v1/tenants")
}

// With authentication off there is one tenant and no key or address rate limit applies; the
// concurrency limit still does.
func TestAuthOff(t *testing.T) {
	st := newStack(t, Config{KeyLimit: imaged.RateLimit{PerMinute: 3, Burst: 3}, IPLimit: imaged.RateLimit{PerMinute: 1, Burst: 1}, Concurrency: 1},
		Deps{Limiter: ratelimit.NewMemory()}, true)
	for i := range 10 {
		if r := st.do("GET", "/v1/tasks", nil, nil); r.status != 200 || r.header.Get("RateLimit-Limit") != "" {
			t.Fatalf("request %d with authentication off: %d %s, RateLimit-Limit %q", i, r.status, r.body, r.header.Get("RateLimit-Limit"))
		}
	}
	if r := st.do("GET", "/v1/keys", nil, nil); r.status != 403 || r.errorCode() != imaged.EPermissionDenied {
		t.Fatalf("GET /v1/keys with authentication off: %d %s", r.status, r.body)
	}
	st.proc.gate = make(chan struct{})
	id := st.uploadImageAs("")
	done := make(chan int)
	go func() {
		done <- st.do("POST", "/v1/process", []byte(`{"image_id":"`+id+`","ops":[{"op":"blur"}]}`), map[string]string{"Content-Type": "application/json"}).status
	}()
	waitFor(t, "the first request reaches the processor", func() bool { return st.proc.calls.Load() == 1 })
	if r := st.do("GET", "/v1/tasks", nil, nil); r.status != 429 || !strings.Contains(string(r.body), "at once") {
		t.Fatalf("a second request while one runs, concurrency 1, authentication off: %d %s", r.status, r.body)
	}
	close(st.proc.gate)
	if s := <-done; s != 200 {
		t.Fatalf("the gated request: %d", s)
	}
}

func TestSecurityHeaders(t *testing.T) {
	st := newStack(t, Config{}, Deps{}, false)
	for _, r := range []resp{
		st.do("GET", "/v1/tasks", nil, nil),
		st.withKey("GET", "/v1/tasks", nil, nil),
		st.withKey("GET", "/nowhere", nil, nil),
		st.do("GET", "/health", nil, nil),
	} {
		for h, want := range map[string]string{
			"X-Content-Type-Options":       "nosniff",
			"X-Frame-Options":              "DENY",
			"Referrer-Policy":              "no-referrer",
			"Cross-Origin-Resource-Policy": "same-origin",
			"Cache-Control":                "no-store",
		} {
			if got := r.header.Get(h); got != want {
				t.Errorf("%s = %q on a %d, want %q", h, got, r.status, want)
			}
		}
		if !strings.Contains(r.header.Get("Content-Security-Policy"), "default-src 'none'") {
			t.Errorf("Content-Security-Policy = %q", r.header.Get("Content-Security-Policy"))
		}
	}
}

func TestClientAddress(t *testing.T) {
	s := &Server{cfg: Config{TrustedProxies: []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")}}}
	for _, tc := range []struct{ remote, xff, want string }{
		{"192.0.2.1:1234", "", "192.0.2.1"},
		{"192.0.2.1:1234", "203.0.113.9", "192.0.2.1"}, // an untrusted peer cannot claim another address
		{"10.1.1.1:1234", "203.0.113.9", "203.0.113.9"},
		{"10.1.1.1:1234", "1.2.3.4, 203.0.113.9, 10.2.2.2", "203.0.113.9"},
		{"10.1.1.1:1234", "garbage", "10.1.1.1"},
		{"[2001:db8:1:2:3:4:5:6]:1234", "", "2001:db8:1:2::/64"},
		{"[::ffff:192.0.2.7]:1234", "", "192.0.2.7"},
	} {
		r := &http.Request{RemoteAddr: tc.remote, Header: http.Header{}}
		if tc.xff != "" {
			r.Header.Set("X-Forwarded-For", tc.xff)
		}
		if got := s.clientIP(r); got != tc.want {
			t.Errorf("clientIP(%s, XFF %q) = %s, want %s", tc.remote, tc.xff, got, tc.want)
		}
	}
}

// One client alone sends four times as many pipelines at once as there are slots: it gets
// only 200s (the ones beyond the slots after waiting in line). While it keeps every slot
// busy, another client's pipeline starts at the next free slot, ahead of the first client's
// queued ones.
func TestALoneClientUsesEverySlotAndAnotherGetsTheNext(t *testing.T) {
	st := newStack(t, Config{MaxInflight: 2, MaxWaiting: 16, WaitTimeout: time.Minute}, Deps{}, false)
	st.proc.gate = make(chan struct{})
	heavy := st.newKey(&imaged.APIKey{Name: "heavy"})
	id := st.uploadImage()
	post := func(key, op string) int {
		body := []byte(`{"image_id":"` + id + `","ops":[{"op":"` + op + `"}]}`)
		return st.do("POST", "/v1/process", body, map[string]string{"X-API-Key": key, "Content-Type": "application/json"}).status
	}
	done := make(chan int, 9)
	for range 8 {
		go func() { done <- post(heavy, "blur") }()
	}
	waitFor(t, "two heavy pipelines run and six wait", func() bool {
		busy, waiting, _ := st.api.slots.state()
		return busy == 2 && waiting == 6
	})
	go func() { done <- post(st.key, "grayscale") }()
	waitFor(t, "the light request waits", func() bool { _, waiting, _ := st.api.slots.state(); return waiting == 7 })
	st.proc.gate <- struct{}{} // one heavy pipeline finishes
	waitFor(t, "the freed slot goes to the light client", func() bool {
		_, _, held := st.api.slots.state()
		return len(held) == 2
	})
	close(st.proc.gate)
	for range 9 {
		if s := <-done; s != 200 {
			t.Fatalf("a pipeline ended with %d, want every one 200", s)
		}
	}
}
