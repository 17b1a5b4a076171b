package http

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/imaged/imaged"
)

// completedTask records a completed task over imageID whose output is stored in blobs, as a
// worker would, and returns it.
func (st *stack) completedTask(imageID string) *imaged.Task {
	st.t.Helper()
	ctx := st.t.Context()
	ops, _ := imaged.ParseOps([]byte(`[{"op":"blur","sigma":1}]`))
	tk := &imaged.Task{ImageID: imageID, Ops: ops, MaxAttempts: 1}
	if _, err := st.store.CreateTasks(ctx, []*imaged.Task{tk}, nil); err != nil {
		st.t.Fatal(err)
	}
	c, err := st.store.ClaimTask(ctx, tk.ID, nil, "w", time.Minute)
	if err != nil || c == nil {
		st.t.Fatalf("ClaimTask = %v, %v", c, err)
	}
	res, err := imaged.SaveResult(ctx, st.api.deps.Blobs, tk.ID, tk.CreatedAt,
		&imaged.Result{Data: []byte("result"), Format: "webp", ContentType: "image/webp", Width: 1, Height: 1, Changed: true}, time.Hour)
	if err != nil {
		st.t.Fatal(err)
	}
	done, err := st.store.CompleteTask(ctx, c.ID, c.Attempts, res)
	if err != nil {
		st.t.Fatal(err)
	}
	return done
}

// The result of a task whose result expired, or whose image was deleted, answers 404 saying
// which and when; the task itself shows when.
func TestResultOfExpiredOrDeletedImageIs404SayingWhen(t *testing.T) {
	st := newStack(t, Config{}, Deps{}, false)
	aged := st.completedTask(st.uploadImage())
	imageID := st.uploadImage()
	derived := st.completedTask(imageID)
	if r := st.withKey("GET", "/v1/tasks/"+aged.ID+"/result", nil, nil); r.status != 200 || string(r.body) != "result" {
		t.Fatalf("result before expiry: %d %s", r.status, r.body)
	}

	at := time.Date(2026, 12, 1, 10, 30, 0, 0, time.UTC)
	if n, err := st.store.ExpireResults(t.Context(), time.Now().Add(time.Hour), at, 1); err != nil || n != 1 {
		t.Fatalf("ExpireResults = %d, %v", n, err)
	}
	r := st.withKey("GET", "/v1/tasks/"+aged.ID+"/result", nil, nil)
	var body errorBody
	_ = json.Unmarshal(r.body, &body)
	if r.status != 404 || body.Error.Code != "not_found" || !strings.Contains(body.Error.Message, "expired at 2026-12-01T10:30:00Z") {
		t.Fatalf("result after expiry: %d %s; want 404 not_found saying when it expired", r.status, r.body)
	}
	var view struct {
		ResultExpiredAt     *time.Time `json:"result_expired_at"`
		ResultExpiredReason string     `json:"result_expired_reason"`
	}
	r = st.withKey("GET", "/v1/tasks/"+aged.ID, nil, nil)
	if err := json.Unmarshal(r.body, &view); err != nil || view.ResultExpiredAt == nil || !view.ResultExpiredAt.Equal(at) ||
		view.ResultExpiredReason != imaged.ResultExpiredAge {
		t.Fatalf("task after expiry: %s", r.body)
	}

	if r := st.withKey("DELETE", "/v1/images/"+imageID, nil, nil); r.status != 204 {
		t.Fatalf("DELETE image: %d %s", r.status, r.body)
	}
	r = st.withKey("GET", "/v1/tasks/"+derived.ID+"/result", nil, nil)
	body = errorBody{}
	_ = json.Unmarshal(r.body, &body)
	if r.status != 404 || body.Error.Code != "not_found" || !strings.Contains(body.Error.Message, "with its image "+imageID) {
		t.Fatalf("result after its image was deleted: %d %s; want 404 not_found naming the image", r.status, r.body)
	}
	r = st.withKey("GET", "/v1/tasks/"+derived.ID, nil, nil)
	if err := json.Unmarshal(r.body, &view); err != nil || view.ResultExpiredAt == nil || view.ResultExpiredReason != imaged.ResultExpiredImageDeleted {
		t.Fatalf("task after its image was deleted: %s", r.body)
	}
	// The result's blob waits in the trash for the retention sweep.
	trashed, err := st.store.TakeTrash(t.Context(), 10)
	if err != nil || len(trashed) != 2 {
		t.Fatalf("trash = %v, %v; want the two results", trashed, err)
	}
}
