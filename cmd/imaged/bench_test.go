package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"mime/multipart"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/imaged/imaged"
	"github.com/imaged/imaged/auth"
	"github.com/imaged/imaged/config"
	"github.com/imaged/imaged/prom"
)

// The benchmarks compare each synchronous path through the service (loopback HTTP, multipart
// upload, header probe, bounded slot, metrics) with the same pipeline called in-process, so the
// ratio of the two is the service's overhead. Run with `make bench`.

type benchStack struct {
	url       string
	key       string // API key every request carries, as clients' do
	processor imaged.Processor
}

func newBenchStack(b *testing.B) *benchStack {
	b.Helper()
	cfg, err := config.Parse("serve", nil, func(k string) string {
		if k == "IMAGED_DATA_DIR" {
			return b.TempDir()
		}
		return os.Getenv(k)
	})
	if err != nil {
		b.Fatal(err)
	}
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	metrics := prom.New()
	a, err := openAdapters(context.Background(), cfg, log, metrics)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(a.close)
	eng, err := newEngines(cfg, metrics)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(eng.close)
	// Authentication and rate limiting as serve wires them, with a key whose limits the
	// benchmark never meets.
	handler, err := newAPI(context.Background(), cfg, a, eng.processor, metrics, log)
	if err != nil {
		b.Fatal(err)
	}
	key, err := auth.Create(context.Background(), a.keys, &imaged.APIKey{Name: "bench", RateLimit: 1 << 30, Burst: 1 << 30, Concurrency: 1 << 20})
	if err != nil {
		b.Fatal(err)
	}
	srv := httptest.NewServer(handler)
	b.Cleanup(srv.Close)
	return &benchStack{url: srv.URL, key: key, processor: eng.processor}
}

func benchFile(b *testing.B, parts ...string) []byte {
	b.Helper()
	data, err := os.ReadFile(filepath.Join(append([]string{"..", ".."}, parts...)...))
	if err != nil {
		b.Fatal(err)
	}
	return data
}

// photo2MP is a real photo scaled to about 2.5 MP, so the resize does real work.
func photo2MP(b *testing.B, p imaged.Processor) []byte {
	ops, _ := imaged.ParseOps([]byte(`[{"op":"resize","width":1600,"height":1600,"fit":"exact","enlarge":true},{"op":"convert","format":"jpeg","quality":90}]`))
	res, err := p.Process(context.Background(), benchFile(b, "testdata", "astronaut.jpg"), ops, imaged.ProcessOptions{})
	if err != nil {
		b.Fatal(err)
	}
	return res.Data
}

func benchHTTP(b *testing.B, st *benchStack, path string, file []byte, field, value string, parallel int) {
	var body bytes.Buffer
	mw := multipart.NewWriter(&body)
	fw, _ := mw.CreateFormFile("file", "in")
	fw.Write(file)
	mw.WriteField(field, value)
	mw.Close()
	payload, ct := body.Bytes(), mw.FormDataContentType()
	b.SetParallelism(parallel)
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			req, _ := http.NewRequest("POST", st.url+path, bytes.NewReader(payload))
			req.Header.Set("Content-Type", ct)
			req.Header.Set("X-API-Key", st.key)
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				b.Error(err)
				return
			}
			n, _ := io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode != 200 || n == 0 {
				b.Errorf("status %d", resp.StatusCode)
				return
			}
		}
	})
}

func benchDirect(b *testing.B, st *benchStack, file []byte, opsJSON string, parallel int) {
	ops, err := imaged.ParseOps([]byte(opsJSON))
	if err != nil {
		b.Fatal(err)
	}
	b.SetParallelism(parallel)
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if _, err := st.processor.Process(context.Background(), file, ops, imaged.ProcessOptions{}); err != nil {
				b.Error(err)
				return
			}
		}
	})
}

const resizeOps = `[{"op":"resize","width":800,"height":600},{"op":"convert","format":"jpeg","quality":85}]`

