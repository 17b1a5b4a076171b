package vips

// #cgo pkg-config: vips
// #include <stdlib.h>
// #include <vips/vips.h>
// #ifdef __GLIBC__
// #include <malloc.h>
// #endif
//
// static void imaged_malloc_arenas(int n) {
// #ifdef __GLIBC__
//     mallopt(M_ARENA_MAX, n);
// #endif
// }
//
// static void imaged_malloc_trim(void) {
// #ifdef __GLIBC__
//     malloc_trim(0);
// #endif
// }
//
// static int imaged_has_operation(const char *name) {
//     return vips_type_find("VipsOperation", name) != 0;
// }
import "C"

import (
	"os"
	"sync/atomic"
	"time"
	"unsafe"
)

// blockUntrusted stops libvips from reaching for loaders it marks untrusted (ImageMagick, PDF,
// and other large parsers): imaged only accepts formats it sniffs itself, so nothing is lost.
func blockUntrusted() { C.vips_block_untrusted_set(C.TRUE) }

// savers holds the output formats this libvips build can write, found once at Startup.
var savers = map[string]bool{}

func findSavers() {
	for format, op := range map[string]string{
		"jpeg": "jpegsave_buffer", "png": "pngsave_buffer", "webp": "webpsave_buffer",
		"tiff": "tiffsave_buffer", "gif": "gifsave_buffer", "avif": "heifsave_buffer",
	} {
		name := C.CString(op)
		savers[format] = C.imaged_has_operation(name) != 0
		C.free(unsafe.Pointer(name))
	}
}

// canSave reports whether libvips can write format.
func canSave(format string) bool { return savers[format] }

// limitArenas caps glibc's malloc arenas at 2 unless MALLOC_ARENA_MAX says otherwise. By
// default glibc gives each thread that allocates its own arena, up to 8 per CPU, and freed
// pixel buffers stay in them: with libvips working on many requests' threads, resident memory
// then only grows. imgproxy recommends the same setting.
func limitArenas() {
	if os.Getenv("MALLOC_ARENA_MAX") == "" {
		C.imaged_malloc_arenas(2)
	}
}

// processed counts pipelines run, so that trimming skips idle periods.
var processed atomic.Int64

// trimEvery hands memory that malloc holds free back to the system every interval while
// pipelines run, as imgproxy does: decoding a large image leaves tens of megabytes free in
// malloc's heap, which would otherwise stay resident until the next large image reuses it.
// It returns when stop is closed.
func trimEvery(interval time.Duration, stop <-chan struct{}) {
	t := time.NewTicker(interval)
	defer t.Stop()
	var last int64
	for {
		select {
		case <-stop:
			return
		case <-t.C:
			if n := processed.Load(); n != last {
				last = n
				C.imaged_malloc_trim()
			}
		}
	}
}
