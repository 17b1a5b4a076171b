package detect

import (
	"context"
	"encoding/json"
	"fmt"
	"image"
	"math"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/imaged/imaged"
	"github.com/imaged/imaged/onnx"
)

// ModelSpec names a model users bring.
type ModelSpec struct {
	// Name is how requests choose it ("model" of the detect op).
	Name string
	// Path is the ONNX file: absolute, or a file name in the models directory.
	Path string
}

// ParseModels reads the models setting: comma-separated name=path pairs, e.g.
// "yolo11n=/models/yolo11n.onnx,parts=parts.onnx". Each is an Ultralytics YOLOv8 / YOLO11 export.
func ParseModels(setting string) ([]ModelSpec, error) {
	var specs []ModelSpec
	for _, part := range strings.Split(setting, ",") {
		part = strings.TrimSpace(part)
		if part == "" {
			continue
		}
		name, path, ok := strings.Cut(part, "=")
		name, path = strings.TrimSpace(name), strings.TrimSpace(path)
		if !ok || name == "" || path == "" {
			return nil, fmt.Errorf("detection model %q is not name=path", part)
		}
		specs = append(specs, ModelSpec{Name: name, Path: path})
	}
	return specs, nil
}

// Config configures the detect op.
type Config struct {
	// Runtime runs the models; shared with OCR, since ONNX Runtime is loaded once per process.
	Runtime *onnx.Runtime
	// DefaultModel is the model of requests that name none; SSDModelName where empty.
	DefaultModel string
	// Models are the models users bring, besides the built-in SSDModelName.
	Models []ModelSpec
	// Registerer receives the metrics; none are registered where nil.
	Registerer prometheus.Registerer
}

// Service serves the detect op over the configured models. Models load on first use.
type Service struct {
	detectors map[string]Detector
	def       string
	metrics   *metrics
	rt        *onnx.Runtime // nil when the detectors came from NewService
}

// New configures the detectors; it loads nothing. A duplicate or unknown model name is an error.
func New(cfg Config) (*Service, error) {
	if cfg.Runtime == nil {
		return nil, fmt.Errorf("detect: no ONNX runtime configured")
	}
	rt := cfg.Runtime
	ds := []Detector{NewSSD(SSDModelName, rt.Pool(SSDModelFile, SSDInputs, SSDOutputs))}
	for _, m := range cfg.Models {
		path := rt.ModelPath(m.Path)
		ds = append(ds, NewYOLO(m.Name, path, func(in, out string) Runner {
			return rt.Pool(path, []string{in}, []string{out})
		}))
	}
	s, err := NewService(cfg.DefaultModel, cfg.Registerer, ds...)
	if err != nil {
		return nil, err
	}
	s.rt = rt
	return s, nil
}

// NewService serves the given detectors; def names the default one (the first where empty).
func NewService(def string, reg prometheus.Registerer, ds ...Detector) (*Service, error) {
	s := &Service{detectors: map[string]Detector{}, metrics: newMetrics(reg)}
	for _, d := range ds {
		if _, dup := s.detectors[d.Name()]; dup {
			return nil, fmt.Errorf("detect: two models are named %s", d.Name())
		}
		s.detectors[d.Name()] = d
	}
	if def == "" && len(ds) > 0 {
		def = ds[0].Name()
	}
	if _, ok := s.detectors[def]; !ok {
		return nil, fmt.Errorf("detect: the default model %q is not configured (models: %s)", def, strings.Join(s.Models(), ", "))
	}
	s.def = def
	return s, nil
}

