// Package detect finds objects in images: the default SSD-MobileNetV2 COCO model that imaged's
// setup builds (`make models`), and Ultralytics YOLOv8 / YOLO11 ONNX exports that users bring.
// Both run on ONNX Runtime through the onnx package; preprocessing (resize, letterbox) and
// post-processing (best class, threshold, non-maximum suppression) are plain Go, so the boxes
// come back in pixels of the image the caller passed in.
//
// Service serves the pipeline's ops that need the detector, registering their traits with the
// domain: detect (an imaged.Analyzer), annotate (its Annotator, an imaged.Painter, drawing with
// Annotate) and gravity object:<class> of crop (Locate, an imaged.Locator).
package detect

import (
	"context"
	"math"
	"sort"
	"time"
)

// Image is 8-bit interleaved sRGB pixels: Bands is 1 (grey), 2 (grey, alpha), 3 (RGB) or 4 (RGBA),
// Data holds Width*Height*Bands bytes, row after row.
type Image struct {
	Width, Height, Bands int
	Data                 []byte
}

// rgb returns the red, green and blue values of pixel (x, y); alpha is ignored.
func (im Image) rgb(x, y int) (r, g, b byte) {
	i := (y*im.Width + x) * im.Bands
	if im.Bands < 3 {
		v := im.Data[i]
		return v, v, v
	}
	return im.Data[i], im.Data[i+1], im.Data[i+2]
}

func (im Image) valid() bool {
	return im.Width > 0 && im.Height > 0 && im.Bands >= 1 && im.Bands <= 4 &&
		len(im.Data) == im.Width*im.Height*im.Bands
}

// Box is a rectangle, x1,y1 its top-left and x2,y2 its bottom-right corner.
type Box struct {
	X1 float64 `json:"x1"`
	Y1 float64 `json:"y1"`
	X2 float64 `json:"x2"`
	Y2 float64 `json:"y2"`
}

func (b Box) area() float64 { return math.Max(0, b.X2-b.X1) * math.Max(0, b.Y2-b.Y1) }

// IoU is the intersection over union of two boxes, 0 when either is empty.
func IoU(a, b Box) float64 {
	in := Box{math.Max(a.X1, b.X1), math.Max(a.Y1, b.Y1), math.Min(a.X2, b.X2), math.Min(a.Y2, b.Y2)}.area()
	u := a.area() + b.area() - in
	if u <= 0 {
		return 0
	}
	return in / u
}

// Detection is one object found.
type Detection struct {
	ClassName string  `json:"class_name"`
	ClassID   int     `json:"class_id"`          // the model's class index
	COCOID    int     `json:"coco_id,omitempty"` // for models whose classes are COCO's: the COCO category id
	Score     float64 `json:"confidence"`
	Box       Box     `json:"box"`            // pixels of the image passed in
	BoxNorm   Box     `json:"box_normalized"` // the same box, as fractions 0..1 of width and height
}

// Options are the knobs of one detection.
type Options struct {
	// Confidence is the lowest score kept, 0..1.
	Confidence float64
	// IoU is the overlap above which non-maximum suppression drops the lower-scored box, 0..1.
	IoU float64
	// Classes, when not empty, keeps only these class names.
	Classes []string
	// MaxDetections bounds the number of detections returned.
	MaxDetections int
}

// Defaults of Options, as the SSD-MobileNetV2 COCO reference post-processing uses them.
const (
	DefaultConfidence    = 0.5
	DefaultIoU           = 0.5
	DefaultMaxDetections = 20
	MaxMaxDetections     = 300
)

// DefaultOptions are the options of a detect op that sets none.
func DefaultOptions() Options {
	return Options{Confidence: DefaultConfidence, IoU: DefaultIoU, MaxDetections: DefaultMaxDetections}
}

// Timings says where a detection spent its time, in milliseconds.
type Timings struct {
	Preprocess  float64 `json:"preprocess"`
	Inference   float64 `json:"inference"`
	Postprocess float64 `json:"postprocess"`
}

