// Package storetest is the contract every imaged.TaskStore keeps, as a test suite. A store's own
// tests call Run with a function that opens an empty store:
//
//	func TestStore(t *testing.T) {
//		storetest.Run(t, func(t *testing.T) imaged.TaskStore { return openEmpty(t) })
//	}
//
// The suite uses only the TaskStore interface, so SQLite, PostgreSQL and any later store are held
// to the same rules: documented error codes, exactly-once outcomes by conditional updates, claims
// that never hand one task to two workers, and cursor pagination that visits every task once.
package storetest

import (
	"bytes"
	"encoding/json"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/imaged/imaged"
)

// Run runs the contract suite. open is called once per subtest and must return a new, empty
// store; Run closes it when the subtest ends (a store whose Close is called twice must not
// mind).
func Run(t *testing.T, open func(t *testing.T) imaged.TaskStore) {
	declareEngineOps()
	tests := []struct {
		name string
		fn   func(t *testing.T, s imaged.TaskStore)
	}{
		{"Ping", testPing},
		{"Images", testImages},
		{"CreateTask", testCreateTask},
		{"CreateTaskKeepsGivenFields", testCreateTaskKeepsGivenFields},
		{"CreateBatch", testCreateBatch},
		{"CreateBatchIsAtomic", testCreateBatchIsAtomic},
		{"TaskIdempotencyKey", testTaskIdempotencyKey},
		{"BatchIdempotencyKey", testBatchIdempotencyKey},
		{"NotFound", testNotFound},
		{"ListTasks", testListTasks},
		{"ListTasksTiedTimes", testListTasksTiedTimes},
		{"ListTasksBadArguments", testListTasksBadArguments},
		{"CancelTask", testCancelTask},
		{"BatchCounts", testBatchCounts},
		{"ClaimByID", testClaimByID},
		{"ClaimOldestOfTypes", testClaimOldestOfTypes},
		{"ClaimRespectsRunAfter", testClaimRespectsRunAfter},
		{"ClaimConcurrently", testClaimConcurrently},
		{"CompleteTask", testCompleteTask},
		{"FailTask", testFailTask},
		{"RetryTask", testRetryTask},
		{"DeferTask", testDeferTask},
		{"StaleAttemptConflicts", testStaleAttemptConflicts},
		{"RequeueExpired", testRequeueExpired},
		{"ExtendLease", testExtendLease},
		{"CountQueued", testCountQueued},
		{"TimesAreUTC", testTimesAreUTC},
	}
	for _, tc := range slices.Concat(tests, tenantTests, outboxTests, outputCacheTests) {
		t.Run(tc.name, func(t *testing.T) {
			s := open(t)
			t.Cleanup(func() { s.Close() })
			tc.fn(t, s)
		})
	}
}

// --- helpers -------------------------------------------------------------------------------

// declareEngineOps declares the traits of the fixtures' ocr and detect ops where the packages
// that implement and register them are not linked into the test binary: a store derives a
// task's type from them.
func declareEngineOps() {
	declareOnce.Do(func() {
		for _, spec := range []imaged.OpSpec{
			{Name: "ocr", Kind: imaged.OpAnalysis, TaskType: imaged.TaskTypeOCR},
			{Name: "detect", Kind: imaged.OpAnalysis, TaskType: imaged.TaskTypeDetect},
		} {
			if _, ok := imaged.LookupOp(spec.Name); !ok {
				imaged.RegisterOp(spec)
			}
		}
	})
}

var declareOnce sync.Once

const (
	opsTransform = `[{"op":"resize","width":800,"height":600,"fit":"inside"},{"op":"convert","format":"webp","quality":80}]`
	opsOCR       = `[{"op":"grayscale"},{"op":"ocr","engine":"tesseract","lang":"eng"}]`
	opsDetect    = `[{"op":"detect","model":"ssd","threshold":0.5}]`
)

var seq atomic.Int64

// uniq returns a name unique within the test binary, so tests never collide on ids or keys
// even where a store is shared.
func uniq(prefix string) string {
	return fmt.Sprintf("%s-%d-%d", prefix, time.Now().UnixNano(), seq.Add(1))
}

func ops(t *testing.T, js string) []imaged.Op {
	t.Helper()
	o, err := imaged.ParseOps([]byte(js))
	if err != nil {
		t.Fatalf("ParseOps(%s): %v", js, err)
	}
	return o
}

func createImage(t *testing.T, s imaged.TaskStore) *imaged.Image {
	t.Helper()
	img := &imaged.Image{
		ID:          uniq("img"),
		Key:         "images/2026/11/28/" + uniq("k") + ".jpg",
		Format:      "jpeg",
		ContentType: "image/jpeg",
		Width:       640,
		Height:      480,
		Bytes:       12345,
		SHA256:      "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08",
		Filename:    "cat.jpg",
	}
	if err := s.CreateImage(t.Context(), img); err != nil {
		t.Fatalf("CreateImage: %v", err)
	}
	return img
}

func newTask(t *testing.T, imageID, js string) *imaged.Task {
	return &imaged.Task{ImageID: imageID, Ops: ops(t, js), MaxAttempts: 4}
}

// createTasks creates n single tasks (no batch) over one image and returns them.
func createTasks(t *testing.T, s imaged.TaskStore, n int, js string) []*imaged.Task {
	t.Helper()
	img := createImage(t, s)
	out := make([]*imaged.Task, n)
	for i := range out {
		out[i] = newTask(t, img.ID, js)
		if _, err := s.CreateTasks(t.Context(), []*imaged.Task{out[i]}, nil); err != nil {
			t.Fatalf("CreateTasks: %v", err)
		}
	}
	return out
}

func getTask(t *testing.T, s imaged.TaskStore, id string) *imaged.Task {
	t.Helper()
	got, err := s.Task(t.Context(), imaged.DefaultTenant, id)
	if err != nil {
		t.Fatalf("Task(%s): %v", id, err)
	}
	return got
}

func claim(t *testing.T, s imaged.TaskStore, id string) *imaged.Task {
	t.Helper()
	got, err := s.ClaimTask(t.Context(), id, nil, "worker-1", time.Minute)
	if err != nil {
		t.Fatalf("ClaimTask(%s): %v", id, err)
	}
	if got == nil {
		t.Fatalf("ClaimTask(%s) claimed nothing", id)
	}
	return got
}

func wantCode(t *testing.T, err error, code, what string) {
	t.Helper()
	if err == nil {
		t.Fatalf("%s: no error, want %s", what, code)
	}
	if got := imaged.ErrorCode(err); got != code {
		t.Fatalf("%s: error %q has code %s, want %s", what, err, got, code)
	}
}

func wantStatus(t *testing.T, task *imaged.Task, status string) {
	t.Helper()
	if task.Status != status {
		t.Fatalf("task %s is %s, want %s", task.ID, task.Status, status)
	}
}

// sameTime reports whether a and b agree to the millisecond, the precision every store keeps.
func sameTime(a, b time.Time) bool {
	d := a.Sub(b)
	return d > -time.Millisecond && d < time.Millisecond
}

func wantTime(t *testing.T, what string, got, want time.Time) {
	t.Helper()
	if !sameTime(got, want) {
		t.Fatalf("%s = %v, want %v", what, got, want)
	}
	if got.Location() != time.UTC {
		t.Fatalf("%s = %v is not in UTC", what, got)
	}
}

