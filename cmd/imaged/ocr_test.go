package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// OCR through the API: the shortcut, an ocr op after a transform in a sync pipeline, and an
// async task, all reading a rendered two-line page.
func TestOCRThroughTheAPI(t *testing.T) {
	s := startServer(t, "")
	page, err := os.ReadFile(filepath.Join("..", "..", "ocr", "testdata", "eval", "clean-01-dejavu-sans-30.png"))
	if err != nil {
		t.Fatal(err)
	}
	want, _ := os.ReadFile(filepath.Join("..", "..", "ocr", "testdata", "eval", "clean-01-dejavu-sans-30.txt"))
	firstLine := strings.SplitN(strings.TrimSpace(string(want)), "\n", 2)[0]

	r := s.postMultipart("/v1/ocr", "page.png", page, map[string]string{"options": `{"engine":"tesseract","languages":["eng"]}`})
	if r.status != 200 {
		t.Fatalf("/v1/ocr: %d %s", r.status, r.body)
	}
	var res struct {
		Text   string `json:"text"`
		Engine string `json:"engine"`
		Lines  []struct {
			Text       string         `json:"text"`
			Confidence float64        `json:"confidence"`
			Box        map[string]any `json:"box"`
		} `json:"lines"`
	}
	if err := json.Unmarshal(r.body, &res); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(res.Text, firstLine) || len(res.Lines) < 2 || res.Lines[0].Confidence <= 0 || res.Lines[0].Box == nil {
		t.Fatalf("ocr result lacks %q: %s", firstLine, r.body)
	}

	if r := s.postMultipart("/v1/ocr", "page.png", page, map[string]string{"options": `{"languages":["klingon"]}`}); r.status != 400 ||
		!strings.Contains(string(r.body), "eng") {
		t.Fatalf("unsupported language: %d %s", r.status, r.body)
	}

	id := s.upload(page)
	r = s.postJSON("/v1/process", map[string]any{"image_id": id, "ops": []map[string]any{
		{"op": "grayscale"}, {"op": "ocr", "engine": "tesseract"},
	}})
	if r.status != 200 || !strings.Contains(string(r.body), `"op":"ocr"`) || !strings.Contains(string(r.body), firstLine) {
		t.Fatalf("sync pipeline with ocr: %d %s", r.status, r.body)
	}

	r = s.postJSON("/v1/tasks", map[string]any{"image_id": id, "ops": []map[string]any{{"op": "ocr"}}})
	if r.status != 202 || r.json(t)["type"] != "ocr" {
		t.Fatalf("ocr task: %d %s", r.status, r.body)
	}
	task := s.waitTask(r.json(t)["id"].(string), time.Minute)
	b, _ := json.Marshal(task["result"])
	if task["status"] != "completed" || !strings.Contains(string(b), firstLine) {
		t.Fatalf("ocr task: %v", task)
	}
	if m := string(s.get("/metrics").body); !strings.Contains(m, `ocr_text_characters_extracted_total{engine="tesseract",language="eng"}`) {
		t.Fatal("metrics lack ocr_text_characters_extracted_total")
	}
}
