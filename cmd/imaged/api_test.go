package main

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"image"
	_ "image/jpeg"
	_ "image/png"
	"net/http"
	"strings"
	"testing"
	"time"

	_ "golang.org/x/image/webp"
)

func TestImagesEndpoints(t *testing.T) {
	s := startServer(t, "")
	photo := readTestdata(t, "astronaut.jpg")
	sum := sha256.Sum256(photo)

	// Multipart upload.
	r := s.postMultipart("/v1/images", "astronaut.jpg", photo, nil)
	if r.status != 201 {
		t.Fatalf("multipart upload: %d %s", r.status, r.body)
	}
	img := r.json(t)
	if img["format"] != "jpeg" || img["width"].(float64) != 512 || img["height"].(float64) != 512 ||
		img["bytes"].(float64) != float64(len(photo)) || img["sha256"] != hex.EncodeToString(sum[:]) {
		t.Fatalf("upload metadata wrong: %v", img)
	}
	key := img["key"].(string)
	if !strings.HasPrefix(key, "images/"+time.Now().UTC().Format("2006/01/02")+"/") || !strings.HasSuffix(key, ".jpg") {
		t.Fatalf("key %q is not images/YYYY/MM/DD/<hex>.jpg", key)
	}
	id := img["id"].(string)
	if r.header.Get("Location") != "/v1/images/"+id {
		t.Fatalf("Location = %q", r.header.Get("Location"))
	}

	// Raw body upload of the same bytes gets its own key: keys are unique per upload.
	r = s.do("POST", "/v1/images", bytes.NewReader(photo), map[string]string{"Content-Type": "image/jpeg"})
	if r.status != 201 {
		t.Fatalf("raw upload: %d %s", r.status, r.body)
	}
	if other := r.json(t); other["key"] == key || other["sha256"] != img["sha256"] {
		t.Fatalf("second upload: key %v (first %v), sha %v", other["key"], key, other["sha256"])
	}

	r = s.get("/v1/images/" + id)
	if r.status != 200 || r.json(t)["id"] != id {
		t.Fatalf("GET image: %d %s", r.status, r.body)
	}
	r = s.get("/v1/images/" + id + "/content")
	if r.status != 200 || !bytes.Equal(r.body, photo) || r.header.Get("Content-Type") != "image/jpeg" {
		t.Fatalf("GET content: %d, %d bytes, %s", r.status, len(r.body), r.header.Get("Content-Type"))
	}
	// A presigned-style redirect: the local-disk store signs its own URLs.
	r = s.get("/v1/images/" + id + "/content?redirect=true")
	if r.status != http.StatusFound {
		t.Fatalf("redirect: %d %s", r.status, r.body)
	}
	loc := r.header.Get("Location")
	got, err := http.Get(loc)
	if err != nil {
		t.Fatal(err)
	}
	b := new(bytes.Buffer)
	b.ReadFrom(got.Body)
	got.Body.Close()
	if got.StatusCode != 200 || !bytes.Equal(b.Bytes(), photo) {
		t.Fatalf("signed URL: %d, %d bytes", got.StatusCode, b.Len())
	}
	// Both the local-disk store and S3 end the URL with its signature: change its last digit.
	last := loc[len(loc)-1]
	flipped := byte('0')
	if last == '0' {
		flipped = '1'
	}
	tampered := loc[:len(loc)-1] + string(flipped)
	if got, err := http.Get(tampered); err != nil || got.StatusCode != 403 {
		t.Fatalf("tampered signed URL: %v %v", got.StatusCode, err)
	}

	r = s.do("DELETE", "/v1/images/"+id, nil, nil)
	if r.status != 204 {
		t.Fatalf("DELETE: %d %s", r.status, r.body)
	}
	for _, p := range []string{"/v1/images/" + id, "/v1/images/" + id + "/content"} {
		r = s.get(p)
		if r.status != 404 || r.json(t)["error"].(map[string]any)["code"] != "not_found" {
			t.Fatalf("GET %s after delete: %d %s", p, r.status, r.body)
		}
	}
}

