// Package imagedtest runs a real imaged server for the tests of packages that talk to one over
// HTTP (client): the binary built from cmd/imaged, on embedded defaults in a temporary
// directory, with an admin key the test knows. Tests only.
package imagedtest

import (
	"bytes"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/imaged/imaged/auth"
)

var (
	buildOnce sync.Once
	binPath   string
	buildErr  error
)

// Binary builds cmd/imaged once per test binary and returns its path.
func Binary(t testing.TB) string {
	t.Helper()
	buildOnce.Do(func() {
		dir, err := os.MkdirTemp("", "imagedtest-bin-")
		if err != nil {
			buildErr = err
			return
		}
		binPath = filepath.Join(dir, "imaged")
		out, err := exec.Command("go", "build", "-o", binPath, "github.com/imaged/imaged/cmd/imaged").CombinedOutput()
		if err != nil {
			buildErr = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return binPath
}

// Server is one running `imaged serve`.
type Server struct {
	URL  string // http://127.0.0.1:PORT
	Addr string // 127.0.0.1:PORT
	Key  string // an admin API key
}

// Log collects a process's output for a test: safe to write from the process's copier while
// the test reads it.
type Log struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *Log) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *Log) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// StartProcess runs cmd until the test ends (then kills it), its output kept in the returned Log
// and shown when the test failed; done closes when the process exits.
func StartProcess(t testing.TB, name string, cmd *exec.Cmd) (*Log, <-chan struct{}) {
	t.Helper()
	logs := &Log{}
	cmd.Stdout, cmd.Stderr = logs, logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); close(done) }()
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		<-done
		if t.Failed() {
			t.Logf("%s output (tail):\n%s", name, tail(logs.String(), 8000))
		}
	})
	return logs, done
}

func tail(s string, n int) string {
	if len(s) > n {
		return s[len(s)-n:]
	}
	return s
}

// Serve starts `imaged serve` on a free loopback port over a new data directory, with the extra
// IMAGED_* settings in env, and waits until it is ready. It is killed when the test ends, and
// its log shown when the test failed.
func Serve(t testing.TB, env ...string) *Server {
	t.Helper()
	bin := Binary(t)
	key, _, _, err := auth.Generate()
	if err != nil {
		t.Fatal(err)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	s := &Server{URL: "http://" + addr, Addr: addr, Key: key}
	cmd := exec.Command(bin, "serve")
	cmd.Env = append([]string{"PATH=" + os.Getenv("PATH"), "HOME=" + os.Getenv("HOME"),
		"IMAGED_ADDR=" + addr, "IMAGED_DATA_DIR=" + t.TempDir(), "IMAGED_BOOTSTRAP_API_KEY=" + key,
		"IMAGED_POLL_INTERVAL=100ms", "IMAGED_SHUTDOWN_GRACE=5s"}, env...)
	for _, k := range []string{"IMAGED_MODELS_DIR", "OMP_THREAD_LIMIT"} {
		if v := os.Getenv(k); v != "" {
			cmd.Env = append(cmd.Env, k+"="+v)
		}
	}
	logs, done := StartProcess(t, "imaged serve", cmd)
	deadline := time.Now().Add(60 * time.Second)
	for {
		select {
		case <-done:
			t.Fatalf("imaged serve exited during start-up:\n%s", logs.String())
		default:
		}
		if resp, err := http.Get(s.URL + "/health/ready"); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return s
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("imaged serve not ready after 60s:\n%s", logs.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
}
