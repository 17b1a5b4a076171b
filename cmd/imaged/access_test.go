package main

import (
	"bufio"
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os/exec"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"
)

// imaged runs the binary with the server's settings and returns stdout, failing on an error.
func (s *server) imaged(args ...string) string {
	s.t.Helper()
	cmd := exec.Command(imagedBinary(s.t), args...)
	cmd.Env = s.env
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		s.t.Fatalf("imaged %s: %v\n%s", strings.Join(args, " "), err, stderr.String())
	}
	return string(out)
}

func (s *server) getWith(path string, header map[string]string) *response {
	return s.do("GET", path, nil, header)
}

var loggedKey = regexp.MustCompile(`"api_key":"(imk_[a-z2-7]+_[a-z2-7]+)"`)

func TestFirstStartCreatesAnAdminKeyOnce(t *testing.T) {
	dir := t.TempDir()
	s := startServerKeyed(t, dir, false)
	matches := loggedKey.FindAllStringSubmatch(s.logs.String(), -1)
	if len(matches) != 1 {
		t.Fatalf("the first start logged %d keys, want 1:\n%s", len(matches), tail(s.logs.String(), 3000))
	}
	s.key = matches[0][1]
	if r := s.get("/v1/tasks"); r.status != 200 {
		t.Fatalf("the logged admin key: %d %s", r.status, r.body)
	}
	if r := s.getWith("/v1/tasks", map[string]string{"X-API-Key": ""}); r.status != 401 {
		t.Fatalf("no key: %d %s", r.status, r.body)
	}
	if list := s.imaged("apikey", "list"); !strings.Contains(list, "admin") || !strings.Contains(list, "true") {
		t.Fatalf("apikey list after the first start:\n%s", list)
	}
	s.stop()
	s2 := startServerKeyed(t, dir, false)
	if strings.Contains(s2.logs.String(), "imk_") {
		t.Fatalf("a second start logged a key:\n%s", tail(s2.logs.String(), 3000))
	}
}

func TestAPIKeyCommandsAgainstARunningServer(t *testing.T) {
	s := startServer(t, "")
	small := s.createKey("small", "--rate-limit", "5/m", "--burst", "5")
	// Limits come from the key's record: the 6th request in a minute is refused.
	for i := range 5 {
		r := s.getWith("/v1/tasks", map[string]string{"X-API-Key": small})
		if r.status != 200 || r.header.Get("RateLimit-Limit") != "5" {
			t.Fatalf("request %d: %d, RateLimit-Limit %q", i, r.status, r.header.Get("RateLimit-Limit"))
		}
	}
	r := s.getWith("/v1/tasks", map[string]string{"X-API-Key": small})
	if r.status != 429 || r.header.Get("Retry-After") == "" || r.header.Get("RateLimit-Remaining") != "0" {
		t.Fatalf("6th request: %d %v %s", r.status, r.header, r.body)
	}
	// The harness key is unaffected.
	if r := s.get("/v1/tasks"); r.status != 200 {
		t.Fatalf("another key: %d", r.status)
	}

	list := s.imaged("apikey", "list")
	prefix := strings.Split(small, "_")[1]
	if !strings.Contains(list, prefix) || !strings.Contains(list, "5/m burst 5") || strings.Contains(list, small) {
		t.Fatalf("apikey list:\n%s", list)
	}
	victim := s.createKey("victim")
	if r := s.getWith("/v1/tasks", map[string]string{"X-API-Key": "", "Authorization": "Bearer " + victim}); r.status != 200 {
		t.Fatalf("a new key as Bearer: %d", r.status)
	}
	if out := s.imaged("apikey", "revoke", victim); !strings.Contains(out, "revoked") {
		t.Fatalf("apikey revoke: %s", out)
	}
	r = s.getWith("/v1/tasks", map[string]string{"X-API-Key": "", "Authorization": "Bearer " + victim})
	if r.status != 401 || !strings.Contains(string(r.body), "revoked") {
		t.Fatalf("a revoked key on the running server: %d %s", r.status, r.body)
	}
	if !strings.Contains(s.imaged("apikey", "list"), "victim") {
		t.Fatal("a revoked key is no longer listed")
	}

	for _, args := range [][]string{
		{"apikey", "create"},
		{"apikey", "create", "--name", "x", "--rate-limit", "10/h"},
		{"apikey", "create", "--name", "x", "--burst", "-1"},
		{"apikey", "revoke"},
		{"apikey", "revoke", "nothing"},
		{"apikey", "rotate"},
	} {
		cmd := exec.Command(imagedBinary(t), args...)
		cmd.Env = s.env
		if out, err := cmd.CombinedOutput(); err == nil {
			t.Errorf("imaged %s succeeded:\n%s", strings.Join(args, " "), out)
		}
	}
}

