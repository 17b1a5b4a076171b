package storetest

import (
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/imaged/imaged"
)

// RetentionTaskStore is a task store with its side of the retention sweep.
type RetentionTaskStore interface {
	imaged.TaskStore
	imaged.RetentionStore
}

// RunRetention runs the contract of imaged.RetentionStore. open is called once per subtest and
// must return a new, empty store; RunRetention closes it when the subtest ends.
func RunRetention(t *testing.T, open func(t *testing.T) RetentionTaskStore) {
	declareEngineOps()
	tests := []struct {
		name string
		fn   func(t *testing.T, s RetentionTaskStore)
	}{
		{"Lease", testLease},
		{"ExpireResults", testExpireResults},
		{"DeleteTasks", testDeleteTasks},
		{"DeleteTasksTakesSettledDeliveries", testDeleteSettledDeliveries},
		{"DeleteImages", testDeleteImages},
		{"DeleteImageExpiresItsResults", testDeleteImageExpiresResults},
		{"ConcurrentSweepsTakeEachRowOnce", testConcurrentSweeps},
	}
	for _, tc := range slices.Concat(tests, cachedOutputTests) {
		t.Run(tc.name, func(t *testing.T) {
			s := open(t)
			t.Cleanup(func() { s.Close() })
			tc.fn(t, s)
		})
	}
}

// complete claims and completes task with an output image keyed key ("" for none).
func complete(t *testing.T, s imaged.TaskStore, task *imaged.Task, key string) *imaged.Task {
	t.Helper()
	c := claim(t, s, task.ID)
	res := &imaged.TaskResult{Analyses: []imaged.Analysis{{Op: "info", Result: []byte(`{"width":1}`)}}}
	if key != "" {
		res.Output = &imaged.Output{Key: key, Format: "webp", ContentType: "image/webp", Width: 1, Height: 1, Bytes: 1}
	}
	done, err := s.CompleteTask(t.Context(), c.ID, c.Attempts, res)
	if err != nil {
		t.Fatalf("CompleteTask: %v", err)
	}
	return done
}

func resultKeyOf(id string) string { return "results/2026/11/28/" + id + ".webp" }

// takeAll empties the trash and returns it as key → kind.
func takeAll(t *testing.T, s imaged.RetentionStore) map[string]string {
	t.Helper()
	out := map[string]string{}
	for {
		got, err := s.TakeTrash(t.Context(), 2)
		if err != nil {
			t.Fatalf("TakeTrash: %v", err)
		}
		for _, b := range got {
			if _, dup := out[b.Key]; dup {
				t.Fatalf("TakeTrash handed out %s twice", b.Key)
			}
			out[b.Key] = b.Kind
		}
		if len(got) < 2 {
			return out
		}
	}
}

func wantTrash(t *testing.T, got, want map[string]string) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("trash = %v, want %v", got, want)
	}
	for k, kind := range want {
		if got[k] != kind {
			t.Fatalf("trash = %v, want %v", got, want)
		}
	}
}

func wantExpired(t *testing.T, task *imaged.Task, reason string, at time.Time) {
	t.Helper()
	if task.ResultExpiredReason != reason {
		t.Fatalf("task %s: ResultExpiredReason = %q, want %q", task.ID, task.ResultExpiredReason, reason)
	}
	if reason == "" {
		if task.ResultExpiredAt != nil {
			t.Fatalf("task %s: ResultExpiredAt = %v, want unset", task.ID, task.ResultExpiredAt)
		}
		return
	}
	wantNear(t, "ResultExpiredAt", task.ResultExpiredAt, at)
}

func testLease(t *testing.T, s RetentionTaskStore) {
	ctx := t.Context()
	take := func(holder string, ttl time.Duration) bool {
		t.Helper()
		ok, err := s.AcquireLease(ctx, "sweep", holder, ttl)
		if err != nil {
			t.Fatalf("AcquireLease(%s): %v", holder, err)
		}
		return ok
	}
	if !take("a", time.Minute) {
		t.Fatal("a could not take a free lease")
	}
	if take("b", time.Minute) {
		t.Fatal("b took a's lease before it ran out")
	}
	if !take("a", time.Minute) {
		t.Fatal("a could not renew its own lease")
	}
	if ok, err := s.AcquireLease(ctx, "other", "b", time.Minute); err != nil || !ok {
		t.Fatalf("a lease of another name = %v, %v; want taken", ok, err)
	}
	if err := s.ReleaseLease(ctx, "sweep", "b"); err != nil {
		t.Fatal(err)
	}
	if take("b", time.Minute) {
		t.Fatal("b released a's lease")
	}
	if err := s.ReleaseLease(ctx, "sweep", "a"); err != nil {
		t.Fatal(err)
	}
	if !take("b", 50*time.Millisecond) {
		t.Fatal("b could not take a released lease")
	}
	// Once b's short lease runs out, a takes it over.
	deadline := time.Now().Add(10 * time.Second)
	for !take("a", time.Minute) {
		if time.Now().After(deadline) {
			t.Fatal("a never took over the lease b let run out")
		}
		time.Sleep(10 * time.Millisecond)
	}
	if take("b", time.Minute) {
		t.Fatal("b took the lease back from a")
	}
}