// Models lists the configured model names.
func (s *Service) Models() []string {
	names := make([]string, 0, len(s.detectors))
	for n := range s.detectors {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

// Args are the detect op's parameters:
// {"op":"detect","model":"ssd_mobilenet_v2_coco","confidence":0.5,"iou":0.5,"classes":["cat"],"max_detections":20}.
type Args struct {
	Op            string   `json:"op"`
	Model         string   `json:"model,omitempty" doc:"detector model (default: the configured one)"`
	Confidence    *float64 `json:"confidence,omitempty" doc:"lowest confidence kept" min:"0" max:"1"`
	IoU           *float64 `json:"iou,omitempty" doc:"overlap above which boxes are merged" min:"0" max:"1"`
	Classes       []string `json:"classes,omitempty" doc:"keep only these classes"`
	MaxDetections *int     `json:"max_detections,omitempty" doc:"most boxes returned" min:"1" max:"300"`
}

// Result is the detect op's JSON answer.
type Result struct {
	Detections []Detection `json:"detections"`
	Model      string      `json:"model"`
	Image      struct {
		Width  int `json:"width"`
		Height int `json:"height"`
	} `json:"image"`
	TimingsMS struct {
		Timings
		Total float64 `json:"total"`
	} `json:"timings_ms"`
}

// request is a validated detect op.
type request struct {
	model Detector
	opts  Options
}

func (s *Service) parse(index int, op imaged.Op) (*request, error) {
	var a Args
	if err := op.DecodeArgs(index, &a); err != nil {
		return nil, err
	}
	field := func(name string) string { return fmt.Sprintf("ops[%d].%s", index, name) }
	r := &request{opts: DefaultOptions()}
	r.opts.Classes = a.Classes
	name := a.Model
	if name == "" {
		name = s.def
	}
	d, ok := s.detectors[name]
	if !ok {
		return nil, imaged.FieldErrorf(field("model"), "%s.model %q is not a configured model; choose one of: %s",
			op.Name, name, strings.Join(s.Models(), ", "))
	}
	r.model = d
	if a.Confidence != nil {
		if *a.Confidence < 0 || *a.Confidence > 1 {
			return nil, imaged.FieldErrorf(field("confidence"), "%s.confidence must be between 0 and 1", op.Name)
		}
		r.opts.Confidence = *a.Confidence
	}
	if a.IoU != nil {
		if *a.IoU < 0 || *a.IoU > 1 {
			return nil, imaged.FieldErrorf(field("iou"), "%s.iou must be between 0 and 1", op.Name)
		}
		r.opts.IoU = *a.IoU
	}
	if a.MaxDetections != nil {
		if *a.MaxDetections < 1 || *a.MaxDetections > MaxMaxDetections {
			return nil, imaged.FieldErrorf(field("max_detections"), "%s.max_detections must be between 1 and %d", op.Name, MaxMaxDetections)
		}
		r.opts.MaxDetections = *a.MaxDetections
	}
	// Class names are checked when the model's names can be read; a model that cannot be read
	// fails when it runs, with EUnavailable.
	if labels, err := d.Labels(); err == nil {
		for i, c := range a.Classes {
			if c == "" || !slices.Contains(labels, c) {
				return nil, imaged.FieldErrorf(fmt.Sprintf("ops[%d].classes[%d]", index, i),
					"%s.classes: %q is not a class of model %s", op.Name, c, d.Name())
			}
		}
	}
	return r, nil
}

// specs declare the traits of the ops the detector serves: detect reports the objects,
// annotate draws them; both make their pipelines detect tasks, for the workers that hold the
// models.
var specs = struct{ detect, annotate imaged.OpSpec }{
	detect: imaged.OpSpec{Name: "detect", Summary: "finds objects in the image, with their classes and boxes",
		Kind: imaged.OpAnalysis, TaskType: imaged.TaskTypeDetect, Params: imaged.ParamsOf[Args](), Plan: detectPlan},
	annotate: imaged.OpSpec{Name: "annotate", Summary: "draws the boxes of the latest detections onto the image",
		Kind: imaged.OpTransform, TaskType: imaged.TaskTypeDetect, Params: []imaged.Param{}, Plan: annotatePlan},
}

// maxInputSide bounds the input of the models served: a model's input tensor is at most
// maxInputSide² pixels of three float32 bands, as the plans count it (a YOLO export with a
// larger input is refused when it loads).
const maxInputSide = 1280

// detectionCost is the cost of one detection in imaged's cost units (about a millisecond of
// one core): the resize into the model's input and its run, which depend on the model, not the
// image (SSD MobileNet takes 12 to 22, a YOLO model at 640 a few hundred).
const detectionCost = 300

// detectPlan is the detect op's plan: the model's input tensor and its run, reading the pixels
// it is handed (the caller's to count) once.
func detectPlan(in imaged.Geometry, _ imaged.Op) (imaged.OpPlan, error) {
	return imaged.OpPlan{Out: in, Scratch: maxInputSide * maxInputSide * 3 * 4, Cost: detectionCost + 2*in.MP()}, nil
}

// annotatePlan is the annotate op's plan: a detection, when the pipeline has made none, and the
// annotated copy (RGB, or RGBA with alpha).
func annotatePlan(in imaged.Geometry, op imaged.Op) (imaged.OpPlan, error) {
	p, _ := detectPlan(in, op)
	out := in.WithBands(3)
	if in.HasAlpha() {
		out.Bands = 4
	}
	p.Out = out
	p.Held = append(p.Held, out)
	p.Cost += 10 * in.MP()
	return p, nil
}

func init() {
	imaged.RegisterOp(specs.detect)
	imaged.RegisterOp(specs.annotate)
}

var (
	_ imaged.Analyzer = (*Service)(nil)
	_ imaged.Locator  = (*Service)(nil)
)

// Spec is the detect op's registered traits.
func (s *Service) Spec() imaged.OpSpec { return specs.detect }

// Validate checks the parameters of a detect op at position index of its pipeline, without
// running anything. The error is EInvalid and names the op and field.
func (s *Service) Validate(index int, op imaged.Op) error {
	_, err := s.parse(index, op)
	return err
}

// Analyze runs a detect op (one that Validate accepted) over px and returns its Result as JSON.
// A missing runtime or model is EUnavailable; bad parameters are EInvalid.
func (s *Service) Analyze(ctx context.Context, op imaged.Op, px imaged.Pixels) (json.RawMessage, error) {
	r, err := s.parse(0, op)
	if err != nil {
		return nil, err
	}
	res, err := s.run(ctx, r.model, Image(px), r.opts)
	if err != nil {
		return nil, err
	}
	return json.Marshal(res)
}

// Detect runs the named model ("" for the default) over img, e.g. for POST /v1/detect or for
// cropping around an object. An unknown model is EInvalid.
func (s *Service) Detect(ctx context.Context, model string, img Image, opts Options) (*Result, error) {
	if model == "" {
		model = s.def
	}
	d, ok := s.detectors[model]
	if !ok {
		return nil, imaged.FieldErrorf("model", "model %q is not a configured model; choose one of: %s", model, strings.Join(s.Models(), ", "))
	}
	return s.run(ctx, d, img, opts)
}

func (s *Service) run(ctx context.Context, d Detector, img Image, opts Options) (*Result, error) {
	start := time.Now()
	dets, tm, err := d.Detect(ctx, img, opts)
	if err != nil {
		return nil, err
	}
	s.metrics.inference.WithLabelValues(d.Name()).Observe(tm.Inference / 1000)
	for _, det := range dets {
		s.metrics.detections.WithLabelValues(d.Name(), det.ClassName).Inc()
	}
	res := &Result{Detections: dets, Model: d.Name()}
	if res.Detections == nil {
		res.Detections = []Detection{}
	}
	res.Image.Width, res.Image.Height = img.Width, img.Height
	res.TimingsMS.Timings = tm
	res.TimingsMS.Total = ms(time.Since(start))
	return res, nil
}

// Locate finds the best object of class in px with the default model, for crop
// gravity=object:<class>.
func (s *Service) Locate(ctx context.Context, px imaged.Pixels, class string) (image.Rectangle, bool, error) {
	opts := DefaultOptions()
	opts.Classes = []string{class}
	res, err := s.Detect(ctx, "", Image(px), opts)
	if err != nil {
		return image.Rectangle{}, false, err
	}
	best, ok := Best(res.Detections, class)
	if !ok {
		return image.Rectangle{}, false, nil
	}
	return image.Rect(int(best.Box.X1), int(best.Box.Y1), int(math.Ceil(best.Box.X2)), int(math.Ceil(best.Box.Y2))), true, nil
}

// Available reports whether the named model ("" for the default) can run: the runtime library
// and the model file are present. The error is EUnavailable (EInvalid for an unknown model). It
// loads nothing, so a health check may call it.
func (s *Service) Available(model string) error {
	if model == "" {
		model = s.def
	}
	d, ok := s.detectors[model]
	if !ok {
		return imaged.Errorf(imaged.EInvalid, "model %q is not configured", model)
	}
	if s.rt == nil {
		return nil
	}
	switch d := d.(type) {
	case *SSD:
		return s.rt.Available(SSDModelFile)
	case *YOLO:
		return s.rt.Available(d.path)
	}
	return nil
}
