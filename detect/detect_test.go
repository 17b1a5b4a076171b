package detect

import (
	"context"
	"encoding/json"
	"math"
	"reflect"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/imaged/imaged"
)

func TestIoU(t *testing.T) {
	a := Box{0, 0, 10, 10}
	for _, tc := range []struct {
		b    Box
		want float64
	}{
		{Box{0, 0, 10, 10}, 1},
		{Box{5, 0, 15, 10}, 50.0 / 150},
		{Box{10, 10, 20, 20}, 0},
		{Box{2, 2, 4, 4}, 4.0 / 100},
		{Box{3, 3, 3, 3}, 0},
	} {
		if got := IoU(a, tc.b); math.Abs(got-tc.want) > 1e-12 {
			t.Errorf("IoU(%v, %v) = %v, want %v", a, tc.b, got, tc.want)
		}
	}
}

func TestNMS(t *testing.T) {
	cands := func() []candidate {
		return []candidate{
			{Box{0, 0, 10, 10}, 0.6, 0},
			{Box{1, 0, 11, 10}, 0.9, 0}, // overlaps the first by 0.82
			{Box{0, 0, 10, 10}, 0.8, 1}, // same place, other class
			{Box{20, 20, 30, 30}, 0.7, 0},
			{Box{40, 40, 50, 50}, 0.7, 1}, // ties with the one above: anchor order decides
		}
	}
	scores := func(cs []candidate) []float32 {
		var s []float32
		for _, c := range cs {
			s = append(s, c.score)
		}
		return s
	}
	agnostic := nms(cands(), 0.5, 10, false)
	if got, want := scores(agnostic), []float32{0.9, 0.7, 0.7}; !reflect.DeepEqual(got, want) {
		t.Errorf("across classes: scores %v, want %v", got, want)
	}
	if agnostic[1].class != 0 || agnostic[2].class != 1 {
		t.Errorf("ties must keep anchor order: %+v", agnostic)
	}
	perClass := nms(cands(), 0.5, 10, true)
	if got, want := scores(perClass), []float32{0.9, 0.8, 0.7, 0.7}; !reflect.DeepEqual(got, want) {
		t.Errorf("per class: scores %v, want %v", got, want)
	}
	if got := nms(cands(), 0.5, 2, true); len(got) != 2 {
		t.Errorf("max 2: got %d", len(got))
	}
	if got := nms(cands(), 0.9, 10, false); len(got) != 4 {
		t.Errorf("IoU 0.9 keeps the 0.82 overlap: got %d, want 4", len(got))
	}
}

func TestTF1Weights(t *testing.T) {
	// TF1 (align_corners=false, half_pixel_centers=false) samples src = dst × in/out.
	got := tf1Weights(4, 3)
	want := []weight{{0, 0, 0}, {1, 2, float32(4.0/3) - 1}, {2, 3, float32(2*float32(4.0/3)) - 2}}
	for i := range want {
		if got[i].lo != want[i].lo || got[i].hi != want[i].hi || math.Abs(float64(got[i].frac-want[i].frac)) > 1e-6 {
			t.Errorf("downscale %d: %+v, want %+v", i, got[i], want[i])
		}
	}
	// Upscaling clamps at the last pixel instead of centring.
	img := Image{Width: 2, Height: 1, Bands: 1, Data: []byte{0, 100}}
	out := resizeTF1(img, 4, 1)
	if w := []float32{0, 0, 0, 50, 50, 50, 100, 100, 100, 100, 100, 100}; !reflect.DeepEqual(out, w) {
		t.Errorf("resizeTF1 = %v, want %v", out, w)
	}
}

