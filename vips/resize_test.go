package vips

import (
	"context"
	"fmt"
	"testing"

	"github.com/imaged/imaged"
)

func TestResizeSizes(t *testing.T) {
	p := New(Config{})
	jpg := readTestdata(t, "chelsea.jpg") // 451x300
	for _, tc := range []struct {
		ops  string
		w, h int
	}{
		{`{"op":"resize","width":200}`, 200, 133},
		{`{"op":"resize","height":100}`, 150, 100},
		{`{"op":"resize","width":200,"height":200}`, 200, 133},
		{`{"op":"resize","width":200,"height":200,"fit":"inside"}`, 200, 133},
		{`{"op":"resize","width":200,"height":200,"fit":"outside"}`, 301, 200},
		{`{"op":"resize","width":200,"height":200,"fit":"cover"}`, 200, 200},
		{`{"op":"resize","width":200,"height":200,"fit":"cover","gravity":"attention"}`, 200, 200},
		{`{"op":"resize","width":200,"height":200,"fit":"cover","gravity":"west"}`, 200, 200},
		{`{"op":"resize","width":200,"height":100,"fit":"fill"}`, 200, 100},
		{`{"op":"resize","width":200,"height":200,"fit":"exact"}`, 200, 200},
		{`{"op":"resize","width":1000}`, 451, 300},
		{`{"op":"resize","width":1000,"enlarge":true}`, 1000, 665},
		{`{"op":"resize","width":600,"height":600,"fit":"exact"}`, 600, 600},
		{`{"op":"resize","width":100,"kernel":"nearest"}`, 100, 67},
		{`{"op":"resize","width":100,"kernel":"cubic"}`, 100, 67},
		{`{"op":"resize","width":100,"kernel":"linear"}`, 100, 67},
		// Not first: no shrink-on-load, same sizes.
		{`{"op":"flip"},{"op":"resize","width":200,"height":200,"fit":"cover"}`, 200, 200},
		{`{"op":"flip"},{"op":"resize","width":200,"height":200,"fit":"exact"}`, 200, 200},
		{`{"op":"resize","width":200},{"op":"resize","width":50}`, 50, 33},
	} {
		t.Run(tc.ops, func(t *testing.T) {
			res := process(t, p, jpg, "["+tc.ops+"]")
			checkFormat(t, res, "jpeg", tc.w, tc.h)
			r := decodeRaw(t, res.Data)
			if r.w != tc.w || r.h != tc.h || r.bands != 3 {
				t.Fatalf("decoded %dx%dx%d, want %dx%dx3", r.w, r.h, r.bands, tc.w, tc.h)
			}
		})
	}
}

// A resize keeps the picture: the mean colour stays, whichever path and kernel did the work.
func TestResizeKeepsContent(t *testing.T) {
	p := New(Config{})
	src := readTestdata(t, "chelsea.png")
	orig := mean(decodeRaw(t, src).luma())
	for _, kernel := range []string{"lanczos3", "cubic", "linear", "nearest"} {
		for _, first := range []bool{true, false} {
			ops := fmt.Sprintf(`[{"op":"resize","width":150,"kernel":%q}]`, kernel)
			if !first {
				ops = fmt.Sprintf(`[{"op":"rotate","angle":0},{"op":"resize","width":150,"kernel":%q}]`, kernel)
			}
			res := process(t, p, src, ops)
			checkFormat(t, res, "png", 150, 100)
			if m := mean(decodeRaw(t, res.Data).luma()); m < orig-3 || m > orig+3 {
				t.Errorf("%s: mean luma %.1f, source %.1f", ops, m, orig)
			}
		}
	}
}

