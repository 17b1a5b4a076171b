package soak

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"mime/multipart"
	"net/http"
	"sync"
	"sync/atomic"
	"time"
)

// Inputs are the files the load sends.
type Inputs struct {
	Photo    []byte // a JPEG photo (astronaut.jpg)
	Cat      []byte // a JPEG of a cat, for detection (chelsea.jpg)
	PNG      []byte // a PNG photo (chelsea.png)
	TextPNG  []byte // a line of text, for OCR
	Fixtures []string
}

// Client speaks imaged's HTTP API with one key.
type Client struct {
	Base string
	Key  string
	HTTP *http.Client
	Rec  *Recorder

	busy atomic.Int32 // clients in the middle of an action

	mu     sync.Mutex
	images []string // long-lived images the tasks read
	tasks  []string // every task submitted, in order
}

// call sends one request and records its answer under kind; want says which statuses the
// request deserves.
func (c *Client) call(kind string, sync bool, want func(int) bool, method, path, ctype string, body []byte) (int, []byte) {
	req, err := http.NewRequest(method, c.Base+path, bytes.NewReader(body))
	if err != nil {
		panic(err)
	}
	if ctype != "" {
		req.Header.Set("Content-Type", ctype)
	}
	req.Header.Set("X-API-Key", c.Key)
	start := time.Now()
	resp, err := c.HTTP.Do(req)
	if err != nil {
		c.Rec.Observe(kind, 0, false, sync, time.Since(start), method+" "+path+": "+err.Error())
		return 0, nil
	}
	b, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	took := time.Since(start)
	if err != nil {
		c.Rec.Observe(kind, 0, false, sync, took, method+" "+path+": reading the answer: "+err.Error())
		return 0, nil
	}
	ok := want(resp.StatusCode)
	detail := ""
	if !ok {
		detail = fmt.Sprintf("%s %s → %d %s", method, path, resp.StatusCode, snippet(b, resp.Header.Get("Content-Type")))
	}
	c.Rec.Observe(kind, resp.StatusCode, ok, sync, took, detail)
	return resp.StatusCode, b
}

func snippet(b []byte, ctype string) string {
	if len(ctype) >= 5 && ctype[:5] == "image" {
		return fmt.Sprintf("(%d bytes of %s)", len(b), ctype)
	}
	if len(b) > 200 {
		b = b[:200]
	}
	return string(b)
}

func is(codes ...int) func(int) bool {
	return func(s int) bool {
		for _, c := range codes {
			if s == c {
				return true
			}
		}
		return false
	}
}

func is4xx(s int) bool { return s >= 400 && s < 500 }

func jsonBody(v any) []byte {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err)
	}
	return b
}

// multipartBody is a form with a file and text fields.
func multipartBody(file []byte, fields map[string]string) ([]byte, string) {
	var buf bytes.Buffer
	w := multipart.NewWriter(&buf)
	fw, _ := w.CreateFormFile("file", "input")
	fw.Write(file)
	for k, v := range fields {
		w.WriteField(k, v)
	}
	w.Close()
	return buf.Bytes(), w.FormDataContentType()
}

// Upload stores an image and returns its id ("" when it failed, which is recorded).
func (c *Client) Upload(kind string, img []byte) string {
	status, b := c.call(kind, false, is(http.StatusCreated), "POST", "/v1/images", "application/octet-stream", img)
	if status != http.StatusCreated {
		return ""
	}
	var v struct{ ID string }
	_ = json.Unmarshal(b, &v)
	return v.ID
}

// Seed uploads the long-lived images the tasks and batches read.
func (c *Client) Seed(in Inputs) error {
	for _, img := range [][]byte{in.Photo, in.Cat, in.PNG, in.TextPNG} {
		id := c.Upload("seed upload", img)
		if id == "" {
			return fmt.Errorf("seeding an image failed: %v", c.Rec.problems)
		}
		c.images = append(c.images, id)
	}
	return nil
}

// Prime submits every task pipeline n times, on the image each suits, so that every worker
// very likely runs each engine (and loads its lazily opened models) during the warm-up: with
// two workers taking tasks at random, one misses a given pipeline with probability 2^(1-n).
func (c *Client) Prime(n int) {
	for _, ops := range taskPipelines {
		img := c.images[0] // the photo
		switch ops[0]["op"] {
		case "ocr":
			img = c.images[3] // the line of text
		case "detect":
			img = c.images[1] // the cat
		}
		for i := 0; i < n; i++ {
			status, b := c.call("task create (warm-up priming)", false, is(http.StatusAccepted), "POST", "/v1/tasks", "application/json",
				jsonBody(map[string]any{"image_id": img, "ops": ops}))
			if status == http.StatusAccepted {
				var v struct{ ID string }
				_ = json.Unmarshal(b, &v)
				c.track(v.ID)
			}
		}
	}
}

