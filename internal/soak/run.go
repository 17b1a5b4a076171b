package soak

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/imaged/imaged"
)

// Topology is one way of running imaged under the soak: the environment every process shares
// (database, queue, storage, cache URLs and the soak's settings), one `imaged serve` with
// IMAGED_WORKERS=0 and two `imaged worker` processes.
type Topology struct {
	Name        string
	Bin         string   // the imaged binary
	Env         []string // the whole environment of every process
	Out         string   // directory for the report, the plot and the processes' logs
	Load        time.Duration
	Warmup      time.Duration
	Lease       time.Duration // IMAGED_TASK_LEASE, in Env
	Settle      time.Duration // rest before goroutines and descriptors are counted
	SampleEvery time.Duration
	KillEvery   time.Duration
	Clients     int
	Think       time.Duration
	Inputs      Inputs
	Logf        func(format string, args ...any)
}

// Result is what a run found.
type Result struct {
	Checks     []Check
	Pass       bool
	ReportPath string
	PlotPath   string
}

// run is the state of one soak run.
type run struct {
	top     Topology
	rec     *Recorder
	client  *Client
	api     *Proc
	workers []*Proc
	procs   []*Proc

	mu      sync.Mutex
	phase   string
	samples []Sample
	kills   []Window
	tasks   taskOutcome
	atRest  [2]map[string][2]float64 // end of warm-up, end: proc → goroutines, fds
	dumped  []string                 // processes whose goroutines were dumped into their log
}

func (r *run) setPhase(p string) {
	r.mu.Lock()
	r.phase = p
	r.mu.Unlock()
	r.top.Logf("%s: %s at %s", r.top.Name, p, r.rec.Since(time.Now()).Round(time.Second))
}

func (r *run) getPhase() string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.phase
}

// Run soaks one topology and writes its report and plot under top.Out.
func Run(ctx context.Context, top Topology) (*Result, error) {
	if err := os.MkdirAll(top.Out, 0o755); err != nil {
		return nil, err
	}
	old, _ := filepath.Glob(filepath.Join(top.Out, "*.log"))
	for _, f := range old {
		_ = os.Remove(f)
	}
	apiAddr, err := FreeAddr()
	if err != nil {
		return nil, err
	}
	r := &run{top: top}
	key, err := createKey(top)
	if err != nil {
		return nil, err
	}
	r.api = &Proc{Name: "api", Role: "serve", Bin: top.Bin, LogPath: filepath.Join(top.Out, "api.log"),
		Env: append(append([]string{}, top.Env...), "IMAGED_ADDR="+apiAddr, "IMAGED_WORKERS=0"), BaseURL: "http://" + apiAddr}
	r.api.MetricsURL = r.api.BaseURL + "/metrics"
	r.procs = []*Proc{r.api}
	for i := 1; i <= 2; i++ {
		maddr, err := FreeAddr()
		if err != nil {
			return nil, err
		}
		w := &Proc{Name: fmt.Sprintf("worker-%d", i), Role: "worker", Bin: top.Bin,
			LogPath: filepath.Join(top.Out, fmt.Sprintf("worker-%d.log", i)), MetricsURL: "http://" + maddr + "/metrics",
			Env: append(append([]string{}, top.Env...), "IMAGED_METRICS_ADDR="+maddr, "IMAGED_WORKERS=2")}
		r.workers = append(r.workers, w)
		r.procs = append(r.procs, w)
	}
	defer func() {
		for _, p := range r.procs {
			p.Stop(40 * time.Second)
		}
	}()
	for _, p := range r.procs {
		if err := p.Start(ctx); err != nil {
			return nil, err
		}
	}

	r.rec = NewRecorder(time.Now())
	r.client = &Client{Base: r.api.BaseURL, Key: key, Rec: r.rec,
		HTTP: &http.Client{Timeout: 2 * time.Minute, Transport: &http.Transport{MaxIdleConnsPerHost: 16}}}
	if err := r.client.Seed(top.Inputs); err != nil {
		return nil, err
	}
	r.rec = NewRecorder(time.Now()) // the clock starts with the load
	r.client.Rec = r.rec
	r.setPhase("warmup")
	r.client.Prime(8)

	loadCtx, stopLoad := context.WithCancel(ctx)
	defer stopLoad()
	var bg sync.WaitGroup
	bg.Add(2)
	go func() {
		defer bg.Done()
		r.client.Drive(loadCtx, top.Clients, top.Think, top.Inputs, func() bool {
			p := r.getPhase()
			return p == "warmup" || p == "load"
		})
	}()
	go func() { defer bg.Done(); r.sample(loadCtx) }()

	if err := r.timeline(ctx); err != nil {
		stopLoad()
		bg.Wait()
		return nil, err
	}
	stopLoad()
	bg.Wait()
	for _, p := range r.procs {
		p.Stop(40 * time.Second)
	}
	return r.finish()
}

