package http_test

import (
	"bytes"
	"context"
	"io"
	"mime/multipart"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"testing"

	"github.com/imaged/imaged"
	"github.com/imaged/imaged/dbqueue"
	"github.com/imaged/imaged/fs"
	imagedhttp "github.com/imaged/imaged/http"
	"github.com/imaged/imaged/sqlite"
	"github.com/imaged/imaged/vips"
)

const benchOps = `[{"op":"resize","width":800,"height":600},{"op":"convert","format":"jpeg","quality":85}]`

// benchPhoto is a real photo scaled up to about 2.5 MP, so the resize does real work.
func benchPhoto(b *testing.B, p imaged.Processor) []byte {
	b.Helper()
	src, err := os.ReadFile(filepath.Join("..", "testdata", "astronaut.jpg"))
	if err != nil {
		b.Fatal(err)
	}
	ops, _ := imaged.ParseOps([]byte(`[{"op":"resize","width":1600,"height":1600,"fit":"exact","enlarge":true},{"op":"convert","format":"jpeg","quality":90}]`))
	res, err := p.Process(context.Background(), src, ops, imaged.ProcessOptions{})
	if err != nil {
		b.Fatal(err)
	}
	return res.Data
}

func newBenchServer(b *testing.B) (*httptest.Server, imaged.Processor) {
	b.Helper()
	dir := b.TempDir()
	vips.Startup(vips.Config{})
	p := vips.New(vips.Config{})
	store, err := sqlite.Open(context.Background(), filepath.Join(dir, "imaged.db"))
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { store.Close() })
	blobs, err := fs.New(filepath.Join(dir, "blobs"), fs.Options{})
	if err != nil {
		b.Fatal(err)
	}
	h := imagedhttp.NewServer(imagedhttp.Config{}, imagedhttp.Deps{
		Store: store, Queue: dbqueue.New(store, dbqueue.Options{}), Blobs: blobs, Processor: p,
		Log: slogDiscard(),
	})
	srv := httptest.NewServer(h)
	b.Cleanup(srv.Close)
	return srv, p
}

// BenchmarkProcessResizeHTTP is the synchronous resize path end to end over loopback HTTP:
// multipart upload, header probe, pipeline, response. Compare with BenchmarkProcessResizeDirect
// for the service's overhead.
func BenchmarkProcessResizeHTTP(b *testing.B) {
	srv, p := newBenchServer(b)
	photo := benchPhoto(b, p)
	var body bytes.Buffer
	mw := multipart.NewWriter(&body)
	fw, _ := mw.CreateFormFile("file", "photo.jpg")
	fw.Write(photo)
	mw.WriteField("ops", benchOps)
	mw.Close()
	payload, ct := body.Bytes(), mw.FormDataContentType()
	b.SetBytes(int64(len(photo)))
	b.ResetTimer()
	for b.Loop() {
		resp, err := http.Post(srv.URL+"/v1/process", ct, bytes.NewReader(payload))
		if err != nil {
			b.Fatal(err)
		}
		n, _ := io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 || n == 0 {
			b.Fatalf("status %d", resp.StatusCode)
		}
	}
}

// BenchmarkProcessResizeDirect runs the same pipeline in-process, without HTTP.
func BenchmarkProcessResizeDirect(b *testing.B) {
	_, p := newBenchServer(b)
	photo := benchPhoto(b, p)
	ops, err := imaged.ParseOps([]byte(benchOps))
	if err != nil {
		b.Fatal(err)
	}
	b.SetBytes(int64(len(photo)))
	b.ResetTimer()
	for b.Loop() {
		if _, err := p.Process(context.Background(), photo, ops, imaged.ProcessOptions{}); err != nil {
			b.Fatal(err)
		}
	}
}
