package vips

import (
	"fmt"
	"slices"
	"testing"

	govips "github.com/davidbyttow/govips/v2/vips"
)

func TestInMemory(t *testing.T) {
	if !refImageOK {
		t.Fatal("govips' ImageRef has no libvips image field where imaged expects it")
	}
	img, err := govips.NewImageFromBuffer(readTestdata(t, "chelsea-exif6.jpg"))
	if err != nil {
		t.Fatal(err)
	}
	defer img.Close()
	if err := img.Resize(2.5, govips.KernelLanczos3); err != nil {
		t.Fatal(err)
	}
	if isHeld(img) {
		t.Fatal("a resized image should be computed lazily")
	}
	held, err := inMemory(img)
	if err != nil {
		t.Fatal(err)
	}
	defer held.Close()
	if !isHeld(held) {
		t.Fatal("inMemory returned an image libvips does not hold in memory")
	}
	if held.Width() != img.Width() || held.Height() != img.Height() || held.Bands() != img.Bands() {
		t.Fatalf("held %dx%dx%d, lazy %dx%dx%d", held.Width(), held.Height(), held.Bands(),
			img.Width(), img.Height(), img.Bands())
	}
	if held.Orientation() != 6 || held.GetString("exif-ifd0-Make") == "" {
		t.Fatalf("metadata lost: orientation %d, make %q", held.Orientation(), held.GetString("exif-ifd0-Make"))
	}
	a, err := img.ToBytes()
	if err != nil {
		t.Fatal(err)
	}
	b, err := held.ToBytes()
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(a, b) {
		t.Fatal("the held pixels differ from the lazy image's")
	}
	// An image held already is shared, not copied again.
	again, err := inMemory(held)
	if err != nil {
		t.Fatal(err)
	}
	defer again.Close()
	if *vipsImage(again) != *vipsImage(held) {
		t.Fatal("holding a held image copied it")
	}
}

// TestChainedSpatialOps runs pipelines whose ops each read overlapping regions of the one
// before: the image must be held in memory between them (libvips would otherwise recompute the
// enlargement for every region; this took minutes), and the result must be what the ops give
// one at a time through lossless intermediates.
func TestChainedSpatialOps(t *testing.T) {
	p := New(Config{})
	src := readTestdata(t, "chelsea.jpg")
	cases := []struct {
		steps []string
		holds []string // ops before which the image is held
		w, h  int
	}{
		{[]string{`{"op":"resize","width":1600,"height":1600,"fit":"exact","enlarge":true}`, `{"op":"resize","width":300}`},
			[]string{"resize"}, 300, 300},
		{[]string{`{"op":"resize","width":1600,"height":1600,"fit":"exact","enlarge":true}`, `{"op":"blur","sigma":6}`, `{"op":"resize","width":300}`},
			[]string{"blur", "resize"}, 300, 300},
		{[]string{`{"op":"resize","width":1200,"enlarge":true}`, `{"op":"rotate","angle":17}`, `{"op":"sharpen"}`, `{"op":"grayscale"}`, `{"op":"resize","width":400}`},
			[]string{"rotate", "sharpen", "resize"}, 400, 0},
		// A point op alone after the enlargement needs nothing held.
		{[]string{`{"op":"resize","width":1200,"enlarge":true}`, `{"op":"invert"}`},
			nil, 1200, 798},
	}
	for _, c := range cases {
		var ops string
		for i, s := range c.steps {
			if i > 0 {
				ops += ","
			}
			ops += s
		}
		t.Run(ops, func(t *testing.T) {
			var held []string
			holdTrace = func(op string) { held = append(held, op) }
			defer func() { holdTrace = nil }()
			res := process(t, p, src, "["+ops+`,{"op":"convert","format":"png"}]`)
			holdTrace = nil
			if !slices.Equal(held, c.holds) {
				t.Errorf("held before %v, want %v", held, c.holds)
			}
			got := decodeRaw(t, res.Data)
			if got.w != c.w || (c.h != 0 && got.h != c.h) {
				t.Fatalf("got %dx%d, want %dx%d", got.w, got.h, c.w, c.h)
			}
			// The same ops one request at a time, through PNG.
			img := src
			for _, s := range c.steps {
				img = process(t, p, img, fmt.Sprintf(`[%s,{"op":"convert","format":"png"}]`, s)).Data
			}
			want := decodeRaw(t, img)
			if d := meanAbsDiff(t, got, want); d > 0.5 {
				t.Errorf("chained result differs from the step-by-step one by %.2f per band", d)
			}
		})
	}
}
