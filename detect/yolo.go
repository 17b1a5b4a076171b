package detect

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/imaged/imaged"
	"github.com/imaged/imaged/onnx"
)

// YOLO is an Ultralytics YOLOv8 / YOLO11 ONNX export (the model users bring): input [1,3,H,W] RGB
// 0..1 letterboxed with grey 114, output [1, 4+classes, anchors] holding centre x, y, width,
// height in input pixels, then one score per class. Class names come from a sidecar file beside
// the model (same name, extension .names or .txt, one name per line), else from the model's
// `names` metadata, else they are class_0, class_1, ...
//
// Nothing is read until the first Labels or Detect.
type YOLO struct {
	name string
	path string
	pool func(input, output string) Runner

	mu    sync.Mutex
	model *yoloModel
}

type yoloModel struct {
	input, output string
	inW, inH      int
	classes       int // -1 when the output's shape is not fixed
	labels        []string
	cocoIDs       []int
	run           Runner
}

// NewYOLO returns the detector of the model file at path; pool makes the model's session pool
// from its input and output tensor names (usually rt.Pool(path, ...)).
func NewYOLO(name, path string, pool func(input, output string) Runner) *YOLO {
	return &YOLO{name: name, path: path, pool: pool}
}

// Name implements Detector.
func (d *YOLO) Name() string { return d.name }

// Labels implements Detector.
func (d *YOLO) Labels() ([]string, error) {
	m, err := d.load()
	if err != nil {
		return nil, err
	}
	return m.labels, nil
}

func (d *YOLO) load() (*yoloModel, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.model != nil {
		return d.model, nil
	}
	b, err := os.ReadFile(d.path)
	if err != nil {
		return nil, &imaged.Error{Code: imaged.ENotInstalled, Message: fmt.Sprintf("the detection model %s (%s) cannot be read", d.name, filepath.Base(d.path)), Err: err}
	}
	info, err := parseModelInfo(b)
	if err != nil {
		return nil, &imaged.Error{Code: imaged.ENotInstalled, Message: fmt.Sprintf("the detection model %s (%s) is not an ONNX model", d.name, filepath.Base(d.path)), Err: err}
	}
	m, err := yoloFromInfo(info, d.path)
	if err != nil {
		return nil, &imaged.Error{Code: imaged.ENotInstalled, Message: fmt.Sprintf("the detection model %s (%s): %v", d.name, filepath.Base(d.path), err), Err: err}
	}
	m.run = d.pool(m.input, m.output)
	d.model = m
	return m, nil
}

func yoloFromInfo(info *modelInfo, path string) (*yoloModel, error) {
	if len(info.Inputs) != 1 || len(info.Outputs) < 1 {
		return nil, fmt.Errorf("a YOLO export has one input and one output; this has %d and %d", len(info.Inputs), len(info.Outputs))
	}
	in, out := info.Inputs[0], info.Outputs[0]
	m := &yoloModel{input: in.Name, output: out.Name, classes: -1}
	if len(in.Dims) != 4 || (in.Dims[1] != 3 && in.Dims[1] != -1) {
		return nil, fmt.Errorf("input %s has shape %v; want [1,3,height,width]", in.Name, in.Dims)
	}
	m.inH, m.inW = int(in.Dims[2]), int(in.Dims[3])
	if m.inH <= 0 || m.inW <= 0 { // exported with dynamic=True: the training size is in the metadata
		m.inH, m.inW = 640, 640
		if h, w, ok := parseImgsz(info.Metadata["imgsz"]); ok {
			m.inH, m.inW = h, w
		}
	}
	if m.inH > maxInputSide || m.inW > maxInputSide {
		return nil, fmt.Errorf("input %s is %d×%d; imaged serves models of at most %d×%d", in.Name, m.inW, m.inH, maxInputSide, maxInputSide)
	}
	if len(out.Dims) == 3 && out.Dims[1] > 4 {
		m.classes = int(out.Dims[1]) - 4
	} else if len(out.Dims) != 3 || (out.Dims[1] != -1 && out.Dims[1] <= 4) {
		return nil, fmt.Errorf("output %s has shape %v; want [1, 4+classes, anchors] (export without nms or end2end)", out.Name, out.Dims)
	}
	labels, err := sidecarNames(path)
	if err != nil {
		return nil, err
	}
	if labels == nil {
		labels = parseNames(info.Metadata["names"])
	}
	if labels == nil && m.classes > 0 {
		labels = make([]string, m.classes)
		for i := range labels {
			labels[i] = "class_" + strconv.Itoa(i)
		}
	}
	if m.classes > 0 && len(labels) != m.classes {
		return nil, fmt.Errorf("the model has %d classes but %d class names", m.classes, len(labels))
	}
	m.labels = labels
	m.cocoIDs = cocoIDsOf(labels)
	return m, nil
}

