package imaged

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"image"
	_ "image/gif"  // header reader
	_ "image/jpeg" // header reader
	_ "image/png"  // header reader

	_ "golang.org/x/image/bmp"  // header reader
	_ "golang.org/x/image/tiff" // header reader
	_ "golang.org/x/image/webp" // header reader
)

// Limits bound what imaged accepts before any pixel is decoded.
type Limits struct {
	MaxBytes  int64 // request body / image size in bytes
	MaxWidth  int   // pixels
	MaxHeight int   // pixels
	// MaxPixels bounds the largest image a pipeline makes or holds, every frame of an
	// animation counted (see Estimate); MaxCost the estimated CPU of a pipeline, in cost
	// units (CostUnit), 0 for none. Probe reads neither.
	MaxPixels int64
	MaxCost   float64
}

// DefaultLimits are the seed's: 50 MB, 10000×10000 pixels; and 100 MP held at once, and a
// minute or so of one core per pipeline.
var DefaultLimits = Limits{MaxBytes: 50 << 20, MaxWidth: 10000, MaxHeight: 10000, MaxPixels: 100_000_000, MaxCost: 60000}

// Header is what Probe reads from an image's header without decoding pixels.
type Header struct {
	Format string
	Width  int
	Height int
}

// SniffFormat names the image format from its magic bytes, "" when unknown.
func SniffFormat(b []byte) string {
	switch {
	case len(b) >= 3 && b[0] == 0xFF && b[1] == 0xD8 && b[2] == 0xFF:
		return "jpeg"
	case len(b) >= 8 && bytes.Equal(b[:8], []byte("\x89PNG\r\n\x1a\n")):
		return "png"
	case len(b) >= 12 && bytes.Equal(b[:4], []byte("RIFF")) && bytes.Equal(b[8:12], []byte("WEBP")):
		return "webp"
	case len(b) >= 4 && (bytes.Equal(b[:4], []byte("II*\x00")) || bytes.Equal(b[:4], []byte("MM\x00*"))):
		return "tiff"
	case len(b) >= 2 && b[0] == 'B' && b[1] == 'M':
		return "bmp"
	case len(b) >= 6 && (bytes.Equal(b[:6], []byte("GIF87a")) || bytes.Equal(b[:6], []byte("GIF89a"))):
		return "gif"
	case len(b) >= 12 && bytes.Equal(b[4:8], []byte("ftyp")) &&
		(bytes.Equal(b[8:12], []byte("avif")) || bytes.Equal(b[8:12], []byte("avis"))):
		return "avif"
	}
	return ""
}

// Probe validates an image before decode: the format by magic bytes (never the file name or
// Content-Type), the byte size, the dimensions from the header, and the file's structure (a
// truncated JPEG, PNG, BMP, WebP or GIF is refused; see structure.go). No pixel is decoded.
func Probe(b []byte, lim Limits) (*Header, error) {
	if len(b) == 0 {
		return nil, Errorf(EInvalid, "the image is empty")
	}
	if lim.MaxBytes > 0 && int64(len(b)) > lim.MaxBytes {
		return nil, Errorf(ETooLarge, "the image is %d bytes; the limit is %d bytes", len(b), lim.MaxBytes)
	}
	format := SniffFormat(b)
	if format == "" || format == "avif" {
		return nil, Errorf(EUnsupported, "the data is not an image in a supported format (jpeg, png, webp, tiff, bmp, gif)")
	}
	cfg, _, err := image.DecodeConfig(bytes.NewReader(b))
	if err != nil {
		return nil, Errorf(EInvalid, "the %s header is damaged or truncated: %v", format, err)
	}
	if cfg.Width <= 0 || cfg.Height <= 0 {
		return nil, Errorf(EInvalid, "the %s header gives no size", format)
	}
	if (lim.MaxWidth > 0 && cfg.Width > lim.MaxWidth) || (lim.MaxHeight > 0 && cfg.Height > lim.MaxHeight) {
		return nil, Errorf(ETooLarge, "the image is %d×%d pixels; the limit is %d×%d",
			cfg.Width, cfg.Height, lim.MaxWidth, lim.MaxHeight)
	}
	if err := checkEnd(format, b); err != nil {
		return nil, err
	}
	return &Header{Format: format, Width: cfg.Width, Height: cfg.Height}, nil
}

// checkEnd refuses files whose end or data is missing (see structure.go), so truncated uploads
// fail up front instead of failing (or producing grey bands) later in a worker.
func checkEnd(format string, b []byte) error {
	switch format {
	case "jpeg":
		return checkJPEG(b)
	case "png":
		return checkPNG(b)
	case "bmp":
		return checkBMP(b)
	case "webp":
		if len(b) >= 8 {
			size := int64(binary.LittleEndian.Uint32(b[4:8])) + 8
			if size > int64(len(b)) {
				return Errorf(EInvalid, "the webp is truncated: %d of %d bytes", len(b), size)
			}
		}
	case "gif":
		end := bytes.TrimRight(b, "\x00")
		if len(end) == 0 || end[len(end)-1] != 0x3B {
			return Errorf(EInvalid, "the gif is truncated: it has no trailer")
		}
	}
	return nil
}

// String describes a header for logs.
func (h Header) String() string { return fmt.Sprintf("%s %dx%d", h.Format, h.Width, h.Height) }
