package detect

import (
	"context"
	"os"
	"path/filepath"
	"reflect"
	"testing"

	"github.com/imaged/imaged"
)

// The tiny models in testdata (made by testdata/make_yolo_tiny.py) answer one constant
// [1, 7, 7] tensor laid out as an Ultralytics export for a 64×64 input. A 200×100 image is
// letterboxed into it with gain 0.32 and 16 grey rows above and below, so a box (x1, y1, x2, y2)
// of input pixels is (x1/0.32, (y1-16)/0.32, x2/0.32, (y2-16)/0.32) in the image, clipped to it.
var yoloWant = []Detection{
	// cx 32 cy 32 w 32 h 16 → input (16, 24, 48, 40)
	{ClassName: "cat", ClassID: 0, COCOID: 17, Score: 0.9, Box: Box{50, 25, 150, 75}, BoxNorm: Box{0.25, 0.25, 0.75, 0.75}},
	// the same box for a dog survives: suppression is per class
	{ClassName: "dog", ClassID: 1, COCOID: 18, Score: 0.85, Box: Box{50, 25, 150, 75}, BoxNorm: Box{0.25, 0.25, 0.75, 0.75}},
	// input (0, 14, 16, 22): the top two rows lie in the padding and are clipped away
	{ClassName: "traffic light", ClassID: 2, COCOID: 10, Score: 0.7, Box: Box{0, 0, 50, 18.75}, BoxNorm: Box{0, 0, 0.25, 0.1875}},
	// input (12, 44, 20, 52); cat 0.55 loses to dog 0.65; the bottom clipped at 100
	{ClassName: "dog", ClassID: 1, COCOID: 18, Score: 0.65, Box: Box{37.5, 87.5, 62.5, 100}, BoxNorm: Box{0.1875, 0.875, 0.3125, 1}},
	// input (52, 36, 60, 44)
	{ClassName: "cat", ClassID: 0, COCOID: 17, Score: 0.6, Box: Box{162.5, 62.5, 187.5, 87.5}, BoxNorm: Box{0.8125, 0.625, 0.9375, 0.875}},
}

