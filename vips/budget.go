package vips

import (
	"context"
	"runtime"

	govips "github.com/davidbyttow/govips/v2/vips"
)

// budget bounds the memory that the pipelines running at once expect libvips to hold, in MiB.
// The number of pipelines in flight is bounded elsewhere (2×CPU), but their sources are not
// alike: a progressive 8 MP JPEG keeps about 50 MiB of DCT coefficients while it decodes, even
// when shrinking on load, where a baseline one keeps a few. A pipeline takes its estimate from
// the budget before any pixel is computed and waits while the others' estimates fill it; one
// estimated over the whole budget runs alone.
type budget struct {
	total  int
	tokens chan struct{} // one per MiB free
	turn   chan struct{} // held by the one pipeline taking tokens, so two never split them
}

func newBudget(mib int) *budget {
	b := &budget{total: mib, tokens: make(chan struct{}, mib), turn: make(chan struct{}, 1)}
	for i := 0; i < mib; i++ {
		b.tokens <- struct{}{}
	}
	return b
}

// defaultBudget is 64 MiB per CPU: on 2 CPUs two progressive 8 MP decodes at once, which keep
// both CPUs busy, and any number of small ones.
func defaultBudget() int { return 64 * runtime.NumCPU() }

// take waits until mib MiB are free (all of it for a pipeline estimated over the budget) and
// returns the function that gives them back.
func (b *budget) take(ctx context.Context, mib int) (func(), error) {
	if b == nil {
		return func() {}, nil
	}
	n := min(max(mib, 1), b.total)
	select {
	case b.turn <- struct{}{}:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	for got := 0; got < n; got++ {
		select {
		case <-b.tokens:
		case <-ctx.Done():
			for ; got > 0; got-- {
				b.tokens <- struct{}{}
			}
			<-b.turn
			return nil, ctx.Err()
		}
	}
	<-b.turn
	return func() {
		for i := 0; i < n; i++ {
			b.tokens <- struct{}{}
		}
	}, nil
}

// memoryCost estimates, in MiB, what libvips holds at once while it decodes and runs a
// pipeline over img, a w×h source as displayed: a progressive JPEG's decoder keeps every DCT
// coefficient of the full-size image (about 6 bytes a pixel with libvips' buffers, measured on
// 4:2:0 photos) even when it shrinks on load; a source decoded at full size its pixels; a
// baseline JPEG or a WebP that shrinks on load about its scaled pixels (tw×th, the first
// resize's target, when it does); a JPEG decoded at 1/k of its size (k > 1, see jpegShrink)
// those pixels, held in memory, and the resize's output.
func memoryCost(img *govips.ImageRef, w, h, tw, th int, shrinks bool, k int) int {
	bands := max(img.Bands(), 3)
	px := w * h * bands
	if shrinks {
		px = tw * th * bands * 2
	}
	if k > 1 {
		px = (ceilDiv(w, k)*ceilDiv(h, k) + tw*th) * bands
	}
	if img.Format() == govips.ImageTypeJPEG && hasField(img, "jpeg-multiscan") && img.GetInt("jpeg-multiscan") == 1 {
		px = max(px, w*h*6)
	}
	return px>>20 + 1
}

// hasField reports whether img carries a metadata field; reading one it lacks would leave an
// error in libvips' shared error buffer.
func hasField(img *govips.ImageRef, name string) bool {
	for _, f := range img.ImageFields() {
		if f == name {
			return true
		}
	}
	return false
}

func ceilDiv(a, b int) int { return (a + b - 1) / b }

// mebibytes is n bytes in whole MiB, rounded up.
func mebibytes(n int64) int { return int((max(n, 0) + 1<<20 - 1) >> 20) }
