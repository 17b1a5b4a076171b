package imaged_test

import (
	"context"
	"testing"
	"time"

	"github.com/imaged/imaged"
)

func TestEveryRunsUntilDone(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	calls := 0
	imaged.Every(ctx, time.Millisecond, func() {
		calls++
		if calls == 3 {
			cancel()
		}
	})
	if calls != 3 {
		t.Fatalf("fn ran %d times after the end, want 3", calls)
	}
}

func TestEveryReturnsAtOnceWhenDone(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	imaged.Every(ctx, time.Millisecond, func() { t.Error("fn ran after ctx was done") })
}