func TestLetterbox(t *testing.T) {
	for _, tc := range []struct {
		w, h, in              int
		gain                  float64
		newW, newH, left, top int
		padX, padY            float64
	}{
		{200, 100, 64, 0.32, 64, 32, 0, 16, 0, 16},
		{640, 427, 640, 1, 640, 427, 0, 106, 0, 106}, // dh 106.5: 106 on top, 107 below
		{451, 300, 640, 640.0 / 451, 640, 426, 0, 107, 0, 107},
		{100, 300, 64, 64.0 / 300, 21, 64, 21, 0, 21, 0},
	} {
		lb := fitLetterbox(tc.w, tc.h, tc.in, tc.in)
		if math.Abs(lb.gain-tc.gain) > 1e-12 || lb.newW != tc.newW || lb.newH != tc.newH || lb.left != tc.left ||
			lb.top != tc.top || lb.padX != tc.padX || lb.padY != tc.padY {
			t.Errorf("%dx%d into %d: %+v", tc.w, tc.h, tc.in, lb)
		}
	}
	// The letterboxed tensor holds the image in the middle and grey 114 around it.
	img := Image{Width: 4, Height: 2, Bands: 3, Data: make([]byte, 4*2*3)}
	for i := range img.Data {
		img.Data[i] = 255
	}
	lb := fitLetterbox(4, 2, 8, 8)
	in := letterboxNCHW(img, 8, 8, lb)
	grey := float32(114) / 255
	for c := 0; c < 3; c++ {
		for y := 0; y < 8; y++ {
			want := grey
			if y >= 2 && y < 6 {
				want = 1
			}
			if got := in[c*64+y*8+3]; got != want {
				t.Fatalf("channel %d row %d = %v, want %v", c, y, got, want)
			}
		}
	}
}

func TestParseNames(t *testing.T) {
	got := parseNames(`{0: 'person', 1: "men's hat", 2: 'traffic light'}`)
	if want := []string{"person", "men's hat", "traffic light"}; !reflect.DeepEqual(got, want) {
		t.Errorf("parseNames = %q, want %q", got, want)
	}
	for _, bad := range []string{"", "{}", "{0: 'a', 2: 'b'}", "{0: 'a', 0: 'b'}"} {
		if got := parseNames(bad); got != nil {
			t.Errorf("parseNames(%q) = %q, want nil", bad, got)
		}
	}
	if h, w, ok := parseImgsz("[480, 640]"); !ok || h != 480 || w != 640 {
		t.Errorf("parseImgsz = %d %d %v", h, w, ok)
	}
}

func TestParseModels(t *testing.T) {
	got, err := ParseModels(" yolo11n=/m/yolo11n.onnx, parts = parts.onnx ,")
	if err != nil {
		t.Fatal(err)
	}
	if want := []ModelSpec{{"yolo11n", "/m/yolo11n.onnx"}, {"parts", "parts.onnx"}}; !reflect.DeepEqual(got, want) {
		t.Errorf("ParseModels = %+v", got)
	}
	if _, err := ParseModels("yolo11n"); err == nil {
		t.Error("a model without a path must be refused")
	}
}

func TestCOCOLabels(t *testing.T) {
	l := ssdLabels()
	named := 0
	for _, n := range l {
		if n != "" {
			named++
		}
	}
	if named != 80 || l[16] != "cat" || l[0] != "person" || l[89] != "toothbrush" || l[11] != "" {
		t.Errorf("SSD labels: %d named, [16]=%q", named, l[16])
	}
	ids := cocoIDsOf([]string{"person", "bicycle", "dog"})
	if !reflect.DeepEqual(ids, []int{1, 2, 18}) {
		t.Errorf("cocoIDsOf = %v", ids)
	}
	if cocoIDsOf([]string{"person", "widget"}) != nil {
		t.Error("a model with a non-COCO class has no COCO ids")
	}
}

// fakeDetector answers fixed detections and records the options it was given.
type fakeDetector struct {
	name string
	dets []Detection
	got  Options
}

func (f *fakeDetector) Name() string              { return f.name }
func (f *fakeDetector) Labels() ([]string, error) { return []string{"cat", "dog"}, nil }
func (f *fakeDetector) Detect(_ context.Context, _ Image, o Options) ([]Detection, Timings, error) {
	f.got = o
	return f.dets, Timings{Inference: 12}, nil
}

func opFromJSON(t testing.TB, js string) imaged.Op {
	t.Helper()
	var o imaged.Op
	if err := json.Unmarshal([]byte(js), &o); err != nil {
		t.Fatal(err)
	}
	return o
}

