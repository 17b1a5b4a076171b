package vips

import (
	"context"
	"errors"
	"syscall"
	"testing"
	"time"

	"github.com/imaged/imaged"
)

// cpuTime is the CPU this process has used, user and system.
func cpuTime(t testing.TB) time.Duration {
	t.Helper()
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		t.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// A pipeline whose context ends stops computing pixels at once, wherever libvips is: in the
// encode (blur alone: the blur runs while the result is written) or holding the image before
// an op that rereads it (blur then resize). Its memory budget is free as soon as it returns.
func TestCancelStopsLibvips(t *testing.T) {
	src := bigJPEG(t)
	for _, tc := range []struct{ name, ops string }{
		{"encode", `[{"op":"blur","sigma":100}]`},
		{"hold", `[{"op":"blur","sigma":100},{"op":"resize","width":3000}]`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := New(Config{MemoryBudget: 64})
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			type outcome struct {
				err error
				at  time.Time
			}
			done := make(chan outcome, 1)
			go func() {
				_, err := p.Process(ctx, src, parseOps(t, tc.ops), imaged.ProcessOptions{})
				done <- outcome{err, time.Now()}
			}()
			// Let libvips get well into the work.
			busyFrom := cpuTime(t)
			deadline := time.Now().Add(20 * time.Second)
			for cpuTime(t)-busyFrom < 700*time.Millisecond {
				select {
				case o := <-done:
					t.Fatalf("the pipeline ended before it was cancelled: %v", o.err)
				default:
				}
				if time.Now().After(deadline) {
					t.Fatal("the pipeline used no CPU")
				}
				time.Sleep(20 * time.Millisecond)
			}
			cancelled := time.Now()
			cancel()
			var o outcome
			select {
			case o = <-done:
			case <-time.After(5 * time.Second):
				t.Fatal("the pipeline still ran 5 s after its context ended")
			}
			latency := o.at.Sub(cancelled)
			if !errors.Is(o.err, context.Canceled) {
				t.Fatalf("got %v, want context.Canceled", o.err)
			}
			if latency > time.Second {
				t.Errorf("the pipeline returned %v after the cancel; want within 1 s", latency)
			}
			// No libvips thread goes on computing behind it.
			before := cpuTime(t)
			time.Sleep(500 * time.Millisecond)
			if used := cpuTime(t) - before; used > 150*time.Millisecond {
				t.Errorf("the process used %v of CPU in the 500 ms after the pipeline returned", used)
			}
			tctx, tcancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
			defer tcancel()
			release, err := p.mem.take(tctx, p.mem.total)
			if err != nil {
				t.Fatalf("the memory budget is not free after the cancel: %v", err)
			}
			release()
			t.Logf("returned %v after the cancel", latency)
		})
	}
}

// A pipeline past its deadline stops likewise, with the deadline's error.
func TestDeadlineStopsLibvips(t *testing.T) {
	p := New(Config{})
	ctx, cancel := context.WithTimeout(context.Background(), 800*time.Millisecond)
	defer cancel()
	start := time.Now()
	_, err := p.Process(ctx, bigJPEG(t), parseOps(t, `[{"op":"blur","sigma":100}]`), imaged.ProcessOptions{})
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("got %v, want context.DeadlineExceeded", err)
	}
	if over := time.Since(start) - 800*time.Millisecond; over > time.Second {
		t.Errorf("the pipeline returned %v after its deadline", over)
	}
}
