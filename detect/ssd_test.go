package detect

import (
	"github.com/imaged/imaged"

	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"os"
	"path/filepath"
	"reflect"
	"sync"
	"testing"

	"github.com/imaged/imaged/onnx"
)

type referencePhotos struct {
	MinIoU float64 `json:"min_iou"`
	Photos []struct {
		File          string `json:"file"`
		Width, Height int
		Objects       []struct {
			Class string     `json:"class"`
			Box   [4]float64 `json:"box"`
		} `json:"objects"`
	} `json:"photos"`
	Empty []string `json:"empty"`
}

func loadReference(t *testing.T) referencePhotos {
	t.Helper()
	b, err := os.ReadFile("testdata/reference_boxes.json")
	if err != nil {
		t.Fatal(err)
	}
	var r referencePhotos
	if err := json.Unmarshal(b, &r); err != nil {
		t.Fatal(err)
	}
	return r
}

// ssdService is the detect service over the built-in SSD model, skipping (or failing in CI) when
// `make models` has not run.
func ssdService(t testing.TB) *Service {
	t.Helper()
	rt := testRuntime(t, SSDModelFile)
	s, err := New(Config{Runtime: rt})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func analyze(t testing.TB, s *Service, js string, img Image) Result {
	t.Helper()
	raw, err := s.Analyze(context.Background(), opFromJSON(t, js), imaged.Pixels(img))
	if err != nil {
		t.Fatal(err)
	}
	var res Result
	if err := json.Unmarshal(raw, &res); err != nil {
		t.Fatal(err)
	}
	return res
}

func TestSSDFindsObjectsInRealPhotos(t *testing.T) {
	s := ssdService(t)
	ref := loadReference(t)
	for _, p := range ref.Photos {
		t.Run(p.File, func(t *testing.T) {
			img := loadPhoto(t, p.File)
			if img.Width != p.Width || img.Height != p.Height {
				t.Fatalf("%s is %dx%d, the reference was drawn on %dx%d", p.File, img.Width, img.Height, p.Width, p.Height)
			}
			res := analyze(t, s, `{"op":"detect"}`, img)
			t.Logf("%s: %d detections, timings %+v", p.File, len(res.Detections), res.TimingsMS)
			for _, o := range p.Objects {
				want := Box{o.Box[0], o.Box[1], o.Box[2], o.Box[3]}
				best, bestIoU := Detection{}, 0.0
				for _, d := range res.Detections {
					if iou := IoU(d.Box, want); d.ClassName == o.Class && iou > bestIoU {
						best, bestIoU = d, iou
					}
				}
				t.Logf("  %-8s confidence %.3f IoU %.3f box %+v", o.Class, best.Score, bestIoU, best.Box)
				if bestIoU < ref.MinIoU {
					t.Errorf("%s: no %s with IoU >= %.2f against %v; detections %+v", p.File, o.Class, ref.MinIoU, want, res.Detections)
					continue
				}
				if best.Score < DefaultConfidence || best.COCOID != best.ClassID+1 {
					t.Errorf("%s: %s has confidence %v, class id %d, COCO id %d", p.File, o.Class, best.Score, best.ClassID, best.COCOID)
				}
				n := best.BoxNorm
				if d := []float64{n.X1*float64(img.Width) - best.Box.X1, n.Y2*float64(img.Height) - best.Box.Y2}; abs(d[0]) > 0.5 || abs(d[1]) > 0.5 {
					t.Errorf("%s: normalised box %+v does not match %+v", p.File, n, best.Box)
				}
			}
		})
	}
}

func abs(x float64) float64 {
	if x < 0 {
		return -x
	}
	return x
}

func TestSSDFindsNothingWithoutCOCOObjects(t *testing.T) {
	s := ssdService(t)
	for _, f := range loadReference(t).Empty {
		img := loadPhoto(t, f)
		res := analyze(t, s, `{"op":"detect"}`, img)
		if len(res.Detections) != 0 {
			t.Errorf("%s (%d bands): %+v", f, img.Bands, res.Detections)
		}
		// Below the threshold the model does see things; the threshold is what keeps them out.
		low := analyze(t, s, `{"op":"detect","confidence":0.05}`, img)
		t.Logf("%s: nothing above %.2f; %d detections above 0.05", f, DefaultConfidence, len(low.Detections))
	}
}

func TestSSDParameters(t *testing.T) {
	s := ssdService(t)
	img := loadPhoto(t, "dog.jpg")
	res := analyze(t, s, `{"op":"detect","classes":["dog","car"]}`, img)
	if len(res.Detections) != 2 || res.Detections[0].ClassName != "dog" || res.Detections[1].ClassName != "car" {
		t.Errorf("classes dog, car: %+v", res.Detections)
	}
	res = analyze(t, s, `{"op":"detect","max_detections":1}`, img)
	if len(res.Detections) != 1 || res.Detections[0].ClassName != "bicycle" {
		t.Errorf("max 1: %+v", res.Detections)
	}
	res = analyze(t, s, `{"op":"detect","confidence":0.95}`, img)
	if len(res.Detections) != 1 || res.Detections[0].ClassName != "bicycle" {
		t.Errorf("confidence 0.95: %+v", res.Detections)
	}
	if res.Model != SSDModelName || res.Image.Width != 768 || res.Image.Height != 576 {
		t.Errorf("result header %+v", res)
	}
}

// Eight requests at once (sessions shared through the pool) give exactly what one at a time gives.
func TestSSDConcurrentEqualsSequential(t *testing.T) {
	s := ssdService(t)
	names := []string{"chelsea.png", "coffee.png", "dog.jpg", "brick.png"}
	imgs := make([]Image, len(names))
	want := make([][]Detection, len(names))
	for i, n := range names {
		imgs[i] = loadPhoto(t, n)
		want[i] = analyze(t, s, `{"op":"detect","confidence":0.2}`, imgs[i]).Detections
	}
	const n = 8
	o := opFromJSON(t, `{"op":"detect","confidence":0.2}`)
	got := make([][]Detection, n)
	var wg sync.WaitGroup
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			raw, err := s.Analyze(context.Background(), o, imaged.Pixels(imgs[i%len(imgs)]))
			if err != nil {
				t.Error(err)
				return
			}
			var r Result
			if err := json.Unmarshal(raw, &r); err != nil {
				t.Error(err)
			}
			got[i] = r.Detections
		}(i)
	}
	wg.Wait()
	for i := 0; i < n; i++ {
		if !reflect.DeepEqual(got[i], want[i%len(imgs)]) {
			t.Errorf("request %d (%s): concurrent %+v, sequential %+v", i, names[i%len(names)], got[i], want[i%len(imgs)])
		}
	}
}

