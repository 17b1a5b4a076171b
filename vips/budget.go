package vips

import (
	"context"
	"slices"
	"sync"

	govips "github.com/davidbyttow/govips/v2/vips"

	"github.com/imaged/imaged"
)

// budget bounds the memory that the pipelines running at once are planned to hold, in MiB.
// The number of pipelines in flight is bounded elsewhere (2×CPU), but their needs are not
// alike: a progressive 8 MP JPEG keeps about 50 MiB of DCT coefficients while it decodes, even
// when shrinking on load, where a baseline one keeps a few; an enlargement to 100 MP holds
// hundreds. A pipeline takes its planned peak from the budget before any pixel is decoded, all
// of it at once, and waits while the others' fill it.
//
// An eighth of the budget is kept for small pipelines (a share within that eighth): a large
// one takes at most the rest, so that one planned over the whole budget runs beside small ones
// only, and a small one never queues behind a large one that waits. Large ones are served in
// the order they came; while one waits, small ones may hold no more than the reserve between
// them, so that it is not starved.
type budget struct {
	total   int
	reserve int // MiB only small shares may use while a large one waits or runs

	mu    sync.Mutex
	free  int
	small int // MiB held by small shares
	queue []*share
}

// share is one pipeline's take, waiting or granted.
type share struct {
	n       int
	small   bool
	granted chan struct{} // closed when the share is taken
}

func newBudget(mib int) *budget {
	return &budget{total: mib, reserve: max(mib/8, 1), free: mib}
}

// defaultBudget is 64 MiB per CPU: on 2 CPUs two progressive 8 MP decodes at once, which keep
// both CPUs busy, and any number of small ones.
func defaultBudget() int { return 64 * imaged.CPUs() }

// take waits until mib MiB are free (for a pipeline planned over the budget, all of it but
// the reserve) and takes them; it returns the function that gives them back.
func (b *budget) take(ctx context.Context, mib int) (func(), error) {
	if b == nil {
		return func() {}, nil
	}
	sh := &share{n: min(max(mib, 1), b.total), granted: make(chan struct{})}
	sh.small = sh.n <= b.reserve
	if !sh.small {
		sh.n = min(sh.n, max(b.total-b.reserve, 1))
	}
	release := func() {
		b.mu.Lock()
		b.giveBack(sh)
		b.mu.Unlock()
	}
	b.mu.Lock()
	b.queue = append(b.queue, sh)
	b.dispatch()
	b.mu.Unlock()
	select {
	case <-sh.granted:
		return release, nil
	case <-ctx.Done():
		b.mu.Lock()
		defer b.mu.Unlock()
		select {
		case <-sh.granted: // granted as the context ended: give it back
			b.giveBack(sh)
		default:
			b.queue = slices.DeleteFunc(b.queue, func(w *share) bool { return w == sh })
			b.dispatch()
		}
		return nil, ctx.Err()
	}
}

// giveBack returns a granted share and serves those waiting. b.mu is held.
func (b *budget) giveBack(sh *share) {
	b.free += sh.n
	if sh.small {
		b.small -= sh.n
	}
	b.dispatch()
}

// dispatch grants the waiting shares that may go now: large ones in order, each once it fits;
// small ones whenever they fit, within the reserve while a large one waits. b.mu is held.
func (b *budget) dispatch() {
	largeWaits := slices.ContainsFunc(b.queue, func(w *share) bool { return !w.small })
	blocked := false // a large share ahead could not go
	waiting := b.queue[:0]
	for _, w := range b.queue {
		var ok bool
		if w.small {
			ok = w.n <= b.free && (!largeWaits || b.small+w.n <= b.reserve)
		} else {
			ok = !blocked && w.n <= b.free
			blocked = blocked || !ok
		}
		if !ok {
			waiting = append(waiting, w)
			continue
		}
		b.free -= w.n
		if w.small {
			b.small += w.n
		}
		close(w.granted)
	}
	clear(b.queue[len(waiting):])
	b.queue = waiting
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
