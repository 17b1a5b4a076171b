package main

import (
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
