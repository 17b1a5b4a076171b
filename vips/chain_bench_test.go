package vips

import (
	"context"
	"testing"

	"github.com/imaged/imaged"
)

// Chained spatial ops: an enlargement followed by ops that read overlapping neighbourhoods.
// libvips computes lazily with its operation cache off, so without holding the enlarged image
// in memory every later op would recompute it region by region.
var chainPipelines = []struct{ name, ops string }{
	{"EnlargeResize", `[{"op":"resize","width":2500,"height":2500,"fit":"exact","enlarge":true},{"op":"resize","width":300},{"op":"convert","format":"jpeg","quality":85}]`},
	{"EnlargeBlurResize", `[{"op":"resize","width":2500,"height":2500,"fit":"exact","enlarge":true},{"op":"blur","sigma":6},{"op":"resize","width":300},{"op":"convert","format":"jpeg","quality":85}]`},
	{"EnlargeRotateSharpenResize", `[{"op":"resize","width":2000,"enlarge":true},{"op":"rotate","angle":17},{"op":"sharpen"},{"op":"resize","width":400},{"op":"convert","format":"jpeg","quality":85}]`},
}

func BenchmarkChain(b *testing.B) {
	p := New(Config{})
	src := readTestdata(b, "chelsea.jpg")
	for _, c := range chainPipelines {
		ops := parseOps(b, c.ops)
		b.Run(c.name, func(b *testing.B) {
			for i := 0; i < b.N; i++ {
				if _, err := p.Process(context.Background(), src, ops, imaged.ProcessOptions{}); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
