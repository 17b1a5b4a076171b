package imaged

import (
	"bytes"
	"compress/zlib"
	"encoding/binary"
	"errors"
	"hash/crc32"
	"io"
)

// The structural checks below walk a file's segments or chunks, and for PNG inflate its pixel
// stream without keeping it, to refuse at upload what a decoder would fail on later, piece by
// piece, in a worker (a PNG whose data stops short decodes into thousands of libvips warnings
// and grey rows). None of them builds pixels.

// checkJPEG follows a JPEG's markers from its start to its end-of-image marker: the segments by
// their lengths and each scan's entropy-coded data up to the next marker. A file that ends
// before that marker is truncated; bytes after it (a trailer some cameras and editors append)
// are left alone, as decoders do.
func checkJPEG(b []byte) error {
	truncated := Errorf(EInvalid, "the jpeg is truncated: its data ends before the end-of-image marker")
	i := 2 // after SOI
	for {
		// Markers may be padded with any number of 0xFF bytes.
		for i < len(b) && b[i] == 0xFF && i+1 < len(b) && b[i+1] == 0xFF {
			i++
		}
		if i+1 >= len(b) {
			return truncated
		}
		if b[i] != 0xFF {
			return Errorf(EInvalid, "the jpeg is damaged: a marker is missing at byte %d", i)
		}
		m := b[i+1]
		i += 2
		switch {
		case m == 0xD9: // EOI
			return nil
		case m == 0x01 || (m >= 0xD0 && m <= 0xD7): // no length
			continue
		}
		if i+2 > len(b) {
			return truncated
		}
		n := int(binary.BigEndian.Uint16(b[i:]))
		if n < 2 {
			return Errorf(EInvalid, "the jpeg is damaged: a segment at byte %d has length %d", i-2, n)
		}
		i += n
		if i > len(b) {
			return truncated
		}
		if m != 0xDA { // not SOS
			continue
		}
		// Entropy-coded data runs to the next marker other than a stuffed 0xFF00 or a restart.
		for {
			k := bytes.IndexByte(b[i:], 0xFF)
			if k < 0 || i+k+1 >= len(b) {
				return truncated
			}
			i += k
			if next := b[i+1]; next == 0x00 || (next >= 0xD0 && next <= 0xD7) || next == 0xFF {
				i++
				if next != 0xFF {
					i++
				}
				continue
			}
			break
		}
	}
}

// pngChannels is the number of samples per pixel of each PNG colour type.
var pngChannels = map[byte]int{0: 1, 2: 3, 3: 1, 4: 2, 6: 4}

// checkPNG walks a PNG's chunks to IEND, checking each one's length and CRC, and counts the
// bytes its compressed pixel stream inflates to against what its header's size, depth, colour
// type and interlacing need. It stops inflating once that many bytes came out, so it costs a
// pass over the compressed data and no pixel memory.
func checkPNG(b []byte) error {
	const sig = 8
	var (
		ihdr []byte
		idat [][]byte
	)
	i := sig
	for {
		if i+12 > len(b) {
			return Errorf(EInvalid, "the png is truncated: it ends inside a chunk, before IEND")
		}
		n := int64(binary.BigEndian.Uint32(b[i:]))
		typ := string(b[i+4 : i+8])
		if n > int64(len(b)-i-12) {
			return Errorf(EInvalid, "the png is truncated: its %s chunk needs %d bytes, %d are left", printable(typ), n, len(b)-i-12)
		}
		data := b[i+8 : i+8+int(n)]
		if crc32.ChecksumIEEE(b[i+4:i+8+int(n)]) != binary.BigEndian.Uint32(b[i+8+int(n):]) {
			return Errorf(EInvalid, "the png is damaged: its %s chunk fails its checksum", printable(typ))
		}
		i += 12 + int(n)
		switch typ {
		case "IHDR":
			ihdr = data
		case "IDAT":
			idat = append(idat, data)
		}
		if typ == "IEND" {
			break
		}
	}
	if len(ihdr) != 13 {
		return Errorf(EInvalid, "the png is damaged: it has no valid IHDR chunk")
	}
	if len(idat) == 0 {
		return Errorf(EInvalid, "the png has no image data (IDAT)")
	}
	want, ok := pngRawSize(ihdr)
	if !ok {
		return Errorf(EInvalid, "the png header is damaged: unknown colour type %d or bit depth %d", ihdr[9], ihdr[8])
	}
	z, err := zlib.NewReader(&chunksReader{chunks: idat})
	if err != nil {
		return Errorf(EInvalid, "the png image data is damaged: it is not a zlib stream")
	}
	got, err := io.Copy(io.Discard, io.LimitReader(z, want))
	if got < want {
		reason := "it ends"
		if err != nil && !errors.Is(err, io.ErrUnexpectedEOF) {
			reason = "it is damaged"
		}
		return Errorf(EInvalid, "the png image data is shorter than its header promises: %s after %d of %d bytes", reason, got, want)
	}
	return nil
}

