package worker_test

import (
	"context"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/imaged/imaged"
	"github.com/imaged/imaged/worker"
)

// panickingStore stands in for any part of an attempt that panics.
type panickingStore struct{ imaged.TaskStore }

func (panickingStore) Image(context.Context, string, string) (*imaged.Image, error) { panic("boom") }

func (panickingStore) ExtendLease(context.Context, string, int, time.Time) error { return nil }

// A panic in an attempt is an outcome that could not be recorded: Handle returns it as an error,
// so the queue delivers the task again instead of losing it with the crashed goroutine.
func TestHandleTurnsAPanicIntoAnError(t *testing.T) {
	w := worker.New(worker.Config{}, panickingStore{}, nil, nil, nil, nil, nil, slog.New(slog.DiscardHandler))
	task := &imaged.Task{ID: "t", Tenant: imaged.DefaultTenant, ImageID: "i", Type: imaged.TaskTypeTransform, Status: imaged.StatusProcessing,
		Attempts: 1, MaxAttempts: 3}
	err := w.Handle(t.Context(), &imaged.Delivery{TaskID: "t", Task: task})
	if err == nil || !strings.Contains(err.Error(), "panicked: boom") {
		t.Fatalf("Handle of a panicking attempt = %v", err)
	}
}
