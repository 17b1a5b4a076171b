package imaged

import (
	"context"
	"encoding/json"
	"os"
	"runtime"
	"time"
)

// HealthCheck is one dependency of a process: /health reports it and health events carry it.
// The Required ones decide whether the process is ready.
type HealthCheck struct {
	Name     string
	Required bool
	Check    func(ctx context.Context) error
}

// HealthPublisher publishes a health event every Interval: the process's status (every
// required check passing, or degraded) and key figures, for whoever watches the event stream.
type HealthPublisher struct {
	Events   Events
	Queue    Queue
	Checks   []HealthCheck
	Interval time.Duration
	Role     string // api, worker or api+worker
	WorkerID string
	Version  string
	Workers  int
}

// Run publishes until ctx is cancelled; with no Events or no Interval it returns at once.
func (p *HealthPublisher) Run(ctx context.Context) {
	if p.Interval <= 0 || p.Events == nil {
		return
	}
	host, _ := os.Hostname()
	start := time.Now()
	Every(ctx, p.Interval, func() {
		cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		status := "ok"
		checks := map[string]string{}
		for _, c := range p.Checks {
			if err := c.Check(cctx); err != nil {
				checks[c.Name] = "down"
				if c.Required {
					status = "degraded"
				}
			} else {
				checks[c.Name] = "ok"
			}
		}
		depth, _ := p.Queue.Depth(cctx)
		cancel()
		data, _ := json.Marshal(map[string]any{
			"role": p.Role, "host": host, "pid": os.Getpid(), "version": p.Version, "checks": checks,
			"queue_depth": depth, "workers": p.Workers, "goroutines": runtime.NumGoroutine(),
			"uptime_seconds": int64(time.Since(start).Seconds()),
		})
		_ = p.Events.Publish(ctx, Event{Type: EventHealth, Status: status, WorkerID: p.WorkerID, Data: data})
	})
}