// SetParallelism multiplies GOMAXPROCS; with -cpu 1 the values below are the concurrency.
func BenchmarkSyncResize(b *testing.B) {
	st := newBenchStack(b)
	photo := photo2MP(b, st.processor)
	for _, par := range []int{1, 2} {
		b.Run("http/c"+string(rune('0'+par)), func(b *testing.B) { benchHTTP(b, st, "/v1/process", photo, "ops", resizeOps, par) })
		b.Run("direct/c"+string(rune('0'+par)), func(b *testing.B) { benchDirect(b, st, photo, resizeOps, par) })
	}
}

func BenchmarkOCR(b *testing.B) {
	st := newBenchStack(b)
	page := benchFile(b, "ocr", "testdata", "eval", "clean-01-dejavu-sans-30.png")
	for _, engine := range []string{"tesseract", "paddle"} {
		opts := `{"engine":"` + engine + `"}`
		ops := `[{"op":"ocr","engine":"` + engine + `"}]`
		if err := st.processor.Validate(mustOps(b, ops)); err != nil {
			b.Fatal(err)
		}
		for _, par := range []int{1, 2} {
			b.Run(engine+"/http/c"+string(rune('0'+par)), func(b *testing.B) { benchHTTP(b, st, "/v1/ocr", page, "options", opts, par) })
			b.Run(engine+"/direct/c"+string(rune('0'+par)), func(b *testing.B) { benchDirect(b, st, page, ops, par) })
		}
	}
}

func BenchmarkDetect(b *testing.B) {
	st := newBenchStack(b)
	photo := benchFile(b, "testdata", "chelsea.jpg")
	for _, par := range []int{1, 2} {
		b.Run("http/c"+string(rune('0'+par)), func(b *testing.B) { benchHTTP(b, st, "/v1/detect", photo, "options", `{}`, par) })
		b.Run("direct/c"+string(rune('0'+par)), func(b *testing.B) { benchDirect(b, st, photo, `[{"op":"detect"}]`, par) })
	}
}

func mustOps(b *testing.B, s string) []imaged.Op {
	ops, err := imaged.ParseOps([]byte(s))
	if err != nil {
		b.Fatal(err)
	}
	return ops
}

// BenchmarkSyncStoredCache is a pipeline over a stored image (POST /v1/process with an
// image_id), through the processed-output cache: miss (a new pipeline each time: run, then
// stored), bypass (Cache-Control: no-store: run, nothing stored) and hit (answered from storage).
func BenchmarkSyncStoredCache(b *testing.B) {
	st := newBenchStack(b)
	photo := photo2MP(b, st.processor)
	req, _ := http.NewRequest("POST", st.url+"/v1/images", bytes.NewReader(photo))
	req.Header.Set("Content-Type", "image/jpeg")
	req.Header.Set("X-API-Key", st.key)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		b.Fatal(err)
	}
	var img imaged.Image
	err = json.NewDecoder(resp.Body).Decode(&img)
	resp.Body.Close()
	if err != nil || resp.StatusCode != 201 {
		b.Fatalf("upload: %d, %v", resp.StatusCode, err)
	}
	post := func(b *testing.B, width int, header, wantCache string) {
		body := fmt.Sprintf(`{"image_id":%q,"ops":[{"op":"resize","width":%d,"height":600},{"op":"convert","format":"jpeg","quality":85}]}`, img.ID, width)
		req, _ := http.NewRequest("POST", st.url+"/v1/process", strings.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("X-API-Key", st.key)
		if header != "" {
			req.Header.Set("Cache-Control", header)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			b.Fatal(err)
		}
		n, _ := io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 || n == 0 || (wantCache != "" && resp.Header.Get("X-Cache") != wantCache) {
			b.Fatalf("status %d, X-Cache %q; want 200, %q", resp.StatusCode, resp.Header.Get("X-Cache"), wantCache)
		}
	}
	width := 400 // a new width for every miss, across the runs of the sub-benchmark
	b.Run("miss", func(b *testing.B) {
		for range b.N {
			width++
			post(b, width, "", "miss")
		}
	})
	b.Run("bypass", func(b *testing.B) {
		for range b.N {
			post(b, 800, "no-store", "bypass")
		}
	})
	b.Run("hit", func(b *testing.B) {
		post(b, 800, "", "") // stored by now
		b.ResetTimer()
		for range b.N {
			post(b, 800, "", "hit")
		}
	})
}
