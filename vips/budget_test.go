package vips

import (
	"context"
	"errors"
	"testing"
	"time"

	govips "github.com/davidbyttow/govips/v2/vips"
)

func TestBudget(t *testing.T) {
	b := newBudget(100)
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
	// More than the whole budget runs alone, when everything is free.
	short, cancel := context.WithTimeout(ctx, 50*time.Millisecond)
	defer cancel()
	if _, err := b.take(short, 500); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("took the whole budget while 50 MiB were taken: %v", err)
	}
	if len(b.tokens) != 50 {
		t.Fatalf("a cancelled take kept tokens: %d free, want 50", len(b.tokens))
	}
	r2()
	r3, err := b.take(ctx, 500)
	if err != nil {
		t.Fatal(err)
	}
	if len(b.tokens) != 0 {
		t.Fatalf("%d MiB free while an oversized pipeline runs", len(b.tokens))
	}
	r3()
	if len(b.tokens) != 100 {
		t.Fatalf("%d MiB free at the end, want 100", len(b.tokens))
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
