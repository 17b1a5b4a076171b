package client_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"image/png"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/imaged/imaged"
	"github.com/imaged/imaged/client"
	"github.com/imaged/imaged/internal/imagedtest"
)

func readFile(t *testing.T, parts ...string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(append([]string{".."}, parts...)...))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func file(name string, b []byte) *client.File {
	return &client.File{Name: name, Reader: bytes.NewReader(b)}
}

func ops(t *testing.T, js string) []imaged.Op {
	t.Helper()
	o, err := imaged.ParseOps([]byte(js))
	if err != nil {
		t.Fatal(err)
	}
	return o
}

func newClient(t *testing.T, s *imagedtest.Server, opts ...client.Option) *client.Client {
	t.Helper()
	c, err := client.New(s.URL, append([]client.Option{client.WithKey(s.Key)}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func wantCode(t *testing.T, err error, status int, code string) *client.Error {
	t.Helper()
	var e *client.Error
	if !errors.As(err, &e) || e.StatusCode != status || e.Code != code || e.Message == "" || !client.IsCode(err, code) {
		t.Fatalf("want %d %s, got %#v (%v)", status, code, e, err)
	}
	return e
}

// The client against a real server: every call it makes, the answers decoded into the
// service's own types, and errors as *Error.
func TestClientAgainstAServer(t *testing.T) {
	s := imagedtest.Serve(t)
	c := newClient(t, s)
	ctx := context.Background()
	photo := readFile(t, "testdata", "astronaut.jpg")

	if _, err := client.New("localhost:8000"); err == nil {
		t.Fatal("a URL without a scheme was accepted")
	}
	if h, err := c.Live(ctx); err != nil || h.Status != "alive" {
		t.Fatalf("live: %+v %v", h, err)
	}
	if h, err := c.Ready(ctx); err != nil || h.Status != "ready" {
		t.Fatalf("ready: %+v %v", h, err)
	}

	img, err := c.Upload(ctx, *file("astronaut.jpg", photo))
	sum := sha256.Sum256(photo)
	if err != nil || img.ID == "" || img.Format != "jpeg" || img.Width != 512 || img.Bytes != int64(len(photo)) ||
		img.SHA256 != hex.EncodeToString(sum[:]) || img.Filename != "astronaut.jpg" {
		t.Fatalf("upload: %+v %v", img, err)
	}
	if got, err := c.Image(ctx, img.ID); err != nil || got.ID != img.ID || got.Width != 512 {
		t.Fatalf("image: %+v %v", got, err)
	}
	var content bytes.Buffer
	if ct, err := c.ImageContent(ctx, img.ID, &content); err != nil || ct != "image/jpeg" || !bytes.Equal(content.Bytes(), photo) {
		t.Fatalf("image content: %q %d bytes %v", ct, content.Len(), err)
	}

	t.Run("errors", func(t *testing.T) {
		_, err := c.Upload(ctx, *file("broken.jpg", photo[:len(photo)/2]))
		wantCode(t, err, 400, imaged.EInvalid)
		e := wantCode(t, c.DeleteImage(ctx, "no-such-image"), 404, imaged.ENotFound)
		if e.CorrelationID == "" {
			t.Fatal("the error lacks the request's correlation id")
		}
		anon, err := client.New(s.URL)
		if err != nil {
			t.Fatal(err)
		}
		_, err = anon.Image(ctx, img.ID)
		wantCode(t, err, 401, imaged.EUnauthenticated)
		_, err = c.Process(ctx, client.ProcessRequest{ImageID: img.ID, Ops: ops(t, `[{"op":"resize","width":0}]`)})
		if e := wantCode(t, err, 400, imaged.EInvalid); e.Field != "ops[0].width" {
			t.Fatalf("the error names field %q", e.Field)
		}
		if _, err := c.Task(ctx, ""); err == nil {
			t.Fatal("an empty id was sent")
		}
	})

	t.Run("process", func(t *testing.T) {
		res, err := c.Process(ctx, client.ProcessRequest{File: file("a.jpg", photo),
			Ops: ops(t, `[{"op":"resize","width":64},{"op":"convert","format":"png"}]`)})
		if err != nil {
			t.Fatal(err)
		}
		cfg, err := png.DecodeConfig(bytes.NewReader(res.Data))
		if err != nil || cfg.Width != 64 || res.Width != 64 || res.Height != cfg.Height || res.ContentType != "image/png" {
			t.Fatalf("process: %v %+v %+v", err, cfg, res)
		}
		res, err = c.Process(ctx, client.ProcessRequest{ImageID: img.ID, Ops: ops(t, `[{"op":"info"}]`)})
		if err != nil || res.Data != nil || len(res.Analyses) != 1 || res.Analyses[0].Op != "info" ||
			!strings.Contains(string(res.Analyses[0].Result), `"width":512`) {
			t.Fatalf("info: %+v %v", res, err)
		}
	})

	t.Run("task", func(t *testing.T) {
		req := client.TaskRequest{ImageID: img.ID, Ops: ops(t, `[{"op":"grayscale"},{"op":"convert","format":"png"}]`), IdempotencyKey: "client-test-1"}
		task, err := c.SubmitTask(ctx, req)
		if err != nil || task.ID == "" || task.ImageID != img.ID || task.Type != imaged.TaskTypeTransform {
			t.Fatalf("submit: %+v %v", task, err)
		}
		again, err := c.SubmitTask(ctx, req)
		if err != nil || again.ID != task.ID {
			t.Fatalf("the idempotency key made another task: %+v %v", again, err)
		}
		var seen []string
		err = c.WatchTask(ctx, task.ID, func(e client.Event) error {
			seen = append(seen, e.Type)
			return nil
		})
		if err != nil || len(seen) == 0 {
			t.Fatalf("watch: %v %v", seen, err)
		}
		if last := seen[len(seen)-1]; last != imaged.EventTaskCompleted && last != "task" {
			t.Fatalf("the stream ended on %q: %v", last, seen)
		}
		done, err := c.Task(ctx, task.ID)
		if err != nil || done.Status != imaged.StatusCompleted || done.Result == nil || done.Result.Output == nil {
			t.Fatalf("task: %+v %v", done, err)
		}
		var out bytes.Buffer
		ct, err := c.TaskResult(ctx, task.ID, &out)
		if cfg, derr := png.DecodeConfig(&out); err != nil || derr != nil || ct != "image/png" || cfg.Width != 512 {
			t.Fatalf("result: %q %v %v", ct, err, derr)
		}
		list, err := c.Tasks(ctx, client.TaskFilter{Status: imaged.StatusCompleted, Limit: 50})
		if err != nil || !containsTask(list.Items, task.ID) {
			t.Fatalf("tasks: %+v %v", list, err)
		}
		_, err = c.CancelTask(ctx, task.ID)
		wantCode(t, err, 409, imaged.EConflict)
		// A file sent with the task is stored first.
		task, err = c.SubmitTask(ctx, client.TaskRequest{File: file("b.jpg", photo), Ops: ops(t, `[{"op":"info"}]`), MaxAttempts: 2})
		if err != nil || task.ImageID == "" || task.ImageID == img.ID || task.MaxAttempts != 2 {
			t.Fatalf("submit with a file: %+v %v", task, err)
		}
	})

	t.Run("batch", func(t *testing.T) {
		other, err := c.Upload(ctx, *file("coffee.png", readFile(t, "testdata", "coffee.png")))
		if err != nil {
			t.Fatal(err)
		}
		b, err := c.CreateBatch(ctx, client.BatchRequest{ImageIDs: []string{img.ID, other.ID}, Ops: ops(t, `[{"op":"resize","width":32}]`)})
		if err != nil || b.ID == "" || len(b.TaskIDs) != 2 || b.Total != 2 {
			t.Fatalf("create batch: %+v %v", b, err)
		}
		var last client.Event
		if err := c.WatchBatch(ctx, b.ID, func(e client.Event) error { last = e; return nil }); err != nil {
			t.Fatal(err)
		}
		if last.Type != imaged.EventBatchCompleted && last.Type != "batch" {
			t.Fatalf("the stream ended on %q", last.Type)
		}
		got, err := c.Batch(ctx, b.ID)
		if err != nil || got.Status != imaged.StatusCompleted || got.Counts[imaged.StatusCompleted] != 2 || len(got.Items) != 2 || got.Progress != 1 {
			t.Fatalf("batch: %+v %v", got, err)
		}
	})

	t.Run("ocr and detect", func(t *testing.T) {
		raw, err := c.OCR(ctx, client.AnalysisRequest{File: file("page.png", readFile(t, "ocr", "testdata", "eval", "clean-00-dejavu-sans-22.png")),
			Options: map[string]any{"engine": "tesseract", "languages": []string{"eng"}}})
		if err != nil || !strings.Contains(string(raw), "quick brown fox") {
			t.Fatalf("ocr: %s %v", raw, err)
		}
		cat, err := c.Upload(ctx, *file("chelsea.jpg", readFile(t, "testdata", "chelsea.jpg")))
		if err != nil {
			t.Fatal(err)
		}
		raw, err = c.Detect(ctx, client.AnalysisRequest{ImageID: cat.ID, Options: map[string]any{"confidence": 0.5}})
		var res struct {
			Detections []struct {
				ClassName string `json:"class_name"`
			} `json:"detections"`
		}
		if err != nil || json.Unmarshal(raw, &res) != nil || len(res.Detections) == 0 || res.Detections[0].ClassName != "cat" {
			t.Fatalf("detect: %s %v", raw, err)
		}
		_, err = c.Detect(ctx, client.AnalysisRequest{ImageID: cat.ID, Options: map[string]any{"confidence": 7}})
		wantCode(t, err, 400, imaged.EInvalid)
	})

	t.Run("delete", func(t *testing.T) {
		gone, err := c.Upload(ctx, *file("x.jpg", photo))
		if err != nil {
			t.Fatal(err)
		}
		if err := c.DeleteImage(ctx, gone.ID); err != nil {
			t.Fatal(err)
		}
		_, err = c.Image(ctx, gone.ID)
		wantCode(t, err, 404, imaged.ENotFound)
	})

	t.Run("timeouts", func(t *testing.T) {
		short := newClient(t, s, client.WithTimeout(time.Nanosecond))
		if _, err := short.Image(ctx, img.ID); !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("a call past its timeout: %v", err)
		}
		cctx, cancel := context.WithCancel(ctx)
		cancel()
		if _, err := c.Image(cctx, img.ID); !errors.Is(err, context.Canceled) {
			t.Fatalf("a call with a cancelled context: %v", err)
		}
	})
}

func containsTask(tasks []imaged.Task, id string) bool {
	for _, t := range tasks {
		if t.ID == id {
			return true
		}
	}
	return false
}

// The event streams deliver what happens while they are open: on a server with no workers a
// task and a batch stay queued until they are cancelled, and the cancellation arrives live.
func TestWatchSeesLiveEvents(t *testing.T) {
	s := imagedtest.Serve(t, "IMAGED_WORKERS=0")
	c := newClient(t, s)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	img, err := c.Upload(ctx, *file("astronaut.jpg", readFile(t, "testdata", "astronaut.jpg")))
	if err != nil {
		t.Fatal(err)
	}
	pipeline := ops(t, `[{"op":"blur","sigma":2}]`)

	task, err := c.SubmitTask(ctx, client.TaskRequest{ImageID: img.ID, Ops: pipeline})
	if err != nil {
		t.Fatal(err)
	}
	events := watchInBackground(ctx, func(fn func(client.Event) error) error { return c.WatchTask(ctx, task.ID, fn) })
	if e := <-events.ch; e.Type != "task" {
		t.Fatalf("the stream starts with %q", e.Type)
	} else if st, err := e.Task(); err != nil || st.Status != imaged.StatusQueued {
		t.Fatalf("snapshot: %+v %v", st, err)
	}
	if _, err := c.CancelTask(ctx, task.ID); err != nil {
		t.Fatal(err)
	}
	e := <-events.ch
	if ev, err := e.Event(); e.Type != imaged.EventTaskCancelled || err != nil || ev.TaskID != task.ID {
		t.Fatalf("after the cancel: %q %+v %v", e.Type, ev, err)
	}
	if err := <-events.err; err != nil {
		t.Fatalf("the watch ended with %v", err)
	}

	b, err := c.CreateBatch(ctx, client.BatchRequest{ImageID: img.ID, Pipelines: [][]imaged.Op{pipeline, pipeline}})
	if err != nil {
		t.Fatal(err)
	}
	events = watchInBackground(ctx, func(fn func(client.Event) error) error { return c.WatchBatch(ctx, b.ID, fn) })
	if e := <-events.ch; e.Type != "batch" {
		t.Fatalf("the stream starts with %q", e.Type)
	}
	if _, err := c.CancelBatch(ctx, b.ID); err != nil {
		t.Fatal(err)
	}
	var types []string
	for e := range events.ch {
		types = append(types, e.Type)
	}
	// Each task's cancellation, then the batch's end (which the stream may also tell from the
	// store, when its poll comes first).
	if err := <-events.err; err != nil || len(types) < 2 || len(types) > 3 || types[0] != imaged.EventTaskCancelled ||
		types[len(types)-1] != imaged.EventBatchCompleted {
		t.Fatalf("batch events after the cancel: %v (%v)", types, err)
	}
}

type watching struct {
	ch  chan client.Event
	err chan error
}

// watchInBackground runs a watch, handing each event over ch (closed at the end) and its error
// over err.
func watchInBackground(ctx context.Context, watch func(func(client.Event) error) error) watching {
	w := watching{ch: make(chan client.Event), err: make(chan error, 1)}
	go func() {
		err := watch(func(e client.Event) error {
			select {
			case w.ch <- e:
				return nil
			case <-ctx.Done():
				return ctx.Err()
			}
		})
		close(w.ch)
		w.err <- err
	}()
	return w
}

// A server that does not answer is an error, not a hang.
func TestNoServer(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	c, err := client.New("http://" + addr)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Live(context.Background()); err == nil {
		t.Fatal("live with nothing listening")
	}
	if err := c.WatchTask(context.Background(), "x", func(client.Event) error { return nil }); err == nil {
		t.Fatal("watch with nothing listening")
	}
}