func TestAuthOffWarnsLoudly(t *testing.T) {
	s := startServer(t, "", "IMAGED_AUTH=off")
	if !strings.Contains(s.logs.String(), "AUTHENTICATION IS OFF") {
		t.Fatalf("no warning with IMAGED_AUTH=off:\n%s", tail(s.logs.String(), 2000))
	}
	if r := s.get("/v1/tasks"); r.status != 200 {
		t.Fatalf("no key with authentication off: %d", r.status)
	}
}

func TestBootstrapKeySetting(t *testing.T) {
	b := make([]byte, 37)
	rand.Read(b)
	// A well-formed key made here: imk_<8 base32>_<52 base32>.
	key := "imk_" + base32(b[:5]) + "_" + base32(b[5:])
	s := startServerKeyed(t, "", false, "IMAGED_BOOTSTRAP_API_KEY="+key)
	if loggedKey.MatchString(s.logs.String()) {
		t.Fatal("a key was generated and logged although one was configured")
	}
	s.key = key
	if r := s.get("/v1/tasks"); r.status != 200 {
		t.Fatalf("the configured key: %d %s", r.status, r.body)
	}
	cmd := exec.Command(imagedBinary(t), "serve")
	cmd.Env = append(s.env[:len(s.env):len(s.env)], "IMAGED_BOOTSTRAP_API_KEY=imk_bad")
	if out, err := cmd.CombinedOutput(); err == nil || !strings.Contains(string(out), "IMAGED_BOOTSTRAP_API_KEY") {
		t.Fatalf("a malformed IMAGED_BOOTSTRAP_API_KEY: %v\n%s", err, out)
	}
}

func base32(b []byte) string {
	const alphabet = "abcdefghijklmnopqrstuvwxyz234567"
	var out []byte
	var acc, bits uint
	for _, c := range b {
		acc = acc<<8 | uint(c)
		bits += 8
		for bits >= 5 {
			out = append(out, alphabet[(acc>>(bits-5))&31])
			bits -= 5
		}
	}
	if bits > 0 {
		out = append(out, alphabet[(acc<<(5-bits))&31])
	}
	return string(out)
}

// TestTwoProcessesShareTheLimitThroughRedis runs two imaged processes on one database and one
// Redis: a key's 50/min is 50 across both.
func TestTwoProcessesShareTheLimitThroughRedis(t *testing.T) {
	requireService(t, "Redis", redisTestAddr())
	rdb := goredis.NewClient(&goredis.Options{Addr: redisTestAddr()})
	defer rdb.Close()
	b := make([]byte, 6)
	rand.Read(b)
	prefix := "imaged-test-" + hex.EncodeToString(b) + ":"
	t.Cleanup(func() {
		if keys, _ := rdb.Keys(t.Context(), prefix+"*").Result(); len(keys) > 0 {
			rdb.Del(t.Context(), keys...)
		}
	})
	dir := t.TempDir()
	env := []string{"IMAGED_WORKERS=0", "IMAGED_REDIS_URL=redis://" + redisTestAddr() + "/0?key_prefix=" + prefix}
	a := startServer(t, dir, env...)
	bsrv := startServer(t, dir, env...)
	key := a.createKey("fifty", "--rate-limit", "50/m", "--burst", "50", "--concurrency", "1000")
	var mu sync.Mutex
	counts := map[int]int{}
	var wg sync.WaitGroup
	start := make(chan struct{})
	for i := range 200 {
		srv := a
		if i%2 == 1 {
			srv = bsrv
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			req, _ := http.NewRequest("GET", srv.base+"/v1/tasks?limit=1", nil)
			req.Header.Set("X-API-Key", key)
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Error(err)
				return
			}
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			mu.Lock()
			counts[resp.StatusCode]++
			mu.Unlock()
		}()
	}
	close(start)
	wg.Wait()
	if counts[200] != 50 || counts[429] != 150 {
		t.Fatalf("200 requests over two processes against one 50/min key: %v, want exactly 50 passed", counts)
	}
}

func TestMetricsOnTheirOwnAddress(t *testing.T) {
	port := freePort(t)
	s := startServer(t, "", fmt.Sprintf("IMAGED_METRICS_ADDR=127.0.0.1:%d", port))
	resp, err := http.Get(fmt.Sprintf("http://127.0.0.1:%d/metrics", port))
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || !strings.Contains(string(body), "http_requests_total") {
		t.Fatalf("GET /metrics on IMAGED_METRICS_ADDR: %d", resp.StatusCode)
	}
	if r := s.get("/metrics"); r.status != 404 {
		t.Fatalf("GET /metrics on the API address: %d", r.status)
	}
}