// Tasks returns every task id submitted so far.
func (c *Client) Tasks() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]string(nil), c.tasks...)
}

func (c *Client) track(ids ...string) {
	c.mu.Lock()
	c.tasks = append(c.tasks, ids...)
	c.mu.Unlock()
}

func (c *Client) pick(r *rand.Rand) string { return c.images[r.IntN(len(c.images))] }

// action is one kind of request of the mix, with its weight.
type action struct {
	weight int
	run    func(c *Client, in Inputs, r *rand.Rand)
}

// taskPipelines are the pipelines tasks and batches run: transforms, OCR, detection.
var taskPipelines = [][]map[string]any{
	{{"op": "resize", "width": 320}, {"op": "convert", "format": "png"}},
	{{"op": "blur", "sigma": 1.5}, {"op": "convert", "format": "webp", "quality": 70}},
	{{"op": "resize", "width": 256}, {"op": "grayscale"}, {"op": "sharpen"}},
	{{"op": "ocr", "engine": "tesseract"}},
	{{"op": "ocr", "engine": "paddle"}},
	{{"op": "detect", "confidence": 0.5}},
	{{"op": "resize", "width": 400}, {"op": "annotate"}},
}

var mix = []action{
	// Synchronous resizes: an upload in the request, and an image by id.
	{25, func(c *Client, in Inputs, r *rand.Rand) {
		body, ct := multipartBody(in.Photo, map[string]string{
			"ops": fmt.Sprintf(`[{"op":"resize","width":%d},{"op":"convert","format":"webp","quality":75}]`, 120+r.IntN(200))})
		c.call("sync resize (upload)", true, is(200), "POST", "/v1/process", ct, body)
	}},
	{10, func(c *Client, in Inputs, r *rand.Rand) {
		c.call("sync resize (image id)", true, is(200), "POST", "/v1/process", "application/json", jsonBody(map[string]any{
			"image_id": c.pick(r), "ops": []map[string]any{{"op": "resize", "width": 100 + r.IntN(300)}, {"op": "convert", "format": "jpeg"}}}))
	}},
	// OCR and detection, synchronously.
	{8, func(c *Client, in Inputs, r *rand.Rand) {
		body, ct := multipartBody(in.TextPNG, map[string]string{"options": `{"engine":"tesseract","languages":["eng"]}`})
		c.call("sync ocr", true, is(200), "POST", "/v1/ocr", ct, body)
	}},
	{8, func(c *Client, in Inputs, r *rand.Rand) {
		body, ct := multipartBody(in.Cat, map[string]string{"options": `{"confidence":0.5}`})
		c.call("sync detect", true, is(200), "POST", "/v1/detect", ct, body)
	}},
	// Tasks and batches.
	{16, func(c *Client, in Inputs, r *rand.Rand) {
		status, b := c.call("task create", false, is(http.StatusAccepted), "POST", "/v1/tasks", "application/json", jsonBody(map[string]any{
			"image_id": c.pick(r), "ops": taskPipelines[r.IntN(len(taskPipelines))]}))
		if status == http.StatusAccepted {
			var v struct{ ID string }
			_ = json.Unmarshal(b, &v)
			c.track(v.ID)
		}
	}},
	{4, func(c *Client, in Inputs, r *rand.Rand) {
		status, b := c.call("batch create", false, is(http.StatusAccepted), "POST", "/v1/batches", "application/json", jsonBody(map[string]any{
			"image_ids": []string{c.pick(r), c.pick(r), c.pick(r)}, "ops": taskPipelines[r.IntN(3)]}))
		if status == http.StatusAccepted {
			var v struct {
				TaskIDs []string `json:"task_ids"`
			}
			_ = json.Unmarshal(b, &v)
			c.track(v.TaskIDs...)
		}
	}},
	// Reading a task back, and its result once it has one.
	{8, func(c *Client, in Inputs, r *rand.Rand) {
		ids := c.Tasks()
		if len(ids) == 0 {
			return
		}
		id := ids[r.IntN(len(ids))]
		status, b := c.call("task get", false, is(200), "GET", "/v1/tasks/"+id, "", nil)
		var v struct {
			Status string
			Result *struct {
				Output *struct{ Key string }
			}
		}
		if status == 200 && json.Unmarshal(b, &v) == nil && v.Status == "completed" && v.Result != nil && v.Result.Output != nil {
			c.call("task result", false, is(200), "GET", "/v1/tasks/"+id+"/result", "", nil)
		}
	}},
	// Uploads and deletes.
	{8, func(c *Client, in Inputs, r *rand.Rand) {
		img := in.Photo
		if r.IntN(2) == 0 {
			img = in.PNG
		}
		id := c.Upload("upload", img)
		if id == "" {
			return
		}
		c.call("image get", false, is(200), "GET", "/v1/images/"+id, "", nil)
		c.call("image delete", false, is(http.StatusNoContent), "DELETE", "/v1/images/"+id, "", nil)
		c.call("image get after delete", false, is(http.StatusNotFound), "GET", "/v1/images/"+id, "", nil)
	}},
	{3, func(c *Client, in Inputs, r *rand.Rand) {
		c.call("image list", false, is(200), "GET", "/v1/images?limit=20", "", nil)
	}},
	// Bad inputs: each deserves a 4xx.
	{10, func(c *Client, in Inputs, r *rand.Rand) {
		bad := badInputs[r.IntN(len(badInputs))]
		method, path, ctype, body := bad.req(c, in, r)
		c.call("bad: "+bad.name, false, is4xx, method, path, ctype, body)
	}},
}

