package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/imaged/imaged"
)

// The outage tests (storage in production_test.go, PostgreSQL and RabbitMQ beside it) share
// one course: 50 tasks are queued and run while a required dependency is cut for outageLength;
// /health/ready must answer 503 during the outage and 200 after it, and every task must end
// completed exactly once, at its first attempt (an outage spends none).

// outageLength is how long each outage test keeps its dependency away: 20 s, or the duration
// IMAGED_TEST_OUTAGE for a longer run by hand.
var outageLength = func() time.Duration {
	if d, err := time.ParseDuration(os.Getenv("IMAGED_TEST_OUTAGE")); err == nil && d > 0 {
		return d
	}
	return 20 * time.Second
}()

// outageTasks is how many tasks run through each outage.
const outageTasks = 50

// outage is one deployment under an outage test.
type outage struct {
	// call sends a request to the API process (JSON body when body is not nil).
	call func(method, path string, body any) (int, []byte)
	// cut takes the dependency away; restore brings it back. during, when set, runs once right
	// after the cut, inside the outage.
	cut, restore, during func()
	// results lists the result objects in the blob store (their paths, which carry the task id).
	results func() []string
	// logs returns the logs of every process that runs tasks.
	logs func() string
}

// call sends a request to s as outage.call does.
func (s *server) call(method, path string, body any) (int, []byte) {
	s.t.Helper()
	if body == nil {
		r := s.do(method, path, nil, nil)
		return r.status, r.body
	}
	b, err := json.Marshal(body)
	if err != nil {
		s.t.Fatal(err)
	}
	r := s.do(method, path, bytes.NewReader(b), map[string]string{"Content-Type": "application/json"})
	return r.status, r.body
}

func (o *outage) getJSON(t *testing.T, path string) map[string]any {
	t.Helper()
	status, body := o.call("GET", path, nil)
	if status != 200 {
		t.Fatalf("GET %s: %d %s", path, status, body)
	}
	var v map[string]any
	if err := json.Unmarshal(body, &v); err != nil {
		t.Fatalf("GET %s: %v: %s", path, err, body)
	}
	return v
}

func (o *outage) ready() int {
	status, _ := o.call("GET", "/health/ready", nil)
	return status
}

// resultObjects lists the regular files under dir (a blob store's results/), leaving out what
// lies under a dot-name (temporary files of atomic writes, a server's own metadata).
func resultObjects(dir string) []string {
	var out []string
	filepath.Walk(dir, func(p string, info os.FileInfo, err error) error {
		if err == nil && info.Mode().IsRegular() && !strings.Contains(strings.TrimPrefix(p, dir), "/.") {
			out = append(out, p)
		}
		return nil
	})
	return out
}

