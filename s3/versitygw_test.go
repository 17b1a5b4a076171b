package s3

import (
	"bytes"
	"context"
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

// server is a private versitygw instance for one test.
type server struct {
	Endpoint  string
	AccessKey string
	SecretKey string
}

// findVersitygw returns the versitygw binary: $IMAGED_VERSITYGW, then where
// scripts/versitygw.sh installs it ($IMAGED_TOOLS_DIR, else .cache/tools under the module
// root), then PATH.
func findVersitygw() (string, bool) {
	if p := os.Getenv("IMAGED_VERSITYGW"); p != "" {
		return p, true
	}
	var dirs []string
	if d := os.Getenv("IMAGED_TOOLS_DIR"); d != "" {
		dirs = append(dirs, d)
	}
	if root, ok := moduleRoot(); ok {
		dirs = append(dirs, filepath.Join(root, ".cache", "tools"))
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

func moduleRoot() (string, bool) {
	dir, err := os.Getwd()
	if err != nil {
		return "", false
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir, true
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", false
		}
		dir = parent
	}
}

// startVersitygw starts a private versitygw on a free loopback port with a fresh data
// directory and random root keys, and stops it when the test ends. Without the binary the
// test is skipped, or fails when IMAGED_TEST_REQUIRE_SERVICES=1.
func startVersitygw(t *testing.T) *server {
	t.Helper()
	bin, ok := findVersitygw()
	if !ok {
		msg := "versitygw not found ($IMAGED_VERSITYGW, $IMAGED_TOOLS_DIR, .cache/tools, PATH): " +
			"run scripts/versitygw.sh to install it; S3 STORE NOT TESTED"
		if os.Getenv("IMAGED_TEST_REQUIRE_SERVICES") == "1" {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
	var lastErr error
	// A free port can be taken between choosing it and the server binding it: try again.
	for range 3 {
		srv, err := tryStart(t, bin)
		if err == nil {
			return srv
		}
		lastErr = err
	}
	t.Fatalf("starting versitygw: %v", lastErr)
	return nil
}

func tryStart(t *testing.T, bin string) (*server, error) {
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	srv := &server{
		Endpoint:  "http://" + net.JoinHostPort("127.0.0.1", port),
		AccessKey: "AK" + randomHex(9),
		SecretKey: randomHex(20),
	}
	dir := t.TempDir()
	cmd := exec.Command(bin, "--port", "127.0.0.1:"+port, "--health", "/health", "--quiet", "posix", dir)
	cmd.Env = append(os.Environ(), "ROOT_ACCESS_KEY="+srv.AccessKey, "ROOT_SECRET_KEY="+srv.SecretKey)
	var out syncBuffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	stop := func() {
		cmd.Process.Signal(os.Interrupt)
		select {
		case <-exited:
		case <-time.After(5 * time.Second):
			cmd.Process.Kill()
			<-exited
		}
	}

	deadline := time.Now().Add(15 * time.Second)
	client := &http.Client{Timeout: time.Second}
	for {
		select {
		case err := <-exited:
			return nil, fmt.Errorf("versitygw exited (%v): %s", err, out.String())
		default:
		}
		resp, err := client.Get(srv.Endpoint + "/health")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				break
			}
		}
		if time.Now().After(deadline) {
			stop()
			return nil, fmt.Errorf("versitygw did not answer on %s within 15s: %s", srv.Endpoint, out.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Cleanup(func() {
		stop()
		if t.Failed() {
			t.Logf("versitygw output:\n%s", out.String())
		}
	})
	return srv, nil
}

func freePort() (string, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer l.Close()
	_, port, err := net.SplitHostPort(l.Addr().String())
	return port, err
}

// newTestStore makes a store on srv with a fresh bucket.
func newTestStore(t *testing.T, srv *server, mod func(*Config)) *Store {
	t.Helper()
	cfg := Config{
		Bucket:       "imaged-" + randomHex(4),
		Endpoint:     srv.Endpoint,
		Region:       "us-east-1",
		PathStyle:    true,
		AccessKey:    srv.AccessKey,
		SecretKey:    srv.SecretKey,
		CreateBucket: true,
	}
	if mod != nil {
		mod(&cfg)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	s, err := New(ctx, cfg)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	return s
}

func randomHex(n int) string {
	b := make([]byte, n)
	rand.Read(b)
	return hex.EncodeToString(b)
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.b.Len() > 64<<10 { // keep the start, which says why it failed to start
		return len(p), nil
	}
	return b.b.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}