func decodeImage(t *testing.T, b []byte) (image.Image, string) {
	t.Helper()
	img, format, err := image.Decode(bytes.NewReader(b))
	if err != nil {
		t.Fatalf("result does not decode: %v", err)
	}
	return img, format
}

func TestProcessSync(t *testing.T) {
	s := startServer(t, "")
	photo := readTestdata(t, "astronaut.jpg")

	// Upload in the request, resize keeping the aspect ratio, convert to PNG.
	r := s.postMultipart("/v1/process", "a.jpg", photo, map[string]string{
		"ops": `[{"op":"resize","width":200},{"op":"grayscale"},{"op":"convert","format":"png"}]`,
	})
	if r.status != 200 || r.header.Get("Content-Type") != "image/png" {
		t.Fatalf("process: %d %s %s", r.status, r.header.Get("Content-Type"), r.body)
	}
	img, format := decodeImage(t, r.body)
	if format != "png" || img.Bounds().Dx() != 200 || img.Bounds().Dy() != 200 {
		t.Fatalf("got %s %v, want png 200x200", format, img.Bounds())
	}

	// By image id, JSON body, crop + webp.
	id := s.upload(photo)
	r = s.postJSON("/v1/process", map[string]any{"image_id": id, "ops": []map[string]any{
		{"op": "crop", "x": 10, "y": 20, "width": 100, "height": 50},
		{"op": "convert", "format": "webp", "quality": 80},
	}})
	if r.status != 200 || r.header.Get("Content-Type") != "image/webp" {
		t.Fatalf("process by id: %d %s", r.status, r.body)
	}
	img, _ = decodeImage(t, r.body)
	if img.Bounds().Dx() != 100 || img.Bounds().Dy() != 50 {
		t.Fatalf("crop: got %v", img.Bounds())
	}
	// The same again comes from the processed-output cache (on by default): the same bytes,
	// the same strong ETag.
	again := s.postJSON("/v1/process", map[string]any{"image_id": id, "ops": []map[string]any{
		{"op": "convert", "quality": 80, "format": "webp"},
	}})
	hit := s.postJSON("/v1/process", map[string]any{"image_id": id, "ops": []map[string]any{
		{"format": "webp", "op": "convert", "quality": 80.0},
	}})
	if again.header.Get("X-Cache") != "miss" || hit.header.Get("X-Cache") != "hit" || !bytes.Equal(hit.body, again.body) ||
		hit.header.Get("ETag") == "" || hit.header.Get("ETag") != again.header.Get("ETag") ||
		!strings.HasPrefix(hit.header.Get("Cache-Control"), "private, max-age=") {
		t.Fatalf("the same pipeline twice: X-Cache %q then %q, same bytes %v, ETags %q %q, Cache-Control %q",
			again.header.Get("X-Cache"), hit.header.Get("X-Cache"), bytes.Equal(hit.body, again.body),
			again.header.Get("ETag"), hit.header.Get("ETag"), hit.header.Get("Cache-Control"))
	}

	// Analysis ops answer JSON.
	r = s.postJSON("/v1/process", map[string]any{"image_id": id, "ops": []map[string]any{{"op": "info"}}})
	if r.status != 200 || !strings.HasPrefix(r.header.Get("Content-Type"), "application/json") {
		t.Fatalf("info: %d %s", r.status, r.body)
	}
	var body struct {
		Analyses []struct {
			Op     string         `json:"op"`
			Result map[string]any `json:"result"`
		} `json:"analyses"`
		Output map[string]any `json:"output"`
	}
	if err := json.Unmarshal(r.body, &body); err != nil {
		t.Fatal(err)
	}
	if len(body.Analyses) != 1 || body.Analyses[0].Op != "info" || body.Analyses[0].Result["width"] != 512.0 || body.Output != nil {
		t.Fatalf("info answer: %s", r.body)
	}

	// A mixed pipeline: the analysis sees the transformed image, and the output is stored.
	r = s.postJSON("/v1/process", map[string]any{"image_id": id, "ops": []map[string]any{
		{"op": "resize", "width": 64, "height": 64, "fit": "exact"}, {"op": "info"},
	}})
	if err := json.Unmarshal(r.body, &body); err != nil || r.status != 200 {
		t.Fatalf("mixed: %d %s", r.status, r.body)
	}
	if body.Analyses[0].Result["width"] != 64.0 || body.Output == nil || body.Output["width"] != 64.0 {
		t.Fatalf("mixed answer: %s", r.body)
	}
}

