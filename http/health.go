package http

import (
	"context"
	"net/http"
	"sync"
	"time"
)

type dependencyHealth struct {
	Status         string  `json:"status"`
	Required       bool    `json:"required"`
	ResponseTimeMS float64 `json:"response_time_ms"`
	Error          string  `json:"error,omitempty"`
}

type healthReport struct {
	Status       string                      `json:"status"`
	Timestamp    time.Time                   `json:"timestamp"`
	Version      string                      `json:"version"`
	Dependencies map[string]dependencyHealth `json:"dependencies"`
}

// checkAll runs every dependency check concurrently, each bounded by a short deadline so a
// hanging dependency makes the report say so instead of hanging it.
func (s *Server) checkAll(ctx context.Context) (healthReport, bool) {
	rep := healthReport{Status: "healthy", Timestamp: time.Now().UTC(), Version: s.cfg.Version,
		Dependencies: map[string]dependencyHealth{}}
	var mu sync.Mutex
	var wg sync.WaitGroup
	ready := true
	for _, c := range s.deps.Health {
		wg.Add(1)
		go func() {
			defer wg.Done()
			cctx, cancel := context.WithTimeout(ctx, 2*time.Second)
			defer cancel()
			start := time.Now()
			err := c.Check(cctx)
			d := dependencyHealth{Status: "healthy", Required: c.Required,
				ResponseTimeMS: float64(time.Since(start).Microseconds()) / 1000}
			if err != nil {
				d.Status, d.Error = "unhealthy", err.Error()
			}
			mu.Lock()
			defer mu.Unlock()
			rep.Dependencies[c.Name] = d
			if err != nil {
				if c.Required {
					ready = false
					rep.Status = "unhealthy"
				} else if rep.Status == "healthy" {
					rep.Status = "degraded"
				}
			}
		}()
	}
	wg.Wait()
	return rep, ready
}

func (s *Server) handleHealth() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		rep, ready := s.checkAll(r.Context())
		status := http.StatusOK
		if !ready {
			status = http.StatusServiceUnavailable
		}
		writeJSON(w, status, rep)
	})
}

// handleLive answers as long as the process serves HTTP: a dead dependency must not get the
// pod restarted.
func (s *Server) handleLive() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, map[string]string{"status": "alive"})
	})
}

func (s *Server) handleReady() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		rep, ready := s.checkAll(r.Context())
		if !ready {
			writeJSON(w, http.StatusServiceUnavailable, map[string]any{"status": "not_ready", "dependencies": rep.Dependencies})
			return
		}
		writeJSON(w, http.StatusOK, map[string]any{"status": "ready"})
	})
}
