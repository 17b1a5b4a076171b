package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// hostilePipelines are what a hostile client sends to the synchronous path: every op that
// enlarges, chains of them, OCR preprocessing that upscales, extreme filter parameters. Each
// is refused before decoding (its peak or cost is over the limits) or runs within the memory
// budget.
var hostilePipelines = []string{
	`[{"op":"pad","width":10000,"height":10000},{"op":"ocr","preprocess":{"upscale":4}}]`,
	`[{"op":"resize","width":10000,"height":10000,"fit":"fill","enlarge":true},{"op":"sharpen","sigma":10}]`,
	`[{"op":"resize","width":9000,"enlarge":true},{"op":"rotate","angle":45},{"op":"blur","sigma":100}]`,
	`[{"op":"pad","width":10000,"height":10000},{"op":"pad","width":10000,"height":10000,"gravity":"north"}]`,
	`[{"op":"resize","width":4000,"height":4000,"fit":"fill","enlarge":true},{"op":"blur","sigma":100},{"op":"convert","format":"png"}]`,
	`[{"op":"pad","width":10000,"height":10000},{"op":"blur","sigma":100}]`,
	`[{"op":"pad","width":10000,"height":10000},{"op":"ocr"}]`,
	`[{"op":"pad","width":4000,"height":4000},{"op":"convert","format":"avif","effort":9}]`,
}

// Hostile pipelines on a 1×1 image, through the HTTP API on default settings: the ones whose
// plan is over the limits are answered 400 at once, naming the op and saying why; a task with
// one fails with the same reason.
func TestHostilePipelinesAreRefusedOverHTTP(t *testing.T) {
	s := startServer(t, "")
	tiny := bigPhoto(t, 1, 1)
	for _, tc := range []struct {
		ops, field, text string
	}{
		{hostilePipelines[0], "ops[1]", "ocr would hold an image of 40000×40000 pixels"},
		{hostilePipelines[5], "ops[1]", "of them for blur on 10000×10000 pixels; the limit is 60000"},
		{hostilePipelines[6], "ops[1]", "of them for ocr on 10000×10000 pixels"},
		{hostilePipelines[7], "ops[1]", "of them for convert on 4000×4000 pixels"},
		{`[{"op":"resize","width":9000,"enlarge":true},{"op":"extend","aspect":"1:3"}]`, "ops[1]", "extend would make the image 9000×27000 pixels; the limit is 10000×10000"},
	} {
		start := time.Now()
		r := s.postMultipart("/v1/process", "tiny.jpg", tiny, map[string]string{"ops": tc.ops})
		took := time.Since(start)
		if r.status != 400 {
			t.Fatalf("%s: %d %s", tc.ops, r.status, r.body)
		}
		e := r.json(t)["error"].(map[string]any)
		if e["code"] != "invalid_argument" || e["field"] != tc.field || !strings.Contains(e["message"].(string), tc.text) {
			t.Fatalf("%s: %v", tc.ops, e)
		}
		t.Logf("%s → 400 in %v: %s", tc.ops, took.Round(time.Millisecond), e["message"])
	}
	id := s.upload(tiny)
	r := s.postJSON("/v1/tasks", map[string]any{"image_id": id, "ops": []map[string]any{
		{"op": "pad", "width": 10000, "height": 10000}, {"op": "ocr", "preprocess": map[string]any{"upscale": 4}}}})
	if r.status != 202 {
		t.Fatalf("create task: %d %s", r.status, r.body)
	}
	task := s.waitTask(r.json(t)["id"].(string), 60*time.Second)
	if task["status"] != "failed" || !strings.Contains(fmt.Sprint(task["error"]), "ocr would hold an image of 40000×40000") {
		t.Fatalf("task: %v", task)
	}
}