func TestTaskLifecycle(t *testing.T) {
	s := startServer(t, "")
	id := s.upload(readTestdata(t, "chelsea.jpg"))

	r := s.do("POST", "/v1/tasks", strings.NewReader(fmt.Sprintf(
		`{"image_id":%q,"ops":[{"op":"resize","width":100},{"op":"convert","format":"png"}]}`, id)),
		map[string]string{"Content-Type": "application/json", "X-Correlation-ID": "corr-lifecycle-1"})
	if r.status != 202 {
		t.Fatalf("create task: %d %s", r.status, r.body)
	}
	created := r.json(t)
	taskID := created["id"].(string)
	if created["task_id"] != taskID || created["status"] != "queued" || r.header.Get("Location") != "/v1/tasks/"+taskID {
		t.Fatalf("create answer: %v Location=%s", created, r.header.Get("Location"))
	}
	if r.header.Get("X-Correlation-ID") != "corr-lifecycle-1" {
		t.Fatalf("correlation id not echoed: %q", r.header.Get("X-Correlation-ID"))
	}

	task := s.waitTask(taskID, 30*time.Second)
	if task["status"] != "completed" || task["attempts"] != 1.0 || task["worker_id"] == "" ||
		task["started_at"] == nil || task["finished_at"] == nil || task["correlation_id"] != "corr-lifecycle-1" {
		t.Fatalf("task: %v", task)
	}
	out := task["result"].(map[string]any)["output"].(map[string]any)
	if out["format"] != "png" || out["width"] != 100.0 || !strings.HasPrefix(out["key"].(string), "results/") ||
		!strings.HasSuffix(out["key"].(string), taskID+".png") {
		t.Fatalf("result output: %v", out)
	}
	r = s.get("/v1/tasks/" + taskID + "/result")
	img, format := decodeImage(t, r.body)
	if r.status != 200 || format != "png" || img.Bounds().Dx() != 100 {
		t.Fatalf("result bytes: %d %s %v", r.status, format, img.Bounds())
	}
	if !strings.Contains(s.logs.String(), `"correlation_id":"corr-lifecycle-1"`) {
		t.Fatal("the correlation id is not in the log lines")
	}

	// Lists: filter, limit and cursor visit every task once.
	for i := 0; i < 4; i++ {
		if r := s.postJSON("/v1/tasks", map[string]any{"image_id": id, "ops": []map[string]any{{"op": "flip"}}}); r.status != 202 {
			t.Fatalf("create: %d %s", r.status, r.body)
		}
	}
	waitFor(t, 30*time.Second, "five completed tasks", func() bool {
		l := s.get("/v1/tasks?status=completed&limit=100").json(t)
		return len(l["items"].([]any)) == 5
	})
	seen := map[string]bool{}
	cursor := ""
	for pages := 0; ; pages++ {
		l := s.get("/v1/tasks?limit=2&cursor=" + cursor).json(t)
		for _, it := range l["items"].([]any) {
			tid := it.(map[string]any)["id"].(string)
			if seen[tid] {
				t.Fatalf("task %s listed twice", tid)
			}
			seen[tid] = true
		}
		next, _ := l["next_cursor"].(string)
		if next == "" {
			break
		}
		cursor = next
		if pages > 10 {
			t.Fatal("pagination does not end")
		}
	}
	if len(seen) != 5 {
		t.Fatalf("pagination saw %d tasks, want 5", len(seen))
	}
	if r := s.get("/v1/tasks?status=bogus"); r.status != 400 {
		t.Fatalf("bad status filter: %d", r.status)
	}
	if r := s.get("/v1/tasks/nope"); r.status != 404 {
		t.Fatalf("unknown task: %d", r.status)
	}
	// A finished task cannot be cancelled.
	if r := s.do("DELETE", "/v1/tasks/"+taskID, nil, nil); r.status != 409 {
		t.Fatalf("cancel completed task: %d %s", r.status, r.body)
	}
}