// wantNear checks a store-clock time against the test's clock, allowing for a slow machine.
func wantNear(t *testing.T, what string, got *time.Time, want time.Time) {
	t.Helper()
	if got == nil {
		t.Fatalf("%s is not set", what)
	}
	if d := got.Sub(want); d < -10*time.Second || d > 10*time.Second {
		t.Fatalf("%s = %v, want about %v", what, *got, want)
	}
	if got.Location() != time.UTC {
		t.Fatalf("%s = %v is not in UTC", what, *got)
	}
}

func jsonEqual(a, b []byte) bool {
	var x, y any
	if json.Unmarshal(a, &x) != nil || json.Unmarshal(b, &y) != nil {
		return false
	}
	xa, _ := json.Marshal(x)
	ya, _ := json.Marshal(y)
	return bytes.Equal(xa, ya)
}

func wantOps(t *testing.T, got, want []imaged.Op) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("ops has %d operations, want %d", len(got), len(want))
	}
	for i := range want {
		if got[i].Name != want[i].Name || !jsonEqual(got[i].Args, want[i].Args) {
			t.Fatalf("ops[%d] = %s %s, want %s %s", i, got[i].Name, got[i].Args, want[i].Name, want[i].Args)
		}
	}
}

func ids(tasks []*imaged.Task) []string {
	out := make([]string, len(tasks))
	for i, t := range tasks {
		out[i] = t.ID
	}
	return out
}

// --- images --------------------------------------------------------------------------------

func testPing(t *testing.T, s imaged.TaskStore) {
	if err := s.Ping(t.Context()); err != nil {
		t.Fatalf("Ping: %v", err)
	}
}

func testImages(t *testing.T, s imaged.TaskStore) {
	ctx := t.Context()
	img := createImage(t, s)
	if img.CreatedAt.IsZero() {
		t.Fatal("CreateImage did not set CreatedAt")
	}
	got, err := s.Image(ctx, imaged.DefaultTenant, img.ID)
	if err != nil {
		t.Fatalf("Image: %v", err)
	}
	wantTime(t, "CreatedAt", got.CreatedAt, img.CreatedAt)
	got.CreatedAt = img.CreatedAt
	if *got != *img {
		t.Fatalf("Image = %+v, want %+v", *got, *img)
	}

	noID := &imaged.Image{Key: "images/x.png", Format: "png", ContentType: "image/png", Width: 1, Height: 1, Bytes: 10}
	if err := s.CreateImage(ctx, noID); err != nil {
		t.Fatalf("CreateImage without id: %v", err)
	}
	if noID.ID == "" {
		t.Fatal("CreateImage did not set an id")
	}
	if _, err := s.Image(ctx, imaged.DefaultTenant, noID.ID); err != nil {
		t.Fatalf("Image(generated id): %v", err)
	}

	dup := *img
	if err := s.CreateImage(ctx, &dup); err == nil {
		t.Fatal("CreateImage with an existing id succeeded")
	}

	if err := s.DeleteImage(ctx, imaged.DefaultTenant, img.ID); err != nil {
		t.Fatalf("DeleteImage: %v", err)
	}
	_, err = s.Image(ctx, imaged.DefaultTenant, img.ID)
	wantCode(t, err, imaged.ENotFound, "Image after delete")
	wantCode(t, s.DeleteImage(ctx, imaged.DefaultTenant, img.ID), imaged.ENotFound, "DeleteImage twice")
	_, err = s.Image(ctx, imaged.DefaultTenant, "no-such-image")
	wantCode(t, err, imaged.ENotFound, "Image(unknown)")
}

// --- creating tasks ------------------------------------------------------------------------

func testCreateTask(t *testing.T, s imaged.TaskStore) {
	ctx := t.Context()
	img := createImage(t, s)
	task := &imaged.Task{
		ImageID:       img.ID,
		Ops:           ops(t, opsOCR),
		MaxAttempts:   4,
		CorrelationID: "corr-1",
		CallbackURL:   "https://example.com/hook",
		TraceParent:   "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
	}
	before := time.Now()
	existed, err := s.CreateTasks(ctx, []*imaged.Task{task}, nil)
	if err != nil {
		t.Fatalf("CreateTasks: %v", err)
	}
	if existed {
		t.Fatal("CreateTasks of a new task reported existed")
	}
	if task.ID == "" {
		t.Fatal("CreateTasks did not set an id")
	}
	wantStatus(t, task, imaged.StatusQueued)
	if task.Type != imaged.TaskTypeOCR {
		t.Fatalf("Type = %q, want %q (derived from the ops)", task.Type, imaged.TaskTypeOCR)
	}
	wantNear(t, "CreatedAt", &task.CreatedAt, before)

	got := getTask(t, s, task.ID)
	wantStatus(t, got, imaged.StatusQueued)
	if got.Type != imaged.TaskTypeOCR || got.ImageID != img.ID || got.MaxAttempts != 4 ||
		got.CorrelationID != "corr-1" || got.CallbackURL != "https://example.com/hook" || got.BatchID != "" {
		t.Fatalf("Task = %+v, fields differ from %+v", got, task)
	}
	if got.Attempts != 0 || got.WorkerID != "" || got.StartedAt != nil || got.FinishedAt != nil ||
		got.LeaseUntil != nil || got.Result != nil || got.Error != nil {
		t.Fatalf("new task carries run state: %+v", got)
	}
	if got.TraceParent != task.TraceParent {
		t.Fatalf("TraceParent = %q, want %q", got.TraceParent, task.TraceParent)
	}
	if c := claim(t, s, task.ID); c.TraceParent != task.TraceParent {
		t.Fatalf("claimed task's TraceParent = %q, want %q (a worker continues the trace from it)", c.TraceParent, task.TraceParent)
	}
	wantOps(t, got.Ops, task.Ops)
	wantTime(t, "CreatedAt", got.CreatedAt, task.CreatedAt)
	if got.RunAfter.After(got.CreatedAt) {
		t.Fatalf("RunAfter %v is after CreatedAt %v: a new task must be runnable at once", got.RunAfter, got.CreatedAt)
	}
}

func testCreateTaskKeepsGivenFields(t *testing.T, s imaged.TaskStore) {
	img := createImage(t, s)
	created := time.Date(2026, 11, 28, 10, 0, 0, 123_000_000, time.UTC)
	runAfter := created.Add(time.Hour)
	task := &imaged.Task{
		ID: uniq("task"), Type: imaged.TaskTypeDetect, ImageID: img.ID, Ops: ops(t, opsDetect),
		CreatedAt: created, RunAfter: runAfter, MaxAttempts: 2,
	}
	if _, err := s.CreateTasks(t.Context(), []*imaged.Task{task}, nil); err != nil {
		t.Fatalf("CreateTasks: %v", err)
	}
	got := getTask(t, s, task.ID)
	if got.Type != imaged.TaskTypeDetect || got.MaxAttempts != 2 {
		t.Fatalf("Task = %+v, want type detect, max attempts 2", got)
	}
	wantTime(t, "CreatedAt", got.CreatedAt, created)
	wantTime(t, "RunAfter", got.RunAfter, runAfter)
}

