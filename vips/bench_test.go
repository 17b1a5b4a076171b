package vips

import (
	"context"
	"testing"

	"github.com/imaged/imaged"
)

// BenchmarkProcessResize is the common request: a camera-sized JPEG (3383x2250, 7.6 MP) to a
// JPEG that fits 800x600, at quality 85.
func BenchmarkProcessResize(b *testing.B) {
	p := New(Config{})
	src := bigJPEG(b)
	ops := parseOps(b, `[{"op":"resize","width":800,"height":600},{"op":"convert","format":"jpeg","quality":85}]`)
	b.SetBytes(int64(len(src)))
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		res, err := p.Process(context.Background(), src, ops, imaged.ProcessOptions{})
		if err != nil {
			b.Fatal(err)
		}
		if res.Width != 800 || res.Height != 532 {
			b.Fatalf("got %dx%d", res.Width, res.Height)
		}
	}
}

// BenchmarkProcessResizeFullDecode is the same work without shrink-on-load (the resize is not
// the first op), to show what decoding at reduced size saves.
func BenchmarkProcessResizeFullDecode(b *testing.B) {
	p := New(Config{})
	src := bigJPEG(b)
	ops := parseOps(b, `[{"op":"rotate","angle":0},{"op":"resize","width":800,"height":600},{"op":"convert","format":"jpeg","quality":85}]`)
	b.SetBytes(int64(len(src)))
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if _, err := p.Process(context.Background(), src, ops, imaged.ProcessOptions{}); err != nil {
			b.Fatal(err)
		}
	}
}