func TestSSDAnnotateRealPhoto(t *testing.T) {
	s := ssdService(t)
	img := loadPhoto(t, "dog.jpg")
	res := analyze(t, s, `{"op":"detect"}`, img)
	out := Annotate(img, res.Detections)
	changed := 0
	for i := range out.Data {
		if out.Data[i] != img.Data[i] {
			changed++
		}
	}
	if changed == 0 || changed > len(out.Data)/4 {
		t.Errorf("annotation changed %d of %d bytes", changed, len(out.Data))
	}
	if _, ok := Best(res.Detections, "dog"); !ok {
		t.Errorf("no dog to crop around: %+v", res.Detections)
	}
}

// TestSSDWriteTFJSComparison writes, for tools/tfjs2onnx/verify.js, each reference photo's pixels
// and what the Go resize plus the converted model answer for them, so the conversion and the
// resize can be checked against the original TensorFlow.js graph. It runs only when
// IMAGED_DETECT_TFJS_DUMP names a directory.
func TestSSDWriteTFJSComparison(t *testing.T) {
	dir := os.Getenv("IMAGED_DETECT_TFJS_DUMP")
	if dir == "" {
		t.Skip("set IMAGED_DETECT_TFJS_DUMP=DIR to write the comparison files for tools/tfjs2onnx/verify.js")
	}
	s := ssdService(t)
	pool := s.rt.Pool(SSDModelFile, SSDInputs, SSDOutputs)
	var index []map[string]any
	for _, p := range loadReference(t).Photos {
		img := loadPhoto(t, p.File)
		in := onnx.Tensor{Shape: []int64{1, ssdSize, ssdSize, 3}, Data: resizeTF1(img, ssdSize, ssdSize)}
		out, err := pool.Run(context.Background(), in)
		if err != nil {
			t.Fatal(err)
		}
		var buf bytes.Buffer
		for _, o := range out {
			if err := binary.Write(&buf, binary.LittleEndian, o.Data); err != nil {
				t.Fatal(err)
			}
		}
		if err := os.WriteFile(filepath.Join(dir, p.File+".rgb"), img.Data, 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, p.File+".onnx.f32"), buf.Bytes(), 0o644); err != nil {
			t.Fatal(err)
		}
		index = append(index, map[string]any{"file": p.File, "width": img.Width, "height": img.Height, "bands": img.Bands})
	}
	b, _ := json.Marshal(index)
	if err := os.WriteFile(filepath.Join(dir, "index.json"), b, 0o644); err != nil {
		t.Fatal(err)
	}
}