func TestCancelQueuedTask(t *testing.T) {
	s := startServer(t, "", "IMAGED_WORKERS=0") // API only: tasks stay queued
	id := s.upload(readTestdata(t, "chelsea.jpg"))
	r := s.postJSON("/v1/tasks", map[string]any{"image_id": id, "ops": []map[string]any{{"op": "flip"}}})
	taskID := r.json(t)["id"].(string)
	r = s.do("DELETE", "/v1/tasks/"+taskID, nil, nil)
	if r.status != 200 || r.json(t)["status"] != "cancelled" {
		t.Fatalf("cancel: %d %s", r.status, r.body)
	}
	if r := s.do("DELETE", "/v1/tasks/"+taskID, nil, nil); r.status != 409 {
		t.Fatalf("second cancel: %d %s", r.status, r.body)
	}
	if r := s.get("/v1/tasks/" + taskID); r.json(t)["status"] != "cancelled" {
		t.Fatalf("after cancel: %s", r.body)
	}
}

func TestBatch(t *testing.T) {
	s := startServer(t, "")
	ids := []string{
		s.upload(readTestdata(t, "astronaut.jpg")),
		s.upload(readTestdata(t, "chelsea.jpg")),
		s.upload(readTestdata(t, "coffee.png")),
	}
	r := s.postJSON("/v1/batches", map[string]any{"image_ids": ids, "ops": []map[string]any{
		{"op": "resize", "width": 50, "height": 50, "fit": "cover"}, {"op": "convert", "format": "jpeg"},
	}})
	if r.status != 202 {
		t.Fatalf("batch: %d %s", r.status, r.body)
	}
	batch := r.json(t)
	bid := batch["id"].(string)
	if batch["total"] != 3.0 || len(batch["task_ids"].([]any)) != 3 || r.header.Get("Location") != "/v1/batches/"+bid {
		t.Fatalf("batch answer: %s", r.body)
	}
	var got map[string]any
	waitFor(t, 60*time.Second, "the batch to finish", func() bool {
		got = s.get("/v1/batches/" + bid).json(t)
		return got["progress"] == 1.0
	})
	counts := got["counts"].(map[string]any)
	if counts["completed"] != 3.0 || got["status"] != "completed" {
		t.Fatalf("batch after run: %v", got)
	}
	for _, it := range got["items"].([]any) {
		out := it.(map[string]any)["result"].(map[string]any)["output"].(map[string]any)
		if out["width"] != 50.0 || out["height"] != 50.0 || out["format"] != "jpeg" {
			t.Fatalf("batch item output: %v", out)
		}
	}

	// One image × several pipelines.
	r = s.postJSON("/v1/batches", map[string]any{"image_id": ids[0], "pipelines": [][]map[string]any{
		{{"op": "resize", "width": 10}}, {{"op": "resize", "width": 20}},
	}})
	if r.status != 202 {
		t.Fatalf("pipelines batch: %d %s", r.status, r.body)
	}
	bid = r.json(t)["id"].(string)
	waitFor(t, 60*time.Second, "the second batch", func() bool {
		got = s.get("/v1/batches/" + bid).json(t)
		return got["progress"] == 1.0
	})
	widths := map[float64]bool{}
	for _, it := range got["items"].([]any) {
		widths[it.(map[string]any)["result"].(map[string]any)["output"].(map[string]any)["width"].(float64)] = true
	}
	if !widths[10] || !widths[20] {
		t.Fatalf("pipeline outputs: %v", widths)
	}

	// A batch naming a missing image is refused whole: nothing is queued.
	r = s.postJSON("/v1/batches", map[string]any{"image_ids": []string{ids[0], "missing"}, "ops": []map[string]any{{"op": "flip"}}})
	if r.status != 404 || !strings.Contains(string(r.body), "items[1].image_id") {
		t.Fatalf("batch with a missing image: %d %s", r.status, r.body)
	}
	if l := s.get("/v1/tasks?limit=100").json(t); len(l["items"].([]any)) != 5 {
		t.Fatalf("a refused batch left tasks behind: %d tasks", len(l["items"].([]any)))
	}
}