func testExpireResults(t *testing.T, s RetentionTaskStore) {
	ctx := t.Context()
	tasks := createTasks(t, s, 5, opsTransform)
	old := complete(t, s, tasks[0], resultKeyOf(tasks[0].ID))
	analysesOnly := complete(t, s, tasks[1], "")
	c := claim(t, s, tasks[2].ID)
	failed, err := s.FailTask(ctx, c.ID, c.Attempts, &imaged.TaskFailure{Code: imaged.EInvalid, Message: "bad"})
	if err != nil {
		t.Fatal(err)
	}
	young := complete(t, s, tasks[3], resultKeyOf(tasks[3].ID))
	if !old.FinishedAt.Before(*young.FinishedAt) {
		t.Fatalf("the store's clock did not move between two completions: %v, %v", old.FinishedAt, young.FinishedAt)
	}
	cutoff := *young.FinishedAt // old, analysesOnly and failed finished before it; young did not
	at := time.Now().UTC().Truncate(time.Millisecond)
	n, err := s.ExpireResults(ctx, cutoff, at, 10)
	if err != nil || n != 1 {
		t.Fatalf("ExpireResults = %d, %v; want 1 (the one old result with an image)", n, err)
	}
	wantExpired(t, getTask(t, s, old.ID), imaged.ResultExpiredAge, at)
	for _, id := range []string{analysesOnly.ID, failed.ID, young.ID, tasks[4].ID} {
		wantExpired(t, getTask(t, s, id), "", time.Time{})
	}
	if got := getTask(t, s, old.ID); got.Result == nil || len(got.Result.Analyses) != 1 || got.Status != imaged.StatusCompleted {
		t.Fatalf("an expired task lost its analyses or status: %+v", got)
	}
	refs, err := s.Referenced(ctx, []string{resultKeyOf(old.ID), resultKeyOf(young.ID), "results/none.webp"})
	if err != nil {
		t.Fatal(err)
	}
	if !refs[resultKeyOf(old.ID)] || !refs[resultKeyOf(young.ID)] || refs["results/none.webp"] {
		t.Fatalf("Referenced = %v; want the trashed and the live result, not the unknown key", refs)
	}
	wantTrash(t, takeAll(t, s), map[string]string{resultKeyOf(old.ID): imaged.BlobResult})
	if refs, err := s.Referenced(ctx, []string{resultKeyOf(old.ID)}); err != nil || refs[resultKeyOf(old.ID)] {
		t.Fatalf("Referenced(taken out of the trash) = %v, %v; want not referenced", refs, err)
	}
	if n, err := s.ExpireResults(ctx, cutoff, at, 10); err != nil || n != 0 {
		t.Fatalf("ExpireResults again = %d, %v; want 0", n, err)
	}
	// The limit holds: everything is old now, one at a time.
	if n, err := s.ExpireResults(ctx, time.Now().Add(time.Hour), at, 1); err != nil || n != 1 {
		t.Fatalf("ExpireResults(limit 1) = %d, %v; want 1", n, err)
	}
	wantExpired(t, getTask(t, s, young.ID), imaged.ResultExpiredAge, at)
}

