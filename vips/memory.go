package vips

// #cgo pkg-config: vips
// #include <vips/vips.h>
//
// static VipsImage *imaged_copy_memory(VipsImage *in) {
//     return vips_image_copy_memory(in);
// }
//
// static void imaged_unref(VipsImage *im) {
//     if (G_IS_OBJECT(im)) g_object_unref(im);
// }
//
// static int imaged_is_memory(VipsImage *im) {
//     return im->dtype == VIPS_IMAGE_SETBUF || im->dtype == VIPS_IMAGE_SETBUF_FOREIGN ||
//         im->dtype == VIPS_IMAGE_MMAPIN || im->dtype == VIPS_IMAGE_MMAPINRW;
// }
//
// static const char *imaged_error(void) {
//     return vips_error_buffer();
// }
import "C"

import (
	"errors"
	"reflect"
	"strings"
	"unsafe"

	govips "github.com/davidbyttow/govips/v2/vips"
)

// govips keeps the libvips image of an ImageRef in an unexported field and offers no
// vips_image_copy_memory. refImage is that field's offset, found by reflection once, so that
// inMemory can call libvips directly; refImageOK is false when a govips version lays ImageRef out
// differently, and inMemory then falls back to an uncompressed PNG round trip.
var refImage, refImageOK = func() (uintptr, bool) {
	f, ok := reflect.TypeOf(govips.ImageRef{}).FieldByName("image")
	if !ok || f.Type.Kind() != reflect.Pointer || !strings.HasSuffix(f.Type.Elem().Name(), "_VipsImage") {
		return 0, false
	}
	return f.Offset, true
}()

// vipsImage is the address of img's libvips image pointer.
func vipsImage(img *govips.ImageRef) **C.VipsImage {
	return (**C.VipsImage)(unsafe.Add(unsafe.Pointer(img), refImage))
}

// inMemory computes img into a new image that libvips holds in memory, uncompressed, with
// random access and every metadata field kept. Later ops read it without recomputing the ops
// before: libvips evaluates lazily and its operation cache is off, so an op that asks for
// overlapping regions (a resize, a blur, a rotation) would otherwise make everything upstream
// run again for each region. The copy costs width×height×bands bytes. An image that libvips
// already holds in memory is shared, not copied.
func inMemory(img *govips.ImageRef) (*govips.ImageRef, error) {
	if !refImageOK {
		return inMemoryPNG(img)
	}
	mem := C.imaged_copy_memory(*vipsImage(img))
	if mem == nil {
		msg := strings.TrimSpace(C.GoString(C.imaged_error()))
		C.vips_error_clear()
		if msg == "" {
			msg = "vips_image_copy_memory failed"
		}
		return nil, errors.New(msg)
	}
	// Copy gives a new ImageRef (with img's format fields) around a cheap lazy copy; its
	// libvips image is then swapped for the computed one, which the ImageRef now owns.
	dup, err := img.Copy()
	if err != nil {
		C.imaged_unref(mem)
		return nil, err
	}
	slot := vipsImage(dup)
	old := *slot
	*slot = mem
	C.imaged_unref(old)
	return dup, nil
}

// inMemoryPNG is inMemory through an uncompressed PNG, which keeps the EXIF block. The image
// must be 8-bit sRGB or grey (normalized).
func inMemoryPNG(img *govips.ImageRef) (*govips.ImageRef, error) {
	p := govips.NewPngExportParams()
	p.Compression = 0
	p.Filter = govips.PngFilterNone
	data, _, err := img.ExportPng(p)
	if err != nil {
		return nil, err
	}
	return govips.NewImageFromBuffer(data)
}

// isHeld reports whether libvips holds img's pixels in memory rather than computing them on
// demand.
func isHeld(img *govips.ImageRef) bool {
	return refImageOK && C.imaged_is_memory(*vipsImage(img)) != 0
}