func testCreateBatch(t *testing.T, s imaged.TaskStore) {
	ctx := t.Context()
	img := createImage(t, s)
	tasks := []*imaged.Task{newTask(t, img.ID, opsTransform), newTask(t, img.ID, opsOCR), newTask(t, img.ID, opsDetect)}
	batch := &imaged.Batch{CorrelationID: "corr-b", CallbackURL: "https://example.com/b"}
	existed, err := s.CreateTasks(ctx, tasks, batch)
	if err != nil {
		t.Fatalf("CreateTasks: %v", err)
	}
	if existed {
		t.Fatal("new batch reported existed")
	}
	if batch.ID == "" || batch.CreatedAt.IsZero() {
		t.Fatalf("batch not filled: %+v", batch)
	}
	for _, task := range tasks {
		if task.BatchID != batch.ID {
			t.Fatalf("task %s has BatchID %q, want %q", task.ID, task.BatchID, batch.ID)
		}
	}
	b, got, err := s.Batch(ctx, imaged.DefaultTenant, batch.ID)
	if err != nil {
		t.Fatalf("Batch: %v", err)
	}
	if b.ID != batch.ID || b.Total != 3 || b.CorrelationID != "corr-b" || b.CallbackURL != "https://example.com/b" {
		t.Fatalf("Batch = %+v", b)
	}
	if b.Status != imaged.StatusQueued {
		t.Fatalf("batch status = %s, want queued", b.Status)
	}
	if b.Counts[imaged.StatusQueued] != 3 || b.FinishedAt != nil {
		t.Fatalf("batch counts = %v, finished %v; want 3 queued, not finished", b.Counts, b.FinishedAt)
	}
	if !slices.Equal(ids(got), ids(tasks)) {
		t.Fatalf("batch tasks = %v, want %v in creation order", ids(got), ids(tasks))
	}
	wantTime(t, "batch CreatedAt", b.CreatedAt, batch.CreatedAt)
	if got[1].Type != imaged.TaskTypeOCR {
		t.Fatalf("batch task type = %s, want ocr", got[1].Type)
	}
}

func testCreateBatchIsAtomic(t *testing.T, s imaged.TaskStore) {
	ctx := t.Context()
	img := createImage(t, s)
	dupID := uniq("task")
	tasks := []*imaged.Task{newTask(t, img.ID, opsTransform), newTask(t, img.ID, opsTransform), newTask(t, img.ID, opsTransform)}
	tasks[0].ID = uniq("task")
	tasks[1].ID = dupID
	tasks[2].ID = dupID // the second insert of this id fails, after the batch and one task
	batch := &imaged.Batch{ID: uniq("batch")}
	if _, err := s.CreateTasks(ctx, tasks, batch); err == nil {
		t.Fatal("CreateTasks with a duplicate task id succeeded")
	}
	_, _, err := s.Batch(ctx, imaged.DefaultTenant, batch.ID)
	wantCode(t, err, imaged.ENotFound, "Batch after a failed create")
	_, err = s.Task(ctx, imaged.DefaultTenant, tasks[0].ID)
	wantCode(t, err, imaged.ENotFound, "first task after a failed create")
	_, err = s.Task(ctx, imaged.DefaultTenant, dupID)
	wantCode(t, err, imaged.ENotFound, "second task after a failed create")
	page, _, err := s.ListTasks(ctx, imaged.TaskFilter{Tenant: imaged.DefaultTenant})
	if err != nil {
		t.Fatalf("ListTasks: %v", err)
	}
	if len(page) != 0 {
		t.Fatalf("a failed batch left %d tasks behind", len(page))
	}
}

func testTaskIdempotencyKey(t *testing.T, s imaged.TaskStore) {
	ctx := t.Context()
	img := createImage(t, s)
	key := uniq("key")
	first := newTask(t, img.ID, opsTransform)
	first.IdempotencyKey = key
	first.CorrelationID = "first"
	if existed, err := s.CreateTasks(ctx, []*imaged.Task{first}, nil); err != nil || existed {
		t.Fatalf("CreateTasks = %v, %v; want false, nil", existed, err)
	}
	// Move it on, so the replay must return the stored state rather than echo the request.
	claimed := claim(t, s, first.ID)

	again := newTask(t, img.ID, opsOCR)
	again.IdempotencyKey = key
	again.CorrelationID = "second"
	existed, err := s.CreateTasks(ctx, []*imaged.Task{again}, nil)
	if err != nil {
		t.Fatalf("CreateTasks with a used key: %v", err)
	}
	if !existed {
		t.Fatal("CreateTasks with a used key reported existed=false")
	}
	if again.ID != first.ID || again.CorrelationID != "first" || again.Type != imaged.TaskTypeTransform ||
		again.Status != imaged.StatusProcessing || again.Attempts != claimed.Attempts || again.IdempotencyKey != key {
		t.Fatalf("replayed task = %+v, want the stored %+v", again, claimed)
	}
	wantOps(t, again.Ops, first.Ops)
	wantTime(t, "CreatedAt", again.CreatedAt, first.CreatedAt)

	page, _, err := s.ListTasks(ctx, imaged.TaskFilter{Tenant: imaged.DefaultTenant})
	if err != nil {
		t.Fatalf("ListTasks: %v", err)
	}
	if len(page) != 1 {
		t.Fatalf("%d tasks stored, want 1", len(page))
	}

	other := newTask(t, img.ID, opsTransform)
	other.IdempotencyKey = uniq("key")
	if existed, err := s.CreateTasks(ctx, []*imaged.Task{other}, nil); err != nil || existed {
		t.Fatalf("CreateTasks with another key = %v, %v; want false, nil", existed, err)
	}
	if other.ID == first.ID {
		t.Fatal("another key returned the first task")
	}
}

func testBatchIdempotencyKey(t *testing.T, s imaged.TaskStore) {
	ctx := t.Context()
	img := createImage(t, s)
	key := uniq("key")
	mk := func() []*imaged.Task {
		return []*imaged.Task{newTask(t, img.ID, opsTransform), newTask(t, img.ID, opsOCR), newTask(t, img.ID, opsDetect)}
	}
	first := mk()
	b1 := &imaged.Batch{IdempotencyKey: key, CorrelationID: "first"}
	if existed, err := s.CreateTasks(ctx, first, b1); err != nil || existed {
		t.Fatalf("CreateTasks = %v, %v; want false, nil", existed, err)
	}
	claim(t, s, first[0].ID)

	second := mk()
	b2 := &imaged.Batch{IdempotencyKey: key, CorrelationID: "second"}
	existed, err := s.CreateTasks(ctx, second, b2)
	if err != nil {
		t.Fatalf("CreateTasks with a used batch key: %v", err)
	}
	if !existed {
		t.Fatal("CreateTasks with a used batch key reported existed=false")
	}
	if b2.ID != b1.ID || b2.CorrelationID != "first" || b2.Total != 3 {
		t.Fatalf("replayed batch = %+v, want the stored %+v", b2, b1)
	}
	if b2.Counts[imaged.StatusProcessing] != 1 || b2.Counts[imaged.StatusQueued] != 2 {
		t.Fatalf("replayed batch counts = %v, want 1 processing, 2 queued", b2.Counts)
	}
	if !slices.Equal(ids(second), ids(first)) {
		t.Fatalf("replayed tasks = %v, want %v in creation order", ids(second), ids(first))
	}
	wantStatus(t, second[0], imaged.StatusProcessing)
	page, _, err := s.ListTasks(ctx, imaged.TaskFilter{Tenant: imaged.DefaultTenant})
	if err != nil {
		t.Fatalf("ListTasks: %v", err)
	}
	if len(page) != 3 {
		t.Fatalf("%d tasks stored, want 3", len(page))
	}
}

