package imaged

import (
	"context"
	"errors"
	"testing"
	"time"
)

func TestSummariseBatch(t *testing.T) {
	created := time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC)
	at := func(m int) *time.Time { v := created.Add(time.Duration(m) * time.Minute); return &v }
	cases := []struct {
		name     string
		statuses []string
		finished []*time.Time
		want     string
		fin      *time.Time
	}{
		{"all queued", []string{StatusQueued, StatusQueued}, []*time.Time{nil, nil}, StatusQueued, nil},
		{"one running", []string{StatusQueued, StatusProcessing}, []*time.Time{nil, nil}, StatusProcessing, nil},
		{"some done", []string{StatusCompleted, StatusQueued}, []*time.Time{at(1), nil}, StatusProcessing, nil},
		{"all terminal", []string{StatusCompleted, StatusFailed, StatusCancelled}, []*time.Time{at(3), at(5), nil}, StatusCompleted, at(5)},
		{"no tasks", nil, nil, StatusCompleted, &created},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var tasks []*Task
			for i, st := range c.statuses {
				tasks = append(tasks, &Task{Status: st, FinishedAt: c.finished[i]})
			}
			b := &Batch{CreatedAt: created}
			SummariseBatch(b, tasks)
			if b.Status != c.want {
				t.Errorf("status = %s, want %s", b.Status, c.want)
			}
			if (b.FinishedAt == nil) != (c.fin == nil) || (c.fin != nil && !b.FinishedAt.Equal(*c.fin)) {
				t.Errorf("finished_at = %v, want %v", b.FinishedAt, c.fin)
			}
			if len(b.Counts) != len(Statuses) {
				t.Errorf("counts %v do not name every status", b.Counts)
			}
			for _, st := range c.statuses {
				if b.Counts[st] == 0 {
					t.Errorf("counts %v miss %s", b.Counts, st)
				}
			}
		})
	}
}

func TestTaskOptionsValidate(t *testing.T) {
	cases := []struct {
		opts  TaskOptions
		field string
		want  int
	}{
		{TaskOptions{}, "", 3},
		{TaskOptions{MaxAttempts: 10, CallbackURL: "https://example.com/hook"}, "", 10},
		{TaskOptions{MaxAttempts: 11}, "max_attempts", 0},
		{TaskOptions{MaxAttempts: -1}, "max_attempts", 0},
		{TaskOptions{CallbackURL: "ftp://example.com/"}, "callback_url", 0},
		{TaskOptions{CallbackURL: "/relative"}, "callback_url", 0},
	}
	for _, c := range cases {
		o := c.opts
		err := o.Validate(3)
		var e *Error
		switch {
		case c.field == "" && err != nil:
			t.Errorf("%+v: %v", c.opts, err)
		case c.field == "" && o.MaxAttempts != c.want:
			t.Errorf("%+v: max attempts %d, want %d", c.opts, o.MaxAttempts, c.want)
		case c.field != "" && (!errors.As(err, &e) || e.Code != EInvalid || e.Field != c.field):
			t.Errorf("%+v: error %v, want EInvalid on %s", c.opts, err, c.field)
		}
	}
}

// failingStore answers every image read with err.
type failingStore struct {
	TaskStore
	err error
}

func (s failingStore) Image(context.Context, string, string) (*Image, error) { return nil, s.err }

func TestReadImageErrors(t *testing.T) {
	ctx := context.Background()
	_, _, err := ReadImage(ctx, failingStore{err: Errorf(ENotFound, "image x not found")}, nil, DefaultTenant, "x", 0)
	if !IsCode(err, ENotFound) {
		t.Errorf("a missing image: %v, want ENotFound", err)
	}
	cause := errors.New("connection reset")
	_, _, err = ReadImage(ctx, failingStore{err: cause}, nil, DefaultTenant, "x", 0)
	if !IsCode(err, EUnavailable) || !errors.Is(err, cause) {
		t.Errorf("a store failure: %v, want EUnavailable keeping the cause", err)
	}
}
