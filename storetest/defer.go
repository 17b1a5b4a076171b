package storetest

import (
	"context"
	"testing"
	"time"

	"github.com/imaged/imaged"
)

// testDeferTask: an attempt a dependency's outage cut short goes back to queued without being
// counted: the next claim has the same attempt number, a stale deferral conflicts, and a
// deferred task waits for its RunAfter like a retry.
func testDeferTask(t *testing.T, s imaged.TaskStore) {
	ctx := t.Context()
	c, f := putBack(t, s, "DeferTask", s.DeferTask, 0)
	_, err := s.DeferTask(ctx, c.ID, c.Attempts, time.Now(), f)
	wantCode(t, err, imaged.EConflict, "DeferTask of a queued task")
	_, err = s.DeferTask(ctx, "no-such-task", 1, time.Now(), f)
	wantCode(t, err, imaged.ENotFound, "DeferTask of an unknown task")

	// Deferred into the past, twice: each claim is attempt 1 again, and the attempt that
	// completes it is attempt 1.
	tasks := createTasks(t, s, 1, opsTransform)
	c = claim(t, s, tasks[0].ID)
	for i := 0; i < 2; i++ {
		if _, err := s.DeferTask(ctx, c.ID, c.Attempts, time.Now().Add(-time.Second), f); err != nil {
			t.Fatalf("DeferTask %d: %v", i+1, err)
		}
		c = claim(t, s, tasks[0].ID)
		if c.Attempts != 1 {
			t.Fatalf("claim after deferral %d at attempt %d, want 1", i+1, c.Attempts)
		}
	}
	done, err := s.CompleteTask(ctx, c.ID, 1, &imaged.TaskResult{})
	if err != nil {
		t.Fatalf("CompleteTask after deferrals: %v", err)
	}
	if done.Attempts != 1 || done.Error != nil {
		t.Fatalf("completed after deferrals: attempts %d, error %+v; want 1 and none", done.Attempts, done.Error)
	}
	_, err = s.DeferTask(ctx, c.ID, 1, time.Now(), f)
	wantCode(t, err, imaged.EConflict, "DeferTask of a completed task")
}

// putBack claims a new task, puts it back with put (RetryTask or DeferTask, named verb) to run
// in an hour, and checks it is queued at wantAttempts attempts, without lease or finish time,
// keeping the failure as its error, and not claimable before its RunAfter. It returns the
// claimed task and the failure.
func putBack(t *testing.T, s imaged.TaskStore, verb string,
	put func(ctx context.Context, id string, attempt int, runAfter time.Time, f *imaged.TaskFailure) (*imaged.Task, error),
	wantAttempts int) (*imaged.Task, *imaged.TaskFailure) {
	t.Helper()
	ctx := t.Context()
	f := &imaged.TaskFailure{Code: imaged.EUnavailable, Message: "storage is unavailable (circuit open)"}
	c := claim(t, s, createTasks(t, s, 1, opsTransform)[0].ID)
	runAfter := time.Now().Add(time.Hour).UTC()
	got, err := put(ctx, c.ID, c.Attempts, runAfter, f)
	if err != nil {
		t.Fatalf("%s: %v", verb, err)
	}
	wantStatus(t, got, imaged.StatusQueued)
	got = getTask(t, s, c.ID)
	wantStatus(t, got, imaged.StatusQueued)
	wantTime(t, "RunAfter", got.RunAfter, runAfter)
	if got.Attempts != wantAttempts || got.LeaseUntil != nil || got.FinishedAt != nil {
		t.Fatalf("after %s: attempts %d, lease %v, finished %v; want %d attempts, no lease, unfinished", verb,
			got.Attempts, got.LeaseUntil, got.FinishedAt, wantAttempts)
	}
	if got.Error == nil || *got.Error != *f {
		t.Fatalf("after %s: error %+v, want %+v", verb, got.Error, f)
	}
	if c2, err := s.ClaimTask(ctx, "", nil, "w", time.Minute); err != nil || c2 != nil {
		t.Fatalf("ClaimTask before RunAfter after %s = %v, %v; want nil, nil", verb, c2, err)
	}
	if c2, err := s.ClaimTask(ctx, c.ID, nil, "w", time.Minute); err != nil || c2 != nil {
		t.Fatalf("ClaimTask(id) before RunAfter after %s = %v, %v; want nil, nil", verb, c2, err)
	}
	return c, f
}
