package main

import (
	"strings"
	"testing"
	"time"
)

// A task that runs several times longer than its lease keeps it: the worker's heartbeat renews
// it while the sweeper, every 200 ms, requeues whatever has run out. The task completes at its
// first attempt, and the heartbeat shows in the store's lease updates rather than in a second run.
func TestHeartbeatKeepsALongTasksLease(t *testing.T) {
	if testing.Short() {
		t.Skip("runs a pipeline of several seconds")
	}
	s := startServer(t, "", "IMAGED_TASK_LEASE=1s", "IMAGED_LEASE_SWEEP=200ms", "IMAGED_WORKERS=1")
	id := s.upload(readTestdata(t, "chelsea.png"))
	// Enlarging to 56 MP, blurring and compressing it as PNG at level 9 takes seconds.
	r := s.postJSON("/v1/tasks", map[string]any{"image_id": id, "ops": []map[string]any{
		{"op": "resize", "width": 9000, "height": 6000, "fit": "fill", "enlarge": true},
		{"op": "blur", "sigma": 8},
		{"op": "convert", "format": "png", "compression": 9},
	}})
	if r.status != 202 {
		t.Fatalf("create task: %d %s", r.status, r.body)
	}
	task := s.waitTask(r.json(t)["id"].(string), 5*time.Minute)
	if task["status"] != "completed" {
		t.Fatalf("task = %v", task)
	}
	secs := task["result"].(map[string]any)["processing_seconds"].(float64)
	if secs < 3 {
		t.Fatalf("the pipeline ran %.1fs: too short, against a 1s lease, to show the heartbeat at work", secs)
	}
	if task["attempts"] != 1.0 {
		t.Errorf("attempts = %v after a %.1fs run under a 1s lease; want 1 (the heartbeat keeps the lease)", task["attempts"], secs)
	}
	if strings.Contains(s.logs.String(), "lease was lost") || strings.Contains(s.logs.String(), "lease ran out") {
		t.Errorf("the lease ran out during the run:\n%s", tail(s.logs.String(), 3000))
	}
	t.Logf("the task ran %.1fs under a 1s lease, at one attempt", secs)
}
