package vips

import (
	"bytes"
	"image"
	"image/color"
	"image/png"
	"math"
	"testing"
)

func TestGrayscale(t *testing.T) {
	p := New(Config{})
	for _, name := range []string{"chelsea.jpg", "chelsea.png"} {
		for _, op := range []string{"grayscale", "greyscale"} {
			res := process(t, p, readTestdata(t, name), `[{"op":"`+op+`"}]`)
			r := decodeRaw(t, res.Data)
			if r.bands != 1 {
				t.Fatalf("%s %s: %d bands, want 1", name, op, r.bands)
			}
		}
	}
	// Alpha survives.
	res := process(t, p, readTestdata(t, "alpha.png"), `[{"op":"grayscale"}]`)
	if r := decodeRaw(t, res.Data); r.bands != 2 || r.at(0, 0, 1) != 0 {
		t.Fatalf("grey with alpha: %d bands", r.bands)
	}
}

func TestBlurAndSharpen(t *testing.T) {
	p := New(Config{})
	src := readTestdata(t, "chelsea.png")
	base := decodeRaw(t, src).edgeEnergy()
	blurred := decodeRaw(t, process(t, p, src, `[{"op":"blur"}]`).Data).edgeEnergy()
	more := decodeRaw(t, process(t, p, src, `[{"op":"blur","sigma":6}]`).Data).edgeEnergy()
	sharp := decodeRaw(t, process(t, p, src, `[{"op":"sharpen","sigma":1.5,"amount":4}]`).Data).edgeEnergy()
	if !(more < blurred && blurred < base*0.7) {
		t.Fatalf("edge energy: source %.2f, blur 2 %.2f, blur 6 %.2f", base, blurred, more)
	}
	if sharp < base*1.1 {
		t.Fatalf("edge energy: source %.2f, sharpened %.2f", base, sharp)
	}
}

func TestTones(t *testing.T) {
	p := New(Config{})
	src := readTestdata(t, "chelsea.png")
	o := decodeRaw(t, src)
	l := o.luma()
	m, sd := mean(l), stddev(l)
	run := func(ops string) raw { return decodeRaw(t, process(t, p, src, ops).Data) }

	if got := mean(run(`[{"op":"brightness","factor":1.3}]`).luma()); got < m*1.2 {
		t.Errorf("brightness 1.3: mean %.1f from %.1f", got, m)
	}
	if got := mean(run(`[{"op":"brightness","factor":0.5}]`).luma()); got > m*0.55 || got < m*0.45 {
		t.Errorf("brightness 0.5: mean %.1f from %.1f", got, m)
	}
	if got := stddev(run(`[{"op":"contrast","factor":1.5}]`).luma()); got < sd*1.3 {
		t.Errorf("contrast 1.5: stddev %.1f from %.1f", got, sd)
	}
	if got := stddev(run(`[{"op":"contrast","factor":0.5}]`).luma()); got > sd*0.6 {
		t.Errorf("contrast 0.5: stddev %.1f from %.1f", got, sd)
	}
	if got := mean(run(`[{"op":"gamma","gamma":2}]`).luma()); got < m+10 {
		t.Errorf("gamma 2: mean %.1f from %.1f", got, m)
	}
	if got := mean(run(`[{"op":"gamma","gamma":0.5}]`).luma()); got > m-10 {
		t.Errorf("gamma 0.5: mean %.1f from %.1f", got, m)
	}

	// Saturation 0 leaves grey pixels in three bands; 2 spreads the bands apart.
	spread := func(r raw) float64 {
		s := 0.0
		for k := 0; k < r.w*r.h; k++ {
			a, b, c := float64(r.pix[3*k]), float64(r.pix[3*k+1]), float64(r.pix[3*k+2])
			s += max(a, b, c) - min(a, b, c)
		}
		return s / float64(r.w*r.h)
	}
	if got := spread(run(`[{"op":"saturation","factor":0}]`)); got > 3 {
		t.Errorf("saturation 0: band spread %.1f", got)
	}
	if got, was := spread(run(`[{"op":"saturation","factor":2}]`)), spread(o); got < was*1.4 {
		t.Errorf("saturation 2: band spread %.1f from %.1f", got, was)
	}

	// Invert is exact on a lossless image.
	inv := run(`[{"op":"invert"}]`)
	for k := range inv.pix {
		if inv.pix[k] != 255-o.pix[k] {
			t.Fatalf("invert: value %d is %d, source %d", k, inv.pix[k], o.pix[k])
		}
	}
	// ...and leaves alpha alone.
	if a := decodeRaw(t, process(t, p, readTestdata(t, "alpha.png"), `[{"op":"invert"}]`).Data); a.at(0, 0, 3) != 0 || a.at(100, 80, 3) != 255 {
		t.Error("invert changed alpha")
	}

	// Threshold: one band, 0 or 255, both present.
	th := run(`[{"op":"threshold","threshold":100}]`)
	if th.bands != 1 {
		t.Fatalf("threshold: %d bands", th.bands)
	}
	var seen [256]int
	for _, v := range th.pix {
		seen[v]++
	}
	if seen[0]+seen[255] != len(th.pix) || seen[0] == 0 || seen[255] == 0 {
		t.Errorf("threshold: %d black, %d white of %d", seen[0], seen[255], len(th.pix))
	}

	// Sepia: warm (red over green over blue) and about as light as the source.
	sp := run(`[{"op":"sepia"}]`)
	var r, g, b float64
	for k := 0; k < sp.w*sp.h; k++ {
		r += float64(sp.pix[3*k])
		g += float64(sp.pix[3*k+1])
		b += float64(sp.pix[3*k+2])
	}
	if !(r > g && g > b) {
		t.Errorf("sepia: band sums %.0f %.0f %.0f", r, g, b)
	}
}