func testNotFound(t *testing.T, s imaged.TaskStore) {
	ctx := t.Context()
	_, err := s.Task(ctx, imaged.DefaultTenant, "no-such-task")
	wantCode(t, err, imaged.ENotFound, "Task")
	_, err = s.CancelTask(ctx, imaged.DefaultTenant, "no-such-task")
	wantCode(t, err, imaged.ENotFound, "CancelTask")
	_, _, err = s.Batch(ctx, imaged.DefaultTenant, "no-such-batch")
	wantCode(t, err, imaged.ENotFound, "Batch")
	_, err = s.CompleteTask(ctx, "no-such-task", 1, &imaged.TaskResult{})
	wantCode(t, err, imaged.ENotFound, "CompleteTask")
	_, err = s.FailTask(ctx, "no-such-task", 1, &imaged.TaskFailure{Code: imaged.EInternal, Message: "x"})
	wantCode(t, err, imaged.ENotFound, "FailTask")
	_, err = s.RetryTask(ctx, "no-such-task", 1, time.Now(), nil)
	wantCode(t, err, imaged.ENotFound, "RetryTask")
	got, err := s.ClaimTask(ctx, "no-such-task", nil, "w", time.Minute)
	if err != nil || got != nil {
		t.Fatalf("ClaimTask(unknown) = %v, %v; want nil, nil", got, err)
	}
}

// --- listing -------------------------------------------------------------------------------

func testListTasks(t *testing.T, s imaged.TaskStore) {
	ctx := t.Context()
	img := createImage(t, s)
	base := time.Date(2026, 11, 28, 9, 0, 0, 0, time.UTC)
	// 25 tasks a second apart: 10 single, then a batch of 15, interleaved in time.
	var all []*imaged.Task // oldest first
	var batchTasks []*imaged.Task
	for i := range 25 {
		task := newTask(t, img.ID, opsTransform)
		task.CreatedAt = base.Add(time.Duration(i) * time.Second)
		all = append(all, task)
		if i%5 < 3 {
			batchTasks = append(batchTasks, task)
		} else if _, err := s.CreateTasks(ctx, []*imaged.Task{task}, nil); err != nil {
			t.Fatalf("CreateTasks: %v", err)
		}
	}
	batch := &imaged.Batch{}
	if _, err := s.CreateTasks(ctx, batchTasks, batch); err != nil {
		t.Fatalf("CreateTasks(batch): %v", err)
	}
	cancelled := map[string]bool{}
	for i, task := range all {
		if i%4 == 0 {
			if _, err := s.CancelTask(ctx, imaged.DefaultTenant, task.ID); err != nil {
				t.Fatalf("CancelTask: %v", err)
			}
			cancelled[task.ID] = true
		}
	}
	newestFirst := slices.Clone(all)
	slices.Reverse(newestFirst)
	filter := func(keep func(*imaged.Task) bool) []string {
		var out []string
		for _, task := range newestFirst {
			if keep(task) {
				out = append(out, task.ID)
			}
		}
		return out
	}

	cases := []struct {
		name   string
		filter imaged.TaskFilter
		want   []string
	}{
		{"all", imaged.TaskFilter{Tenant: imaged.DefaultTenant}, filter(func(*imaged.Task) bool { return true })},
		{"cancelled", imaged.TaskFilter{Tenant: imaged.DefaultTenant, Status: imaged.StatusCancelled},
			filter(func(x *imaged.Task) bool { return cancelled[x.ID] })},
		{"queued", imaged.TaskFilter{Tenant: imaged.DefaultTenant, Status: imaged.StatusQueued},
			filter(func(x *imaged.Task) bool { return !cancelled[x.ID] })},
		{"batch", imaged.TaskFilter{Tenant: imaged.DefaultTenant, BatchID: batch.ID},
			filter(func(x *imaged.Task) bool { return x.BatchID == batch.ID })},
		{"batch and queued", imaged.TaskFilter{Tenant: imaged.DefaultTenant, BatchID: batch.ID, Status: imaged.StatusQueued},
			filter(func(x *imaged.Task) bool { return x.BatchID == batch.ID && !cancelled[x.ID] })},
		{"none", imaged.TaskFilter{Tenant: imaged.DefaultTenant, Status: imaged.StatusFailed}, nil},
		{"unknown batch", imaged.TaskFilter{Tenant: imaged.DefaultTenant, BatchID: "no-such-batch"}, nil},
	}
	for _, c := range cases {
		for _, limit := range []int{0, 1, 4, 7, 100} {
			f := c.filter
			f.Limit = limit
			got := listAll(t, s, f)
			if !slices.Equal(got, c.want) {
				t.Fatalf("%s, limit %d: listed %v\nwant %v", c.name, limit, got, c.want)
			}
		}
	}

	page, next, err := s.ListTasks(ctx, imaged.TaskFilter{Tenant: imaged.DefaultTenant, Limit: 10})
	if err != nil {
		t.Fatalf("ListTasks: %v", err)
	}
	if len(page) != 10 || next == "" {
		t.Fatalf("first page of 10: got %d tasks, next %q", len(page), next)
	}
	wantOps(t, page[0].Ops, newestFirst[0].Ops)
	page, next, err = s.ListTasks(ctx, imaged.TaskFilter{Tenant: imaged.DefaultTenant, Limit: 25})
	if err != nil {
		t.Fatalf("ListTasks: %v", err)
	}
	if len(page) != 25 || next != "" {
		t.Fatalf("a page holding every task: got %d tasks, next %q; want 25 and no cursor", len(page), next)
	}
}

// listAll follows cursors to the end, failing on a page over the limit or a task seen twice.
func listAll(t *testing.T, s imaged.TaskStore, f imaged.TaskFilter) []string {
	t.Helper()
	var out []string
	seen := map[string]bool{}
	for pages := 0; ; pages++ {
		if pages > 1000 {
			t.Fatal("pagination does not end")
		}
		page, next, err := s.ListTasks(t.Context(), f)
		if err != nil {
			t.Fatalf("ListTasks(%+v): %v", f, err)
		}
		if f.Limit > 0 && len(page) > f.Limit {
			t.Fatalf("page of %d tasks over the limit %d", len(page), f.Limit)
		}
		for _, task := range page {
			if seen[task.ID] {
				t.Fatalf("task %s listed twice", task.ID)
			}
			seen[task.ID] = true
			out = append(out, task.ID)
		}
		if next == "" {
			return out
		}
		if len(page) == 0 {
			t.Fatal("an empty page with a next cursor")
		}
		f.Cursor = next
	}
}

