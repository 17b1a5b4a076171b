package main

import (
	"bytes"
	"compress/zlib"
	"encoding/binary"
	"hash/crc32"
	"image"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/image/bmp"
)

// pngChunk encodes one PNG chunk with its CRC.
func pngChunk(typ string, data []byte) []byte {
	var b bytes.Buffer
	binary.Write(&b, binary.BigEndian, uint32(len(data)))
	b.WriteString(typ)
	b.Write(data)
	crc := crc32.NewIEEE()
	crc.Write([]byte(typ))
	crc.Write(data)
	binary.Write(&b, binary.BigEndian, crc.Sum32())
	return b.Bytes()
}

// hugeHeaderPNG is a PNG whose header claims w×h pixels but whose pixel data is garbage: a
// decoder that read pixels would fail on the data, so a refusal that names the dimensions
// proves the header alone decided.
func hugeHeaderPNG(w, h uint32) []byte {
	var ihdr bytes.Buffer
	binary.Write(&ihdr, binary.BigEndian, w)
	binary.Write(&ihdr, binary.BigEndian, h)
	ihdr.Write([]byte{8, 2, 0, 0, 0})
	var b bytes.Buffer
	b.WriteString("\x89PNG\r\n\x1a\n")
	b.Write(pngChunk("IHDR", ihdr.Bytes()))
	b.Write(pngChunk("IDAT", []byte("not zlib data at all")))
	b.Write(pngChunk("IEND", nil))
	return b.Bytes()
}

func TestBadInputIsRefusedAndNothingIsKept(t *testing.T) {
	s := startServer(t, "", "IMAGED_MAX_UPLOAD_BYTES=1048576")
	photo := readTestdata(t, "astronaut.jpg")
	goodID := s.upload(photo)
	blobDir := filepath.Join(s.dataDir, "blobs")
	filesBefore := countFiles(t, blobDir)

	type req struct {
		name     string
		send     func() *response
		status   int
		contains string
	}
	validOps := `[{"op":"resize","width":100}]`
	multi := func(file []byte, ops string) func() *response {
		return func() *response {
			return s.postMultipart("/v1/tasks", "x.jpg", file, map[string]string{"ops": ops})
		}
	}
	upload := func(file []byte) func() *response {
		return func() *response { return s.postMultipart("/v1/images", "x.jpg", file, nil) }
	}
	jsonTask := func(body string) func() *response {
		return func() *response {
			return s.do("POST", "/v1/tasks", strings.NewReader(body), map[string]string{"Content-Type": "application/json"})
		}
	}
	cases := []req{
		{"empty upload", upload([]byte{}), 400, "empty"},
		{"empty raw body", func() *response { return s.do("POST", "/v1/images", nil, nil) }, 400, "empty"},
		{"truncated jpeg", upload(photo[:len(photo)/2]), 400, "truncated"},
		{"text renamed .jpg", upload([]byte("hello, this is a text file and not an image\n")), 415, "not an image"},
		{"png claiming 50000x50000", upload(hugeHeaderPNG(50000, 50000)), 413, "50000×50000"},
		{"body over the limit", upload(bytes.Repeat([]byte{0xFF}, 2<<20)), 413, "limit"},
		{"unknown op", multi(photo, `[{"op":"explode"}]`), 400, "explode"},
		{"missing parameter", multi(photo, `[{"op":"resize"}]`), 400, "resize"},
		{"out-of-range parameter", multi(photo, `[{"op":"resize","width":-5}]`), 400, "resize.width"},
		{"wrong type", multi(photo, `[{"op":"blur","sigma":"lots"}]`), 400, "blur"},
		{"malformed ops JSON", multi(photo, `[{"op":"resize",`), 400, "ops"},
		{"malformed body JSON", jsonTask(`{"image_id": "x", "ops": [`), 400, "JSON"},
		{"unknown field", jsonTask(`{"image_id":"` + goodID + `","ops":` + validOps + `,"bogus":1}`), 400, "bogus"},
		{"no ops", jsonTask(`{"image_id":"` + goodID + `"}`), 400, "ops"},
		{"empty ops", jsonTask(`{"image_id":"` + goodID + `","ops":[]}`), 400, "ops"},
		{"missing image", jsonTask(`{"image_id":"nope","ops":` + validOps + `}`), 404, "not found"},
		{"truncated jpeg in a task", multi(photo[:len(photo)/3], validOps), 400, "truncated"},
		{"png whose pixel data stops short", upload(shortPNG(t)), 400, "shorter than its header promises"},
		{"bmp cut short", upload(shortBMP(t)), 400, "the bmp is truncated"},
		{"huge header in sync process", func() *response {
			return s.postMultipart("/v1/process", "x.png", hugeHeaderPNG(50000, 50000), map[string]string{"ops": validOps})
		}, 413, "50000×50000"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			start := time.Now()
			r := c.send()
			elapsed := time.Since(start)
			if r.status != c.status {
				t.Fatalf("status %d, want %d: %s", r.status, c.status, r.body)
			}
			e, ok := r.json(t)["error"].(map[string]any)
			if !ok || e["code"] == "" || !strings.Contains(e["message"].(string)+" "+str(e["field"]), c.contains) {
				t.Fatalf("error body %s does not name %q", r.body, c.contains)
			}
			if strings.Contains(c.name, "50000") {
				t.Logf("refused a 50000×50000 header in %s", elapsed)
			}
		})
	}
	if n := countFiles(t, blobDir); n != filesBefore {
		t.Fatalf("bad requests left %d stored files behind", n-filesBefore)
	}
	if l := s.get("/v1/tasks?limit=100").json(t); len(l["items"].([]any)) != 0 {
		t.Fatalf("bad requests left tasks: %v", l["items"])
	}
	if m := string(s.get("/metrics").body); strings.Contains(m, `images_processed_total{`) {
		t.Fatal("a pipeline ran for a refused request")
	}
	if r := s.get("/v1/nothing-here"); r.status != 404 || r.json(t)["error"] == nil {
		t.Fatalf("unknown route: %d %s", r.status, r.body)
	}
	// Data after a JPEG's end-of-image marker (metadata some tools append) is no damage.
	trailer := append(bytes.Clone(photo), []byte("\x00\x00appended metadata block")...)
	if r := s.postMultipart("/v1/images", "x.jpg", trailer, nil); r.status != 201 {
		t.Fatalf("a JPEG with a trailer: %d %s", r.status, r.body)
	}
}

// shortPNG is a 3000×3000 PNG whose every chunk is well-formed, IEND included, but whose
// pixel stream holds a tenth of the rows its header promises.
func shortPNG(t *testing.T) []byte {
	var ihdr bytes.Buffer
	binary.Write(&ihdr, binary.BigEndian, []uint32{3000, 3000})
	ihdr.Write([]byte{8, 0, 0, 0, 0})
	var idat bytes.Buffer
	zw := zlib.NewWriter(&idat)
	zw.Write(make([]byte, 300*(3000+1)))
	zw.Close()
	var b bytes.Buffer
	b.WriteString("\x89PNG\r\n\x1a\n")
	b.Write(pngChunk("IHDR", ihdr.Bytes()))
	b.Write(pngChunk("IDAT", idat.Bytes()))
	b.Write(pngChunk("IEND", nil))
	return b.Bytes()
}

// shortBMP is a real BMP with the last rows of its pixels cut off.
func shortBMP(t *testing.T) []byte {
	var b bytes.Buffer
	if err := bmp.Encode(&b, image.NewRGBA(image.Rect(0, 0, 200, 100))); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()[:b.Len()-2000]
}

func str(v any) string {
	s, _ := v.(string)
	return s
}
