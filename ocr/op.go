package ocr

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/imaged/imaged"
	"github.com/imaged/imaged/onnx"
)

// Config wires the ocr op.
type Config struct {
	Tesseract TesseractConfig
	// Runtime runs the Paddle models; a runtime over the default models directory where nil.
	Runtime *onnx.Runtime
	// Registerer receives the metrics; none are registered where nil.
	Registerer prometheus.Registerer
}

// Args are the ocr op's parameters:
// {"op":"ocr","engine":"tesseract","languages":["eng"],"hocr":false,"raw":false,
// "preprocess":{"grayscale":true,"upscale":2,"deskew":true}}.
type Args struct {
	Op         string      `json:"op"`
	Engine     string      `json:"engine" doc:"OCR engine" enum:"tesseract,paddle,hybrid" default:"tesseract"`
	Languages  []string    `json:"languages" doc:"Tesseract languages (up to 8), default eng"`
	HOCR       bool        `json:"hocr" doc:"add Tesseract hOCR"`
	Raw        bool        `json:"raw" doc:"add the engines' raw output"`
	Preprocess *Preprocess `json:"preprocess" doc:"{grayscale, upscale (1–4), deskew} before recognition"`
}

// spec declares the ocr op's traits: an analysis that needs the OCR engines, so its pipelines
// go to the workers that hold them.
var spec = imaged.OpSpec{Name: "ocr", Summary: "reads the text of the image, with its lines and boxes",
	Kind: imaged.OpAnalysis, TaskType: imaged.TaskTypeOCR, Params: imaged.ParamsOf[Args](), Plan: plan}

func init() { imaged.RegisterOp(spec) }

// Op is the ocr analysis op: it validates its parameters and reads the text of the pipeline's
// current image.
type Op struct {
	engines   map[string]Engine
	tesseract *Tesseract
	metrics   *Metrics
}

// NewOp builds the op and its three engines. Nothing heavy loads until the first request.
func NewOp(cfg Config) *Op {
	rt := cfg.Runtime
	if rt == nil {
		rt = onnx.New(onnx.Config{})
	}
	t := NewTesseract(cfg.Tesseract)
	p := NewPaddle(rt)
	return &Op{
		engines: map[string]Engine{
			EngineTesseract: t,
			EnginePaddle:    p,
			EngineHybrid:    &Hybrid{Tesseract: t, Paddle: p},
		},
		tesseract: t,
		metrics:   NewMetrics(cfg.Registerer),
	}
}

// Engine returns the named engine, for callers that skip the op (benchmarks, tools).
func (o *Op) Engine(name string) Engine { return o.engines[name] }

// Close frees the idle Tesseract clients.
func (o *Op) Close() { o.tesseract.Close() }

// Parse decodes and checks op's parameters; index is the op's place in the pipeline, for
// error fields. Errors are EInvalid naming the op and field.
func (o *Op) Parse(index int, op imaged.Op) (Args, error) {
	var a Args
	if err := op.DecodeArgs(index, &a); err != nil {
		return a, err
	}
	field := func(name string) string { return fmt.Sprintf("ops[%d].%s", index, name) }
	a.Engine = strings.ToLower(a.Engine)
	if a.Engine == "" {
		a.Engine = EngineTesseract
	}
	if _, ok := o.engines[a.Engine]; !ok {
		return a, imaged.FieldErrorf(field("engine"), "ocr.engine must be one of tesseract, paddle, hybrid; got %q", imaged.EchoID(a.Engine))
	}
	if len(a.Languages) == 0 {
		a.Languages = []string{"eng"}
	}
	if len(a.Languages) > 8 {
		return a, imaged.FieldErrorf(field("languages"), "ocr.languages holds %d languages; the limit is 8", len(a.Languages))
	}
	if a.Engine != EnginePaddle {
		if err := o.tesseract.CheckLanguages(a.Languages); err != nil {
			if e, ok := err.(*imaged.Error); ok && e.Code == imaged.EInvalid {
				e.Field = field("languages")
				e.Message = "ocr.languages: " + e.Message
			}
			return a, err
		}
	}
	if a.Preprocess != nil {
		if u := a.Preprocess.Upscale; u != 0 && (u < 1 || u > 4) {
			return a, imaged.FieldErrorf(field("preprocess.upscale"), "ocr.preprocess.upscale must be between 1 and 4")
		}
	}
	return a, nil
}

var _ imaged.Analyzer = (*Op)(nil)

// Spec is the op's registered traits.
func (o *Op) Spec() imaged.OpSpec { return spec }

// Validate checks op's parameters without touching pixels.
func (o *Op) Validate(index int, op imaged.Op) error {
	_, err := o.Parse(index, op)
	return err
}

// Analyze reads the text of px and returns the Result as JSON. A paddle request without the
// models is EUnavailable saying to run `make models`.
func (o *Op) Analyze(ctx context.Context, op imaged.Op, px imaged.Pixels) (json.RawMessage, error) {
	a, err := o.Parse(0, op)
	if err != nil {
		return nil, err
	}
	res, err := o.Recognize(ctx, Image(px), a)
	if err != nil {
		return nil, err
	}
	return json.Marshal(res)
}

// Recognize runs parsed arguments over img: preprocessing, the engine, coordinates mapped back
// to img, metrics.
func (o *Op) Recognize(ctx context.Context, img Image, a Args) (*Result, error) {
	if err := img.check(); err != nil {
		return nil, imaged.WrapError(imaged.EInvalid, err, "ocr: the image cannot be read")
	}
	start := time.Now()
	work, tr := img, transform{scale: 1, origW: img.Width, origH: img.Height}
	if a.Preprocess != nil {
		work, tr = a.Preprocess.apply(img)
	}
	prep := time.Since(start)
	res, err := o.engines[a.Engine].Recognize(ctx, work, Options{Languages: a.Languages, HOCR: a.HOCR, Raw: a.Raw})
	if err != nil {
		return nil, err
	}
	tr.mapBack(res)
	if a.Preprocess != nil {
		res.Timings["preprocess"] = ms(prep)
	}
	elapsed := time.Since(start)
	res.Timings["total"] = ms(elapsed)
	o.metrics.Duration.WithLabelValues(a.Engine).Observe(elapsed.Seconds())
	o.metrics.Characters.WithLabelValues(a.Engine, strings.Join(a.Languages, "+")).Add(float64(utf8.RuneCountInString(strings.Join(strings.Fields(res.Text), ""))))
	return res, nil
}