func testListTasksTiedTimes(t *testing.T, s imaged.TaskStore) {
	ctx := t.Context()
	img := createImage(t, s)
	at := time.Date(2026, 11, 28, 9, 0, 0, 0, time.UTC)
	var want []string
	for range 7 {
		task := newTask(t, img.ID, opsTransform)
		task.CreatedAt = at
		if _, err := s.CreateTasks(ctx, []*imaged.Task{task}, nil); err != nil {
			t.Fatalf("CreateTasks: %v", err)
		}
		want = append(want, task.ID)
	}
	for _, limit := range []int{1, 2, 3, 7} {
		got := listAll(t, s, imaged.TaskFilter{Tenant: imaged.DefaultTenant, Limit: limit})
		if len(got) != len(want) {
			t.Fatalf("limit %d: listed %d of %d tasks with the same CreatedAt", limit, len(got), len(want))
		}
		a, b := slices.Clone(got), slices.Clone(want)
		slices.Sort(a)
		slices.Sort(b)
		if !slices.Equal(a, b) {
			t.Fatalf("limit %d: listed %v, want %v in any order", limit, got, want)
		}
	}
}

func testListTasksBadArguments(t *testing.T, s imaged.TaskStore) {
	_, _, err := s.ListTasks(t.Context(), imaged.TaskFilter{Tenant: imaged.DefaultTenant, Cursor: "not a cursor!"})
	wantCode(t, err, imaged.EInvalid, "ListTasks with a bad cursor")
	_, _, err = s.ListTasks(t.Context(), imaged.TaskFilter{Tenant: imaged.DefaultTenant, Status: "sleeping"})
	wantCode(t, err, imaged.EInvalid, "ListTasks with an unknown status")
}

// --- cancel and batch counts ---------------------------------------------------------------

func testCancelTask(t *testing.T, s imaged.TaskStore) {
	ctx := t.Context()
	tasks := createTasks(t, s, 2, opsTransform)
	before := time.Now()
	got, err := s.CancelTask(ctx, imaged.DefaultTenant, tasks[0].ID)
	if err != nil {
		t.Fatalf("CancelTask: %v", err)
	}
	wantStatus(t, got, imaged.StatusCancelled)
	wantNear(t, "FinishedAt", got.FinishedAt, before)
	wantStatus(t, getTask(t, s, tasks[0].ID), imaged.StatusCancelled)
	_, err = s.CancelTask(ctx, imaged.DefaultTenant, tasks[0].ID)
	wantCode(t, err, imaged.EConflict, "CancelTask twice")
	if c, _ := s.ClaimTask(ctx, tasks[0].ID, nil, "w", time.Minute); c != nil {
		t.Fatal("a cancelled task was claimed")
	}

	claim(t, s, tasks[1].ID)
	_, err = s.CancelTask(ctx, imaged.DefaultTenant, tasks[1].ID)
	wantCode(t, err, imaged.EConflict, "CancelTask of a processing task")
	wantStatus(t, getTask(t, s, tasks[1].ID), imaged.StatusProcessing)
}

func testBatchCounts(t *testing.T, s imaged.TaskStore) {
	ctx := t.Context()
	img := createImage(t, s)
	var tasks []*imaged.Task
	for range 6 {
		tasks = append(tasks, newTask(t, img.ID, opsTransform))
	}
	batch := &imaged.Batch{}
	if _, err := s.CreateTasks(ctx, tasks, batch); err != nil {
		t.Fatalf("CreateTasks: %v", err)
	}
	c0 := claim(t, s, tasks[0].ID)
	if _, err := s.CompleteTask(ctx, c0.ID, c0.Attempts, &imaged.TaskResult{ProcessingSeconds: 0.1}); err != nil {
		t.Fatalf("CompleteTask: %v", err)
	}
	c1 := claim(t, s, tasks[1].ID)
	if _, err := s.FailTask(ctx, c1.ID, c1.Attempts, &imaged.TaskFailure{Code: imaged.EInvalid, Message: "bad"}); err != nil {
		t.Fatalf("FailTask: %v", err)
	}
	if _, err := s.CancelTask(ctx, imaged.DefaultTenant, tasks[2].ID); err != nil {
		t.Fatalf("CancelTask: %v", err)
	}
	c4 := claim(t, s, tasks[4].ID)
	c5 := claim(t, s, tasks[5].ID)

	b, got, err := s.Batch(ctx, imaged.DefaultTenant, batch.ID)
	if err != nil {
		t.Fatalf("Batch: %v", err)
	}
	want := map[string]int{imaged.StatusCompleted: 1, imaged.StatusFailed: 1, imaged.StatusCancelled: 1,
		imaged.StatusQueued: 1, imaged.StatusProcessing: 2}
	for st, n := range want {
		if b.Counts[st] != n {
			t.Fatalf("counts = %v, want %v", b.Counts, want)
		}
	}
	if b.Total != 6 || len(got) != 6 {
		t.Fatalf("total %d with %d tasks, want 6", b.Total, len(got))
	}
	if b.Status == imaged.StatusCompleted || b.FinishedAt != nil {
		t.Fatalf("batch with unfinished tasks is %s, finished %v", b.Status, b.FinishedAt)
	}

	if _, err := s.CancelTask(ctx, imaged.DefaultTenant, tasks[3].ID); err != nil {
		t.Fatalf("CancelTask: %v", err)
	}
	if _, err := s.CompleteTask(ctx, c4.ID, c4.Attempts, &imaged.TaskResult{}); err != nil {
		t.Fatalf("CompleteTask: %v", err)
	}
	before := time.Now()
	last, err := s.FailTask(ctx, c5.ID, c5.Attempts, &imaged.TaskFailure{Code: imaged.EInternal, Message: "boom"})
	if err != nil {
		t.Fatalf("FailTask: %v", err)
	}
	b, _, err = s.Batch(ctx, imaged.DefaultTenant, batch.ID)
	if err != nil {
		t.Fatalf("Batch: %v", err)
	}
	if b.Status != imaged.StatusCompleted {
		t.Fatalf("batch of terminal tasks is %s, want completed", b.Status)
	}
	wantNear(t, "batch FinishedAt", b.FinishedAt, before)
	wantTime(t, "batch FinishedAt", *b.FinishedAt, *last.FinishedAt)
	if b.Counts[imaged.StatusQueued]+b.Counts[imaged.StatusProcessing] != 0 {
		t.Fatalf("counts = %v", b.Counts)
	}
}

// --- claiming ------------------------------------------------------------------------------