func TestHealthAndMetrics(t *testing.T) {
	s := startServer(t, "")
	for _, p := range []string{"/health/live", "/health/ready"} {
		if r := s.get(p); r.status != 200 {
			t.Fatalf("%s: %d %s", p, r.status, r.body)
		}
	}
	h := s.get("/health").json(t)
	deps := h["dependencies"].(map[string]any)
	for _, name := range []string{"database", "storage", "queue"} {
		d, ok := deps[name].(map[string]any)
		if !ok || d["status"] != "healthy" {
			t.Fatalf("health %s: %v", name, deps[name])
		}
		if _, ok := d["response_time_ms"].(float64); !ok {
			t.Fatalf("health %s has no response time: %v", name, d)
		}
	}
	if h["status"] != "healthy" || h["version"] == "" {
		t.Fatalf("health: %v", h)
	}
	id := s.upload(readTestdata(t, "chelsea.jpg"))
	tenant := s.get("/v1/images/" + id).json(t)["tenant"]
	s.postJSON("/v1/process", map[string]any{"image_id": id, "ops": []map[string]any{{"op": "resize", "width": 30}}})
	m := string(s.get("/metrics").body)
	for _, want := range []string{
		fmt.Sprintf(`http_requests_total{endpoint="/v1/images/{id}",method="GET",status_code="200",tenant="%s"} 1`, tenant),
		fmt.Sprintf(`http_requests_total{endpoint="/v1/images",method="POST",status_code="201",tenant="%s"} 1`, tenant),
		`http_request_duration_seconds_bucket{endpoint="/v1/process",method="POST",le="0.1"}`,
		`image_processing_duration_seconds_bucket{operation_type="transform",le="120"} 1`,
		`images_processed_total{operation_type="transform",status="success"} 1`,
		`tasks_queued{task_type="transform"}`,
	} {
		if !strings.Contains(m, want) {
			t.Errorf("metrics lack %s", want)
		}
	}
	if strings.Contains(m, `endpoint="/v1/images/`+id) {
		t.Error("a metric is labelled with a raw path")
	}
}

func TestCorrelationIDGenerated(t *testing.T) {
	s := startServer(t, "")
	r := s.get("/health/live")
	if len(r.header.Get("X-Correlation-ID")) < 16 {
		t.Fatalf("no generated correlation id: %q", r.header.Get("X-Correlation-ID"))
	}
	r = s.do("GET", "/health/live", nil, map[string]string{"X-Correlation-ID": "bad id <script>"})
	if got := r.header.Get("X-Correlation-ID"); strings.Contains(got, " ") || len(got) < 16 {
		t.Fatal("an unsafe correlation id was echoed")
	}
}

func TestIdempotencyKey(t *testing.T) {
	s := startServer(t, "", "IMAGED_WORKERS=0")
	id := s.upload(readTestdata(t, "chelsea.jpg"))
	body := fmt.Sprintf(`{"image_id":%q,"ops":[{"op":"flip"}]}`, id)
	hdr := map[string]string{"Content-Type": "application/json", "Idempotency-Key": "order-42"}
	first := s.do("POST", "/v1/tasks", strings.NewReader(body), hdr)
	second := s.do("POST", "/v1/tasks", strings.NewReader(body), hdr)
	if first.status != 202 || second.status != 202 {
		t.Fatalf("statuses %d %d: %s", first.status, second.status, second.body)
	}
	if first.json(t)["id"] != second.json(t)["id"] || second.header.Get("Idempotent-Replayed") != "true" {
		t.Fatalf("a replay made a new task: %s vs %s", first.body, second.body)
	}
	other := fmt.Sprintf(`{"image_id":%q,"ops":[{"op":"grayscale"}]}`, id)
	if r := s.do("POST", "/v1/tasks", strings.NewReader(other), hdr); r.status != 409 {
		t.Fatalf("key reused with another pipeline: %d %s", r.status, r.body)
	}
	if l := s.get("/v1/tasks").json(t); len(l["items"].([]any)) != 1 {
		t.Fatalf("%d tasks, want 1", len(l["items"].([]any)))
	}
}
