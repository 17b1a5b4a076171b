package imaged

import "time"

// SummariseBatch sets b's counts per status, its status and, once every task is terminal, when
// it finished, from tasks: all of the batch's tasks, read together so that the summary agrees
// with them. A batch is queued while all its tasks are, completed once every task is terminal
// (whatever their outcomes; the counts tell them apart) and processing in between.
func SummariseBatch(b *Batch, tasks []*Task) {
	b.Counts = CountStatuses(tasks)
	var last *time.Time
	terminal := 0
	for _, t := range tasks {
		if IsTerminal(t.Status) {
			terminal++
			if t.FinishedAt != nil && (last == nil || t.FinishedAt.After(*last)) {
				last = t.FinishedAt
			}
		}
	}
	b.FinishedAt = nil
	switch {
	case terminal == len(tasks):
		b.Status = StatusCompleted
		if last == nil {
			last = &b.CreatedAt
		}
		fin := *last
		b.FinishedAt = &fin
	case b.Counts[StatusQueued] == len(tasks):
		b.Status = StatusQueued
	default:
		b.Status = StatusProcessing
	}
}

// CountStatuses counts tasks per status, with every status present.
func CountStatuses(tasks []*Task) map[string]int {
	c := make(map[string]int, len(Statuses))
	for _, st := range Statuses {
		c[st] = 0
	}
	for _, t := range tasks {
		c[t.Status]++
	}
	return c
}

// FillTenant gives tasks and their batch (when not nil) the default tenant when they have
// none, and a batch's tasks the batch's tenant, so that a batch never spans tenants.
func FillTenant(tasks []*Task, batch *Batch) {
	tenant := ""
	if batch != nil {
		if batch.Tenant == "" {
			batch.Tenant = DefaultTenant
		}
		tenant = batch.Tenant
	}
	for _, t := range tasks {
		switch {
		case tenant != "":
			t.Tenant = tenant
		case t.Tenant == "":
			t.Tenant = DefaultTenant
		}
	}
}

// PrepareCreate sets what a store fills in on tasks it is about to record (and on their batch,
// when not nil): ids left empty, types left empty (from the ops), the queued state with no
// attempt and no outcome, each task's batch id, and the new batch's total and counts. Times
// are the store's to set.
func PrepareCreate(tasks []*Task, batch *Batch) {
	if batch != nil {
		if batch.ID == "" {
			batch.ID = NewOrderedID()
		}
		batch.Total = len(tasks)
		batch.Status = StatusQueued
		batch.Counts = CountStatuses(nil)
		batch.Counts[StatusQueued] = len(tasks)
		batch.FinishedAt = nil
	}
	for _, t := range tasks {
		if t.ID == "" {
			t.ID = NewOrderedID()
		}
		if t.Type == "" {
			t.Type = TaskTypeOf(t.Ops)
		}
		t.Status = StatusQueued
		t.Attempts = 0
		t.WorkerID = ""
		t.StartedAt, t.FinishedAt, t.LeaseUntil, t.Result, t.Error = nil, nil, nil, nil, nil
		if batch != nil {
			t.BatchID = batch.ID
		}
	}
}

// ReplayBatch writes a stored batch and its tasks into the arguments of a CreateTasks whose
// batch's idempotency key was stored already; EConflict when the stored batch holds another
// number of tasks, since the arguments cannot carry it back.
func ReplayBatch(batch *Batch, tasks []*Task, stored *Batch, storedTasks []*Task) error {
	if len(storedTasks) != len(tasks) {
		return Errorf(EConflict, "the idempotency key was used for a batch of %d tasks, not %d", len(storedTasks), len(tasks))
	}
	*batch = *stored
	for i := range tasks {
		*tasks[i] = *storedTasks[i]
	}
	return nil
}