func testClaimByID(t *testing.T, s imaged.TaskStore) {
	ctx := t.Context()
	tasks := createTasks(t, s, 2, opsOCR)
	before := time.Now()
	got, err := s.ClaimTask(ctx, tasks[1].ID, nil, "worker-7", 90*time.Second)
	if err != nil || got == nil {
		t.Fatalf("ClaimTask = %v, %v", got, err)
	}
	if got.ID != tasks[1].ID {
		t.Fatalf("claimed %s, want %s", got.ID, tasks[1].ID)
	}
	wantStatus(t, got, imaged.StatusProcessing)
	if got.Attempts != 1 || got.WorkerID != "worker-7" {
		t.Fatalf("claimed task has attempts %d, worker %q; want 1, worker-7", got.Attempts, got.WorkerID)
	}
	wantNear(t, "StartedAt", got.StartedAt, before)
	wantNear(t, "LeaseUntil", got.LeaseUntil, before.Add(90*time.Second))
	if got.LeaseUntil.Sub(*got.StartedAt) < 89*time.Second {
		t.Fatalf("lease until %v, started %v: the lease is shorter than asked", got.LeaseUntil, got.StartedAt)
	}
	wantOps(t, got.Ops, tasks[1].Ops)

	stored := getTask(t, s, got.ID)
	if stored.Status != imaged.StatusProcessing || stored.Attempts != 1 || stored.WorkerID != "worker-7" || stored.LeaseUntil == nil {
		t.Fatalf("stored task after claim = %+v", stored)
	}
	again, err := s.ClaimTask(ctx, tasks[1].ID, nil, "worker-8", time.Minute)
	if err != nil || again != nil {
		t.Fatalf("second ClaimTask = %v, %v; want nil, nil", again, err)
	}
	wrongType, err := s.ClaimTask(ctx, tasks[0].ID, []string{imaged.TaskTypeTransform}, "w", time.Minute)
	if err != nil || wrongType != nil {
		t.Fatalf("ClaimTask of an ocr task for transform workers = %v, %v; want nil, nil", wrongType, err)
	}
	wantStatus(t, getTask(t, s, tasks[0].ID), imaged.StatusQueued)
}

func testClaimOldestOfTypes(t *testing.T, s imaged.TaskStore) {
	ctx := t.Context()
	img := createImage(t, s)
	base := time.Now().Add(-time.Hour).UTC()
	mk := func(js string, age int) *imaged.Task {
		task := newTask(t, img.ID, js)
		task.CreatedAt = base.Add(time.Duration(age) * time.Minute)
		if _, err := s.CreateTasks(ctx, []*imaged.Task{task}, nil); err != nil {
			t.Fatalf("CreateTasks: %v", err)
		}
		return task
	}
	// Created out of time order, so insertion order cannot stand in for CreatedAt.
	t3 := mk(opsTransform, 3)
	o2 := mk(opsOCR, 2)
	t1 := mk(opsTransform, 1)
	d4 := mk(opsDetect, 4)

	want := []struct {
		types []string
		id    string
	}{
		{[]string{imaged.TaskTypeTransform}, t1.ID},
		{[]string{imaged.TaskTypeOCR}, o2.ID},
		{[]string{imaged.TaskTypeOCR}, ""},
		{[]string{imaged.TaskTypeOCR, imaged.TaskTypeDetect}, d4.ID},
		{nil, t3.ID},
		{nil, ""},
	}
	for i, w := range want {
		got, err := s.ClaimTask(ctx, "", w.types, fmt.Sprintf("worker-%d", i), time.Minute)
		if err != nil {
			t.Fatalf("claim %d (%v): %v", i, w.types, err)
		}
		switch {
		case w.id == "" && got != nil:
			t.Fatalf("claim %d (%v) = %s, want nothing", i, w.types, got.ID)
		case w.id != "" && got == nil:
			t.Fatalf("claim %d (%v) = nothing, want %s", i, w.types, w.id)
		case w.id != "" && got.ID != w.id:
			t.Fatalf("claim %d (%v) = %s, want %s", i, w.types, got.ID, w.id)
		}
		if got != nil && (got.Status != imaged.StatusProcessing || got.Attempts != 1 ||
			got.WorkerID != fmt.Sprintf("worker-%d", i)) {
			t.Fatalf("claim %d returned %+v", i, got)
		}
	}
}

func testClaimRespectsRunAfter(t *testing.T, s imaged.TaskStore) {
	ctx := t.Context()
	img := createImage(t, s)
	later := newTask(t, img.ID, opsTransform)
	later.RunAfter = time.Now().Add(time.Hour)
	later.CreatedAt = time.Now().Add(-time.Minute) // older, so a claim that ignored RunAfter would take it
	if _, err := s.CreateTasks(ctx, []*imaged.Task{later}, nil); err != nil {
		t.Fatalf("CreateTasks: %v", err)
	}
	if got, err := s.ClaimTask(ctx, "", nil, "w", time.Minute); err != nil || got != nil {
		t.Fatalf("ClaimTask with only a future task = %v, %v; want nil, nil", got, err)
	}
	if got, err := s.ClaimTask(ctx, later.ID, nil, "w", time.Minute); err != nil || got != nil {
		t.Fatalf("ClaimTask(id) of a future task = %v, %v; want nil, nil", got, err)
	}
	now := newTask(t, img.ID, opsTransform)
	now.RunAfter = time.Now().Add(-time.Second)
	if _, err := s.CreateTasks(ctx, []*imaged.Task{now}, nil); err != nil {
		t.Fatalf("CreateTasks: %v", err)
	}
	got, err := s.ClaimTask(ctx, "", nil, "w", time.Minute)
	if err != nil || got == nil || got.ID != now.ID {
		t.Fatalf("ClaimTask = %v, %v; want the runnable task %s", got, err, now.ID)
	}
	wantStatus(t, getTask(t, s, later.ID), imaged.StatusQueued)
}

func testClaimConcurrently(t *testing.T, s imaged.TaskStore) {
	ctx := t.Context()
	const n, workers = 50, 8
	tasks := createTasks(t, s, n, opsTransform)
	var mu sync.Mutex
	claimed := map[string]int{}
	var wg sync.WaitGroup
	errs := make(chan error, workers)
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				got, err := s.ClaimTask(ctx, "", []string{imaged.TaskTypeTransform}, fmt.Sprintf("worker-%d", w), time.Minute)
				if err != nil {
					errs <- err
					return
				}
				if got == nil {
					return
				}
				if got.Attempts != 1 {
					errs <- fmt.Errorf("task %s claimed at attempt %d", got.ID, got.Attempts)
					return
				}
				mu.Lock()
				claimed[got.ID]++
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatalf("concurrent ClaimTask: %v", err)
	}
	for _, task := range tasks {
		if claimed[task.ID] != 1 {
			t.Fatalf("task %s claimed %d times, want once", task.ID, claimed[task.ID])
		}
	}
	if len(claimed) != n {
		t.Fatalf("%d tasks claimed, want %d", len(claimed), n)
	}
}

// --- outcomes ------------------------------------------------------------------------------

