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