// timeline runs warm-up, the pause that measures the processes at rest, the load with its
// kills, and the drain that measures them at rest again.
func (r *run) timeline(ctx context.Context) error {
	top := r.top
	if err := sleepCtx(ctx, top.Warmup-r.rec.Since(time.Now())); err != nil { // the priming took some of it
		return err
	}
	r.setPhase("pause")
	if err := r.rest(ctx, 0); err != nil {
		return err
	}
	r.setPhase("load")
	loadStart := time.Now()
	loadEnd := loadStart.Add(top.Load - top.Warmup)
	nextKill := loadStart.Add(30 * time.Second)
	for time.Now().Before(loadEnd) {
		if !nextKill.After(time.Now()) && !nextKill.After(loadEnd.Add(-30*time.Second)) {
			if err := r.kill(ctx, r.workers[1]); err != nil {
				return err
			}
			nextKill = nextKill.Add(top.KillEvery)
			continue
		}
		next := loadEnd
		if nextKill.Before(next) {
			next = nextKill
		}
		if err := sleepCtx(ctx, time.Until(next)); err != nil {
			return err
		}
	}
	r.setPhase("drain")
	if err := r.rest(ctx, 1); err != nil {
		return err
	}
	// A process holding more goroutines at rest than after the warm-up dumps them all
	// (SIGQUIT: the Go runtime writes every goroutine's stack to its log) for the report.
	for _, p := range r.procs {
		a, b := r.atRest[0][p.Name], r.atRest[1][p.Name]
		if p != r.workers[1] && b[0] > a[0] {
			p.signal(syscall.SIGQUIT, 10*time.Second)
			r.dumped = append(r.dumped, p.Name)
		}
	}
	return nil
}

// kill sends SIGKILL to a worker, starts it again and records the kill window.
func (r *run) kill(ctx context.Context, w *Proc) error {
	from := r.rec.Since(time.Now())
	w.Kill()
	if err := w.Start(ctx); err != nil {
		return err
	}
	ready := r.rec.Since(time.Now())
	win := Window{Worker: w.Name, From: from, Ready: ready, To: ready + r.top.Lease}
	r.mu.Lock()
	r.kills = append(r.kills, win)
	r.mu.Unlock()
	r.top.Logf("%s: killed %s at %s, ready again after %s", r.top.Name, w.Name, from.Round(time.Second), (ready - from).Round(10*time.Millisecond))
	return nil
}

// rest waits until no request is in flight and every task submitted has finished, closes the
// load's idle connections, lets the processes rest for Settle, then counts their goroutines
// and file descriptors (the least of three scrapes a second apart). which is 0 at the end of
// the warm-up and 1 at the end.
func (r *run) rest(ctx context.Context, which int) error {
	for !r.client.Idle() {
		if err := sleepCtx(ctx, 50*time.Millisecond); err != nil {
			return err
		}
	}
	deadline := 3*time.Minute + 2*r.top.Lease
	out, err := waitTasks(ctx, r.client, deadline)
	if err != nil {
		return err
	}
	if which == 1 {
		r.tasks = out
	}
	r.client.HTTP.CloseIdleConnections()
	if err := sleepCtx(ctx, r.top.Settle); err != nil {
		return err
	}
	counts := map[string][2]float64{}
	for i := 0; i < 3; i++ {
		for _, p := range r.procs {
			m, err := p.Metrics()
			if err != nil {
				continue
			}
			c, seen := counts[p.Name]
			g, f := m["go_goroutines"], m["process_open_fds"]
			if !seen || g < c[0] {
				c[0] = g
			}
			if !seen || f < c[1] {
				c[1] = f
			}
			counts[p.Name] = c
		}
		if err := sleepCtx(ctx, time.Second); err != nil {
			return err
		}
	}
	r.atRest[which] = counts
	return nil
}