func testDeleteTasks(t *testing.T, s RetentionTaskStore) {
	ctx := t.Context()
	img := createImage(t, s)
	batch := &imaged.Batch{}
	inBatch := []*imaged.Task{newTask(t, img.ID, opsTransform), newTask(t, img.ID, opsTransform)}
	if _, err := s.CreateTasks(ctx, inBatch, batch); err != nil {
		t.Fatal(err)
	}
	single := createTasks(t, s, 3, opsTransform)
	oldDone := complete(t, s, inBatch[0], resultKeyOf(inBatch[0].ID))
	c := claim(t, s, inBatch[1].ID)
	if _, err := s.FailTask(ctx, c.ID, c.Attempts, &imaged.TaskFailure{Code: imaged.EInvalid, Message: "bad"}); err != nil {
		t.Fatal(err)
	}
	cancelled, err := s.CancelTask(ctx, imaged.DefaultTenant, single[0].ID)
	if err != nil {
		t.Fatal(err)
	}
	queued := single[1] // old, but not finished: never deleted
	young := complete(t, s, single[2], resultKeyOf(single[2].ID))
	if !cancelled.FinishedAt.Before(*young.FinishedAt) {
		t.Fatalf("the store's clock did not move: %v, %v", cancelled.FinishedAt, young.FinishedAt)
	}
	tasks, batches, err := s.DeleteTasks(ctx, *young.FinishedAt, 10)
	if err != nil || tasks != 3 || batches != 1 {
		t.Fatalf("DeleteTasks = %d tasks, %d batches, %v; want 3 and 1", tasks, batches, err)
	}
	for _, id := range []string{oldDone.ID, inBatch[1].ID, cancelled.ID} {
		_, err := s.Task(ctx, imaged.DefaultTenant, id)
		wantCode(t, err, imaged.ENotFound, "Task of a deleted task")
	}
	_, _, err = s.Batch(ctx, imaged.DefaultTenant, batch.ID)
	wantCode(t, err, imaged.ENotFound, "Batch whose tasks were all deleted")
	wantStatus(t, getTask(t, s, queued.ID), imaged.StatusQueued)
	wantStatus(t, getTask(t, s, young.ID), imaged.StatusCompleted)
	wantTrash(t, takeAll(t, s), map[string]string{resultKeyOf(oldDone.ID): imaged.BlobResult})
	if tasks, batches, err := s.DeleteTasks(ctx, *young.FinishedAt, 10); err != nil || tasks+batches != 0 {
		t.Fatalf("DeleteTasks again = %d, %d, %v; want nothing", tasks, batches, err)
	}
	// A task whose result already expired does not trash its key again.
	if _, err := s.ExpireResults(ctx, time.Now().Add(time.Hour), time.Now(), 10); err != nil {
		t.Fatal(err)
	}
	takeAll(t, s)
	if tasks, _, err := s.DeleteTasks(ctx, time.Now().Add(time.Hour), 10); err != nil || tasks != 1 {
		t.Fatalf("DeleteTasks(everything finished) = %d, %v; want 1", tasks, err)
	}
	wantTrash(t, takeAll(t, s), map[string]string{})
}