// The first downscaling resize decodes at reduced size; the result matches a full decode.
func TestResizeShrinksOnLoad(t *testing.T) {
	p := New(Config{})
	big := bigJPEG(t)
	steps, err := p.compile(parseOps(t, `[{"op":"resize","width":800,"height":600}]`))
	if err != nil {
		t.Fatal(err)
	}
	s, err := p.decode(context.Background(), big, steps, imagedOptions())
	if err != nil {
		t.Fatal(err)
	}
	// 3383x2250 towards 800x532: the JPEG decodes at a quarter (the largest DCT factor that
	// stays above the target), and the resize op scales the rest of the way.
	if w, h := s.img.Width(), s.img.Height(); !s.prescaled || w < 845 || w > 846 || h < 562 || h > 563 {
		t.Fatalf("prescaled=%v %dx%d, want a prescaled image of a quarter of 3383x2250", s.prescaled, w, h)
	}
	s.close()

	fast := process(t, p, big, `[{"op":"resize","width":800,"height":600},{"op":"convert","format":"png"}]`)
	slow := process(t, p, big, `[{"op":"rotate","angle":0},{"op":"resize","width":800,"height":600},{"op":"convert","format":"png"}]`)
	checkFormat(t, fast, "png", 800, 532)
	checkFormat(t, slow, "png", 800, 532)
	if d := meanAbsDiff(t, decodeRaw(t, fast.Data), decodeRaw(t, slow.Data)); d > 3 {
		t.Fatalf("shrink-on-load result differs from a full decode by %.2f per value", d)
	}
}

func TestResizeExactPadsWithBackground(t *testing.T) {
	p := New(Config{})
	res := process(t, p, readTestdata(t, "chelsea.png"),
		`[{"op":"resize","width":200,"height":200,"fit":"exact","background":"#ff0000"}]`)
	checkFormat(t, res, "png", 200, 200)
	r := decodeRaw(t, res.Data)
	// 451x300 fits as 200x133, centred: rows 0..32 are padding.
	if r.at(100, 5, 0) != 255 || r.at(100, 5, 1) != 0 || r.at(100, 195, 2) != 0 {
		t.Fatalf("padding is not red: %v", r.pix[(5*200+100)*3:(5*200+100)*3+3])
	}
	if r.at(100, 100, 0) == 255 && r.at(100, 100, 1) == 0 {
		t.Fatal("the middle is padding too")
	}
}

func TestResizeKeepsAlpha(t *testing.T) {
	p := New(Config{})
	res := process(t, p, readTestdata(t, "alpha.png"), `[{"op":"resize","width":120}]`)
	checkFormat(t, res, "png", 120, 87)
	r := decodeRaw(t, res.Data)
	if r.bands != 4 {
		t.Fatalf("bands %d, want 4", r.bands)
	}
	if r.at(0, 0, 3) != 0 {
		t.Fatalf("corner alpha %d, want transparent", r.at(0, 0, 3))
	}
}

// After a shrink-on-load, pipelines that read the image once from top to bottom stream it;
// the others hold it in memory first, since libvips cannot go back in a stream.
func TestStreamable(t *testing.T) {
	p := New(Config{Analyzers: []imaged.Analyzer{&fakeAnalyzer{}}})
	big := bigJPEG(t)
	for ops, want := range map[string]bool{
		`[{"op":"resize","width":200}]`: true,
		`[{"op":"resize","width":200},{"op":"grayscale"},{"op":"info"},{"op":"convert","format":"webp"}]`: true,
		`[{"op":"resize","width":200},{"op":"detect"},{"op":"convert","format":"png"}]`:                   true,
		`[{"op":"resize","width":200,"height":200,"fit":"cover"}]`:                                        true,
		`[{"op":"resize","width":200,"height":200,"fit":"cover","gravity":"attention"}]`:                  false,
		`[{"op":"resize","width":200},{"op":"rotate","angle":90}]`:                                        false,
		`[{"op":"resize","width":200},{"op":"crop","width":50,"height":50,"gravity":"entropy"}]`:          false,
		`[{"op":"resize","width":200},{"op":"flip","direction":"vertical"}]`:                              false,
		`[{"op":"resize","width":200},{"op":"trim"}]`:                                                     false,
		`[{"op":"flip"},{"op":"resize","width":200}]`:                                                     false,
	} {
		steps, err := p.compile(parseOps(t, ops))
		if err != nil {
			t.Fatal(err)
		}
		if got := streamable(steps); got != want {
			t.Errorf("%s: streamable %v, want %v", ops, got, want)
		}
		// Either way the pipeline runs.
		res := process(t, p, big, ops)
		if len(res.Data) == 0 {
			t.Errorf("%s: no image", ops)
		}
	}
}