func TestValidate(t *testing.T) {
	s, err := NewService("", nil, &fakeDetector{name: "m1"}, &fakeDetector{name: "m2"})
	if err != nil {
		t.Fatal(err)
	}
	for _, ok := range []string{
		`{"op":"detect"}`,
		`{"op":"detect","model":"m2","confidence":0,"iou":1,"classes":["dog"],"max_detections":300}`,
	} {
		if err := s.Validate(3, opFromJSON(t, ok)); err != nil {
			t.Errorf("%s: %v", ok, err)
		}
	}
	for _, tc := range []struct{ js, field, msg string }{
		{`{"op":"detect","confidence":1.5}`, "ops[3].confidence", "detect.confidence must be between 0 and 1"},
		{`{"op":"detect","iou":-0.1}`, "ops[3].iou", "detect.iou must be between 0 and 1"},
		{`{"op":"detect","max_detections":0}`, "ops[3].max_detections", "detect.max_detections must be between 1 and 300"},
		{`{"op":"detect","model":"nope"}`, "ops[3].model", `detect.model "nope" is not a configured model; choose one of: m1, m2`},
		{`{"op":"detect","classes":["dog","kat"]}`, "ops[3].classes[1]", `detect.classes: "kat" is not a class of model m1`},
		{`{"op":"detect","confidence":"high"}`, "ops[3].confidence", "detect.confidence must be a number, not a string"},
		{`{"op":"detect","threshold":0.5}`, "ops[3].threshold", `detect has no parameter "threshold"`},
	} {
		err := s.Validate(3, opFromJSON(t, tc.js))
		var e *imaged.Error
		if !asError(err, &e) || e.Code != imaged.EInvalid || e.Field != tc.field || e.Message != tc.msg {
			t.Errorf("%s: got %#v, want field %s message %q", tc.js, err, tc.field, tc.msg)
		}
	}
}

func asError(err error, e **imaged.Error) bool {
	x, ok := err.(*imaged.Error)
	*e = x
	return ok
}

func TestAnalyzeResultAndMetrics(t *testing.T) {
	f := &fakeDetector{name: "m1", dets: []Detection{
		{ClassName: "cat", ClassID: 16, COCOID: 17, Score: 0.93, Box: Box{1, 2, 3, 4}, BoxNorm: Box{0.1, 0.2, 0.3, 0.4}},
		{ClassName: "cat", ClassID: 16, COCOID: 17, Score: 0.6},
	}}
	reg := prometheus.NewRegistry()
	s, err := NewService("m1", reg, f)
	if err != nil {
		t.Fatal(err)
	}
	raw, err := s.Analyze(context.Background(), opFromJSON(t, `{"op":"detect","confidence":0.4,"classes":["cat"]}`),
		imaged.Pixels{Width: 10, Height: 20, Bands: 3, Data: make([]byte, 600)})
	if err != nil {
		t.Fatal(err)
	}
	if want := (Options{Confidence: 0.4, IoU: DefaultIoU, MaxDetections: DefaultMaxDetections, Classes: []string{"cat"}}); !reflect.DeepEqual(f.got, want) {
		t.Errorf("options %+v, want %+v", f.got, want)
	}
	var res map[string]any
	if err := json.Unmarshal(raw, &res); err != nil {
		t.Fatal(err)
	}
	det := res["detections"].([]any)[0].(map[string]any)
	for _, k := range []string{"class_name", "class_id", "coco_id", "confidence", "box", "box_normalized"} {
		if _, ok := det[k]; !ok {
			t.Errorf("detection lacks %s: %s", k, raw)
		}
	}
	if res["model"] != "m1" || res["timings_ms"].(map[string]any)["inference"] != 12.0 {
		t.Errorf("result %s", raw)
	}
	if !strings.Contains(string(raw), `"box":{"x1":1,"y1":2,"x2":3,"y2":4}`) {
		t.Errorf("box shape: %s", raw)
	}
	var m dto.Metric
	if err := s.metrics.detections.WithLabelValues("m1", "cat").Write(&m); err != nil || m.GetCounter().GetValue() != 2 {
		t.Errorf("detections_total{m1,cat} = %v (%v), want 2", m.GetCounter().GetValue(), err)
	}
	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	found := false
	for _, f := range families {
		if f.GetName() == "detection_inference_duration_seconds" {
			h := f.GetMetric()[0].GetHistogram()
			found = h.GetSampleCount() == 1 && math.Abs(h.GetSampleSum()-0.012) < 1e-9
		}
	}
	if !found {
		t.Errorf("detection_inference_duration_seconds{m1} did not observe 12 ms: %v", families)
	}
	// A second service on the same registry shares the collectors instead of panicking.
	if _, err := NewService("m1", reg, &fakeDetector{name: "m1"}); err != nil {
		t.Fatal(err)
	}
}