// peakRSS is the server process's high-water mark of resident memory (VmHWM), in bytes.
func (s *server) peakRSS() int64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", s.cmd.Process.Pid))
	if err != nil {
		s.t.Fatal(err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		if f := strings.Fields(line); len(f) >= 2 && f[0] == "VmHWM:" {
			kb, _ := strconv.ParseInt(f[1], 10, 64)
			return kb << 10
		}
	}
	s.t.Fatal("no VmHWM in /proc/PID/status")
	return 0
}

// TestHostilePipelinesBesideALightClient runs the load of TestOneClientsBombsAndBigBodiesDoNotSlowOthers
// with hostile pipelines on default settings: one key sends them from as many connections as
// there are pipeline slots but one, while another key's small resizes are timed. Every small
// resize succeeds, the hostile ones are answered 4xx (refused before decoding) or 200 (within
// the budget: the large ones one at a time, beside the small ones), never 5xx, and the
// server's peak RSS stays under 1.5 GiB; the numbers are logged. The attacker's requests still
// running when the victim is done are abandoned, which stops them.
//
// One slot is left to the victim because a lone key may hold every slot, and the pipelines
// within the cost limit may run for tens of seconds: another key's request would wait for a
// slot past the 10 s it may, and get 503. That is the slots' rule, not the planner's; where
// keys are not trusted, IMAGED_KEY_CONCURRENCY below IMAGED_MAX_INFLIGHT keeps a slot free.
func TestHostilePipelinesBesideALightClient(t *testing.T) {
	if testing.Short() {
		t.Skip("a load run")
	}
	s := startServer(t, "", "IMAGED_WORKERS=0")
	attacker := s.createKey("attacker")
	tiny, small := bigPhoto(t, 1, 1), readTestdata(t, "chelsea.png")
	smallOps := `[{"op":"resize","width":64},{"op":"convert","format":"jpeg"}]`

	ctx, stop := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	var mu sync.Mutex
	codes := map[int]int{}
	for i := range 2*runtime.NumCPU() - 1 { // IMAGED_MAX_INFLIGHT's default, less one
		wg.Add(1)
		go func() {
			defer wg.Done()
			for n := i; ctx.Err() == nil; n++ {
				body, ct := multipartBody(t, "tiny.jpg", tiny, map[string]string{"ops": hostilePipelines[n%len(hostilePipelines)]})
				req, _ := http.NewRequestWithContext(ctx, "POST", s.base+"/v1/process", body)
				req.Header.Set("Content-Type", ct)
				req.Header.Set("X-API-Key", attacker)
				resp, err := http.DefaultClient.Do(req)
				if err != nil {
					if ctx.Err() == nil {
						mu.Lock()
						codes[0]++
						mu.Unlock()
					}
					continue
				}
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				mu.Lock()
				codes[resp.StatusCode]++
				mu.Unlock()
			}
		}()
	}
	var victim latencies
	victimCodes := map[int]int{}
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) || len(victim) < 15 {
		start := time.Now()
		r := s.postMultipart("/v1/process", "small.png", small, map[string]string{"ops": smallOps})
		victim = append(victim, time.Since(start))
		victimCodes[r.status]++
	}
	stop()
	wg.Wait()
	peak := s.peakRSS()
	t.Logf("victim: %d requests, p50 %v, p99 %v, answers %v", len(victim), victim.pct(0.5).Round(time.Millisecond),
		victim.pct(0.99).Round(time.Millisecond), victimCodes)
	t.Logf("hostile pipelines: answers %v; server peak RSS %.0f MiB", codes, float64(peak)/(1<<20))
	if victimCodes[200] != len(victim) {
		t.Fatalf("the light client was refused beside the hostile one: %v", victimCodes)
	}
	for code, n := range codes {
		if code == 0 || code >= 500 {
			t.Fatalf("hostile pipelines were answered %d (%d times): %v", code, n, codes)
		}
	}
	if codes[400] == 0 {
		t.Fatalf("no hostile pipeline was refused: %v", codes)
	}
	if peak > 1536<<20 {
		t.Fatalf("peak RSS %.0f MiB, over 1.5 GiB", float64(peak)/(1<<20))
	}
}
