package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"image"
	_ "image/jpeg"
	_ "image/png"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	_ "golang.org/x/image/webp"
)

// cliRun runs the binary as a user would, with the server and key of s (none when s is nil)
// and the extra variables in env, and returns stdout, stderr and the exit status.
func cliRun(t *testing.T, s *server, env []string, args ...string) (string, string, int) {
	t.Helper()
	cmd := exec.Command(imagedBinary(t), args...)
	cmd.Env = append([]string{"PATH=" + os.Getenv("PATH"), "HOME=" + os.Getenv("HOME"), "OMP_THREAD_LIMIT=1"}, env...)
	if s != nil {
		cmd.Env = append(cmd.Env, "IMAGED_URL="+s.base, "IMAGED_KEY="+s.key)
	}
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	if _, ok := err.(*exec.ExitError); err != nil && !ok {
		t.Fatal(err)
	}
	return stdout.String(), stderr.String(), cmd.ProcessState.ExitCode()
}

// photoFolder is a folder of the real photos of testdata and one broken file: a JPEG cut in
// half, as an interrupted copy leaves it.
func photoFolder(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	for _, name := range []string{"astronaut.jpg", "chelsea.jpg", "chelsea.png", "coffee.png"} {
		if err := os.WriteFile(filepath.Join(dir, name), readTestdata(t, name), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	cut := readTestdata(t, "astronaut.jpg")
	if err := os.WriteFile(filepath.Join(dir, "broken.jpg"), cut[:len(cut)/2], 0o644); err != nil {
		t.Fatal(err)
	}
	return dir
}

func decodeConfig(t *testing.T, path string) (image.Config, string) {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	cfg, format, err := image.DecodeConfig(f)
	if err != nil {
		t.Fatalf("%s does not decode: %v", path, err)
	}
	return cfg, format
}

// The client commands end to end: the binary against a real server over a folder of photos
// with a broken file, and process --local against the server's bytes.
func TestClientCommands(t *testing.T) {
	s := startServer(t, "")
	photos := photoFolder(t)
	out := t.TempDir()
	broken := filepath.Join(photos, "broken.jpg")

	t.Run("upload", func(t *testing.T) {
		stdout, stderr, code := cliRun(t, s, nil, "upload", filepath.Join(photos, "astronaut.jpg"), broken, "--json")
		var res []struct {
			File  string                          `json:"file"`
			Image *struct{ ID, Format string }    `json:"image"`
			Error *struct{ Code, Message string } `json:"error"`
		}
		if code != 1 || json.Unmarshal([]byte(stdout), &res) != nil || len(res) != 2 || res[0].Image == nil ||
			res[0].Image.Format != "jpeg" || res[1].Error == nil || res[1].Error.Code != "invalid_argument" ||
			!strings.Contains(stderr, "broken.jpg") {
			t.Fatalf("upload: exit %d\n%s\n%s", code, stdout, stderr)
		}
		if r := s.get("/v1/images/" + res[0].Image.ID); r.status != 200 {
			t.Fatalf("the uploaded image: %d %s", r.status, r.body)
		}
		stdout, _, code = cliRun(t, s, nil, "upload", filepath.Join(photos, "coffee.png"))
		if code != 0 || !strings.Contains(stdout, "png 600x400") {
			t.Fatalf("upload coffee.png: exit %d %s", code, stdout)
		}
	})

	t.Run("process and --local", func(t *testing.T) {
		nowhere := []string{"IMAGED_URL=http://127.0.0.1:1"} // --local needs no server
		for i, c := range []struct {
			file   string
			ops    []string
			format string
			w, h   int
		}{
			{"astronaut.jpg", []string{"resize:width=200", "convert:format=webp"}, "webp", 200, 200},
			{"chelsea.png", []string{"resize:w=300,h=200,fit=cover", "convert:f=jpeg,q=85"}, "jpeg", 300, 200},
			{"coffee.png", []string{"grayscale", "blur:sigma=1.5", "rotate:angle=90", "convert:format=png"}, "png", 400, 600},
		} {
			args := []string{"process", filepath.Join(photos, c.file)}
			for _, op := range c.ops {
				args = append(args, "--op", op)
			}
			remote, local := filepath.Join(out, fmt.Sprintf("remote-%d", i)), filepath.Join(out, fmt.Sprintf("local-%d", i))
			if stdout, stderr, code := cliRun(t, s, nil, append(args, "-o", remote)...); code != 0 {
				t.Fatalf("%v: exit %d\n%s%s", args, code, stdout, stderr)
			}
			if stdout, stderr, code := cliRun(t, nil, nowhere, append(args, "--local", "-o", local)...); code != 0 {
				t.Fatalf("%v --local: exit %d\n%s%s", args, code, stdout, stderr)
			}
			a, _ := os.ReadFile(remote)
			b, _ := os.ReadFile(local)
			if len(a) == 0 || !bytes.Equal(a, b) {
				t.Fatalf("%v: the server wrote %d bytes, --local %d, not the same", c.ops, len(a), len(b))
			}
			cfg, format := decodeConfig(t, remote)
			if format != c.format || cfg.Width != c.w || cfg.Height != c.h {
				t.Fatalf("%v: %s %dx%d", c.ops, format, cfg.Width, cfg.Height)
			}
			piped, _, code := cliRun(t, s, nil, append(args, "-o", "-")...)
			if code != 0 || piped != string(a) {
				t.Fatalf("%v -o -: exit %d, %d bytes", c.ops, code, len(piped))
			}
		}
		stdout, _, code := cliRun(t, s, nil, "process", filepath.Join(photos, "astronaut.jpg"), "--op", "info", "--json")
		if code != 0 || !strings.Contains(stdout, `"width": 512`) {
			t.Fatalf("info: exit %d %s", code, stdout)
		}
		_, stderr, code := cliRun(t, s, nil, "process", filepath.Join(photos, "astronaut.jpg"), "--op", "resize:width=0", "-o", filepath.Join(out, "never"))
		if _, err := os.Stat(filepath.Join(out, "never")); code != 1 || !strings.Contains(stderr, "ops[0].width") || err == nil {
			t.Fatalf("a bad op: exit %d %s", code, stderr)
		}
		_, stderr, code = cliRun(t, s, nil, "process", broken, "--op", "grayscale", "--local", "-o", filepath.Join(out, "never"))
		if code != 1 || !strings.Contains(stderr, "truncated") {
			t.Fatalf("--local on a broken file: exit %d %s", code, stderr)
		}
	})

	var batchID string
	t.Run("submit", func(t *testing.T) {
		results := filepath.Join(out, "results")
		stdout, stderr, code := cliRun(t, s, nil, "submit", photos, "--op", "resize:width=100", "--op", "convert:format=png", "-o", results, "--json")
		var rep struct {
			BatchIDs []string       `json:"batch_ids"`
			Counts   map[string]int `json:"counts"`
			Items    []struct {
				File, Status, Output string
				Error                *struct{ Code string }
			} `json:"items"`
		}
		if code != 1 || json.Unmarshal([]byte(stdout), &rep) != nil || len(rep.BatchIDs) != 1 || len(rep.Items) != 5 ||
			rep.Counts["completed"] != 4 || rep.Counts["skipped"] != 1 || !strings.Contains(stderr, "1 of 5 files failed") {
			t.Fatalf("submit: exit %d\n%s\n%s", code, stdout, stderr)
		}
		batchID = rep.BatchIDs[0]
		for _, it := range rep.Items {
			if it.File == broken {
				if it.Status != "skipped" || it.Error == nil || it.Error.Code != "invalid_argument" || it.Output != "" {
					t.Fatalf("the broken file: %+v", it)
				}
				continue
			}
			cfg, format := decodeConfig(t, it.Output)
			if it.Status != "completed" || format != "png" || cfg.Width != 100 {
				t.Fatalf("%s: %+v, %s %dx%d", it.File, it, format, cfg.Width, cfg.Height)
			}
		}
		names, _ := filepath.Glob(filepath.Join(results, "*"))
		for i := range names {
			names[i] = filepath.Base(names[i])
		}
		if strings.Join(names, " ") != "astronaut.png chelsea.jpg.png chelsea.png.png coffee.png" {
			t.Fatalf("the results folder holds %v", names)
		}
		stdout, _, code = cliRun(t, s, nil, "submit", photos, "--op", "info")
		if code != 1 || !strings.Contains(stdout, "skipped   "+broken+": the jpeg is truncated") ||
			strings.Count(stdout, "completed ") != 4 {
			t.Fatalf("submit without -o: exit %d\n%s", code, stdout)
		}
	})

	t.Run("ocr and detect", func(t *testing.T) {
		page := filepath.Join("..", "..", "ocr", "testdata", "eval", "clean-00-dejavu-sans-22.png")
		want, _ := os.ReadFile(strings.TrimSuffix(page, ".png") + ".txt")
		firstLine := strings.SplitN(strings.TrimSpace(string(want)), "\n", 2)[0]
		stdout, stderr, code := cliRun(t, s, nil, "ocr", page, "-p", "engine=tesseract", "-p", `languages=["eng"]`)
		if code != 0 || !strings.HasPrefix(stdout, firstLine) {
			t.Fatalf("ocr: exit %d %q %s", code, stdout, stderr)
		}
		stdout, _, code = cliRun(t, s, nil, "ocr", page, "--json")
		var res struct{ Lines []struct{ Text string } }
		if code != 0 || json.Unmarshal([]byte(stdout), &res) != nil || len(res.Lines) < 2 {
			t.Fatalf("ocr --json: exit %d %s", code, stdout)
		}
		stdout, stderr, code = cliRun(t, s, nil, "detect", filepath.Join(photos, "chelsea.jpg"), "-p", "confidence=0.5")
		if f := strings.Fields(stdout); code != 0 || len(f) == 0 || f[0] != "cat" {
			t.Fatalf("detect: exit %d %q %s", code, stdout, stderr)
		}
		_, stderr, code = cliRun(t, s, nil, "detect", filepath.Join(photos, "chelsea.jpg"), "-p", "confidence=7")
		if code != 1 || !strings.Contains(stderr, "confidence") {
			t.Fatalf("detect with a bad option: exit %d %s", code, stderr)
		}
	})

	t.Run("watch", func(t *testing.T) {
		stdout, stderr, code := cliRun(t, s, nil, "watch", batchID)
		if code != 0 || !strings.Contains(stdout, "batch "+batchID+" completed: 4/4 done") {
			t.Fatalf("watch a finished batch: exit %d %s %s", code, stdout, stderr)
		}
		id := s.upload(readTestdata(t, "astronaut.jpg"))
		r := s.postJSON("/v1/tasks", map[string]any{"image_id": id, "ops": []map[string]any{{"op": "sepia"}}})
		task := r.json(t)["id"].(string)
		stdout, stderr, code = cliRun(t, s, nil, "watch", task)
		if code != 0 || !strings.Contains(stdout, "completed") {
			t.Fatalf("watch a task: exit %d %s %s", code, stdout, stderr)
		}
		if _, _, code := cliRun(t, s, nil, "watch", "no-such-task"); code != 1 {
			t.Fatalf("watch an unknown id: exit %d", code)
		}
	})

	t.Run("health", func(t *testing.T) {
		if stdout, stderr, code := cliRun(t, s, nil, "health"); code != 0 || !strings.Contains(stdout, "is live") {
			t.Fatalf("health: exit %d %s %s", code, stdout, stderr)
		}
		if stdout, stderr, code := cliRun(t, s, nil, "health", "--ready"); code != 0 || !strings.Contains(stdout, "is ready") {
			t.Fatalf("health --ready: exit %d %s %s", code, stdout, stderr)
		}
		// As a container's HEALTHCHECK runs it: no URL, the listen address of the server.
		addr := strings.TrimPrefix(s.base, "http://")
		if _, stderr, code := cliRun(t, nil, []string{"IMAGED_ADDR=" + addr}, "health"); code != 0 {
			t.Fatalf("health from IMAGED_ADDR: exit %d %s", code, stderr)
		}
		dead := fmt.Sprintf("http://127.0.0.1:%d", freePort(t))
		if _, stderr, code := cliRun(t, nil, []string{"IMAGED_URL=" + dead}, "health"); code != 1 || !strings.Contains(stderr, "is not live") {
			t.Fatalf("health of a dead URL: exit %d %s", code, stderr)
		}
	})
}

// watch follows a task live: on a server without workers the task waits, watch shows it
// queued, and the cancellation sent meanwhile arrives on the stream and ends watch with 1.
func TestClientWatchLive(t *testing.T) {
	s := startServer(t, "", "IMAGED_WORKERS=0")
	id := s.upload(readTestdata(t, "astronaut.jpg"))
	task := s.postJSON("/v1/tasks", map[string]any{"image_id": id, "ops": []map[string]any{{"op": "sepia"}}}).json(t)["id"].(string)

	cmd := exec.Command(imagedBinary(t), "watch", task, "--json")
	cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "OMP_THREAD_LIMIT=1", "IMAGED_URL=" + s.base, "IMAGED_KEY=" + s.key}
	pipe, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill() })
	lines := bufio.NewScanner(pipe)
	lines.Buffer(make([]byte, 1<<20), 1<<20)
	type line struct {
		Event string         `json:"event"`
		Data  map[string]any `json:"data"`
	}
	next := func() line {
		if !lines.Scan() {
			t.Fatalf("watch ended early: %v", lines.Err())
		}
		var l line
		if err := json.Unmarshal(lines.Bytes(), &l); err != nil {
			t.Fatalf("not a JSON line: %s", lines.Bytes())
		}
		return l
	}
	if l := next(); l.Event != "task" || l.Data["status"] != "queued" {
		t.Fatalf("first line: %+v", l)
	}
	if r := s.do("DELETE", "/v1/tasks/"+task, nil, nil); r.status != 200 {
		t.Fatalf("cancel: %d %s", r.status, r.body)
	}
	if l := next(); l.Event != "task.cancelled" || l.Data["task_id"] != task {
		t.Fatalf("after the cancel: %+v", l)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		if code := cmd.ProcessState.ExitCode(); code != 1 {
			t.Fatalf("watch of a cancelled task exited %d (%v)", code, err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("watch did not end after the task's end")
	}
}

// Help is a success on stdout, and a back-quoted word in a setting's help stays in its text.
func TestCommandHelp(t *testing.T) {
	stdout, stderr, code := cliRun(t, nil, nil, "serve", "-h")
	if code != 0 || !strings.Contains(stdout, "usage: imaged serve [flags]") || !strings.Contains(stdout, "  -no-migrate\n") ||
		!strings.Contains(stdout, "'imaged migrate up'") || !strings.Contains(stdout, "  -addr string\n") ||
		!strings.Contains(stdout, "[IMAGED_ADDR]") {
		t.Fatalf("serve -h: exit %d\n%s\n%s", code, stdout, stderr)
	}
	stdout, _, code = cliRun(t, nil, nil, "process", "-h")
	if code != 0 || !strings.Contains(stdout, "--op OP") || !strings.Contains(stdout, "--local") {
		t.Fatalf("process -h: exit %d\n%s", code, stdout)
	}
	stdout, _, code = cliRun(t, nil, nil, "sign", "-h")
	if code != 0 || !strings.HasPrefix(stdout, "usage: imaged sign [flags] PATH") {
		t.Fatalf("sign -h: exit %d\n%s", code, stdout)
	}
	if _, stderr, code := cliRun(t, nil, nil, "serve", "--no-such-flag"); code != 1 || !strings.Contains(stderr, "no-such-flag") {
		t.Fatalf("serve with an unknown flag: exit %d %s", code, stderr)
	}
	stdout, _, code = cliRun(t, nil, nil, "help")
	if code != 0 || !strings.Contains(stdout, "submit DIR") {
		t.Fatalf("help: exit %d\n%s", code, stdout)
	}
}
