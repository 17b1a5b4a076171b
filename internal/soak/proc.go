package soak

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// Proc is one imaged process (`imaged serve` or `imaged worker`), started again under the same
// name after a kill. Its output is appended to LogPath.
type Proc struct {
	Name       string
	Role       string // serve or worker
	Bin        string
	Env        []string
	LogPath    string
	MetricsURL string // where its /metrics answers
	BaseURL    string // serve only: the API

	mu   sync.Mutex
	cmd  *exec.Cmd
	done chan struct{}
	out  *watchWriter
}

// FreeAddr returns a loopback address nobody listens on now.
func FreeAddr() (string, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer l.Close()
	return l.Addr().String(), nil
}

// Start runs the process and waits until it is ready: the API answers /health/ready with 200,
// a worker logs that its workers started.
func (p *Proc) Start(ctx context.Context) error {
	f, err := os.OpenFile(p.LogPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	fmt.Fprintf(f, "---- %s start %s\n", p.Name, time.Now().UTC().Format(time.RFC3339))
	w := &watchWriter{f: f, ready: make(chan struct{}), marker: []byte(`"msg":"workers started"`)}
	cmd := exec.Command(p.Bin, p.Role)
	cmd.Env = p.Env
	cmd.Stdout, cmd.Stderr = w, w
	if err := cmd.Start(); err != nil {
		f.Close()
		return err
	}
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); f.Close(); close(done) }()
	p.mu.Lock()
	p.cmd, p.done, p.out = cmd, done, w
	p.mu.Unlock()

	deadline := time.Now().Add(90 * time.Second)
	client := &http.Client{Timeout: 2 * time.Second}
	for {
		select {
		case <-done:
			return fmt.Errorf("%s exited during start-up: %s", p.Name, w.tail())
		case <-ctx.Done():
			return ctx.Err()
		default:
		}
		if p.Role == "serve" {
			if resp, err := client.Get(p.BaseURL + "/health/ready"); err == nil {
				resp.Body.Close()
				if resp.StatusCode == http.StatusOK {
					return nil
				}
			}
		} else {
			select {
			case <-w.ready:
				return nil
			default:
			}
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s not ready after 90 s: %s", p.Name, w.tail())
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// PID is the running process's id, 0 when it is down.
func (p *Proc) PID() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.cmd == nil || p.cmd.Process == nil {
		return 0
	}
	select {
	case <-p.done:
		return 0
	default:
		return p.cmd.Process.Pid
	}
}

// Kill sends SIGKILL and waits until the process is gone.
func (p *Proc) Kill() {
	p.signal(syscall.SIGKILL, 0)
}

// Stop sends SIGTERM and waits for the process (SIGKILL after grace).
func (p *Proc) Stop(grace time.Duration) {
	p.signal(syscall.SIGTERM, grace)
}

func (p *Proc) signal(sig syscall.Signal, grace time.Duration) {
	p.mu.Lock()
	cmd, done := p.cmd, p.done
	p.mu.Unlock()
	if cmd == nil || cmd.Process == nil {
		return
	}
	_ = cmd.Process.Signal(sig)
	if grace > 0 {
		select {
		case <-done:
			return
		case <-time.After(grace):
			_ = cmd.Process.Signal(syscall.SIGKILL)
		}
	}
	<-done
}

// RSS reads VmRSS of the running process from /proc, in bytes.
func (p *Proc) RSS() (int64, bool) {
	pid := p.PID()
	if pid == 0 {
		return 0, false
	}
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, false
	}
	for _, line := range strings.Split(string(b), "\n") {
		if rest, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			f := strings.Fields(rest) // "123456 kB"
			if len(f) >= 1 {
				kb, err := strconv.ParseInt(f[0], 10, 64)
				if err == nil {
					return kb << 10, true
				}
			}
		}
	}
	return 0, false
}

// scrapeClient opens a fresh connection per scrape, so scraping leaves no idle connection
// behind in the process it measures.
var scrapeClient = &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}

// Metrics reads the process's /metrics: each metric name with its values summed over labels.
func (p *Proc) Metrics() (map[string]float64, error) {
	resp, err := scrapeClient.Get(p.MetricsURL)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("%s: %s", p.MetricsURL, resp.Status)
	}
	return parseMetrics(resp.Body)
}

// parseMetrics sums the Prometheus text exposition's values by metric name.
func parseMetrics(r io.Reader) (map[string]float64, error) {
	out := map[string]float64{}
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if line == "" || line[0] == '#' {
			continue
		}
		name, rest := line, ""
		if i := strings.IndexAny(line, "{ "); i >= 0 {
			name, rest = line[:i], line[i:]
		}
		if j := strings.LastIndexByte(rest, '}'); j >= 0 {
			rest = rest[j+1:]
		}
		f := strings.Fields(rest)
		if len(f) == 0 {
			continue
		}
		v, err := strconv.ParseFloat(f[0], 64)
		if err != nil {
			continue
		}
		out[name] += v
	}
	return out, sc.Err()
}

// watchWriter appends a process's output to its log file and notices the line that says its
// workers started.
type watchWriter struct {
	mu     sync.Mutex
	f      *os.File
	marker []byte
	ready  chan struct{}
	seen   bool
	last   []byte // the output's end, for matching across writes and for error messages
}

func (w *watchWriter) Write(b []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	_, _ = w.f.Write(b)
	w.last = append(w.last, b...)
	if !w.seen && bytes.Contains(w.last, w.marker) {
		w.seen = true
		close(w.ready)
	}
	if len(w.last) > 8<<10 {
		w.last = append([]byte(nil), w.last[len(w.last)-4<<10:]...)
	}
	return len(b), nil
}

func (w *watchWriter) tail() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return string(w.last)
}
