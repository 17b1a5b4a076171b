package http

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/imaged/imaged"
)

// A known path with a method it does not take is a 405 naming the methods it does (Allow),
// with the JSON error body; an unknown path stays a 404.
func TestWrongMethodIs405WithAllow(t *testing.T) {
	st := newStack(t, Config{}, Deps{}, false)
	id := st.uploadImage()
	for _, tc := range []struct{ method, path, allow string }{
		{"DELETE", "/v1/tasks", "GET, HEAD, POST"},
		{"PUT", "/v1/images", "GET, HEAD, POST"},
		{"POST", "/v1/images/" + id, "GET, HEAD, DELETE"},
		{"GET", "/v1/process", "POST"},
		{"PATCH", "/v1/tenants/default", "GET, HEAD, PUT"},
	} {
		r := st.do(tc.method, tc.path, nil, map[string]string{"X-API-Key": st.key})
		if r.status != 405 || r.header.Get("Allow") != tc.allow || r.errorCode() != "method_not_allowed" {
			t.Errorf("%s %s: %d, Allow %q, code %q; want 405, Allow %q, method_not_allowed",
				tc.method, tc.path, r.status, r.header.Get("Allow"), r.errorCode(), tc.allow)
		}
		if !strings.Contains(string(r.body), tc.method) {
			t.Errorf("%s %s: the message does not name the method: %s", tc.method, tc.path, r.body)
		}
	}
	if r := st.do("GET", "/v1/nothing-here", nil, map[string]string{"X-API-Key": st.key}); r.status != 404 || r.header.Get("Allow") != "" {
		t.Errorf("an unknown path: %d, Allow %q; want 404 and no Allow", r.status, r.header.Get("Allow"))
	}
}

// Stored bytes are served as caches and browsers expect: byte ranges (206 with Content-Range),
// Last-Modified and If-Modified-Since, a strong ETag, and Content-Disposition inline with a
// filename, attachment with ?download=1.
func TestStoredBytesServeRangesDatesAndDisposition(t *testing.T) {
	st := newStack(t, Config{}, Deps{}, false)
	id := st.uploadImage()
	path := "/v1/images/" + id + "/content"
	key := map[string]string{"X-API-Key": st.key}
	whole := st.do("GET", path, nil, key)
	if whole.status != 200 || whole.header.Get("Accept-Ranges") != "bytes" || whole.header.Get("ETag") == "" {
		t.Fatalf("GET content: %d, Accept-Ranges %q, ETag %q", whole.status, whole.header.Get("Accept-Ranges"), whole.header.Get("ETag"))
	}
	if cd := whole.header.Get("Content-Disposition"); cd != `inline; filename=`+id+`.png` {
		t.Errorf("Content-Disposition %q, want inline with the image's filename", cd)
	}
	lm := whole.header.Get("Last-Modified")
	if _, err := http.ParseTime(lm); err != nil {
		t.Fatalf("Last-Modified %q: %v", lm, err)
	}

	part := st.do("GET", path, nil, map[string]string{"X-API-Key": st.key, "Range": "bytes=4-11"})
	if part.status != 206 || !bytes.Equal(part.body, whole.body[4:12]) {
		t.Fatalf("Range bytes=4-11: %d, %d bytes; want 206 and bytes 4..11 of the object", part.status, len(part.body))
	}
	if cr := part.header.Get("Content-Range"); cr != fmt.Sprintf("bytes 4-11/%d", len(whole.body)) {
		t.Errorf("Content-Range %q", cr)
	}
	if r := st.do("GET", path, nil, map[string]string{"X-API-Key": st.key, "Range": fmt.Sprintf("bytes=%d-", len(whole.body)+10)}); r.status != 416 {
		t.Errorf("a range past the end: %d, want 416", r.status)
	}
	if r := st.do("GET", path, nil, map[string]string{"X-API-Key": st.key, "If-Modified-Since": lm}); r.status != 304 {
		t.Errorf("If-Modified-Since its Last-Modified: %d, want 304", r.status)
	}
	if r := st.do("GET", path, nil, map[string]string{"X-API-Key": st.key, "If-None-Match": whole.header.Get("ETag")}); r.status != 304 {
		t.Errorf("If-None-Match its ETag: %d, want 304", r.status)
	}
	if r := st.do("GET", path+"?download=1", nil, key); !strings.HasPrefix(r.header.Get("Content-Disposition"), "attachment; filename=") {
		t.Errorf("?download=1: Content-Disposition %q, want attachment", r.header.Get("Content-Disposition"))
	}
}

// DELETE /v1/batches/{id} cancels the batch's tasks that have not started; one a worker has
// claimed keeps running. Another tenant's batch is not found (the tenancy table checks that).
func TestBatchCancelStopsWhatHasNotStarted(t *testing.T) {
	st := newStack(t, Config{}, Deps{}, false)
	img := st.uploadImage()
	body, _ := json.Marshal(map[string]any{"image_ids": []string{img, img, img}, "ops": []map[string]any{{"op": "resize", "width": 4}}})
	r := st.withKey("POST", "/v1/batches", body, map[string]string{"Content-Type": "application/json"})
	if r.status != 202 {
		t.Fatalf("create batch: %d %s", r.status, r.body)
	}
	var b struct {
		BatchID string   `json:"batch_id"`
		TaskIDs []string `json:"task_ids"`
	}
	json.Unmarshal(r.body, &b)
	if _, err := st.store.ClaimTask(t.Context(), b.TaskIDs[0], nil, "w1", time.Minute); err != nil {
		t.Fatal(err)
	}
	r = st.withKey("DELETE", "/v1/batches/"+b.BatchID, nil, nil)
	if r.status != 200 {
		t.Fatalf("cancel batch: %d %s", r.status, r.body)
	}
	var view struct {
		Status string         `json:"status"`
		Counts map[string]int `json:"counts"`
	}
	json.Unmarshal(r.body, &view)
	if view.Counts[imaged.StatusCancelled] != 2 || view.Counts[imaged.StatusProcessing] != 1 || view.Status != imaged.StatusProcessing {
		t.Fatalf("after cancelling: %s; want 2 cancelled, the claimed one still processing", r.body)
	}
	for i, id := range b.TaskIDs {
		task, err := st.store.Task(t.Context(), imaged.DefaultTenant, id)
		if err != nil {
			t.Fatal(err)
		}
		if want := map[bool]string{true: imaged.StatusProcessing, false: imaged.StatusCancelled}[i == 0]; task.Status != want {
			t.Errorf("task %d: %s, want %s", i, task.Status, want)
		}
	}
	if r := st.withKey("DELETE", "/v1/batches/nope", nil, nil); r.status != 404 {
		t.Errorf("an unknown batch: %d", r.status)
	}
}
