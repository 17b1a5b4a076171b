package main

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
	"time"
)

// Detection through the API: the shortcut on a real photo, and a detect op in an async task.
func TestDetectThroughTheAPI(t *testing.T) {
	s := startServer(t, "")
	photo := readTestdata(t, "chelsea.jpg")
	r := s.postMultipart("/v1/detect", "cat.jpg", photo, map[string]string{"options": `{"confidence":0.5}`})
	if r.status != 200 {
		t.Fatalf("/v1/detect: %d %s", r.status, r.body)
	}
	var res struct {
		Detections []struct {
			ClassName  string             `json:"class_name"`
			Confidence float64            `json:"confidence"`
			Box        map[string]float64 `json:"box"`
		} `json:"detections"`
	}
	if err := json.Unmarshal(r.body, &res); err != nil {
		t.Fatal(err)
	}
	if len(res.Detections) == 0 || res.Detections[0].ClassName != "cat" || res.Detections[0].Confidence < 0.5 ||
		res.Detections[0].Box["x2"] <= res.Detections[0].Box["x1"] {
		t.Fatalf("no cat found: %s", r.body)
	}
	if r := s.postMultipart("/v1/detect", "cat.jpg", photo, map[string]string{"options": `{"confidence":7}`}); r.status != 400 ||
		!strings.Contains(string(r.body), "confidence") {
		t.Fatalf("bad confidence: %d %s", r.status, r.body)
	}

	id := s.upload(photo)
	r = s.postJSON("/v1/tasks", map[string]any{"image_id": id, "ops": []map[string]any{{"op": "detect", "classes": []string{"cat"}}}})
	if r.status != 202 || r.json(t)["type"] != "detect" {
		t.Fatalf("detect task: %d %s", r.status, r.body)
	}
	task := s.waitTask(r.json(t)["id"].(string), time.Minute)
	b, _ := json.Marshal(task["result"])
	if task["status"] != "completed" || !strings.Contains(string(b), `"class_name":"cat"`) {
		t.Fatalf("detect task: %v", task)
	}
}

// annotate draws the detections onto the image; crop gravity=object:<class> crops around the
// best detection of that class.
func TestAnnotateAndObjectCrop(t *testing.T) {
	s := startServer(t, "")
	photo := readTestdata(t, "chelsea.jpg")
	id := s.upload(photo)
	r := s.postJSON("/v1/process", map[string]any{"image_id": id, "ops": []map[string]any{{"op": "detect", "classes": []string{"cat"}}}})
	var det struct {
		Analyses []struct {
			Result struct {
				Detections []struct {
					Box map[string]float64 `json:"box"`
				} `json:"detections"`
			} `json:"result"`
		} `json:"analyses"`
	}
	if err := json.Unmarshal(r.body, &det); err != nil || len(det.Analyses) != 1 || len(det.Analyses[0].Result.Detections) == 0 {
		t.Fatalf("detect: %d %s", r.status, r.body)
	}
	box := det.Analyses[0].Result.Detections[0].Box

	// The annotated image differs from the original on the box's outline and not elsewhere.
	plain := s.postJSON("/v1/process", map[string]any{"image_id": id, "ops": []map[string]any{{"op": "convert", "format": "png"}}})
	marked := s.postJSON("/v1/process", map[string]any{"image_id": id, "ops": []map[string]any{
		{"op": "detect", "classes": []string{"cat"}}, {"op": "annotate"}, {"op": "convert", "format": "png"}}})
	if marked.status != 200 {
		t.Fatalf("annotate: %d %s", marked.status, marked.body)
	}
	a, _ := decodeImage(t, plain.body)
	var full map[string]any
	json.Unmarshal(marked.body, &full)
	outURL, _ := full["output"].(map[string]any)["url"].(string)
	got := s.get(strings.TrimPrefix(outURL, s.base))
	b, _ := decodeImage(t, got.body)
	edgeX, midY := int(box["x1"])+1, int((box["y1"]+box["y2"])/2)
	r1, g1, b1, _ := a.At(edgeX, midY).RGBA()
	r2, g2, b2, _ := b.At(edgeX, midY).RGBA()
	if r1 == r2 && g1 == g2 && b1 == b2 {
		t.Fatalf("no box drawn at (%d,%d)", edgeX, midY)
	}
	cx, cy := int((box["x1"]+box["x2"])/2), int((box["y1"]+box["y2"])/2)
	r1, g1, b1, _ = a.At(cx, cy).RGBA()
	r2, g2, b2, _ = b.At(cx, cy).RGBA()
	if r1 != r2 || g1 != g2 || b1 != b2 {
		t.Fatalf("annotate changed the inside of the box at (%d,%d)", cx, cy)
	}

	// crop gravity=object:cat equals a box crop centred on the detected cat, clamped.
	const cw, ch = 120, 100
	w, h := a.Bounds().Dx(), a.Bounds().Dy()
	x := min(max(int((box["x1"]+box["x2"])/2)-cw/2, 0), w-cw)
	y := min(max(int((box["y1"]+box["y2"])/2)-ch/2, 0), h-ch)
	byObject := s.postJSON("/v1/process", map[string]any{"image_id": id, "ops": []map[string]any{
		{"op": "crop", "width": cw, "height": ch, "gravity": "object:cat"}, {"op": "convert", "format": "png"}}})
	byBox := s.postJSON("/v1/process", map[string]any{"image_id": id, "ops": []map[string]any{
		{"op": "crop", "x": x, "y": y, "width": cw, "height": ch}, {"op": "convert", "format": "png"}}})
	if byObject.status != 200 || !bytes.Equal(byObject.body, byBox.body) {
		t.Fatalf("object crop (%d, %d bytes) differs from the box crop at %d,%d (%d bytes)", byObject.status, len(byObject.body), x, y, len(byBox.body))
	}
}