// sample looks at every process every SampleEvery until ctx ends.
func (r *run) sample(ctx context.Context) {
	imaged.Every(ctx, r.top.SampleEvery, func() {
		s := Sample{At: r.rec.Since(time.Now()), Phase: r.getPhase(),
			RSS: map[string]int64{}, Goroutines: map[string]float64{}, FDs: map[string]float64{}}
		for _, p := range r.procs {
			if v, ok := p.RSS(); ok {
				s.RSS[p.Name] = v
			}
			if m, err := p.Metrics(); err == nil {
				s.Goroutines[p.Name] = m["go_goroutines"]
				s.FDs[p.Name] = m["process_open_fds"]
				if p == r.api {
					s.Queued = m["tasks_queued"]
				}
			}
		}
		s.Requests, s.P50, s.P99, s.Errors5xx, s.Unexpected = r.rec.drain()
		r.mu.Lock()
		r.samples = append(r.samples, s)
		r.mu.Unlock()
	})
}

// taskOutcome is where every submitted task ended.
type taskOutcome struct {
	Submitted int
	ByStatus  map[string]int
	Attempts  map[int]int // completed tasks by attempts used
	Lost      []string    // not terminal by the deadline, or not found
	Failed    []string    // id: error
}

// waitTasks polls every task submitted until each is terminal or the deadline passes.
func waitTasks(ctx context.Context, c *Client, deadline time.Duration) (taskOutcome, error) {
	ids := c.Tasks()
	out := taskOutcome{Submitted: len(ids), ByStatus: map[string]int{}, Attempts: map[int]int{}}
	pending := ids
	end := time.Now().Add(deadline)
	for len(pending) > 0 {
		var still []string
		for _, id := range pending {
			t, status, err := getTask(c, id)
			switch {
			case err != nil || status != 200:
				still = append(still, id)
			case t.Status == "completed":
				out.ByStatus[t.Status]++
				out.Attempts[t.Attempts]++
			case t.Status == "failed" || t.Status == "cancelled":
				out.ByStatus[t.Status]++
				msg := ""
				if t.Error != nil {
					msg = t.Error.Code + ": " + t.Error.Message
				}
				out.Failed = append(out.Failed, fmt.Sprintf("%s (%s, attempts %d) %s", id, t.Status, t.Attempts, msg))
			default:
				still = append(still, id)
			}
		}
		pending = still
		if len(pending) == 0 || time.Now().After(end) {
			break
		}
		if err := sleepCtx(ctx, time.Second); err != nil {
			return out, err
		}
	}
	for _, id := range pending {
		t, status, err := getTask(c, id)
		desc := fmt.Sprintf("%s: HTTP %d", id, status)
		if err != nil {
			desc = id + ": " + err.Error()
		} else if status == 200 {
			desc = fmt.Sprintf("%s: still %s after %d attempts (worker %s)", id, t.Status, t.Attempts, t.WorkerID)
		}
		out.Lost = append(out.Lost, desc)
	}
	return out, nil
}

type taskView struct {
	Status   string `json:"status"`
	Attempts int    `json:"attempts"`
	WorkerID string `json:"worker_id"`
	Error    *struct {
		Code    string `json:"code"`
		Message string `json:"message"`
	} `json:"error"`
}

func getTask(c *Client, id string) (taskView, int, error) {
	var t taskView
	req, _ := http.NewRequest("GET", c.Base+"/v1/tasks/"+id, nil)
	req.Header.Set("X-API-Key", c.Key)
	resp, err := c.HTTP.Do(req)
	if err != nil {
		return t, 0, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 {
		return t, resp.StatusCode, nil
	}
	return t, 200, json.NewDecoder(resp.Body).Decode(&t)
}

// createKey makes the soak's API key with `imaged apikey create`, on the topology's database.
func createKey(top Topology) (string, error) {
	cmd := exec.Command(top.Bin, "apikey", "create", "--name", "soak")
	cmd.Env = top.Env
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return "", fmt.Errorf("imaged apikey create: %v: %s", err, stderr.String())
	}
	return strings.TrimSpace(string(out)), nil
}

func sleepCtx(ctx context.Context, d time.Duration) error {
	if d <= 0 {
		return ctx.Err()
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}