func testDeleteImages(t *testing.T, s RetentionTaskStore) {
	ctx := t.Context()
	now := time.Now().UTC()
	old := &imaged.Image{Key: "images/2026/11/01/" + uniq("old") + ".jpg", Format: "jpeg", ContentType: "image/jpeg",
		Width: 1, Height: 1, Bytes: 1, CreatedAt: now.Add(-2 * time.Hour)}
	if err := s.CreateImage(ctx, old); err != nil {
		t.Fatal(err)
	}
	young := createImage(t, s)
	fromOld := []*imaged.Task{newTask(t, old.ID, opsTransform), newTask(t, old.ID, opsTransform)}
	fromYoung := newTask(t, young.ID, opsTransform)
	if _, err := s.CreateTasks(ctx, fromOld, &imaged.Batch{}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.CreateTasks(ctx, []*imaged.Task{fromYoung}, nil); err != nil {
		t.Fatal(err)
	}
	complete(t, s, fromOld[0], resultKeyOf(fromOld[0].ID))
	complete(t, s, fromYoung, resultKeyOf(fromYoung.ID))
	at := now.Truncate(time.Millisecond)
	n, err := s.DeleteImages(ctx, now.Add(-time.Hour), at, 10)
	if err != nil || n != 1 {
		t.Fatalf("DeleteImages = %d, %v; want 1", n, err)
	}
	_, err = s.Image(ctx, imaged.DefaultTenant, old.ID)
	wantCode(t, err, imaged.ENotFound, "Image of a deleted image")
	if _, err := s.Image(ctx, imaged.DefaultTenant, young.ID); err != nil {
		t.Fatalf("the young image is gone: %v", err)
	}
	wantExpired(t, getTask(t, s, fromOld[0].ID), imaged.ResultExpiredImageDeleted, at)
	wantExpired(t, getTask(t, s, fromOld[1].ID), "", time.Time{}) // queued: no result to expire
	wantExpired(t, getTask(t, s, fromYoung.ID), "", time.Time{})
	wantTrash(t, takeAll(t, s), map[string]string{old.Key: imaged.BlobImage, resultKeyOf(fromOld[0].ID): imaged.BlobResult})
	refs, err := s.Referenced(ctx, []string{old.Key, young.Key})
	if err != nil || refs[old.Key] || !refs[young.Key] {
		t.Fatalf("Referenced = %v, %v; want only the young image", refs, err)
	}
}

func testDeleteImageExpiresResults(t *testing.T, s RetentionTaskStore) {
	ctx := t.Context()
	tasks := createTasks(t, s, 2, opsTransform)
	done := complete(t, s, tasks[0], resultKeyOf(tasks[0].ID))
	before := time.Now()
	if err := s.DeleteImage(ctx, imaged.DefaultTenant, done.ImageID); err != nil {
		t.Fatal(err)
	}
	wantExpired(t, getTask(t, s, done.ID), imaged.ResultExpiredImageDeleted, before)
	wantExpired(t, getTask(t, s, tasks[1].ID), "", time.Time{})
	// The caller deletes the image's own blob; the results' go through the trash.
	wantTrash(t, takeAll(t, s), map[string]string{resultKeyOf(done.ID): imaged.BlobResult})
	wantCode(t, s.DeleteImage(ctx, imaged.DefaultTenant, done.ImageID), imaged.ENotFound, "DeleteImage twice")
}

// Two sweepers at once, without a lease between them, still take each row and each trashed
// blob once: the claims are conditional.
func testConcurrentSweeps(t *testing.T, s RetentionTaskStore) {
	ctx := t.Context()
	const n = 24
	tasks := createTasks(t, s, n, opsTransform)
	want := map[string]bool{}
	for _, task := range tasks {
		complete(t, s, task, resultKeyOf(task.ID))
		want[resultKeyOf(task.ID)] = true
	}
	cutoff := time.Now().Add(time.Hour)
	var (
		mu      sync.Mutex
		expired int
		taken   []string
		wg      sync.WaitGroup
		errs    = make(chan error, 4)
	)
	for range 2 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				k, err := s.ExpireResults(ctx, cutoff, time.Now(), 3)
				if err != nil {
					errs <- err
					return
				}
				got, err := s.TakeTrash(ctx, 2)
				if err != nil {
					errs <- err
					return
				}
				mu.Lock()
				expired += k
				for _, b := range got {
					taken = append(taken, b.Key)
				}
				done := len(taken) == n
				mu.Unlock()
				if k == 0 && len(got) == 0 && done {
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	if expired != n {
		t.Fatalf("two sweepers expired %d results, want %d", expired, n)
	}
	slices.Sort(taken)
	if len(slices.Compact(slices.Clone(taken))) != n || len(taken) != n {
		t.Fatalf("two sweepers took %d keys (%d distinct) from the trash, want %d once each", len(taken), len(slices.Compact(slices.Clone(taken))), n)
	}
	for _, k := range taken {
		if !want[k] {
			t.Fatalf("took %s from the trash, which no task had", k)
		}
	}
}

// The sweep that deletes old tasks deletes the outbox rows that are settled (delivered or given
// up) and as old; a delivery still pending stays whatever its age.
func testDeleteSettledDeliveries(t *testing.T, s RetentionTaskStore) {
	o, ok := s.(imaged.Outbox)
	if !ok {
		t.Skip("this store keeps no outbox")
	}
	ctx := t.Context()
	items := make([]*imaged.OutboxItem, 3)
	for i := range items {
		items[i] = &imaged.OutboxItem{Kind: imaged.OutboxWebhook, Tenant: imaged.DefaultTenant, Event: imaged.EventTaskCompleted,
			TaskID: uniq("task"), URL: "http://receiver.invalid/hook", WebhookID: uniq("msg"), Payload: []byte(`{}`)}
	}
	if err := o.AddToOutbox(ctx, items...); err != nil {
		t.Fatal(err)
	}
	claimed, err := o.ClaimOutbox(ctx, imaged.OutboxWebhook, 10, time.Minute)
	if err != nil || len(claimed) != 3 {
		t.Fatalf("ClaimOutbox = %d items, %v", len(claimed), err)
	}
	outcomes := map[string]imaged.OutboxOutcome{
		items[0].WebhookID: {Delivered: true, StatusCode: 200},
		items[1].WebhookID: {GiveUp: true, Error: "refused"},
		items[2].WebhookID: {NextAttemptAt: time.Now().Add(time.Hour), Error: "receiver down"},
	}
	ids := map[string]string{}
	for _, c := range claimed {
		ids[c.WebhookID] = c.ID
		if err := o.FinishOutbox(ctx, c.ID, c.Claim, outcomes[c.WebhookID]); err != nil {
			t.Fatal(err)
		}
	}
	later := complete(t, s, createTasks(t, s, 1, opsTransform)[0], "")
	if _, _, err := s.DeleteTasks(ctx, later.FinishedAt.Add(time.Second), 10); err != nil {
		t.Fatal(err)
	}
	for i, want := range []bool{false, false, true} {
		_, err := o.Delivery(ctx, imaged.DefaultTenant, ids[items[i].WebhookID])
		if kept := err == nil; kept != want {
			t.Errorf("delivery %d (%+v) kept = %v, want %v (%v)", i, outcomes[items[i].WebhookID], kept, want, err)
		}
	}
}