// Detector is one loaded (or lazily loadable) model.
type Detector interface {
	// Name is the model's name as requests give it.
	Name() string
	// Labels are the class names by class index; "" where an index has no class. It may read the
	// model's sidecar file or metadata; a missing model is EUnavailable.
	Labels() ([]string, error)
	// Detect finds objects in img. A missing library or model is EUnavailable; an empty or
	// malformed image is EInvalid.
	Detect(ctx context.Context, img Image, opts Options) ([]Detection, Timings, error)
}

// candidate is a box before non-maximum suppression, in the model's normalised coordinates.
type candidate struct {
	box   Box
	score float32
	class int
}

// nms keeps the best-scored candidates and drops any that overlaps an already kept one by more
// than iou: across all classes, or only within the same class when perClass. It keeps at most max
// and returns them in descending score; ties keep the model's anchor order, so the result is
// deterministic.
func nms(cands []candidate, iou float64, max int, perClass bool) []candidate {
	sort.SliceStable(cands, func(i, j int) bool { return cands[i].score > cands[j].score })
	var kept []candidate
	for _, c := range cands {
		if len(kept) >= max {
			break
		}
		ok := true
		for _, k := range kept {
			if perClass && k.class != c.class {
				continue
			}
			if IoU(k.box, c.box) > iou {
				ok = false
				break
			}
		}
		if ok {
			kept = append(kept, c)
		}
	}
	return kept
}

// detections keeps the candidates of the classes opts asks for, suppresses overlaps (see nms)
// and answers each kept one: place gives its box in pixels of the image and in fractions of its
// sides, and its COCO id (0 when the model has none).
func detections(cands []candidate, labels []string, opts Options, perClass bool, place func(candidate) (px, norm Box, coco int)) []Detection {
	kept := nms(keepClasses(cands, labels, opts.Classes), opts.IoU, opts.MaxDetections, perClass)
	dets := make([]Detection, len(kept))
	for i, c := range kept {
		px, norm, coco := place(c)
		dets[i] = detection(labels[c.class], c, px, norm)
		dets[i].COCOID = coco
	}
	return dets
}

// timings are the stage times of one detection: preprocessing from t0 to t1, inference to t2,
// postprocessing to now.
func timings(t0, t1, t2 time.Time) Timings {
	return Timings{Preprocess: ms(t1.Sub(t0)), Inference: ms(t2.Sub(t1)), Postprocess: ms(time.Since(t2))}
}

// detection is the answer for candidate c, labelled label, whose box is px in pixels of the
// image and norm in fractions of its sides; both are rounded to what a client can use.
func detection(label string, c candidate, px, norm Box) Detection {
	return Detection{
		ClassName: label,
		ClassID:   c.class,
		Score:     round(float64(c.score), 4),
		Box:       Box{round(px.X1, 2), round(px.Y1, 2), round(px.X2, 2), round(px.Y2, 2)},
		BoxNorm:   Box{round(norm.X1, 4), round(norm.Y1, 4), round(norm.X2, 4), round(norm.Y2, 4)},
	}
}

// keepClasses filters candidates to the named classes (all when names is empty).
func keepClasses(cands []candidate, labels []string, names []string) []candidate {
	if len(names) == 0 {
		return cands
	}
	want := map[string]bool{}
	for _, n := range names {
		want[n] = true
	}
	out := cands[:0]
	for _, c := range cands {
		if c.class < len(labels) && want[labels[c.class]] {
			out = append(out, c)
		}
	}
	return out
}

func round(v float64, places int) float64 {
	p := math.Pow(10, float64(places))
	return math.Round(v*p) / p
}

func clamp(v, lo, hi float64) float64 { return math.Max(lo, math.Min(hi, v)) }

// Best returns the highest-scored detection of the named class.
func Best(dets []Detection, class string) (Detection, bool) {
	var best Detection
	found := false
	for _, d := range dets {
		if d.ClassName == class && (!found || d.Score > best.Score) {
			best, found = d, true
		}
	}
	return best, found
}