func TestAnnotate(t *testing.T) {
	img := Image{Width: 100, Height: 80, Bands: 1, Data: make([]byte, 8000)}
	for i := range img.Data {
		img.Data[i] = 40
	}
	d := Detection{ClassName: "cat", ClassID: 0, Score: 0.93, Box: Box{20, 30, 70, 60}}
	out := Annotate(img, []Detection{d})
	if out.Bands != 3 || len(out.Data) != 100*80*3 {
		t.Fatalf("annotated image is %d bands, %d bytes", out.Bands, len(out.Data))
	}
	px := func(x, y int) [3]byte {
		i := (y*out.Width + x) * 3
		return [3]byte{out.Data[i], out.Data[i+1], out.Data[i+2]}
	}
	c := palette[0]
	for _, p := range [][2]int{{20, 45}, {69, 45}, {45, 59}, {45, 31}} {
		if got := px(p[0], p[1]); got != c {
			t.Errorf("edge pixel %v = %v, want %v", p, got, c)
		}
	}
	if got := px(45, 45); got != [3]byte{40, 40, 40} {
		t.Errorf("inside pixel = %v, want untouched grey", got)
	}
	// The label sits above the box, white text on the class colour.
	white := 0
	for y := 0; y < 30; y++ {
		for x := 20; x < 100; x++ {
			if px(x, y) == [3]byte{255, 255, 255} {
				white++
			}
		}
	}
	if white < 20 {
		t.Errorf("label has %d white pixels", white)
	}
	if img.Data[30*100+20] != 40 {
		t.Error("Annotate changed its input")
	}
	rgba := Annotate(Image{Width: 100, Height: 100, Bands: 4, Data: make([]byte, 40000)}, []Detection{{ClassName: "x", Box: Box{10, 50, 60, 90}}})
	edge, inside := rgba.Data[(50*100+30)*4+3], rgba.Data[(70*100+30)*4+3]
	if rgba.Bands != 4 || edge != 255 || inside != 0 {
		t.Errorf("RGBA: bands %d, edge alpha %d, inside alpha %d", rgba.Bands, edge, inside)
	}
}

func TestBest(t *testing.T) {
	dets := []Detection{{ClassName: "dog", Score: 0.6}, {ClassName: "cat", Score: 0.7}, {ClassName: "dog", Score: 0.9}}
	if d, ok := Best(dets, "dog"); !ok || d.Score != 0.9 {
		t.Errorf("Best dog = %+v %v", d, ok)
	}
	if _, ok := Best(dets, "car"); ok {
		t.Error("no car")
	}
}

func TestRegisteredTraits(t *testing.T) {
	for ops, want := range map[string]string{
		`[{"op":"detect"}]`:                   imaged.TaskTypeDetect,
		`[{"op":"annotate"}]`:                 imaged.TaskTypeDetect,
		`[{"op":"detect"},{"op":"annotate"}]`: imaged.TaskTypeDetect,
	} {
		parsed, err := imaged.ParseOps([]byte(ops))
		if err != nil {
			t.Fatal(err)
		}
		if got := imaged.TaskTypeOf(parsed); got != want {
			t.Errorf("%s: %s, want %s", ops, got, want)
		}
	}
	detect, _ := imaged.ParseOps([]byte(`[{"op":"detect"}]`))
	annotate, _ := imaged.ParseOps([]byte(`[{"op":"annotate"}]`))
	if !imaged.HasAnalysis(detect) || imaged.HasAnalysis(annotate) {
		t.Error("detect answers with JSON, annotate with an image")
	}
}
