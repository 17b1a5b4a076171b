package vips

import (
	"context"
	"errors"
	"testing"
	"time"

	govips "github.com/davidbyttow/govips/v2/vips"
)

// freeMiB is what the budget has free now.
func (b *budget) freeMiB() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.free
}

func TestBudget(t *testing.T) {
	b := newBudget(100) // 12 MiB kept for small shares
	ctx := context.Background()
	r1, err := b.take(ctx, 60)
	if err != nil {
		t.Fatal(err)
	}
	// 60 of 100 taken: 50 more must wait until the first gives its share back.
	got := make(chan func())
	go func() {
		r, err := b.take(ctx, 50)
		if err != nil {
			t.Error(err)
		}
		got <- r
	}()
	select {
	case <-got:
		t.Fatal("took 50 MiB while only 40 were free")
	case <-time.After(50 * time.Millisecond):
	}
	r1()
	r2 := <-got
	// More than the whole budget takes all of it but the reserve, once that is free.
	short, cancel := context.WithTimeout(ctx, 50*time.Millisecond)
	defer cancel()
	if _, err := b.take(short, 500); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("took the whole budget while 50 MiB were taken: %v", err)
	}
	if f := b.freeMiB(); f != 50 {
		t.Fatalf("a cancelled take kept MiB: %d free, want 50", f)
	}
	r2()
	r3, err := b.take(ctx, 500)
	if err != nil {
		t.Fatal(err)
	}
	if f := b.freeMiB(); f != 12 {
		t.Fatalf("%d MiB free while an oversized pipeline runs, want the reserve, 12", f)
	}
	// Small pipelines run beside it, within the reserve; a larger one waits.
	s1, err := b.take(ctx, 8)
	if err != nil {
		t.Fatal(err)
	}
	short2, cancel2 := context.WithTimeout(ctx, 50*time.Millisecond)
	defer cancel2()
	if _, err := b.take(short2, 13); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("a 13 MiB share went beside an oversized pipeline: %v", err)
	}
	s1()
	r3()
	if f := b.freeMiB(); f != 100 {
		t.Fatalf("%d MiB free at the end, want 100", f)
	}

	// A small share goes at once while a large one waits, within the reserve; the large one
	// is not starved by them.
	big, err := b.take(ctx, 60)
	if err != nil {
		t.Fatal(err)
	}
	waiting := make(chan func())
	go func() {
		r, err := b.take(ctx, 80)
		if err != nil {
			t.Error(err)
		}
		waiting <- r
	}()
	for {
		b.mu.Lock()
		n := len(b.queue)
		b.mu.Unlock()
		if n == 1 {
			break
		}
		time.Sleep(time.Millisecond) // until the large one waits
	}
	quick, cancel3 := context.WithTimeout(ctx, time.Second)
	defer cancel3()
	small, err := b.take(quick, 10)
	if err != nil {
		t.Fatalf("a small share waited behind a large one: %v", err)
	}
	short3, cancel4 := context.WithTimeout(ctx, 50*time.Millisecond)
	defer cancel4()
	if _, err := b.take(short3, 10); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("small shares went past the reserve while a large one waits: %v", err)
	}
	big()
	(<-waiting)() // 80 beside the 10 in the reserve
	small()
	if f := b.freeMiB(); f != 100 {
		t.Fatalf("%d MiB free at the end, want 100", f)
	}
	var none *budget
	r, err := none.take(ctx, 1000)
	if err != nil {
		t.Fatal(err)
	}
	r()
}

func TestMemoryCost(t *testing.T) {
	load := func(data []byte) *govips.ImageRef {
		img, err := govips.NewImageFromBuffer(data)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(img.Close)
		return img
	}
	base := load(bigJPEG(t)) // 3383x2250, baseline
	if c := memoryCost(base, 3383, 2250, 800, 532, true, 1); c > 4 {
		t.Errorf("a baseline JPEG shrinking on load costs %d MiB, want a few", c)
	}
	if c := memoryCost(base, 3383, 2250, 0, 0, false, 1); c < 21 || c > 23 {
		t.Errorf("a full decode of 3383x2250x3 costs %d MiB, want 22", c)
	}
	if c := memoryCost(base, 3383, 2250, 800, 532, true, 4); c < 2 || c > 4 {
		t.Errorf("a baseline JPEG decoded at a quarter costs %d MiB, want 846x563x3 + 800x532x3, 3", c)
	}
	prog, _, err := base.ExportJpeg(&govips.JpegExportParams{Quality: 85, Interlace: true})
	if err != nil {
		t.Fatal(err)
	}
	if c := memoryCost(load(prog), 3383, 2250, 800, 532, true, 4); c < 43 || c > 45 {
		t.Errorf("a progressive JPEG shrinking on load costs %d MiB, want 44 (its coefficients)", c)
	}
}