func yoloService(t testing.TB, models ...ModelSpec) *Service {
	t.Helper()
	rt := testRuntime(t)
	s, err := New(Config{Runtime: rt, Models: models})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func abspath(t testing.TB, p string) string {
	t.Helper()
	a, err := filepath.Abs(p)
	if err != nil {
		t.Fatal(err)
	}
	return a
}

func greyImage(w, h int) Image {
	img := Image{Width: w, Height: h, Bands: 3, Data: make([]byte, w*h*3)}
	for i := range img.Data {
		img.Data[i] = byte(i)
	}
	return img
}

func TestYOLOLetterboxClassesAndNMS(t *testing.T) {
	s := yoloService(t,
		ModelSpec{Name: "tiny", Path: abspath(t, "testdata/yolo_tiny.onnx")},
		ModelSpec{Name: "tiny_dynamic", Path: abspath(t, "testdata/yolo_tiny_dynamic.onnx")})
	img := greyImage(200, 100)
	for _, model := range []string{"tiny", "tiny_dynamic"} {
		res := analyze(t, s, `{"op":"detect","model":"`+model+`"}`, img)
		if !reflect.DeepEqual(res.Detections, yoloWant) {
			t.Errorf("%s:\n got  %+v\n want %+v", model, res.Detections, yoloWant)
		}
	}
	for _, tc := range []struct {
		js   string
		want []Detection
	}{
		{`{"op":"detect","model":"tiny","classes":["dog"]}`, []Detection{yoloWant[1], yoloWant[3]}},
		{`{"op":"detect","model":"tiny","max_detections":2}`, yoloWant[:2]},
		{`{"op":"detect","model":"tiny","confidence":0.75}`, yoloWant[:2]},
		// At IoU 0.95 the second cat (overlap 0.939, score 0.8) is no longer suppressed.
		{`{"op":"detect","model":"tiny","iou":0.95,"max_detections":3}`, []Detection{yoloWant[0], yoloWant[1], {
			ClassName: "cat", ClassID: 0, COCOID: 17, Score: 0.8, Box: Box{53.13, 25, 153.13, 75}, BoxNorm: Box{0.2656, 0.25, 0.7656, 0.75}}}},
	} {
		if got := analyze(t, s, tc.js, img).Detections; !reflect.DeepEqual(got, tc.want) {
			t.Errorf("%s:\n got  %+v\n want %+v", tc.js, got, tc.want)
		}
	}
	if err := s.Validate(0, opFromJSON(t, `{"op":"detect","model":"tiny","classes":["person"]}`)); !imaged.IsCode(err, imaged.EInvalid) {
		t.Errorf("a class the model lacks: %v", err)
	}
}

// A sidecar file beside the model names the classes, ahead of the metadata.
func TestYOLOSidecarNames(t *testing.T) {
	dir := t.TempDir()
	model, err := os.ReadFile("testdata/yolo_tiny.onnx")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "parts.onnx"), model, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "parts.names"), []byte("bolt\nnut\nwasher\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "short.onnx"), model, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "short.txt"), []byte("bolt\nnut\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	s := yoloService(t, ModelSpec{Name: "parts", Path: filepath.Join(dir, "parts.onnx")},
		ModelSpec{Name: "short", Path: filepath.Join(dir, "short.onnx")})
	res := analyze(t, s, `{"op":"detect","model":"parts"}`, greyImage(200, 100))
	var names []string
	for _, d := range res.Detections {
		names = append(names, d.ClassName)
		if d.COCOID != 0 {
			t.Errorf("a non-COCO model gave COCO id %d", d.COCOID)
		}
	}
	if want := []string{"bolt", "nut", "washer", "nut", "bolt"}; !reflect.DeepEqual(names, want) {
		t.Errorf("names %v, want %v", names, want)
	}
	_, err = s.Analyze(context.Background(), opFromJSON(t, `{"op":"detect","model":"short"}`), imaged.Pixels(greyImage(200, 100)))
	if !imaged.IsCode(err, imaged.ENotInstalled) {
		t.Errorf("two names for three classes: %v", err)
	}
}

func TestModelInfo(t *testing.T) {
	b, err := os.ReadFile("testdata/yolo_tiny_dynamic.onnx")
	if err != nil {
		t.Fatal(err)
	}
	mi, err := parseModelInfo(b)
	if err != nil {
		t.Fatal(err)
	}
	if want := []tensorInfo{{"images", []int64{1, 3, -1, -1}}}; !reflect.DeepEqual(mi.Inputs, want) {
		t.Errorf("inputs %+v", mi.Inputs)
	}
	if want := []tensorInfo{{"output0", []int64{1, 7, -1}}}; !reflect.DeepEqual(mi.Outputs, want) {
		t.Errorf("outputs %+v", mi.Outputs)
	}
	if mi.Metadata["imgsz"] != "[64, 64]" || mi.Metadata["names"] == "" {
		t.Errorf("metadata %v", mi.Metadata)
	}
	if _, err := parseModelInfo([]byte("not a model at all")); err == nil {
		t.Error("garbage parsed as a model")
	}
}

func TestYOLOMissingModelIsUnavailable(t *testing.T) {
	s, err := NewService("", nil, NewYOLO("gone", "/nonexistent/gone.onnx", func(string, string) Runner { return nil }))
	if err != nil {
		t.Fatal(err)
	}
	_, err = s.Analyze(context.Background(), opFromJSON(t, `{"op":"detect"}`), imaged.Pixels(greyImage(4, 4)))
	if !imaged.IsCode(err, imaged.ENotInstalled) {
		t.Errorf("missing model: %v", err)
	}
	// Validation does not need the model: its classes are checked once it can be read.
	if err := s.Validate(0, opFromJSON(t, `{"op":"detect","classes":["cat"]}`)); err != nil {
		t.Errorf("validate without the model: %v", err)
	}
}
