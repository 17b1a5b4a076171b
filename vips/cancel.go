package vips

// #include <vips/vips.h>
//
// static void imaged_ref(VipsImage *im) { g_object_ref(im); }
// static void imaged_let_go(VipsImage *im) { g_object_unref(im); }
// static void imaged_kill(VipsImage *im) { vips_image_set_kill(im, TRUE); }
import "C"

import (
	"context"

	govips "github.com/davidbyttow/govips/v2/vips"
)

// evaluating runs fn, which computes the pixels of img or of images made from it, and stops
// libvips when ctx ends first: libvips checks an image's kill flag each time a region of it is
// computed, so setting it on img makes the computation fail at its next tile, and the worker
// threads stop within a tile's work rather than at the end of the image. A client that left, or
// a deadline that passed, thus frees the CPU, the pipeline's slot and its memory budget at
// once. fn's error is then the context's, not libvips' "killed". img is held (referenced) while
// fn runs, since fn may replace it and the kill may come from another goroutine.
func evaluating(ctx context.Context, img *govips.ImageRef, fn func() error) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if !refImageOK || ctx.Done() == nil || img == nil {
		return fn()
	}
	vi := *vipsImage(img)
	if vi == nil {
		return fn()
	}
	C.imaged_ref(vi)
	defer C.imaged_let_go(vi)
	killed := make(chan struct{})
	stop := context.AfterFunc(ctx, func() {
		C.imaged_kill(vi)
		close(killed)
	})
	err := fn()
	if !stop() {
		// The kill ran or is running: wait for it before letting go of the image.
		<-killed
	}
	if cerr := ctx.Err(); cerr != nil && err != nil {
		return cerr
	}
	return err
}
