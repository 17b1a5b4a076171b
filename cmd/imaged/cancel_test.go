package main

import (
	"bytes"
	"context"
	"fmt"
	"image"
	"image/jpeg"
	"net/http"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"
)

// processCPU is the CPU time process pid has used, user and system, from /proc.
func processCPU(t *testing.T, pid int) time.Duration {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		t.Fatal(err)
	}
	// The fields after the command name (which may hold spaces) start at state, field 3;
	// utime and stime are fields 14 and 15, in clock ticks of 1/100 s.
	rest := string(b[bytes.LastIndexByte(b, ')')+2:])
	f := strings.Fields(rest)
	utime, _ := strconv.ParseInt(f[11], 10, 64)
	stime, _ := strconv.ParseInt(f[12], 10, 64)
	return time.Duration(utime+stime) * 10 * time.Millisecond
}

// bigPhoto is a w×h JPEG of smooth gradients, made here.
func bigPhoto(t *testing.T, w, h int) []byte {
	t.Helper()
	img := image.NewRGBA(image.Rect(0, 0, w, h))
	for y := 0; y < h; y++ {
		for x := 0; x < w; x++ {
			i := img.PixOffset(x, y)
			img.Pix[i], img.Pix[i+1], img.Pix[i+2], img.Pix[i+3] = byte(x), byte(y), byte(x+y), 255
		}
	}
	var b bytes.Buffer
	if err := jpeg.Encode(&b, img, &jpeg.Options{Quality: 80}); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

// waitBusy waits until the server has used want of CPU since from.
func (s *server) waitBusy(from, want time.Duration) {
	s.t.Helper()
	pid := s.cmd.Process.Pid
	waitFor(s.t, 30*time.Second, "the server to work on the pipeline", func() bool {
		return processCPU(s.t, pid)-from >= want
	})
}

// waitQuiet returns how long after since the server's CPU use fell to idle: the start of the
// first 500 ms window in which it used under 100 ms of CPU.
func (s *server) waitQuiet(since time.Time) time.Duration {
	s.t.Helper()
	pid := s.cmd.Process.Pid
	for time.Since(since) < 30*time.Second {
		start, cpu := time.Now(), processCPU(s.t, pid)
		time.Sleep(500 * time.Millisecond)
		if processCPU(s.t, pid)-cpu < 100*time.Millisecond {
			return start.Sub(since)
		}
	}
	s.t.Fatal("the server's CPU never went quiet")
	return 0
}

// A client that leaves stops its pipeline: within 2 s the server's CPU is idle, and the same
// key (which may run one synchronous pipeline at once) can run the next one at once. A task
// past its deadline stops likewise.
func TestAbandonedWorkStops(t *testing.T) {
	s := startServer(t, "", "IMAGED_MAX_INFLIGHT=2", "IMAGED_TASK_DEADLINE=2s", "IMAGED_MAX_ATTEMPTS=1")
	pid := s.cmd.Process.Pid
	id := s.upload(bigPhoto(t, 4000, 4000))
	small := s.upload(readTestdata(t, "chelsea.jpg"))
	blur := fmt.Sprintf(`{"image_id":%q,"ops":[{"op":"blur","sigma":100},{"op":"convert","format":"png"}]}`, id)

	t.Run("disconnect", func(t *testing.T) {
		ctx, leave := context.WithCancel(context.Background())
		req, err := http.NewRequestWithContext(ctx, "POST", s.base+"/v1/process", strings.NewReader(blur))
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("X-API-Key", s.key)
		answered := make(chan error, 1)
		cpu := processCPU(t, pid)
		go func() {
			resp, err := http.DefaultClient.Do(req)
			if err == nil {
				resp.Body.Close()
				err = fmt.Errorf("the pipeline answered %d before the client left", resp.StatusCode)
			}
			answered <- err
		}()
		s.waitBusy(cpu, time.Second)
		left := time.Now()
		leave()
		if err := <-answered; !strings.Contains(err.Error(), "context canceled") {
			t.Fatal(err)
		}
		stopped := s.waitQuiet(left)
		r := s.postJSON("/v1/process", map[string]any{"image_id": small, "ops": []map[string]any{{"op": "resize", "width": 50}}})
		if r.status != 200 {
			t.Fatalf("the key's next pipeline: %d %s", r.status, r.body)
		}
		if stopped > 2*time.Second {
			t.Errorf("the server's CPU went quiet %v after the client left; want within 2 s", stopped)
		}
		t.Logf("CPU quiet %v after the client left", stopped)
	})

	t.Run("task deadline", func(t *testing.T) {
		cpu := processCPU(t, pid)
		r := s.do("POST", "/v1/tasks", strings.NewReader(blur), map[string]string{"Content-Type": "application/json"})
		if r.status != 202 {
			t.Fatalf("create task: %d %s", r.status, r.body)
		}
		taskID := r.json(t)["id"].(string)
		s.waitBusy(cpu, 500*time.Millisecond)
		task := s.waitTask(taskID, 30*time.Second)
		if task["status"] != "failed" || !strings.Contains(fmt.Sprint(task["error"]), "deadline") {
			t.Fatalf("task: %v", task)
		}
		started, err := time.Parse(time.RFC3339Nano, task["started_at"].(string))
		if err != nil {
			t.Fatal(err)
		}
		deadline := started.Add(2 * time.Second)
		stopped := s.waitQuiet(deadline)
		if stopped > 2*time.Second {
			t.Errorf("the server's CPU went quiet %v after the task's deadline; want within 2 s", stopped)
		}
		t.Logf("CPU quiet %v after the task's deadline", stopped)
	})
}