func testCompleteTask(t *testing.T, s imaged.TaskStore) {
	ctx := t.Context()
	tasks := createTasks(t, s, 2, opsOCR)
	_, err := s.CompleteTask(ctx, tasks[1].ID, 0, &imaged.TaskResult{})
	wantCode(t, err, imaged.EConflict, "CompleteTask of a queued task")

	c := claim(t, s, tasks[0].ID)
	res := &imaged.TaskResult{
		Output: &imaged.Output{Key: "results/2026/11/28/" + c.ID + ".webp", Format: "webp",
			ContentType: "image/webp", Width: 800, Height: 600, Bytes: 4567, SHA256: "abc"},
		Analyses: []imaged.Analysis{
			{Op: "info", Result: json.RawMessage(`{"width": 800, "height": 600, "format": "webp"}`)},
			{Op: "ocr", Result: json.RawMessage(`{"text":"héllo wörld","lines":[{"text":"héllo","confidence":0.97,"box":[1,2,3,4]}],"engine":"tesseract"}`)},
		},
		ProcessingSeconds: 1.25,
	}
	before := time.Now()
	done, err := s.CompleteTask(ctx, c.ID, c.Attempts, res)
	if err != nil {
		t.Fatalf("CompleteTask: %v", err)
	}
	wantStatus(t, done, imaged.StatusCompleted)
	wantNear(t, "FinishedAt", done.FinishedAt, before)
	got := getTask(t, s, c.ID)
	wantStatus(t, got, imaged.StatusCompleted)
	if got.Result == nil || got.Result.Output == nil {
		t.Fatalf("stored result = %+v", got.Result)
	}
	if *got.Result.Output != *res.Output || got.Result.ProcessingSeconds != 1.25 {
		t.Fatalf("stored output = %+v, %v; want %+v, 1.25", got.Result.Output, got.Result.ProcessingSeconds, res.Output)
	}
	if len(got.Result.Analyses) != 2 {
		t.Fatalf("stored %d analyses, want 2", len(got.Result.Analyses))
	}
	for i, a := range res.Analyses {
		g := got.Result.Analyses[i]
		if g.Op != a.Op || !jsonEqual(g.Result, a.Result) {
			t.Fatalf("analysis %d = %s %s, want %s %s", i, g.Op, g.Result, a.Op, a.Result)
		}
	}
	if got.Error != nil || got.LeaseUntil != nil || got.Attempts != 1 {
		t.Fatalf("completed task = error %v, lease %v, attempts %d", got.Error, got.LeaseUntil, got.Attempts)
	}

	_, err = s.CompleteTask(ctx, c.ID, c.Attempts, res)
	wantCode(t, err, imaged.EConflict, "CompleteTask twice")
	_, err = s.FailTask(ctx, c.ID, c.Attempts, &imaged.TaskFailure{Code: imaged.EInternal, Message: "late"})
	wantCode(t, err, imaged.EConflict, "FailTask of a completed task")
	_, err = s.RetryTask(ctx, c.ID, c.Attempts, time.Now(), nil)
	wantCode(t, err, imaged.EConflict, "RetryTask of a completed task")
	_, err = s.CancelTask(ctx, imaged.DefaultTenant, c.ID)
	wantCode(t, err, imaged.EConflict, "CancelTask of a completed task")
	if got := getTask(t, s, c.ID); got.Status != imaged.StatusCompleted || got.Result == nil || got.Error != nil {
		t.Fatalf("a refused update changed the task: %+v", got)
	}
}

func testFailTask(t *testing.T, s imaged.TaskStore) {
	ctx := t.Context()
	tasks := createTasks(t, s, 1, opsTransform)
	c := claim(t, s, tasks[0].ID)
	f := &imaged.TaskFailure{Code: imaged.EInvalid, Message: "the image cannot be decoded: truncated jpeg"}
	before := time.Now()
	failed, err := s.FailTask(ctx, c.ID, c.Attempts, f)
	if err != nil {
		t.Fatalf("FailTask: %v", err)
	}
	wantStatus(t, failed, imaged.StatusFailed)
	wantNear(t, "FinishedAt", failed.FinishedAt, before)
	got := getTask(t, s, c.ID)
	wantStatus(t, got, imaged.StatusFailed)
	if got.Error == nil || *got.Error != *f {
		t.Fatalf("stored error = %+v, want %+v", got.Error, f)
	}
	if got.Result != nil || got.LeaseUntil != nil {
		t.Fatalf("failed task has result %v, lease %v", got.Result, got.LeaseUntil)
	}
	_, err = s.CompleteTask(ctx, c.ID, c.Attempts, &imaged.TaskResult{})
	wantCode(t, err, imaged.EConflict, "CompleteTask of a failed task")
	_, err = s.FailTask(ctx, c.ID, c.Attempts, f)
	wantCode(t, err, imaged.EConflict, "FailTask twice")
}

func testRetryTask(t *testing.T, s imaged.TaskStore) {
	ctx := t.Context()
	// Retried into the future: queued, keeps the error, not claimable until RunAfter.
	c, f := putBack(t, s, "RetryTask", s.RetryTask, 1)
	_, err := s.RetryTask(ctx, c.ID, c.Attempts, time.Now(), f)
	wantCode(t, err, imaged.EConflict, "RetryTask of a queued task")

	// Retried into the past: claimable at once as attempt 2, which sees the last error and
	// clears it by completing.
	tasks := createTasks(t, s, 1, opsTransform)
	c = claim(t, s, tasks[0].ID)
	if _, err := s.RetryTask(ctx, c.ID, c.Attempts, time.Now().Add(-time.Second), f); err != nil {
		t.Fatalf("RetryTask: %v", err)
	}
	c, err = s.ClaimTask(ctx, "", nil, "worker-2", time.Minute)
	if err != nil || c == nil || c.ID != tasks[0].ID {
		t.Fatalf("ClaimTask after retry = %v, %v; want %s", c, err, tasks[0].ID)
	}
	if c.Attempts != 2 || c.WorkerID != "worker-2" {
		t.Fatalf("second claim = attempt %d, worker %q; want 2, worker-2", c.Attempts, c.WorkerID)
	}
	if c.Error == nil || *c.Error != *f {
		t.Fatalf("second attempt lost the last error: %+v", c.Error)
	}
	done, err := s.CompleteTask(ctx, c.ID, 2, &imaged.TaskResult{})
	if err != nil {
		t.Fatalf("CompleteTask of attempt 2: %v", err)
	}
	if done.Error != nil {
		t.Fatalf("completed task still carries the error %+v", done.Error)
	}
}

func testStaleAttemptConflicts(t *testing.T, s imaged.TaskStore) {
	ctx := t.Context()
	tasks := createTasks(t, s, 1, opsTransform)
	c1 := claim(t, s, tasks[0].ID)
	if _, err := s.RetryTask(ctx, c1.ID, 1, time.Now().Add(-time.Second), &imaged.TaskFailure{Code: imaged.EInternal, Message: "x"}); err != nil {
		t.Fatalf("RetryTask: %v", err)
	}
	c2 := claim(t, s, c1.ID)
	if c2.Attempts != 2 {
		t.Fatalf("second claim at attempt %d, want 2", c2.Attempts)
	}
	_, err := s.CompleteTask(ctx, c1.ID, 1, &imaged.TaskResult{})
	wantCode(t, err, imaged.EConflict, "CompleteTask of a stale attempt")
	_, err = s.FailTask(ctx, c1.ID, 1, &imaged.TaskFailure{Code: imaged.EInternal, Message: "stale"})
	wantCode(t, err, imaged.EConflict, "FailTask of a stale attempt")
	_, err = s.RetryTask(ctx, c1.ID, 1, time.Now(), nil)
	wantCode(t, err, imaged.EConflict, "RetryTask of a stale attempt")
	_, err = s.CompleteTask(ctx, c1.ID, 3, &imaged.TaskResult{})
	wantCode(t, err, imaged.EConflict, "CompleteTask of a future attempt")
	got := getTask(t, s, c1.ID)
	if got.Status != imaged.StatusProcessing || got.Attempts != 2 {
		t.Fatalf("refused updates changed the task: %+v", got)
	}
	if _, err := s.CompleteTask(ctx, c1.ID, 2, &imaged.TaskResult{}); err != nil {
		t.Fatalf("CompleteTask of the current attempt: %v", err)
	}
}

