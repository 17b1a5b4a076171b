package main

import (
	"encoding/json"
	"os/exec"
	"strings"
	"testing"
)

// imagedCLI runs an imaged command against the server's settings and returns its stdout.
func (s *server) imagedCLI(args ...string) string {
	s.t.Helper()
	cmd := exec.Command(imagedBinary(s.t), args...)
	cmd.Env = s.env
	out, err := cmd.Output()
	if err != nil {
		s.t.Fatalf("imaged %s: %v %s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

// Keys made and revoked over the API, and tenant limits set with the CLI, hold in every process
// sharing the database: a revoked key is refused on its very next request everywhere.
func TestKeysAndTenantsAcrossProcesses(t *testing.T) {
	t.Run("sqlite", testKeysAndTenantsAcrossProcesses)
	t.Run("postgres+s3+redis", func(t *testing.T) {
		if testing.Short() {
			t.Skip("needs PostgreSQL, Redis and versitygw")
		}
		backends = productionBackends(t)
		defer func() { backends = nil }()
		testKeysAndTenantsAcrossProcesses(t)
	})
}

func testKeysAndTenantsAcrossProcesses(t *testing.T) {
	dir := t.TempDir()
	a := startServerKeyed(t, dir, false)
	a.key = a.createKey("admin", "--admin")
	b := startServerKeyed(t, dir, false)
	as := func(s *server, key, method, path string) *response {
		return s.do(method, path, nil, map[string]string{"X-API-Key": key})
	}
	if r := as(a, a.createKey("plain"), "GET", "/v1/keys"); r.status != 403 {
		t.Fatalf("GET /v1/keys with a non-admin key: %d %s", r.status, r.body)
	}
	r := a.postJSON("/v1/keys", map[string]any{"name": "ci"})
	var k struct{ ID, Tenant, Key string }
	if err := json.Unmarshal(r.body, &k); r.status != 201 || err != nil || k.Key == "" || k.Tenant == "" || k.Tenant == "default" {
		t.Fatalf("POST /v1/keys: %d %s", r.status, r.body)
	}
	if out := a.imagedCLI("tenant", "set", k.Tenant, "--quota-images", "1"); !strings.Contains(out, k.Tenant) {
		t.Fatalf("imaged tenant set printed %q", out)
	}
	png := readTestdata(t, "chelsea.jpg")
	up := func(s *server) *response {
		body, ct := multipartBody(t, "a.jpg", png, nil)
		return s.do("POST", "/v1/images", body, map[string]string{"X-API-Key": k.Key, "Content-Type": ct})
	}
	if r := up(b); r.status != 201 {
		t.Fatalf("the new key's first upload, on the second process: %d %s", r.status, r.body)
	}
	if r := up(a); r.status != 403 || !strings.Contains(string(r.body), "quota_exceeded") {
		t.Fatalf("past the tenant's quota of 1 image: %d %s", r.status, r.body)
	}
	if out := a.imagedCLI("apikey", "list"); !strings.Contains(out, "TENANT") || !strings.Contains(out, k.Tenant) {
		t.Fatalf("imaged apikey list does not show the tenant:\n%s", out)
	}
	if r := as(a, a.key, "GET", "/v1/tenants/"+k.Tenant); r.status != 200 || !strings.Contains(string(r.body), `"quota_images":1`) ||
		!strings.Contains(string(r.body), `"images":1`) {
		t.Fatalf("GET /v1/tenants/%s: %d %s", k.Tenant, r.status, r.body)
	}
	if r := as(a, a.key, "DELETE", "/v1/keys/"+k.ID); r.status != 200 {
		t.Fatalf("DELETE /v1/keys/%s: %d %s", k.ID, r.status, r.body)
	}
	for name, s := range map[string]*server{"the process that revoked it": a, "another process": b} {
		if r := as(s, k.Key, "GET", "/v1/images"); r.status != 401 {
			t.Fatalf("the revoked key's next request on %s: %d %s", name, r.status, r.body)
		}
	}
}