// pngRawSize is the number of bytes a PNG's filtered scanlines take, from its IHDR chunk:
// each row of each interlacing pass has a filter byte and its samples, packed to whole bytes.
func pngRawSize(ihdr []byte) (int64, bool) {
	w, h := int64(binary.BigEndian.Uint32(ihdr[0:])), int64(binary.BigEndian.Uint32(ihdr[4:]))
	depth, ch := int64(ihdr[8]), int64(pngChannels[ihdr[9]])
	if ch == 0 || (depth != 1 && depth != 2 && depth != 4 && depth != 8 && depth != 16) {
		return 0, false
	}
	rows := func(w, h int64) int64 {
		if w == 0 || h == 0 {
			return 0
		}
		return h * (1 + (w*ch*depth+7)/8)
	}
	if ihdr[12] == 0 {
		return rows(w, h), true
	}
	// Adam7: seven passes over sub-grids starting at (x0, y0) every (dx, dy).
	var total int64
	for _, p := range [7][4]int64{{0, 0, 8, 8}, {4, 0, 8, 8}, {0, 4, 4, 8}, {2, 0, 4, 4}, {0, 2, 2, 4}, {1, 0, 2, 2}, {0, 1, 1, 2}} {
		total += rows((w-p[0]+p[2]-1)/p[2], (h-p[1]+p[3]-1)/p[3])
	}
	return total, true
}

// chunksReader reads the IDAT chunks' data as one stream.
type chunksReader struct{ chunks [][]byte }

func (r *chunksReader) Read(p []byte) (int, error) {
	for len(r.chunks) > 0 && len(r.chunks[0]) == 0 {
		r.chunks = r.chunks[1:]
	}
	if len(r.chunks) == 0 {
		return 0, io.EOF
	}
	n := copy(p, r.chunks[0])
	r.chunks[0] = r.chunks[0][n:]
	return n, nil
}

// checkBMP refuses a BMP whose pixel array would run past the end of the file (the header's
// size, depth and data offset say where it ends). Compressed BMPs (RLE) have no fixed size and
// are left to the decoder; the header reader refuses the depths and compressions it lacks.
func checkBMP(b []byte) error {
	if len(b) < 14+16 {
		return Errorf(EInvalid, "the bmp is truncated: its headers are incomplete")
	}
	off := int64(binary.LittleEndian.Uint32(b[10:]))
	dib := binary.LittleEndian.Uint32(b[14:])
	var w, h, bpp, compression int64
	switch {
	case dib == 12: // OS/2 BITMAPCOREHEADER
		w, h = int64(binary.LittleEndian.Uint16(b[18:])), int64(binary.LittleEndian.Uint16(b[20:]))
		bpp = int64(binary.LittleEndian.Uint16(b[24:]))
	case dib >= 40 && len(b) >= 14+40:
		w = int64(int32(binary.LittleEndian.Uint32(b[18:])))
		h = int64(int32(binary.LittleEndian.Uint32(b[22:])))
		bpp = int64(binary.LittleEndian.Uint16(b[28:]))
		compression = int64(binary.LittleEndian.Uint32(b[30:]))
	default:
		return Errorf(EInvalid, "the bmp header is damaged: an info header of %d bytes", dib)
	}
	if h < 0 {
		h = -h
	}
	if compression != 0 && compression != 3 { // BI_RGB, BI_BITFIELDS: uncompressed rows
		return nil
	}
	if off < 14+int64(dib) {
		return Errorf(EInvalid, "the bmp header is damaged: its pixels start at byte %d, inside its headers", off)
	}
	need := off + h*((w*bpp+31)/32*4)
	if need > int64(len(b)) {
		return Errorf(EInvalid, "the bmp is truncated: its pixels need %d bytes, the file has %d", need, len(b))
	}
	return nil
}

// printable keeps a chunk type readable in a message.
func printable(s string) string {
	for _, c := range []byte(s) {
		if c < 0x20 || c > 0x7E {
			return "damaged"
		}
	}
	return s
}
