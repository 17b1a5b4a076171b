package queuetest

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	"github.com/imaged/imaged"
)

// A consumer of some task types gets only those, and a consumer of the others (another worker
// pool, in the same consumer group on Kafka) gets the rest: ML workers scale apart from
// transform workers on every queue.
func testConsumersOfSomeTypes(t *testing.T, h Harness) {
	q := open(t, h)
	byType := map[string][]*imaged.Task{}
	for _, typ := range imaged.TaskTypes {
		byType[typ] = createTasks(t, h.Store, typ, 2)
		for _, task := range byType[typ] {
			if err := q.Publish(t.Context(), task, 0); err != nil {
				t.Fatalf("Publish: %v", err)
			}
		}
	}
	var ml, rest deliveries
	consume(t, q, imaged.ConsumeOptions{WorkerID: "ml", Types: []string{imaged.TaskTypeOCR, imaged.TaskTypeDetect}},
		false, recorder(h.Store, &ml))
	completed := func(typs ...string) func() bool {
		return func() bool {
			for _, typ := range typs {
				for _, task := range byType[typ] {
					if status(t, h.Store, task.ID) != imaged.StatusCompleted {
						return false
					}
				}
			}
			return true
		}
	}
	waitFor(t, "the ocr and detect tasks completed by the ML consumer", completed(imaged.TaskTypeOCR, imaged.TaskTypeDetect))
	for _, task := range byType[imaged.TaskTypeTransform] {
		if s := status(t, h.Store, task.ID); s != imaged.StatusQueued {
			t.Fatalf("transform task %s is %s with only an ML consumer running", task.ID, s)
		}
	}
	consume(t, open(t, h), imaged.ConsumeOptions{WorkerID: "transform", Types: []string{imaged.TaskTypeTransform}},
		false, recorder(h.Store, &rest))
	waitFor(t, "the transform tasks completed", completed(imaged.TaskTypeTransform))
	for typ, tasks := range byType {
		for _, task := range tasks {
			gotML, gotRest := ml.count(task.ID), rest.count(task.ID)
			if typ == imaged.TaskTypeTransform && (gotML != 0 || gotRest == 0) ||
				typ != imaged.TaskTypeTransform && (gotRest != 0 || gotML == 0) {
				t.Errorf("%s task %s delivered %d times to the ML consumer and %d to the transform one", typ, task.ID, gotML, gotRest)
			}
		}
	}
	for _, d := range ml.all {
		if d.Type == imaged.TaskTypeTransform {
			t.Errorf("the ML consumer got a transform delivery: %+v", d)
		}
	}
}

// While ConsumeOptions.Ready blocks (the worker's dependencies are down) nothing is taken: the
// task stays queued and no handler runs; once it returns, the task is delivered.
func testReadyHoldsTheTaking(t *testing.T, h Harness) {
	q := open(t, h)
	task := publish(t, h, q, 1)[0]
	gate := make(chan struct{})
	var asked atomic.Int32
	ready := func(ctx context.Context) error {
		asked.Add(1)
		select {
		case <-gate:
			return nil
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	var r deliveries
	consume(t, q, imaged.ConsumeOptions{WorkerID: "gated", Ready: ready}, false, recorder(h.Store, &r))
	waitFor(t, "the consumer to ask whether it may take work", func() bool { return asked.Load() > 0 })
	// Give a wrong consumer the moment it would need to take the task anyway.
	time.Sleep(300 * time.Millisecond)
	if n := r.count(task.ID); n != 0 {
		t.Fatalf("the task was delivered %d times while Ready blocked", n)
	}
	if s := status(t, h.Store, task.ID); s != imaged.StatusQueued {
		t.Fatalf("the task is %s while Ready blocked, want queued (not claimed)", s)
	}
	close(gate)
	waitFor(t, "the task completed once Ready let go", func() bool {
		return status(t, h.Store, task.ID) == imaged.StatusCompleted
	})
}
