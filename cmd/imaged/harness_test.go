package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"mime/multipart"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/imaged/imaged/internal/imagedtest"
)

// The API tests run the real binary as a separate process over real HTTP, so that restarts,
// kill -9 and SIGTERM are what a user would see.

// imagedBinary builds imaged once per test binary (shared with the other packages' tests).
func imagedBinary(t *testing.T) string {
	t.Helper()
	return imagedtest.Binary(t)
}

// server is one running imaged process.
type server struct {
	t       *testing.T
	cmd     *exec.Cmd
	base    string
	dataDir string
	env     []string
	key     string // the API key sent with every request ("" when authentication is off)
	logs    *syncBuffer
	done    chan struct{}
}

type syncBuffer = imagedtest.Log

func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// startServer runs `imaged serve` on a free port over dataDir ("" = a new temp dir) with the
// extra IMAGED_* settings in env, and waits until it is ready. Unless env turns authentication
// off, it first makes an API key with `imaged apikey create` (limits high enough that no test
// meets them by accident), which every request of s.do carries.
func startServer(t *testing.T, dataDir string, env ...string) *server {
	t.Helper()
	return startServerKeyed(t, dataDir, !slices.Contains(env, "IMAGED_AUTH=off"), env...)
}

// startServerKeyed is startServer that makes a key only when makeKey says so.
func startServerKeyed(t *testing.T, dataDir string, makeKey bool, env ...string) *server {
	t.Helper()
	if dataDir == "" {
		dataDir = t.TempDir()
	}
	port := freePort(t)
	s := &server{t: t, base: fmt.Sprintf("http://127.0.0.1:%d", port), dataDir: dataDir, logs: &syncBuffer{},
		done: make(chan struct{})}
	s.env = append([]string{
		"PATH=" + os.Getenv("PATH"), "HOME=" + os.Getenv("HOME"),
		fmt.Sprintf("IMAGED_ADDR=127.0.0.1:%d", port),
		"IMAGED_DATA_DIR=" + dataDir,
		"IMAGED_SHUTDOWN_GRACE=10s",
		"IMAGED_POLL_INTERVAL=100ms",
	}, env...)
	if backends != nil {
		s.env = append(s.env[:len(s.env)-len(env)], append(backends(t, dataDir), env...)...)
	}
	if makeKey {
		// Every harness key is in one tenant, so a restarted server's new key sees what the
		// last one made.
		s.key = s.createKey("harness", "--tenant", "default", "--rate-limit", "1000000/m", "--burst", "100000", "--concurrency", "10000")
	}
	s.cmd = exec.Command(imagedBinary(t), "serve")
	s.cmd.Env = s.env
	s.cmd.Stdout = s.logs
	s.cmd.Stderr = s.logs
	if err := s.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { _ = s.cmd.Wait(); close(s.done) }()
	t.Cleanup(func() {
		s.kill()
		if t.Failed() {
			t.Logf("server logs (tail):\n%s", tail(s.logs.String(), 4000))
		}
	})
	deadline := time.Now().Add(30 * time.Second)
	for {
		select {
		case <-s.done:
			t.Fatalf("imaged exited during start-up:\n%s", s.logs.String())
		default:
		}
		resp, err := http.Get(s.base + "/health/ready")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return s
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("imaged not ready after 30s:\n%s", s.logs.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// createKey runs `imaged apikey create --name name args…` against the server's settings and
// returns the key it prints.
func (s *server) createKey(name string, args ...string) string {
	s.t.Helper()
	cmd := exec.Command(imagedBinary(s.t), append([]string{"apikey", "create", "--name", name}, args...)...)
	cmd.Env = s.env
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		s.t.Fatalf("imaged apikey create: %v\n%s", err, stderr.String())
	}
	key := strings.TrimSpace(string(out))
	if !strings.HasPrefix(key, "imk_") || strings.Contains(key, "\n") {
		s.t.Fatalf("imaged apikey create printed %q", out)
	}
	return key
}

func tail(s string, n int) string {
	if len(s) > n {
		return s[len(s)-n:]
	}
	return s
}

func (s *server) kill() {
	if s.cmd.Process != nil {
		_ = s.cmd.Process.Kill()
	}
	<-s.done
}

// stop sends SIGTERM and waits for a clean exit.
func (s *server) stop() {
	s.t.Helper()
	_ = s.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-s.done:
	case <-time.After(30 * time.Second):
		s.t.Fatal("imaged did not exit within 30s of SIGTERM")
	}
	if code := s.cmd.ProcessState.ExitCode(); code != 0 {
		s.t.Fatalf("imaged exited with %d after SIGTERM:\n%s", code, tail(s.logs.String(), 3000))
	}
}

type response struct {
	status int
	header http.Header
	body   []byte
}

func (r *response) json(t *testing.T) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(r.body, &m); err != nil {
		t.Fatalf("response is not JSON (%d): %s", r.status, r.body)
	}
	return m
}