// sidecarNames reads model.names or model.txt beside model.onnx; nil when neither exists.
func sidecarNames(path string) ([]string, error) {
	base := strings.TrimSuffix(path, ".onnx")
	for _, ext := range []string{".names", ".txt"} {
		f, err := os.Open(base + ext)
		if os.IsNotExist(err) {
			continue
		}
		if err != nil {
			return nil, err
		}
		defer f.Close()
		var names []string
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			names = append(names, strings.TrimSpace(sc.Text()))
		}
		if err := sc.Err(); err != nil {
			return nil, err
		}
		for len(names) > 0 && names[len(names)-1] == "" {
			names = names[:len(names)-1]
		}
		return names, nil
	}
	return nil, nil
}

var nameEntry = regexp.MustCompile(`(\d+)\s*:\s*(?:'((?:[^'\\]|\\.)*)'|"((?:[^"\\]|\\.)*)")`)

// parseNames reads Ultralytics' `names` metadata, a Python dict literal such as
// {0: 'person', 1: 'bicycle'}; nil when it holds none or leaves an index out.
func parseNames(s string) []string {
	ms := nameEntry.FindAllStringSubmatch(s, -1)
	if len(ms) == 0 {
		return nil
	}
	names := make([]string, len(ms))
	seen := 0
	for _, m := range ms {
		i, err := strconv.Atoi(m[1])
		if err != nil || i < 0 || i >= len(names) || names[i] != "" {
			return nil
		}
		n := m[2] + m[3]
		n = strings.NewReplacer(`\'`, `'`, `\"`, `"`, `\\`, `\`).Replace(n)
		names[i] = n
		seen++
	}
	if seen != len(names) {
		return nil
	}
	return names
}

var imgszRe = regexp.MustCompile(`^\[\s*(\d+)\s*,\s*(\d+)\s*\]$`)

func parseImgsz(s string) (h, w int, ok bool) {
	m := imgszRe.FindStringSubmatch(strings.TrimSpace(s))
	if m == nil {
		return 0, 0, false
	}
	h, _ = strconv.Atoi(m[1])
	w, _ = strconv.Atoi(m[2])
	return h, w, h > 0 && w > 0
}

// Detect implements Detector, as Ultralytics' predict does: letterbox, the best class per anchor,
// the threshold, the class filter, non-maximum suppression within each class, then the boxes are
// mapped back through the letterbox and clipped to the image.
func (d *YOLO) Detect(ctx context.Context, img Image, opts Options) ([]Detection, Timings, error) {
	var tm Timings
	if !img.valid() {
		return nil, tm, imaged.Errorf(imaged.EInvalid, "detect: the image is empty or malformed")
	}
	m, err := d.load()
	if err != nil {
		return nil, tm, err
	}
	t0 := time.Now()
	lb := fitLetterbox(img.Width, img.Height, m.inW, m.inH)
	in := letterboxNCHW(img, m.inW, m.inH, lb)
	t1 := time.Now()
	out, err := m.run.Run(ctx, onnx.Tensor{Shape: []int64{1, 3, int64(m.inH), int64(m.inW)}, Data: in})
	if err != nil {
		return nil, tm, err
	}
	t2 := time.Now()
	o := out[0]
	if len(o.Shape) != 3 || o.Shape[0] != 1 || int(o.Shape[1]) != 4+len(m.labels) {
		return nil, tm, fmt.Errorf("detect: %s answered shape %v; want [1 %d anchors]", d.name, o.Shape, 4+len(m.labels))
	}
	n := int(o.Shape[2])
	ch := func(c, a int) float32 { return o.Data[c*n+a] }
	conf := float32(opts.Confidence)
	var cands []candidate
	for a := 0; a < n; a++ {
		best, bestScore := -1, float32(-1)
		for c := range m.labels {
			if s := ch(4+c, a); s > bestScore {
				best, bestScore = c, s
			}
		}
		if best < 0 || bestScore < conf {
			continue
		}
		cx, cy, w, h := float64(ch(0, a)), float64(ch(1, a)), float64(ch(2, a)), float64(ch(3, a))
		cands = append(cands, candidate{
			box:   Box{cx - w/2, cy - h/2, cx + w/2, cy + h/2},
			score: bestScore, class: best,
		})
	}
	iw, ih := float64(img.Width), float64(img.Height)
	dets := detections(cands, m.labels, opts, true, func(c candidate) (Box, Box, int) {
		b := lb.toImage(c.box, img.Width, img.Height)
		coco := 0
		if m.cocoIDs != nil {
			coco = m.cocoIDs[c.class]
		}
		return b, Box{b.X1 / iw, b.Y1 / ih, b.X2 / iw, b.Y2 / ih}, coco
	})
	tm = timings(t0, t1, t2)
	return dets, tm, nil
}
