package main

import (
	"bytes"
	"image"
	"image/color"
	"image/gif"
	"image/png"
	"testing"
	"time"
)

// logoPNG is a w×h PNG: opaque red on its left half, fully transparent on its right half.
func logoPNG(t *testing.T, w, h int) []byte {
	img := image.NewNRGBA(image.Rect(0, 0, w, h))
	for y := 0; y < h; y++ {
		for x := 0; x < w/2; x++ {
			img.SetNRGBA(x, y, color.NRGBA{R: 255, A: 255})
		}
	}
	var buf bytes.Buffer
	if err := png.Encode(&buf, img); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// meanRGB is the mean colour of img over r.
func meanRGB(img image.Image, r image.Rectangle) (float64, float64, float64) {
	var sr, sg, sb, n float64
	for y := r.Min.Y; y < r.Max.Y; y++ {
		for x := r.Min.X; x < r.Max.X; x++ {
			cr, cg, cb, _ := img.At(x, y).RGBA()
			sr, sg, sb, n = sr+float64(cr>>8), sg+float64(cg>>8), sb+float64(cb>>8), n+1
		}
	}
	return sr / n, sg / n, sb / n
}

// An uploaded logo laid over a photo through the API, synchronously and as a task: the corner
// it covers turns red, the rest of the photo is unchanged, and a logo id that does not exist
// is a clear error naming the field.
func TestWatermarkImageThroughTheAPI(t *testing.T) {
	s := startServer(t, "")
	photo := readTestdata(t, "chelsea.png") // 451×300
	photoID, logoID := s.upload(photo), s.upload(logoPNG(t, 80, 40))
	orig, err := png.Decode(bytes.NewReader(photo))
	if err != nil {
		t.Fatal(err)
	}
	ops := []map[string]any{
		{"op": "watermark", "image": logoID, "scale": 0.2, "gravity": "south_east", "margin": 10, "opacity": 1},
		{"op": "convert", "format": "png"},
	}
	check := func(what string, data []byte) {
		t.Helper()
		out, err := png.Decode(bytes.NewReader(data))
		if err != nil {
			t.Fatalf("%s: output is not a PNG: %v", what, err)
		}
		if out.Bounds().Dx() != 451 || out.Bounds().Dy() != 300 {
			t.Fatalf("%s: output is %v, want the photo's 451×300", what, out.Bounds())
		}
		// The logo is scaled to 0.2 × 451 ≈ 90 px wide, 45 high, 10 px from the bottom right:
		// its red half covers x 351..396, y 245..290.
		red := image.Rect(356, 250, 391, 285)
		if r, g, b := meanRGB(out, red); r < 240 || g > 15 || b > 15 {
			t.Errorf("%s: under the logo's opaque half the mean is (%.0f,%.0f,%.0f), want red", what, r, g, b)
		}
		for _, area := range []image.Rectangle{image.Rect(405, 250, 436, 285), image.Rect(0, 0, 60, 60)} {
			r1, g1, b1 := meanRGB(out, area)
			r0, g0, b0 := meanRGB(orig, area)
			if abs(r1-r0) > 2 || abs(g1-g0) > 2 || abs(b1-b0) > 2 {
				t.Errorf("%s: %v changed from (%.0f,%.0f,%.0f) to (%.0f,%.0f,%.0f); only the logo's opaque half may",
					what, area, r0, g0, b0, r1, g1, b1)
			}
		}
	}

	r := s.postJSON("/v1/process", map[string]any{"image_id": photoID, "ops": ops})
	if r.status != 200 {
		t.Fatalf("process: %d %s", r.status, r.body)
	}
	check("sync", r.body)

	r = s.postJSON("/v1/tasks", map[string]any{"image_id": photoID, "ops": ops})
	if r.status != 202 {
		t.Fatalf("create task: %d %s", r.status, r.body)
	}
	task := s.waitTask(r.json(t)["id"].(string), 60*time.Second)
	if task["status"] != "completed" {
		t.Fatalf("task = %v", task)
	}
	res := s.get("/v1/tasks/" + task["id"].(string) + "/result")
	if res.status != 200 {
		t.Fatalf("result: %d %s", res.status, res.body)
	}
	check("task", res.body)

	r = s.postJSON("/v1/process", map[string]any{"image_id": photoID, "ops": []map[string]any{
		{"op": "watermark", "image": "0123456789abcdef0123456789abcdef"}}})
	if r.status != 404 {
		t.Fatalf("unknown logo: %d %s, want 404", r.status, r.body)
	}
	if e := r.json(t)["error"].(map[string]any); e["field"] != "ops[0].image" {
		t.Errorf("unknown logo: error %v does not name ops[0].image", e)
	}
	r = s.postJSON("/v1/process", map[string]any{"image_id": photoID, "ops": []map[string]any{
		{"op": "watermark", "image": logoID, "text": "both"}}})
	if r.status != 400 {
		t.Errorf("text and image together: %d %s, want 400", r.status, r.body)
	}
}

func abs(v float64) float64 {
	if v < 0 {
		return -v
	}
	return v
}

// animatedGIF is a 3-frame w×h GIF: black, grey and white frames, 10, 20 and 30 hundredths.
func animatedGIF(t *testing.T, w, h int) []byte {
	pal := color.Palette{color.Black, color.Gray{Y: 128}, color.White}
	g := &gif.GIF{LoopCount: 0}
	for i := range 3 {
		f := image.NewPaletted(image.Rect(0, 0, w, h), pal)
		for j := range f.Pix {
			f.Pix[j] = uint8(i)
		}
		g.Image = append(g.Image, f)
		g.Delay = append(g.Delay, 10*(i+1))
	}
	var buf bytes.Buffer
	if err := gif.EncodeAll(&buf, g); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// An animated GIF keeps its frames through the API when the pipeline asks for them, and a
// server limit on frames is a 400 naming the field.
func TestAnimatedGIFThroughTheAPI(t *testing.T) {
	s := startServer(t, "", "IMAGED_MAX_FRAMES=3")
	id := s.upload(animatedGIF(t, 120, 80))
	r := s.postJSON("/v1/process", map[string]any{"image_id": id, "ops": []map[string]any{
		{"op": "frames"}, {"op": "resize", "width": 60}, {"op": "convert", "format": "gif"}}})
	if r.status != 200 || r.header.Get("Content-Type") != "image/gif" {
		t.Fatalf("process: %d %s %s", r.status, r.header.Get("Content-Type"), r.body)
	}
	g, err := gif.DecodeAll(bytes.NewReader(r.body))
	if err != nil {
		t.Fatal(err)
	}
	if len(g.Image) != 3 {
		t.Fatalf("output has %d frames, want 3", len(g.Image))
	}
	for i, f := range g.Image {
		if f.Bounds().Dx() != 60 || f.Bounds().Dy() != 40 {
			t.Errorf("frame %d is %v, want 60×40", i, f.Bounds())
		}
		if g.Delay[i] != 10*(i+1) {
			t.Errorf("frame %d delay %d, want %d", i, g.Delay[i], 10*(i+1))
		}
	}
	// Frames stay distinct: black, grey, white.
	var prev float64
	for i, f := range g.Image {
		y, _, _ := meanRGB(f, f.Bounds())
		if i > 0 && y <= prev+40 {
			t.Errorf("frame %d mean %.0f is not brighter than the previous frame's %.0f", i, y, prev)
		}
		prev = y
	}

	// Without frames: one frame.
	r = s.postJSON("/v1/process", map[string]any{"image_id": id, "ops": []map[string]any{
		{"op": "resize", "width": 60}, {"op": "convert", "format": "gif"}}})
	if g, err := gif.DecodeAll(bytes.NewReader(r.body)); err != nil || len(g.Image) != 1 {
		t.Errorf("without frames: %d %v, want one frame", r.status, err)
	}

	r = s.postJSON("/v1/process", map[string]any{"image_id": id, "ops": []map[string]any{
		{"op": "frames", "max": 4}, {"op": "resize", "width": 60}}})
	if r.status != 400 {
		t.Fatalf("frames max over the server's limit: %d %s, want 400", r.status, r.body)
	}
	if e := r.json(t)["error"].(map[string]any); e["field"] != "ops[0].max" {
		t.Errorf("error %v does not name ops[0].max", e)
	}
}
