package main

import (
	"fmt"
	"io"
	"net/http"
	"os"
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
// with hostile pipelines on default settings: one key sends them from four connections while
// another key's small resizes are timed. Every small resize succeeds, the hostile ones are
// answered 4xx (refused before decoding) or 200 (within the budget), never 5xx, and the
// server's peak RSS stays under 1.5 GiB; the numbers are logged.
func TestHostilePipelinesBesideALightClient(t *testing.T) {
	if testing.Short() {
		t.Skip("a load run")
	}
	s := startServer(t, "", "IMAGED_WORKERS=0")
	attacker := s.createKey("attacker")
	small := readTestdata(t, "chelsea.png")
	smallOps := `[{"op":"resize","width":64},{"op":"convert","format":"jpeg"}]`

	stop := make(chan struct{})
	var wg sync.WaitGroup
	var mu sync.Mutex
	codes := map[int]int{}
	for i := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for n := i; ; n++ {
				select {
				case <-stop:
					return
				default:
				}
				body, ct := multipartBody(t, "small.png", small, map[string]string{"ops": hostilePipelines[n%len(hostilePipelines)]})
				req, _ := http.NewRequest("POST", s.base+"/v1/process", body)
				req.Header.Set("Content-Type", ct)
				req.Header.Set("X-API-Key", attacker)
				code := 0
				if resp, err := http.DefaultClient.Do(req); err == nil {
					io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
					code = resp.StatusCode
				}
				mu.Lock()
				codes[code]++
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
	close(stop)
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
	if peak > 1536<<20 {
		t.Fatalf("peak RSS %.0f MiB, over 1.5 GiB", float64(peak)/(1<<20))
	}
}
