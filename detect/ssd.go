package detect

import (
	"context"
	"fmt"
	"time"

	"github.com/imaged/imaged"
	"github.com/imaged/imaged/onnx"
)

// The default model, as scripts/models-detect.sh builds it into the models directory.
const (
	SSDModelName = "ssd_mobilenet_v2_coco"
	SSDModelFile = "ssd_mobilenet_v2_coco.onnx"
)

const (
	ssdSize    = 300
	ssdAnchors = 1917
	ssdClasses = 90
)

// Runner runs a model on named inputs and returns its outputs in a fixed order; an onnx.Pool is
// one. A missing runtime or model is EUnavailable.
type Runner interface {
	Run(ctx context.Context, inputs ...onnx.Tensor) ([]onnx.Tensor, error)
}

// SSD is SSD-MobileNetV2 COCO converted from TensorFlow.js (tools/tfjs2onnx): input `image`
// [1,300,300,3] RGB 0..255, outputs `scores` [1,1917,90] (sigmoid; column j is COCO id j+1) and
// `boxes` [1,1917,1,4] (ymin, xmin, ymax, xmax, normalised).
type SSD struct {
	name   string
	run    Runner
	labels []string
}

// SSDInputs and SSDOutputs are the tensor names of the converted model.
var (
	SSDInputs  = []string{"image"}
	SSDOutputs = []string{"scores", "boxes"}
)

// NewSSD returns the SSD detector over run (usually rt.Pool(SSDModelFile, SSDInputs, SSDOutputs)).
func NewSSD(name string, run Runner) *SSD {
	return &SSD{name: name, run: run, labels: ssdLabels()}
}

// Name implements Detector.
func (d *SSD) Name() string { return d.name }

// Labels implements Detector: the 90 COCO id slots, "" for the ten ids COCO never used.
func (d *SSD) Labels() ([]string, error) { return d.labels, nil }

// Detect implements Detector. As the TF.js reference does: the best class per anchor, the
// threshold, then non-maximum suppression across classes.
func (d *SSD) Detect(ctx context.Context, img Image, opts Options) ([]Detection, Timings, error) {
	var tm Timings
	if !img.valid() {
		return nil, tm, imaged.Errorf(imaged.EInvalid, "detect: the image is empty or malformed")
	}
	t0 := time.Now()
	in := resizeTF1(img, ssdSize, ssdSize)
	t1 := time.Now()
	out, err := d.run.Run(ctx, onnx.Tensor{Shape: []int64{1, ssdSize, ssdSize, 3}, Data: in})
	if err != nil {
		return nil, tm, err
	}
	t2 := time.Now()
	scores, boxes := out[0], out[1]
	if len(scores.Data) != ssdAnchors*ssdClasses || len(boxes.Data) != ssdAnchors*4 {
		return nil, tm, fmt.Errorf("detect: %s answered scores %v and boxes %v, want [1 %d %d] and [1 %d 1 4]",
			d.name, scores.Shape, boxes.Shape, ssdAnchors, ssdClasses, ssdAnchors)
	}
	conf := float32(opts.Confidence)
	var cands []candidate
	for a := 0; a < ssdAnchors; a++ {
		row := scores.Data[a*ssdClasses : (a+1)*ssdClasses]
		best, bestScore := -1, float32(-1)
		for j, s := range row {
			if s > bestScore && d.labels[j] != "" {
				best, bestScore = j, s
			}
		}
		if best < 0 || bestScore < conf {
			continue
		}
		b := boxes.Data[a*4 : a*4+4]
		cands = append(cands, candidate{
			box: Box{
				X1: clamp(float64(b[1]), 0, 1), Y1: clamp(float64(b[0]), 0, 1),
				X2: clamp(float64(b[3]), 0, 1), Y2: clamp(float64(b[2]), 0, 1),
			},
			score: bestScore, class: best,
		})
	}
	w, h := float64(img.Width), float64(img.Height)
	dets := detections(cands, d.labels, opts, false, func(c candidate) (Box, Box, int) {
		return Box{c.box.X1 * w, c.box.Y1 * h, c.box.X2 * w, c.box.Y2 * h}, c.box, c.class + 1
	})
	tm = timings(t0, t1, t2)
	return dets, tm, nil
}

func ms(d time.Duration) float64 { return round(float64(d)/float64(time.Millisecond), 3) }
