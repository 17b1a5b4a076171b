package imaged

import (
	"bytes"
	"encoding/binary"
	"hash/crc32"
	"image"
	"image/color"
	"image/jpeg"
	"image/png"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/image/bmp"
)

// noise is a w×h image whose pixels do not compress away.
func noise(w, h int) *image.RGBA {
	img := image.NewRGBA(image.Rect(0, 0, w, h))
	x := uint32(1)
	for i := range img.Pix {
		x = x*1664525 + 1013904223
		img.Pix[i] = byte(x >> 24)
	}
	return img
}

func encodePNG(t *testing.T, img image.Image) []byte {
	t.Helper()
	var b bytes.Buffer
	if err := png.Encode(&b, img); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

// chunk encodes one PNG chunk with its CRC.
func chunk(typ string, data []byte) []byte {
	var b bytes.Buffer
	binary.Write(&b, binary.BigEndian, uint32(len(data)))
	b.WriteString(typ)
	b.Write(data)
	binary.Write(&b, binary.BigEndian, crc32.ChecksumIEEE(append([]byte(typ), data...)))
	return b.Bytes()
}

// pngParts returns a PNG's IHDR data and its pixel stream, all IDAT chunks together.
func pngParts(full []byte) (ihdr, idat []byte) {
	for i := 8; i+12 <= len(full); {
		n := int(binary.BigEndian.Uint32(full[i:]))
		typ, data := string(full[i+4:i+8]), full[i+8:i+8+n]
		switch typ {
		case "IHDR":
			ihdr = data
		case "IDAT":
			idat = append(idat, data...)
		}
		i += 12 + n
	}
	return ihdr, idat
}

// buildPNG makes a PNG of well-formed chunks (IHDR, one IDAT, IEND).
func buildPNG(ihdr, idat []byte) []byte {
	var b bytes.Buffer
	b.WriteString("\x89PNG\r\n\x1a\n")
	b.Write(chunk("IHDR", ihdr))
	b.Write(chunk("IDAT", idat))
	b.Write(chunk("IEND", nil))
	return b.Bytes()
}

// shortPNG re-chunks a PNG with the first keep bytes of its pixel stream only, every chunk
// well-formed and IEND in place: only the stream's length gives it away.
func shortPNG(full []byte, keep int) []byte {
	ihdr, idat := pngParts(full)
	return buildPNG(ihdr, idat[:keep])
}

func probeErr(t *testing.T, name string, data []byte, want string) {
	t.Helper()
	_, err := Probe(data, DefaultLimits)
	if err == nil {
		t.Errorf("%s: accepted", name)
		return
	}
	if ErrorCode(err) != EInvalid || !strings.Contains(ErrorMessage(err), want) {
		t.Errorf("%s: got %s %q, want invalid_argument with %q", name, ErrorCode(err), ErrorMessage(err), want)
	}
}

func TestProbePNGData(t *testing.T) {
	full := encodePNG(t, noise(300, 200))
	if _, err := Probe(full, DefaultLimits); err != nil {
		t.Fatalf("a whole PNG: %v", err)
	}
	probeErr(t, "pixel stream cut at half", shortPNG(full, len(full)/2), "shorter than its header promises")

	// The header claims 9999×9999; the data is the whole valid stream of a 1-pixel image.
	var ihdr bytes.Buffer
	binary.Write(&ihdr, binary.BigEndian, []uint32{9999, 9999})
	ihdr.Write([]byte{8, 2, 0, 0, 0})
	_, tiny := pngParts(encodePNG(t, image.NewGray(image.Rect(0, 0, 1, 1))))
	probeErr(t, "9999² header over a 1-pixel stream", buildPNG(ihdr.Bytes(), tiny), "shorter than its header promises")

	damaged := bytes.Clone(full)
	damaged[40] ^= 0xFF // inside IDAT: its CRC no longer matches
	probeErr(t, "a flipped byte", damaged, "checksum")
	probeErr(t, "cut before IEND", full[:len(full)-20], "truncated")

	// Every PNG the project ships passes, interlaced and paletted ones included.
	files, _ := filepath.Glob(filepath.Join("vips", "testdata", "*.png"))
	more, _ := filepath.Glob(filepath.Join("testdata", "*.png"))
	for _, f := range append(files, more...) {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := Probe(b, DefaultLimits); err != nil {
			t.Errorf("%s: %v", f, err)
		}
	}
	// Depths and colour types other than 8-bit RGBA.
	pal := image.NewPaletted(image.Rect(0, 0, 33, 7), color.Palette{color.Black, color.White})
	for _, img := range []image.Image{image.NewGray16(image.Rect(0, 0, 17, 5)), pal, image.NewGray(image.Rect(0, 0, 1, 1))} {
		if _, err := Probe(encodePNG(t, img), DefaultLimits); err != nil {
			t.Errorf("%T: %v", img, err)
		}
	}
}

func TestPNGRawSizeInterlaced(t *testing.T) {
	// 3×3 8-bit grey, Adam7: passes 1, 4, 5, 6 and 7 have pixels (1×1, 1×1, 2×1, 1×1... ):
	// pass 1 (0,0): 1 row of 1; pass 2 none; pass 3 none (y0 4); pass 4 (2,0)/4: 1 row of 1;
	// pass 5 (0,2)/2,4: 1 row of 2; pass 6 (1,0)/2,2: 2 rows of 1; pass 7 (0,1)/1,2: 1 row of 3.
	ihdr := []byte{0, 0, 0, 3, 0, 0, 0, 3, 8, 0, 0, 0, 1}
	got, ok := pngRawSize(ihdr)
	want := int64((1 + 1) + (1 + 1) + (1 + 2) + 2*(1+1) + (1 + 3))
	if !ok || got != want {
		t.Fatalf("got %d, want %d", got, want)
	}
}

func TestProbeBMPData(t *testing.T) {
	var b bytes.Buffer
	if err := bmp.Encode(&b, noise(64, 40)); err != nil {
		t.Fatal(err)
	}
	full := b.Bytes()
	if _, err := Probe(full, DefaultLimits); err != nil {
		t.Fatalf("a whole BMP: %v", err)
	}
	probeErr(t, "pixels cut short", full[:len(full)-500], "the bmp is truncated")
	tall := bytes.Clone(full)
	binary.LittleEndian.PutUint32(tall[22:], 400) // the header claims ten times the rows
	probeErr(t, "a header taller than its pixels", tall, "the bmp is truncated")
}

func TestProbeJPEGEnd(t *testing.T) {
	var b bytes.Buffer
	if err := jpeg.Encode(&b, noise(120, 80), &jpeg.Options{Quality: 90}); err != nil {
		t.Fatal(err)
	}
	full := b.Bytes()
	for name, data := range map[string][]byte{
		"whole":                   full,
		"metadata after EOI":      append(bytes.Clone(full), []byte("\x00\x00TRAILER{\"editor\":\"x\"}\xff\xd8\xff")...),
		"zero padding after EOI":  append(bytes.Clone(full), make([]byte, 4096)...),
		"shipped photo":           mustRead(t, "testdata/astronaut.jpg"),
		"shipped photo with EXIF": mustRead(t, "vips/testdata/chelsea-exif6.jpg"),
		"shipped CMYK photo":      mustRead(t, "vips/testdata/chelsea-cmyk.jpg"),
	} {
		if _, err := Probe(data, DefaultLimits); err != nil {
			t.Errorf("%s: %v", name, err)
		}
	}
	probeErr(t, "cut in its scan", full[:len(full)/2], "truncated")
	probeErr(t, "cut in its scan, zero padded", append(bytes.Clone(full[:len(full)/2]), make([]byte, 1000)...), "truncated")
	probeErr(t, "cut in its headers", full[:300], "truncated")
}

func mustRead(t *testing.T, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(name)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