// --- sweeping and depth --------------------------------------------------------------------

// A worker's heartbeat keeps its task's lease ahead of the sweeper; a lost lease (requeued,
// finished, another attempt) cannot be extended.
func testExtendLease(t *testing.T, s imaged.TaskStore) {
	ctx := t.Context()
	tasks := createTasks(t, s, 1, opsTransform)
	c, err := s.ClaimTask(ctx, tasks[0].ID, nil, "w", time.Minute)
	if err != nil || c == nil {
		t.Fatalf("ClaimTask: %v, %v", c, err)
	}
	until := time.Now().Add(time.Hour)
	if err := s.ExtendLease(ctx, c.ID, c.Attempts, until); err != nil {
		t.Fatalf("ExtendLease: %v", err)
	}
	wantNear(t, "LeaseUntil", getTask(t, s, c.ID).LeaseUntil, until)
	if got, err := s.RequeueExpired(ctx, time.Now().Add(10*time.Minute), false); err != nil || len(got) != 0 {
		t.Fatalf("RequeueExpired(+10m) after the extension = %v, %v; want nothing", got, err)
	}
	wantCode(t, s.ExtendLease(ctx, c.ID, c.Attempts+1, until), imaged.EConflict, "ExtendLease of another attempt")
	if got, err := s.RequeueExpired(ctx, time.Now().Add(2*time.Hour), false); err != nil || len(got) != 1 {
		t.Fatalf("RequeueExpired(+2h) = %v, %v; want the task", got, err)
	}
	wantCode(t, s.ExtendLease(ctx, c.ID, c.Attempts, until), imaged.EConflict, "ExtendLease of a requeued task")
	wantCode(t, s.ExtendLease(ctx, "no-such-task", 1, until), imaged.ENotFound, "ExtendLease of a missing task")
}

func testRequeueExpired(t *testing.T, s imaged.TaskStore) {
	ctx := t.Context()
	tasks := createTasks(t, s, 3, opsTransform)
	long, err := s.ClaimTask(ctx, tasks[0].ID, nil, "w", time.Hour)
	if err != nil || long == nil {
		t.Fatalf("ClaimTask: %v, %v", long, err)
	}
	short, err := s.ClaimTask(ctx, tasks[1].ID, nil, "w", time.Minute)
	if err != nil || short == nil {
		t.Fatalf("ClaimTask: %v, %v", short, err)
	}
	// tasks[2] stays queued and must not be touched.

	got, err := s.RequeueExpired(ctx, time.Now(), false)
	if err != nil {
		t.Fatalf("RequeueExpired(now): %v", err)
	}
	if len(got) != 0 {
		t.Fatalf("RequeueExpired(now) requeued %v before any lease ran out", got)
	}
	got, err = s.RequeueExpired(ctx, time.Now().Add(10*time.Minute), false)
	if err != nil {
		t.Fatalf("RequeueExpired: %v", err)
	}
	if !slices.Equal(got, []string{short.ID}) {
		t.Fatalf("RequeueExpired(+10m) = %v, want [%s]", got, short.ID)
	}
	r := getTask(t, s, short.ID)
	wantStatus(t, r, imaged.StatusQueued)
	if r.LeaseUntil != nil || r.Attempts != 1 {
		t.Fatalf("requeued task = lease %v, attempts %d; want no lease, attempts kept", r.LeaseUntil, r.Attempts)
	}
	wantStatus(t, getTask(t, s, long.ID), imaged.StatusProcessing)

	// The late worker of attempt 1 cannot finish it once it runs again.
	again := claim(t, s, short.ID)
	if again.Attempts != 2 {
		t.Fatalf("reclaimed at attempt %d, want 2", again.Attempts)
	}
	_, err = s.CompleteTask(ctx, short.ID, 1, &imaged.TaskResult{})
	wantCode(t, err, imaged.EConflict, "CompleteTask by the expired attempt")

	got, err = s.RequeueExpired(ctx, time.Now(), true)
	if err != nil {
		t.Fatalf("RequeueExpired(all): %v", err)
	}
	slices.Sort(got)
	want := []string{long.ID, again.ID}
	slices.Sort(want)
	if !slices.Equal(got, want) {
		t.Fatalf("RequeueExpired(all) = %v, want %v", got, want)
	}
	for _, task := range tasks {
		wantStatus(t, getTask(t, s, task.ID), imaged.StatusQueued)
	}
	if got, err := s.RequeueExpired(ctx, time.Now(), true); err != nil || len(got) != 0 {
		t.Fatalf("RequeueExpired with nothing processing = %v, %v", got, err)
	}
}

func testCountQueued(t *testing.T, s imaged.TaskStore) {
	ctx := t.Context()
	counts, err := s.CountQueued(ctx)
	if err != nil {
		t.Fatalf("CountQueued: %v", err)
	}
	for typ, n := range counts {
		if n != 0 {
			t.Fatalf("empty store counts %d %s tasks", n, typ)
		}
	}
	tr := createTasks(t, s, 3, opsTransform)
	createTasks(t, s, 2, opsOCR)
	claim(t, s, tr[0].ID)
	if _, err := s.CancelTask(ctx, imaged.DefaultTenant, tr[1].ID); err != nil {
		t.Fatalf("CancelTask: %v", err)
	}
	counts, err = s.CountQueued(ctx)
	if err != nil {
		t.Fatalf("CountQueued: %v", err)
	}
	if counts[imaged.TaskTypeTransform] != 1 || counts[imaged.TaskTypeOCR] != 2 || counts[imaged.TaskTypeDetect] != 0 {
		t.Fatalf("CountQueued = %v, want transform 1, ocr 2, detect 0", counts)
	}
}

func testTimesAreUTC(t *testing.T, s imaged.TaskStore) {
	ctx := t.Context()
	img := createImage(t, s)
	zone := time.FixedZone("UTC+5", 5*3600)
	created := time.Date(2026, 11, 28, 15, 4, 5, 987_654_321, zone)
	task := newTask(t, img.ID, opsTransform)
	task.CreatedAt = created
	task.RunAfter = created
	if _, err := s.CreateTasks(ctx, []*imaged.Task{task}, nil); err != nil {
		t.Fatalf("CreateTasks: %v", err)
	}
	got := getTask(t, s, task.ID)
	wantTime(t, "CreatedAt", got.CreatedAt, created)
	wantTime(t, "RunAfter", got.RunAfter, created)
	c := claim(t, s, task.ID)
	for name, tm := range map[string]*time.Time{"StartedAt": c.StartedAt, "LeaseUntil": c.LeaseUntil} {
		if tm == nil || tm.Location() != time.UTC {
			t.Fatalf("%s = %v, want a UTC time", name, tm)
		}
	}
	page, _, err := s.ListTasks(ctx, imaged.TaskFilter{Tenant: imaged.DefaultTenant})
	if err != nil || len(page) != 1 {
		t.Fatalf("ListTasks = %d tasks, %v", len(page), err)
	}
	if page[0].CreatedAt.Location() != time.UTC {
		t.Fatalf("listed CreatedAt %v is not UTC", page[0].CreatedAt)
	}
	wantTime(t, "listed CreatedAt", page[0].CreatedAt, created)
}
