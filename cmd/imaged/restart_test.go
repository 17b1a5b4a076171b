package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// slowOps make a task take a noticeable time, so that a stop lands while tasks run.
var slowOps = []map[string]any{
	{"op": "resize", "width": 2500, "height": 2500, "fit": "exact", "enlarge": true},
	{"op": "blur", "sigma": 6},
	{"op": "convert", "format": "jpeg", "quality": 80},
}

// queueSlowTasks queues n slow tasks and returns their ids.
func queueSlowTasks(t *testing.T, s *server, n int) []string {
	t.Helper()
	id := s.upload(readTestdata(t, "astronaut.jpg"))
	ids := make([]string, n)
	for i := range ids {
		r := s.postJSON("/v1/tasks", map[string]any{"image_id": id, "ops": slowOps})
		if r.status != 202 {
			t.Fatalf("create: %d %s", r.status, r.body)
		}
		ids[i] = r.json(t)["id"].(string)
	}
	return ids
}

// checkExactlyOnce waits for every task to end and checks each has one terminal state and one
// result object, keyed by its id.
func checkExactlyOnce(t *testing.T, s *server, ids []string) {
	t.Helper()
	for _, id := range ids {
		task := s.waitTask(id, 3*time.Minute)
		if task["status"] != "completed" {
			t.Fatalf("task %s ended %v: %v", id, task["status"], task["error"])
		}
		out := task["result"].(map[string]any)["output"].(map[string]any)
		if !strings.Contains(out["key"].(string), id) {
			t.Fatalf("task %s result key %v", id, out["key"])
		}
		if r := s.get("/v1/tasks/" + id + "/result"); r.status != 200 || len(r.body) == 0 {
			t.Fatalf("task %s result: %d", id, r.status)
		}
	}
	results := 0
	filepath.Walk(filepath.Join(s.dataDir, "blobs", "results"), func(p string, info os.FileInfo, err error) error {
		if err == nil && info.Mode().IsRegular() && strings.HasSuffix(p, ".jpg") {
			results++
		}
		return nil
	})
	if results != len(ids) {
		t.Fatalf("%d result objects for %d tasks", results, len(ids))
	}
	if l := s.get("/v1/tasks?status=processing").json(t); len(l["items"].([]any)) != 0 {
		t.Fatalf("tasks stuck in processing: %v", l["items"])
	}
}

func TestRestartAfterKill9(t *testing.T) {
	if testing.Short() {
		t.Skip("restart test runs slow pipelines")
	}
	dir := t.TempDir()
	s := startServer(t, dir, "IMAGED_WORKERS=1")
	ids := queueSlowTasks(t, s, 8)
	waitFor(t, time.Minute, "a task to be processing", func() bool {
		l := s.get("/v1/tasks?status=processing").json(t)
		return len(l["items"].([]any)) > 0
	})
	s.kill() // SIGKILL: no chance to clean up

	s2 := startServer(t, dir, "IMAGED_WORKERS=2")
	checkExactlyOnce(t, s2, ids)
	if !strings.Contains(s2.logs.String(), "tasks interrupted by the previous run were queued again") {
		t.Fatal("the interrupted task was not requeued at start-up")
	}
}

func TestGracefulShutdownRequeues(t *testing.T) {
	if testing.Short() {
		t.Skip("restart test runs slow pipelines")
	}
	dir := t.TempDir()
	// A grace period shorter than a task: the running task is interrupted and put back.
	s := startServer(t, dir, "IMAGED_WORKERS=1", "IMAGED_SHUTDOWN_GRACE=50ms")
	ids := queueSlowTasks(t, s, 5)
	waitFor(t, time.Minute, "a task to be processing", func() bool {
		l := s.get("/v1/tasks?status=processing").json(t)
		return len(l["items"].([]any)) > 0
	})
	s.stop()
	if !strings.Contains(s.logs.String(), "shutdown complete") {
		t.Fatalf("no clean shutdown:\n%s", tail(s.logs.String(), 2000))
	}

	s2 := startServer(t, dir, "IMAGED_WORKERS=2")
	// Nothing was left processing by the graceful stop: every task is queued or done.
	if strings.Contains(s2.logs.String(), "tasks interrupted by the previous run") {
		t.Fatal("a graceful shutdown left a task in processing")
	}
	checkExactlyOnce(t, s2, ids)
}
