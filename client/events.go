package client

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"io"
	"strconv"
	"strings"
	"time"

	"github.com/imaged/imaged"
)

// Event is one Server-Sent Event of a task's or batch's stream. A stream starts with the current
// state (Type "task" or "batch": Data is what Task or Batch answers, read with Task or Batch),
// then carries each event as it happens (Type is the event's type, e.g. task.started,
// task.completed, batch.completed: Data is an imaged.Event, read with Event).
type Event struct {
	Type string
	ID   string
	Data json.RawMessage
}

// Task reads a "task" snapshot.
func (e Event) Task() (*imaged.Task, error) {
	var t imaged.Task
	return &t, json.Unmarshal(e.Data, &t)
}

// Batch reads a "batch" snapshot.
func (e Event) Batch() (*Batch, error) {
	var b Batch
	return &b, json.Unmarshal(e.Data, &b)
}

// Event reads an event that is not a snapshot.
func (e Event) Event() (*imaged.Event, error) {
	var ev imaged.Event
	return &ev, json.Unmarshal(e.Data, &ev)
}

// ErrStopWatching, returned by a watch's callback, ends the watch without an error.
var ErrStopWatching = errors.New("stop watching")

// WatchTask calls fn with each event of the task (GET /v1/tasks/{id}/events) until the task is
// completed, failed or cancelled, fn returns an error or ctx ends. A stream that breaks before
// the end is opened again (it starts with the state then, so nothing is missed).
func (c *Client) WatchTask(ctx context.Context, id string, fn func(Event) error) error {
	return c.watch(ctx, "GET /v1/tasks/{id}/events", id, fn, func(e Event) bool {
		switch e.Type {
		case "task":
			t, err := e.Task()
			return err == nil && imaged.IsTerminal(t.Status)
		case imaged.EventTaskCompleted, imaged.EventTaskFailed, imaged.EventTaskCancelled:
			return true
		}
		return false
	})
}

// WatchBatch calls fn with each event of the batch (GET /v1/batches/{id}/events), its tasks'
// included, until every task of the batch is done, fn returns an error or ctx ends.
func (c *Client) WatchBatch(ctx context.Context, id string, fn func(Event) error) error {
	return c.watch(ctx, "GET /v1/batches/{id}/events", id, fn, func(e Event) bool {
		switch e.Type {
		case "batch":
			b, err := e.Batch()
			return err == nil && imaged.IsTerminal(b.Status)
		case imaged.EventBatchCompleted:
			return true
		}
		return false
	})
}

// watch follows a stream, opening it again while it ends early: the server ends streams at
// shutdown, and a proxy may cut a long one. A stream that cannot be opened is an error.
func (c *Client) watch(ctx context.Context, route, id string, fn func(Event) error, final func(Event) bool) error {
	for {
		done, retry, err := c.stream(ctx, route, id, fn, final)
		if done || errors.Is(err, ErrStopWatching) {
			return nil
		}
		if err != nil {
			return err
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(retry):
		}
	}
}

// stream reads one connection of a stream: done when the final event came; no error when the
// stream ended (or broke) before, so that it is opened again after retry.
func (c *Client) stream(ctx context.Context, route, id string, fn func(Event) error, final func(Event) bool) (done bool, retry time.Duration, err error) {
	resp, cancel, err := c.do(ctx, request{route: route, params: []string{id}, stream: true,
		header: map[string][]string{"Accept": {"text/event-stream"}}})
	if err != nil {
		return false, 0, err
	}
	defer cancel()
	defer resp.Body.Close()
	retry = 2 * time.Second
	var fnErr error
	_ = readEvents(resp.Body, func(e Event, r time.Duration) error {
		if r > 0 {
			retry = r
		}
		if e.Type == "" {
			return nil
		}
		if fnErr = fn(e); fnErr != nil {
			return fnErr
		}
		if final(e) {
			done = true
			return io.EOF
		}
		return nil
	})
	switch {
	case done:
		return true, retry, nil
	case fnErr != nil:
		return false, retry, fnErr
	}
	return false, retry, ctx.Err()
}

// readEvents parses text/event-stream (https://html.spec.whatwg.org/multipage/server-sent-events.html):
// fields event, data (lines joined with \n), id and retry; lines starting with ':' are comments.
// emit gets each event at its blank line (an event with no type and no data only carries retry).
func readEvents(r io.Reader, emit func(Event, time.Duration) error) error {
	br := bufio.NewReaderSize(r, 64<<10)
	var e Event
	var data strings.Builder
	var retry time.Duration
	hasData := false
	for {
		line, err := br.ReadString('\n')
		if err != nil && (line == "" || err != io.EOF) {
			if err == io.EOF {
				return nil
			}
			return err
		}
		line = strings.TrimRight(line, "\r\n")
		if line == "" {
			if hasData || e.Type != "" || retry > 0 {
				if hasData && e.Type == "" {
					e.Type = "message"
				}
				e.Data = json.RawMessage(data.String())
				if err := emit(e, retry); err != nil {
					return err
				}
			}
			e, data, retry, hasData = Event{}, strings.Builder{}, 0, false
			continue
		}
		if strings.HasPrefix(line, ":") {
			continue
		}
		field, value, _ := strings.Cut(line, ":")
		value = strings.TrimPrefix(value, " ")
		switch field {
		case "event":
			e.Type = value
		case "data":
			if hasData {
				data.WriteByte('\n')
			}
			data.WriteString(value)
			hasData = true
		case "id":
			e.ID = value
		case "retry":
			if ms, err := strconv.Atoi(value); err == nil && ms >= 0 {
				retry = time.Duration(ms) * time.Millisecond
			}
		}
	}
}