func TestPixelate(t *testing.T) {
	p := New(Config{})
	res := process(t, p, readTestdata(t, "chelsea.png"), `[{"op":"pixelate","size":16}]`)
	checkFormat(t, res, "png", 451, 300)
	r := decodeRaw(t, res.Data)
	// Every 16×16 block is one colour.
	for by := 0; by < 300/16; by++ {
		for bx := 0; bx < 451/16; bx++ {
			v := r.at(bx*16, by*16, 0)
			if r.at(bx*16+15, by*16+15, 0) != v || r.at(bx*16+7, by*16+3, 0) != v {
				t.Fatalf("block %d,%d is not flat", bx, by)
			}
		}
	}
}

func TestEmboss(t *testing.T) {
	p := New(Config{})
	res := process(t, p, readTestdata(t, "chelsea.png"), `[{"op":"emboss"}]`)
	checkFormat(t, res, "png", 451, 300)
	r := decodeRaw(t, res.Data)
	l := r.luma()
	if r.bands != 1 || mean(l) < 118 || mean(l) > 138 || stddev(l) < 3 {
		t.Fatalf("emboss: %d bands, mean %.1f, stddev %.1f", r.bands, mean(l), stddev(l))
	}
}

// square is a white square on black, for edge tests with known answers.
func square(t *testing.T) []byte {
	img := image.NewGray(image.Rect(0, 0, 100, 80))
	for y := 20; y < 60; y++ {
		for x := 30; x < 70; x++ {
			img.SetGray(x, y, color.Gray{Y: 255})
		}
	}
	var b bytes.Buffer
	if err := png.Encode(&b, img); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

func TestEdgeCanny(t *testing.T) {
	p := New(Config{})

	// On a square, the edges are thin lines on its outline and nothing else.
	res := process(t, p, square(t), `[{"op":"edge"}]`)
	checkFormat(t, res, "png", 100, 80)
	r := decodeRaw(t, res.Data)
	if r.bands != 1 {
		t.Fatalf("%d bands", r.bands)
	}
	for y := 0; y < 80; y++ {
		n := 0
		for x := 0; x < 100; x++ {
			v := r.at(x, y, 0)
			if v != 0 && v != 255 {
				t.Fatalf("value %d at %d,%d", v, x, y)
			}
			near := x >= 27 && x <= 72 && y >= 17 && y <= 62 && !(x >= 33 && x <= 66 && y >= 23 && y <= 56)
			if v == 255 && !near {
				t.Fatalf("edge at %d,%d, away from the square's outline", x, y)
			}
			if v == 255 {
				n++
			}
		}
		if y >= 25 && y <= 55 && n != 2 {
			t.Fatalf("row %d crosses %d edge pixels, want 2 (one per side)", y, n)
		}
	}

	// On a photo: only 0 and 255, some edges, and fewer with a higher intensity.
	src := readTestdata(t, "chelsea.jpg")
	count := func(ops string) int {
		res := process(t, p, src, ops)
		r := decodeRaw(t, res.Data)
		n := 0
		for _, v := range r.pix {
			if v != 0 && v != 255 {
				t.Fatalf("%s: value %d", ops, v)
			}
			if v == 255 {
				n++
			}
		}
		return n
	}
	normal := count(`[{"op":"edge"},{"op":"convert","format":"png"}]`)
	strict := count(`[{"op":"edge","method":"canny","intensity":2},{"op":"convert","format":"png"}]`)
	total := 451 * 300
	if normal < total/100 || normal > total/3 || strict >= normal {
		t.Fatalf("edge pixels: %d at intensity 1, %d at 2, of %d", normal, strict, total)
	}
}

func TestEdgeSobel(t *testing.T) {
	p := New(Config{})
	res := process(t, p, square(t), `[{"op":"edge","method":"sobel","sigma":0}]`)
	r := decodeRaw(t, res.Data)
	// Strong on the outline, zero in flat areas.
	if r.bands != 1 || r.at(30, 40, 0) != 255 || r.at(50, 40, 0) != 0 || r.at(5, 5, 0) != 0 {
		t.Fatalf("sobel: bands %d, outline %d, inside %d, outside %d", r.bands, r.at(30, 40, 0), r.at(50, 40, 0), r.at(5, 5, 0))
	}
}

func TestWatermark(t *testing.T) {
	p := New(Config{})
	src := readTestdata(t, "chelsea.png")
	o := decodeRaw(t, src)
	res := process(t, p, src, `[{"op":"watermark","text":"imaged <&> ©","size":30,"opacity":1,"color":"#ff0000"}]`)
	checkFormat(t, res, "png", 451, 300)
	r := decodeRaw(t, res.Data)
	// Only the bottom-right corner changes, and there some pixels turn red.
	changed, red := 0, 0
	for y := 0; y < r.h; y++ {
		for x := 0; x < r.w; x++ {
			if r.at(x, y, 0) == o.at(x, y, 0) && r.at(x, y, 1) == o.at(x, y, 1) {
				continue
			}
			changed++
			if x < 200 || y < 230 || x > 445 || y > 295 {
				t.Fatalf("pixel %d,%d changed outside the corner", x, y)
			}
			if r.at(x, y, 0) == 255 && r.at(x, y, 1) == 0 {
				red++
			}
		}
	}
	if changed < 200 || red < 100 {
		t.Fatalf("%d pixels changed, %d red", changed, red)
	}
	// Text too wide for the image is set smaller to fit between the margins; lines split at \n.
	for _, src := range [][]byte{readTestdata(t, "anim.gif"), readTestdata(t, "camera.png")} {
		in := decodeRaw(t, process(t, p, src, `[{"op":"flip"},{"op":"flip"}]`).Data)
		res := process(t, p, src, `[{"op":"watermark","text":"a very long line of watermark text\nand a second one","size":200,"opacity":1,"color":"#ff0000","margin":0,"font":"bold"}]`)
		r := decodeRaw(t, res.Data)
		if r.w != in.w || r.h != in.h {
			t.Fatalf("size changed: %dx%d from %dx%d", r.w, r.h, in.w, in.h)
		}
		a, b, d := r.luma(), in.luma(), 0.0
		for k := range a {
			d += math.Abs(a[k] - b[k])
		}
		if d == 0 {
			t.Fatal("nothing drawn")
		}
	}
	// Grey and transparent images take it too.
	process(t, p, readTestdata(t, "camera.png"), `[{"op":"watermark","text":"x","gravity":"centre"}]`)
	res = process(t, p, readTestdata(t, "alpha.png"), `[{"op":"watermark","text":"x"}]`)
	if a := decodeRaw(t, res.Data); a.bands != 4 || a.at(0, 0, 3) != 0 {
		t.Fatal("watermark lost alpha")
	}
}
