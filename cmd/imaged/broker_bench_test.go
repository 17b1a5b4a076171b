package main

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"testing"
	"time"

	_ "modernc.org/sqlite"

	"github.com/imaged/imaged"
)

// BenchmarkQueueEndToEnd measures tasks per second from POST /v1/tasks to completed, with a
// trivial op (a 64×48 PNG resized to 16 px wide), through each queue:
//
//	embedded  one `imaged serve` process, SQLite, the database queue (the default)
//	db        an API process and a worker process over PostgreSQL, the database queue
//	rabbitmq  the same two processes, RabbitMQ
//	kafka     the same two processes, kfake
//
// The worker runs 2 tasks at once. Besides tasks/s it reports the latency of a lone task
// (finished_at − created_at, median of 20 sent one after another), so the cost each queue adds
// per task shows against the embedded one. Run with -benchtime=200x: b.N is the number of
// tasks, and each run starts its processes anew.
func BenchmarkQueueEndToEnd(b *testing.B) {
	for _, mode := range []string{"embedded", "db", "rabbitmq", "kafka"} {
		b.Run(mode, func(b *testing.B) {
			b.StopTimer()
			api, done := benchSetup(b, mode)
			img := uploadTo(b, api, testPNG(b, 64, 48))
			req := map[string]any{"image_id": img, "ops": []map[string]any{{"op": "resize", "width": 16}}}
			// Warm up: the first task pays for connections and lazy set-up.
			waitTask(b, api, createOn(b, api, req))

			base := done()
			b.StartTimer()
			start := time.Now()
			clients := 8
			errs := make(chan string, clients)
			next := make(chan struct{}, b.N)
			for range b.N {
				next <- struct{}{}
			}
			close(next)
			for range clients {
				go func() {
					for range next {
						if id := createOn(b, api, req); id == "" {
							errs <- "create failed"
							return
						}
					}
					errs <- ""
				}()
			}
			for range clients {
				if e := <-errs; e != "" {
					b.Fatal(e)
				}
			}
			deadline := time.Now().Add(5 * time.Minute)
			for done()-base < b.N {
				if time.Now().After(deadline) {
					b.Fatalf("only %d of %d tasks completed in 5 min", done()-base, b.N)
				}
				time.Sleep(5 * time.Millisecond)
			}
			elapsed := time.Since(start)
			b.StopTimer()
			b.ReportMetric(float64(b.N)/elapsed.Seconds(), "tasks/s")

			var lat []float64
			for range 20 {
				t := waitTask(b, api, createOn(b, api, req))
				lat = append(lat, t.FinishedAt.Sub(t.CreatedAt).Seconds()*1000)
			}
			sort.Float64s(lat)
			b.ReportMetric(lat[len(lat)/2], "ms/lone-task")
			b.ReportMetric(0, "ns/op") // wall time per op is not meaningful here; tasks/s is
		})
	}
}

// benchSetup starts the processes of a mode and returns the API and a count of completed tasks.
func benchSetup(b *testing.B, mode string) (*imagedProc, func() int) {
	b.Helper()
	env := []string{"IMAGED_LOG_LEVEL=info"}
	switch mode {
	case "embedded":
		dir := b.TempDir()
		api := startImaged(b, "serve", append([]string{
			"PATH=" + getenv("PATH"), "HOME=" + getenv("HOME"), "IMAGED_AUTH=off", "IMAGED_DATA_DIR=" + dir,
			"IMAGED_RATE_LIMIT_KEY=0", "IMAGED_RATE_LIMIT_KEY_BURST=0", "IMAGED_KEY_CONCURRENCY=0",
			"IMAGED_WORKERS=2", "IMAGED_MODELS_DIR=" + filepath.Join(dir, "no-models"), "IMAGED_HEALTH_EVENT_INTERVAL=0",
		}, env...))
		db, err := sql.Open("sqlite", "file:"+filepath.Join(dir, "imaged.db")+"?_pragma=query_only(1)&_pragma=busy_timeout(5000)")
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { db.Close() })
		return api, func() int {
			var n int
			if err := db.QueryRow(`SELECT count(*) FROM tasks WHERE status = 'completed'`).Scan(&n); err != nil {
				b.Fatal(err)
			}
			return n
		}
	case "db":
		env = append(env, "IMAGED_QUEUE_URL=db://")
	case "rabbitmq":
		env = append(env, "IMAGED_QUEUE_URL="+rabbitBroker(b).queueURL)
	case "kafka":
		env = append(env, "IMAGED_QUEUE_URL="+kafkaBroker(b).queueURL)
	}
	c := newClusterWith(b, env)
	c.addWorker(2)
	return c.api, func() int { return c.counts()[imaged.StatusCompleted] }
}

func getenv(k string) string { return os.Getenv(k) }

// newClusterWith is newCluster whose extra settings replace the queue URL when they name one.
func newClusterWith(tb testing.TB, extra []string) *cluster {
	q := envValue(extra, "IMAGED_QUEUE_URL")
	return newCluster(tb, q, append(extra, "IMAGED_HEALTH_EVENT_INTERVAL=0")...)
}

func uploadTo(tb testing.TB, api *imagedProc, img []byte) string {
	tb.Helper()
	status, _, body := api.call("POST", "/v1/images", img, nil)
	if status != 201 {
		tb.Fatalf("upload: %d %s", status, body)
	}
	var v struct{ ID string }
	json.Unmarshal(body, &v)
	return v.ID
}

func createOn(tb testing.TB, api *imagedProc, req map[string]any) string {
	status, _, body := api.call("POST", "/v1/tasks", req, nil)
	if status != 202 {
		tb.Errorf("create task: %d %s", status, body)
		return ""
	}
	var v struct{ ID string }
	json.Unmarshal(body, &v)
	return v.ID
}

// waitTask polls the task every millisecond until it is terminal.
func waitTask(tb testing.TB, api *imagedProc, id string) *imaged.Task {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for ctx.Err() == nil {
		status, _, body := api.call("GET", "/v1/tasks/"+id, nil, nil)
		var t imaged.Task
		if status == 200 && json.Unmarshal(body, &t) == nil && imaged.IsTerminal(t.Status) {
			if t.Status != imaged.StatusCompleted || t.FinishedAt == nil {
				tb.Fatalf("task %s: %s", id, body)
			}
			return &t
		}
		time.Sleep(time.Millisecond)
	}
	tb.Fatal(fmt.Sprintf("task %s not done in 30s", id))
	return nil
}