// ride queues outageTasks tasks (request i from task), cuts the dependency once they run, keeps
// it away for outageLength while watching /health/ready, restores it, and checks what the
// outage tests promise. It returns the task ids.
func (o *outage) ride(t *testing.T, task func(i int) map[string]any) []string {
	t.Helper()
	// Queued from 8 clients at once, so that most are still waiting when the outage comes.
	ids := make([]string, outageTasks)
	var wg sync.WaitGroup
	for c := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := c; i < len(ids); i += 8 {
				status, body := o.call("POST", "/v1/tasks", task(i))
				var v struct{ ID string }
				if status != 202 || json.Unmarshal(body, &v) != nil || v.ID == "" {
					t.Errorf("queueing task %d: %d %s", i, status, body)
					return
				}
				ids[i] = v.ID
			}
		}()
	}
	wg.Wait()
	if t.Failed() {
		t.FailNow()
	}
	waitFor(t, time.Minute, "the tasks to be running", func() bool {
		return len(o.getJSON(t, "/v1/tasks?status=processing&limit=1")["items"].([]any)) > 0 ||
			len(o.getJSON(t, "/v1/tasks?status=completed&limit=1")["items"].([]any)) > 0
	})
	if s := o.ready(); s != 200 {
		t.Fatalf("/health/ready answers %d before the outage", s)
	}
	done := 0
	for _, it := range o.getJSON(t, fmt.Sprintf("/v1/tasks?status=completed&limit=%d", 2*outageTasks))["items"].([]any) {
		if slices.Contains(ids, it.(map[string]any)["id"].(string)) {
			done++
		}
	}
	if done == outageTasks {
		t.Fatalf("all %d tasks completed before the outage: it would meet none", outageTasks)
	}

	o.cut()
	cutAt := time.Now()
	if o.during != nil {
		o.during()
	}
	var during []int
	first503 := time.Duration(-1)
	for time.Since(cutAt) < outageLength {
		s := o.ready()
		if s == 503 && first503 < 0 {
			first503 = time.Since(cutAt)
		}
		if first503 >= 0 {
			during = append(during, s)
		}
		time.Sleep(250 * time.Millisecond) // the pace of the readiness probe, not a wait for a condition
	}
	o.restore()
	restoredAt := time.Now()
	if first503 < 0 || first503 > outageLength/2 {
		t.Errorf("/health/ready did not answer 503 within %s of the outage (first 503 after %v)", outageLength/2, first503)
	}
	for i, s := range during {
		if s != 503 {
			t.Errorf("/health/ready answered %d during the outage (probe %d after the first 503)", s, i+1)
			break
		}
	}
	waitFor(t, 2*time.Minute, "/health/ready to answer 200 after the outage", func() bool { return o.ready() == 200 })
	readyAfter := time.Since(restoredAt)

	for _, id := range ids {
		var v map[string]any
		waitFor(t, 3*time.Minute, "task "+id+" to finish", func() bool {
			v = o.getJSON(t, "/v1/tasks/"+id)
			return imaged.IsTerminal(v["status"].(string))
		})
		if v["status"] != imaged.StatusCompleted || v["attempts"].(float64) != 1 {
			t.Errorf("task %s ended %v at attempt %v (error %v); want completed at attempt 1", id, v["status"], v["attempts"], v["error"])
			continue
		}
		if status, body := o.call("GET", "/v1/tasks/"+id+"/result", nil); status != 200 || len(body) == 0 {
			t.Errorf("task %s result: %d", id, status)
		}
		// One terminal transition: one callback delivery, for task.completed.
		ds := o.getJSON(t, "/v1/tasks/"+id+"/deliveries")["items"].([]any)
		if len(ds) != 1 || ds[0].(map[string]any)["event"] != imaged.EventTaskCompleted {
			t.Errorf("task %s has deliveries %v; want one, for %s", id, ds, imaged.EventTaskCompleted)
		}
	}
	allDone := time.Since(restoredAt)
	results := o.results()
	for _, id := range ids {
		if n := len(slices.DeleteFunc(slices.Clone(results), func(p string) bool { return !strings.Contains(p, id) })); n != 1 {
			t.Errorf("task %s has %d result objects, want 1", id, n)
		}
	}
	// One terminal transition each: the worker logs a completion once per recorded outcome.
	logs := o.logs()
	for _, id := range ids {
		if n := len(regexp.MustCompile(`"msg":"task completed"[^\n]*"task_id":"`+id+`"`).FindAllStringIndex(logs, -1)); n != 1 {
			t.Errorf("task %s was recorded completed %d times", id, n)
		}
	}
	t.Logf("%d tasks (%d done before the cut); outage %.1fs, /health/ready 503 from %.1fs into it, 200 again %.1fs after it; "+
		"all completed at attempt 1, %.1fs after it; %d outage deferrals logged", outageTasks, done, outageLength.Seconds(),
		first503.Seconds(), readyAfter.Seconds(), allDone.Seconds(), strings.Count(logs, "task put back without spending an attempt"))
	return ids
}
