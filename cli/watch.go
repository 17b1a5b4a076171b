package cli

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/imaged/imaged"
	"github.com/imaged/imaged/client"
)

var watchCommand = command{
	name: "watch", args: "[flags] TASK|BATCH", minArgs: 1, maxArgs: 1,
	summary: "follow a task or a batch live until it ends",
	help: `Follows the task's or batch's event stream (GET /v1/tasks/{id}/events, /v1/batches/{id}/events):
a line per event as it happens, from its state when watch starts to its end. --json writes one
JSON object a line: {"event","id","data"}. The exit status is 0 when the task completed (every
task of the batch did), 1 when it failed or was cancelled.

  imaged watch 0b7c2f4e-…
  imaged watch $BATCH --json | jq -c 'select(.event == "task.failed")'`,
	run: runWatch,
}

func runWatch(ctx context.Context, e *Env, o *options, args []string) error {
	c, err := e.client(o)
	if err != nil {
		return err
	}
	id := args[0]
	show := func(ev client.Event) error {
		if o.json {
			b, err := json.Marshal(struct {
				Event string          `json:"event"`
				ID    string          `json:"id,omitempty"`
				Data  json.RawMessage `json:"data"`
			}{ev.Type, ev.ID, ev.Data})
			if err != nil {
				return err
			}
			_, err = fmt.Fprintf(e.Stdout, "%s\n", b)
			return err
		}
		fmt.Fprintf(e.Stdout, "%s  %s\n", time.Now().Format("15:04:05"), describe(ev))
		return nil
	}
	err = c.WatchTask(ctx, id, show)
	if client.IsCode(err, imaged.ENotFound) {
		if err = c.WatchBatch(ctx, id, show); err == nil {
			b, err := c.Batch(ctx, id)
			if err != nil {
				return err
			}
			return failures(b.Total-b.Counts[imaged.StatusCompleted], b.Total, "tasks of batch "+id)
		}
	}
	if err != nil {
		return err
	}
	t, err := c.Task(ctx, id)
	if err != nil {
		return err
	}
	if t.Status != imaged.StatusCompleted {
		if t.Error != nil {
			return fmt.Errorf("task %s %s: %s", id, t.Status, t.Error.Message)
		}
		return fmt.Errorf("task %s %s", id, t.Status)
	}
	return nil
}

// describe is one line about an event.
func describe(ev client.Event) string {
	switch ev.Type {
	case "task":
		t, err := ev.Task()
		if err != nil {
			return ev.Type
		}
		return fmt.Sprintf("task %s %s (attempt %d of %d)%s", t.ID, t.Status, t.Attempts, t.MaxAttempts, outcome(t.Result, t.Error))
	case "batch":
		b, err := ev.Batch()
		if err != nil {
			return ev.Type
		}
		return fmt.Sprintf("batch %s %s: %s", b.ID, b.Status, counts(b.Total, b.Counts))
	}
	x, err := ev.Event()
	if err != nil {
		return ev.Type
	}
	s := ev.Type
	if x.TaskID != "" {
		s += " " + x.TaskID
	}
	if x.Attempt > 0 && ev.Type == imaged.EventTaskStarted {
		s += fmt.Sprintf(" (attempt %d)", x.Attempt)
	}
	if ev.Type == imaged.EventBatchCompleted {
		var d struct {
			Total  int            `json:"total"`
			Counts map[string]int `json:"counts"`
		}
		if json.Unmarshal(x.Data, &d) == nil && d.Counts != nil {
			s += ": " + counts(d.Total, d.Counts)
		}
	}
	return s + outcome(x.Result, x.Error)
}

func outcome(r *imaged.TaskResult, f *imaged.TaskFailure) string {
	switch {
	case f != nil:
		return ": " + f.Message
	case r != nil && r.Output != nil:
		return fmt.Sprintf(": %s %dx%d, %d bytes in %.2fs", r.Output.Format, r.Output.Width, r.Output.Height, r.Output.Bytes, r.ProcessingSeconds)
	case r != nil:
		return fmt.Sprintf(": %d analyses in %.2fs", len(r.Analyses), r.ProcessingSeconds)
	}
	return ""
}

func counts(total int, c map[string]int) string {
	done := c[imaged.StatusCompleted] + c[imaged.StatusFailed] + c[imaged.StatusCancelled]
	return fmt.Sprintf("%d/%d done (completed %d, failed %d, cancelled %d)", done, total,
		c[imaged.StatusCompleted], c[imaged.StatusFailed], c[imaged.StatusCancelled])
}
