// Package versitygw runs a private versitygw S3 server for tests: a real S3 implementation with
// signature checks over a temporary directory, on its own loopback port, that a test may stop
// and start again to simulate a storage outage without touching anything shared.
package versitygw

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"
	"time"
)

// Find locates the versitygw binary: $IMAGED_VERSITYGW, $IMAGED_TOOLS_DIR, the module's
// .cache/tools (where scripts/versitygw.sh installs it), then PATH.
func Find() (string, bool) {
	if p := os.Getenv("IMAGED_VERSITYGW"); p != "" {
		return p, true
	}
	var dirs []string
	if d := os.Getenv("IMAGED_TOOLS_DIR"); d != "" {
		dirs = append(dirs, d)
	}
	if dir, err := os.Getwd(); err == nil {
		for ; dir != filepath.Dir(dir); dir = filepath.Dir(dir) {
			if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
				dirs = append(dirs, filepath.Join(dir, ".cache", "tools"))
				break
			}
		}
	}
	if home, err := os.UserHomeDir(); err == nil {
		dirs = append(dirs, filepath.Join(home, ".cache", "imaged", "tools"))
	}
	for _, d := range dirs {
		p := filepath.Join(d, "versitygw")
		if fi, err := os.Stat(p); err == nil && fi.Mode().IsRegular() {
			return p, true
		}
	}
	if p, err := exec.LookPath("versitygw"); err == nil {
		return p, true
	}
	return "", false
}

// Server is one private versitygw.
type Server struct {
	Endpoint  string
	AccessKey string
	SecretKey string

	tb   testing.TB
	bin  string
	port string
	dir  string
	mu   sync.Mutex
	cmd  *exec.Cmd
	done chan struct{}
	out  lockedBuffer
}

// lockedBuffer collects the server's output from its pipes while tests may read it.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.b.Len() > 64<<10 { // keep the start, which says why it failed to start
		return len(p), nil
	}
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// Start runs a server, or skips the test loudly when versitygw is not installed (fails it when
// IMAGED_TEST_REQUIRE_SERVICES=1). It stops when the test ends.
func Start(tb testing.TB) *Server {
	tb.Helper()
	bin, ok := Find()
	if !ok {
		msg := "versitygw not found ($IMAGED_VERSITYGW, $IMAGED_TOOLS_DIR, .cache/tools, PATH): run scripts/versitygw.sh; S3 NOT TESTED"
		if os.Getenv("IMAGED_TEST_REQUIRE_SERVICES") == "1" {
			tb.Fatal(msg)
		}
		tb.Skip(msg)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	_, port, _ := net.SplitHostPort(l.Addr().String())
	l.Close()
	s := &Server{Endpoint: "http://127.0.0.1:" + port, AccessKey: "AK" + randomHex(9), SecretKey: randomHex(20),
		tb: tb, bin: bin, port: port, dir: tb.TempDir()}
	s.Restart()
	tb.Cleanup(func() {
		s.Stop()
		if tb.Failed() {
			tb.Logf("versitygw output:\n%s", s.out.String())
		}
	})
	return s
}

// Restart starts the server (again) on the same port and directory and waits until it answers.
func (s *Server) Restart() {
	s.tb.Helper()
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cmd != nil {
		return
	}
	cmd := exec.Command(s.bin, "--port", "127.0.0.1:"+s.port, "--health", "/health", "--quiet", "posix", s.dir)
	cmd.Env = append(os.Environ(), "ROOT_ACCESS_KEY="+s.AccessKey, "ROOT_SECRET_KEY="+s.SecretKey)
	cmd.Stdout, cmd.Stderr = &s.out, &s.out
	if err := cmd.Start(); err != nil {
		s.tb.Fatal(err)
	}
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); close(done) }()
	s.cmd, s.done = cmd, done
	client := &http.Client{Timeout: time.Second}
	deadline := time.Now().Add(20 * time.Second)
	for {
		select {
		case <-done:
			s.tb.Fatalf("versitygw exited: %s", s.out.String())
		default:
		}
		if resp, err := client.Get(s.Endpoint + "/health"); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return
			}
		}
		if time.Now().After(deadline) {
			s.tb.Fatalf("versitygw did not answer on %s within 20s", s.Endpoint)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// Stop kills the server; its data stays for Restart.
func (s *Server) Stop() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cmd == nil {
		return
	}
	_ = s.cmd.Process.Kill()
	<-s.done
	s.cmd = nil
}

// StorageURL is an IMAGED_STORAGE_URL for a bucket on this server, created on first use.
func (s *Server) StorageURL(bucket string) string {
	return fmt.Sprintf("s3://%s?endpoint=%s&region=us-east-1&path_style=true&create_bucket=true&access_key=%s&secret_key=%s",
		bucket, s.Endpoint, s.AccessKey, s.SecretKey)
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// Dir is the server's posix backend directory: one folder per bucket, one file per object.
func (s *Server) Dir() string { return s.dir }
