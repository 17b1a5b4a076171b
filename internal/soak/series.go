// Package soak drives imaged from outside, as users do (the HTTP API, the binary and its
// settings), with mixed load for minutes while a worker is killed and restarted, samples each
// process, and reports whether memory, answers, tasks, goroutines and file descriptors held
// steady. `make soak` runs it (the build-tagged test in this package); it is not part of
// `make test`.
package soak

import (
	"slices"
	"sync"
	"time"
)

// Sample is one look at the system, taken every few seconds.
type Sample struct {
	At    time.Duration // since the load started
	Phase string        // warmup, pause, load, drain
	// Per process (api, worker-1, worker-2): resident memory in bytes, goroutines and open
	// file descriptors (from its /metrics); absent while the process is down.
	RSS        map[string]int64
	Goroutines map[string]float64
	FDs        map[string]float64
	Queued     float64 // tasks_queued, summed over task types, from the API's /metrics
	Requests   int     // answers in this interval
	P50, P99   float64 // milliseconds, synchronous requests answered in this interval
	Errors5xx  int     // 5xx answers and transport errors in this interval
	Unexpected int     // other answers of the wrong class (a 4xx to a good request, a 2xx to a bad one)
	InKill     bool    // a kill window overlaps this interval
}

// Problem is one answer that was not what the request deserved.
type Problem struct {
	At     time.Duration
	Kind   string
	Status int // 0: no answer (transport error)
	Detail string
}

// Recorder collects every answer of the load.
type Recorder struct {
	start time.Time
	mu    sync.Mutex
	// per interval, drained by each sample
	lat        []float64
	n          int
	errs       int
	unexpected int
	// over the whole run
	kinds    map[string]map[int]int // kind → status → count
	syncLat  map[string][]float64   // kind → latencies (ms) of synchronous requests
	problems []Problem
}

// NewRecorder starts the clock of a run.
func NewRecorder(start time.Time) *Recorder {
	return &Recorder{start: start, kinds: map[string]map[int]int{}, syncLat: map[string][]float64{}}
}

// Since is the run's clock.
func (r *Recorder) Since(t time.Time) time.Duration { return t.Sub(r.start) }

// Observe records one answer. status 0 is a transport error; ok says whether the status was
// the one the request deserved; sync marks the requests whose latency is measured.
func (r *Recorder) Observe(kind string, status int, ok, sync bool, took time.Duration, detail string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.kinds[kind] == nil {
		r.kinds[kind] = map[int]int{}
	}
	r.kinds[kind][status]++
	r.n++
	ms := float64(took) / float64(time.Millisecond)
	if sync && ok {
		r.lat = append(r.lat, ms)
		r.syncLat[kind] = append(r.syncLat[kind], ms)
	}
	switch {
	case status == 0 || status >= 500:
		r.errs++
	case !ok:
		r.unexpected++
	default:
		return
	}
	if len(detail) > 300 {
		detail = detail[:300]
	}
	r.problems = append(r.problems, Problem{At: time.Since(r.start), Kind: kind, Status: status, Detail: detail})
}

// drain returns what the interval since the last call saw.
func (r *Recorder) drain() (n int, p50, p99 float64, errs, unexpected int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	lat := r.lat
	n, errs, unexpected = r.n, r.errs, r.unexpected
	r.lat, r.n, r.errs, r.unexpected = nil, 0, 0, 0
	return n, Percentile(lat, 50), Percentile(lat, 99), errs, unexpected
}

// Percentile is the p-th percentile (nearest rank) of xs; 0 when xs is empty.
func Percentile(xs []float64, p float64) float64 {
	if len(xs) == 0 {
		return 0
	}
	s := slices.Clone(xs)
	slices.Sort(s)
	i := int(float64(len(s))*p/100+0.999999) - 1
	return s[max(0, min(i, len(s)-1))]
}

// Window is a stretch of time in which answers may fail: from a worker's kill until its
// successor is ready plus the task lease.
type Window struct {
	Worker          string
	From, Ready, To time.Duration
}

func inWindows(at time.Duration, ws []Window) bool {
	for _, w := range ws {
		if at >= w.From && at <= w.To {
			return true
		}
	}
	return false
}
