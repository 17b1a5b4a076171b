package vips

// #cgo pkg-config: vips
// #include <stdlib.h>
// #include <vips/vips.h>
//
// static int imaged_has_operation(const char *name) {
//     return vips_type_find("VipsOperation", name) != 0;
// }
import "C"

import "unsafe"

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