type badInput struct {
	name string
	req  func(c *Client, in Inputs, r *rand.Rand) (method, path, ctype string, body []byte)
}

var badInputs = []badInput{
	{"not an image", func(c *Client, in Inputs, r *rand.Rand) (string, string, string, []byte) {
		body, ct := multipartBody([]byte("this is plain text, not an image at all"), map[string]string{"ops": `[{"op":"resize","width":100}]`})
		return "POST", "/v1/process", ct, body
	}},
	{"truncated JPEG upload", func(c *Client, in Inputs, r *rand.Rand) (string, string, string, []byte) {
		return "POST", "/v1/images", "application/octet-stream", in.Photo[:64]
	}},
	{"resize width out of range", func(c *Client, in Inputs, r *rand.Rand) (string, string, string, []byte) {
		return "POST", "/v1/process", "application/json", jsonBody(map[string]any{"image_id": c.pick(r), "ops": []map[string]any{{"op": "resize", "width": -5}}})
	}},
	{"unknown op", func(c *Client, in Inputs, r *rand.Rand) (string, string, string, []byte) {
		return "POST", "/v1/tasks", "application/json", jsonBody(map[string]any{"image_id": c.pick(r), "ops": []map[string]any{{"op": "melt"}}})
	}},
	{"task of a missing image", func(c *Client, in Inputs, r *rand.Rand) (string, string, string, []byte) {
		return "POST", "/v1/tasks", "application/json", jsonBody(map[string]any{"image_id": "no-such-image", "ops": []map[string]any{{"op": "flip"}}})
	}},
	{"malformed JSON", func(c *Client, in Inputs, r *rand.Rand) (string, string, string, []byte) {
		return "POST", "/v1/tasks", "application/json", []byte(`{"image_id": "x", "ops": [`)
	}},
	{"empty batch", func(c *Client, in Inputs, r *rand.Rand) (string, string, string, []byte) {
		return "POST", "/v1/batches", "application/json", []byte(`{}`)
	}},
	{"missing task", func(c *Client, in Inputs, r *rand.Rand) (string, string, string, []byte) {
		return "GET", "/v1/tasks/no-such-task", "", nil
	}},
	{"detect confidence out of range", func(c *Client, in Inputs, r *rand.Rand) (string, string, string, []byte) {
		body, ct := multipartBody(in.Cat, map[string]string{"options": `{"confidence":7}`})
		return "POST", "/v1/detect", ct, body
	}},
	{"ocr unknown engine", func(c *Client, in Inputs, r *rand.Rand) (string, string, string, []byte) {
		body, ct := multipartBody(in.TextPNG, map[string]string{"options": `{"engine":"crystal-ball"}`})
		return "POST", "/v1/ocr", ct, body
	}},
}

// Idle says whether no client is in the middle of an action.
func (c *Client) Idle() bool { return c.busy.Load() == 0 }

// Drive runs the mix from clients goroutines, each waiting think between requests, while
// running() says so, until ctx ends. It returns when every request in flight has answered.
func (c *Client) Drive(ctx context.Context, clients int, think time.Duration, in Inputs, running func() bool) {
	total := 0
	for _, a := range mix {
		total += a.weight
	}
	var wg sync.WaitGroup
	for i := 0; i < clients; i++ {
		wg.Add(1)
		go func(seed uint64) {
			defer wg.Done()
			r := rand.New(rand.NewPCG(seed, 0x50a4))
			for ctx.Err() == nil {
				// busy counts this client before it looks at running(), so once the load is
				// paused and busy reads 0, no request is in flight or about to start.
				c.busy.Add(1)
				if !running() {
					c.busy.Add(-1)
					select {
					case <-ctx.Done():
					case <-time.After(100 * time.Millisecond):
					}
					continue
				}
				n := r.IntN(total)
				for _, a := range mix {
					if n < a.weight {
						a.run(c, in, r)
						break
					}
					n -= a.weight
				}
				c.busy.Add(-1)
				// Jittered think time keeps the rate moderate and the clients out of step.
				select {
				case <-ctx.Done():
				case <-time.After(think/2 + time.Duration(r.Int64N(int64(think)))):
				}
			}
		}(uint64(i) + 1)
	}
	wg.Wait()
}