func TestSignedURLsEndToEnd(t *testing.T) {
	s := startServer(t, "")
	id := s.upload(readTestdata(t, "chelsea.png"))
	u := strings.TrimSpace(s.imaged("sign", "resize:w=64/convert:f=webp,q=70/"+id))
	if !strings.HasPrefix(u, "/i/") {
		t.Fatalf("imaged sign printed %q", u)
	}
	r := s.getWith(u, map[string]string{"X-API-Key": ""})
	if r.status != 200 || r.header.Get("Content-Type") != "image/webp" || r.header.Get("ETag") == "" ||
		!strings.Contains(r.header.Get("Cache-Control"), "public") || r.header.Get("X-Image-Width") != "" {
		t.Fatalf("GET %s: %d %v", u, r.status, r.header)
	}
	if r2 := s.getWith(u, map[string]string{"X-API-Key": "", "If-None-Match": r.header.Get("ETag")}); r2.status != 304 {
		t.Fatalf("If-None-Match: %d", r2.status)
	}
	if r3 := s.getWith(strings.Replace(u, "w=64", "w=65", 1), map[string]string{"X-API-Key": ""}); r3.status != 403 {
		t.Fatalf("a tampered signed URL: %d", r3.status)
	}
	cmd := exec.Command(imagedBinary(t), "sign", "resize:w/"+id)
	cmd.Env = s.env
	if out, err := cmd.CombinedOutput(); err == nil {
		t.Fatalf("imaged sign of a malformed path succeeded: %s", out)
	}
}

func TestSourceURLsEndToEnd(t *testing.T) {
	img := readTestdata(t, "chelsea.png")
	var mu sync.Mutex
	hits := 0
	origin := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		hits++
		mu.Unlock()
		w.Write(img)
	}))
	defer origin.Close()
	body := func(path string) []byte {
		b, _ := json.Marshal(map[string]any{"source_url": origin.URL + path, "ops": []map[string]any{{"op": "resize", "width": 32}}})
		return b
	}
	ct := map[string]string{"Content-Type": "application/json"}

	// By default loopback is refused, naming the reason, and the origin is never reached.
	s := startServer(t, "", "IMAGED_WORKERS=0")
	r := s.do("POST", "/v1/process", bytes.NewReader(body("/cat.png")), ct)
	if r.status != 400 || !strings.Contains(string(r.body), "loopback") || !strings.Contains(string(r.body), "source_url") {
		t.Fatalf("a loopback source_url: %d %s", r.status, r.body)
	}
	if hits != 0 {
		t.Fatal("the refused origin was reached")
	}

	// Allow-listed, it is fetched, validated and stored as an image.
	s2 := startServer(t, "", "IMAGED_OUTBOUND_ALLOW=127.0.0.1/32")
	r = s2.do("POST", "/v1/process", bytes.NewReader(body("/cat.png")), ct)
	if r.status != 200 || r.header.Get("X-Image-ID") == "" || r.header.Get("X-Image-Width") != "32" {
		t.Fatalf("an allow-listed source_url: %d %s", r.status, r.body)
	}
	if g := s2.get("/v1/images/" + r.header.Get("X-Image-ID")); g.status != 200 || g.json(t)["filename"] != "cat.png" {
		t.Fatalf("the fetched image: %d %s", g.status, g.body)
	}
	r = s2.do("POST", "/v1/tasks", bytes.NewReader(body("/cat.png")), ct)
	if r.status != 202 {
		t.Fatalf("a task from source_url: %d %s", r.status, r.body)
	}
	if task := s2.waitTask(r.json(t)["id"].(string), 30*time.Second); task["status"] != "completed" {
		t.Fatalf("the task from source_url: %v", task)
	}
}

func TestServerLimitsAreSettings(t *testing.T) {
	s := startServer(t, "", "IMAGED_WORKERS=0", "IMAGED_READ_HEADER_TIMEOUT=500ms", "IMAGED_MAX_HEADER_BYTES=8192")
	// Headers over the limit are refused.
	r := s.getWith("/v1/tasks", map[string]string{"X-Padding": strings.Repeat("a", 20000)})
	if r.status != 431 || r.json(t)["error"].(map[string]any)["code"] != "headers_too_large" {
		t.Fatalf("a 20 kB header block with IMAGED_MAX_HEADER_BYTES=8192: %d %s; want 431 with the JSON error", r.status, r.body)
	}
	// A client that never finishes its headers is cut off.
	conn, err := net.Dial("tcp", strings.TrimPrefix(s.base, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	fmt.Fprint(conn, "GET /health HTTP/1.1\r\nHost: x\r\n")
	start := time.Now()
	conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	_, err = bufio.NewReader(conn).ReadString('\n')
	if err == nil && time.Since(start) > 3*time.Second || time.Since(start) > 3*time.Second {
		t.Fatalf("a stalled header was held for %s with IMAGED_READ_HEADER_TIMEOUT=500ms", time.Since(start))
	}
	// Every answer carries the security headers.
	r = s.get("/health")
	if r.header.Get("X-Content-Type-Options") != "nosniff" || r.header.Get("X-Frame-Options") != "DENY" {
		t.Fatalf("security headers: %v", r.header)
	}
}