func (s *server) do(method, path string, body io.Reader, header map[string]string) *response {
	s.t.Helper()
	req, err := http.NewRequest(method, s.base+path, body)
	if err != nil {
		s.t.Fatal(err)
	}
	if s.key != "" {
		req.Header.Set("X-API-Key", s.key)
	}
	// A header given here wins; X-API-Key given as "" sends none.
	for k, v := range header {
		req.Header.Set(k, v)
		if v == "" {
			req.Header.Del(k)
		}
	}
	client := &http.Client{Timeout: 60 * time.Second, CheckRedirect: func(*http.Request, []*http.Request) error {
		return http.ErrUseLastResponse
	}}
	resp, err := client.Do(req)
	if err != nil {
		s.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		s.t.Fatal(err)
	}
	return &response{status: resp.StatusCode, header: resp.Header, body: b}
}

func (s *server) get(path string) *response { return s.do("GET", path, nil, nil) }

func (s *server) postJSON(path string, v any) *response {
	s.t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		s.t.Fatal(err)
	}
	return s.do("POST", path, bytes.NewReader(b), map[string]string{"Content-Type": "application/json"})
}

// multipartBody builds a multipart form with a file part and plain fields.
func multipartBody(t *testing.T, filename string, file []byte, fields map[string]string) (io.Reader, string) {
	t.Helper()
	var buf bytes.Buffer
	mw := multipart.NewWriter(&buf)
	if file != nil {
		fw, err := mw.CreateFormFile("file", filename)
		if err != nil {
			t.Fatal(err)
		}
		fw.Write(file)
	}
	for k, v := range fields {
		mw.WriteField(k, v)
	}
	mw.Close()
	return &buf, mw.FormDataContentType()
}

func (s *server) postMultipart(path, filename string, file []byte, fields map[string]string) *response {
	s.t.Helper()
	body, ct := multipartBody(s.t, filename, file, fields)
	return s.do("POST", path, body, map[string]string{"Content-Type": ct})
}

func (s *server) upload(file []byte) string {
	s.t.Helper()
	r := s.postMultipart("/v1/images", "photo.jpg", file, nil)
	if r.status != 201 {
		s.t.Fatalf("upload: %d %s", r.status, r.body)
	}
	return r.json(s.t)["id"].(string)
}

func readTestdata(t *testing.T, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("..", "..", "testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// waitFor polls cond until it holds or the timeout passes.
func waitFor(t *testing.T, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", timeout, what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// waitTask polls a task until it is terminal and returns it.
func (s *server) waitTask(id string, timeout time.Duration) map[string]any {
	s.t.Helper()
	var task map[string]any
	waitFor(s.t, timeout, "task "+id+" to finish", func() bool {
		r := s.get("/v1/tasks/" + id)
		if r.status != 200 {
			s.t.Fatalf("GET task: %d %s", r.status, r.body)
		}
		task = r.json(s.t)
		st := task["status"].(string)
		return st == "completed" || st == "failed" || st == "cancelled"
	})
	return task
}

// countFiles counts regular files under dir/sub, ignoring temp files of atomic writes.
func countFiles(t *testing.T, dir string) int {
	t.Helper()
	n := 0
	filepath.Walk(dir, func(p string, info os.FileInfo, err error) error {
		if err == nil && info.Mode().IsRegular() && !strings.HasPrefix(info.Name(), ".") {
			n++
		}
		return nil
	})
	return n
}
