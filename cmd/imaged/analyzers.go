package main

import (
	"context"
	"encoding/json"
	"fmt"
	"image"
	"math"

	"github.com/imaged/imaged"
	"github.com/imaged/imaged/detect"
	"github.com/imaged/imaged/ocr"
	"github.com/imaged/imaged/onnx"
	"github.com/imaged/imaged/prom"
	"github.com/imaged/imaged/vips"
)

// ocrAnalyzer lets the pipeline run the ocr op over its current image.
type ocrAnalyzer struct{ op *ocr.Op }

func (a ocrAnalyzer) Validate(i int, op imaged.Op) error { return a.op.Validate(i, op) }

func (a ocrAnalyzer) Analyze(ctx context.Context, op imaged.Op, px vips.Pixels) (json.RawMessage, error) {
	return a.op.Analyze(ctx, op, ocr.Image{Width: px.Width, Height: px.Height, Bands: px.Bands, Data: px.Data})
}

// detectAnalyzer lets the pipeline run the detect op over its current image.
type detectAnalyzer struct{ svc *detect.Service }

func (a detectAnalyzer) Validate(i int, op imaged.Op) error { return a.svc.Validate(i, op) }

func (a detectAnalyzer) Analyze(ctx context.Context, op imaged.Op, px vips.Pixels) (json.RawMessage, error) {
	return a.svc.Analyze(ctx, op, detect.Image{Width: px.Width, Height: px.Height, Bands: px.Bands, Data: px.Data})
}

// engines are the pipeline and the ML engines behind its analysis ops.
type engines struct {
	processor *vips.Processor
	runtime   *onnx.Runtime
	ocr       *ocr.Op
	detector  *detect.Service
}

// newEngines starts libvips and configures OCR and detection; models load on first use.
func newEngines(cfg *Config, metrics *prom.Metrics) (*engines, error) {
	e := &engines{runtime: onnx.New(onnx.Config{ModelsDir: cfg.ModelsDir, PoolSize: cfg.ONNXSessions})}
	e.ocr = ocr.NewOp(ocr.Config{Runtime: e.runtime, Registerer: metrics.Registry,
		Tesseract: ocr.TesseractConfig{PoolSize: cfg.TesseractPool}})
	models, err := detect.ParseModels(cfg.DetectModels)
	if err != nil {
		e.close()
		return nil, fmt.Errorf("setting IMAGED_DETECT_MODELS: %w", err)
	}
	e.detector, err = detect.New(detect.Config{Runtime: e.runtime, DefaultModel: cfg.DetectModel, Models: models,
		Registerer: metrics.Registry})
	if err != nil {
		e.close()
		return nil, fmt.Errorf("setting IMAGED_DETECT_MODEL: %w", err)
	}
	vcfg := vips.Config{Concurrency: cfg.VipsConcurrency, Limits: cfg.limits(), MemoryBudget: cfg.MemoryBudget, MaxFrames: cfg.MaxFrames,
		Analyzers: map[string]vips.Analyzer{"ocr": ocrAnalyzer{e.ocr}, "detect": detectAnalyzer{e.detector}},
		Painters:  map[string]vips.Painter{"annotate": annotatePainter{e.detector}},
		Locator:   detectLocator{e.detector}}
	vips.Startup(vcfg)
	e.processor = vips.New(vcfg)
	return e, nil
}

func (e *engines) close() {
	if e.ocr != nil {
		e.ocr.Close()
	}
	_ = e.runtime.Close()
}

// annotatePainter draws the boxes of the pipeline's latest detect analysis (or of a detection
// it runs itself when there is none) onto the image.
type annotatePainter struct{ svc *detect.Service }

func (a annotatePainter) Validate(i int, op imaged.Op) error {
	var args struct {
		Op string `json:"op"`
	}
	return op.DecodeArgs(i, &args)
}

func (a annotatePainter) Paint(ctx context.Context, _ imaged.Op, px vips.Pixels, analyses []imaged.Analysis) (vips.Pixels, error) {
	img := detect.Image{Width: px.Width, Height: px.Height, Bands: px.Bands, Data: px.Data}
	var dets []detect.Detection
	found := false
	for i := len(analyses) - 1; i >= 0 && !found; i-- {
		if analyses[i].Op != "detect" {
			continue
		}
		var res detect.Result
		if err := json.Unmarshal(analyses[i].Result, &res); err != nil {
			return vips.Pixels{}, err
		}
		// Normalised boxes follow the image through resizes made after the detection.
		for _, d := range res.Detections {
			d.Box = detect.Box{X1: d.BoxNorm.X1 * float64(px.Width), Y1: d.BoxNorm.Y1 * float64(px.Height),
				X2: d.BoxNorm.X2 * float64(px.Width), Y2: d.BoxNorm.Y2 * float64(px.Height)}
			dets = append(dets, d)
		}
		found = true
	}
	if !found {
		res, err := a.svc.Detect(ctx, "", img, detect.DefaultOptions())
		if err != nil {
			return vips.Pixels{}, err
		}
		dets = res.Detections
	}
	out := detect.Annotate(img, dets)
	return vips.Pixels{Width: out.Width, Height: out.Height, Bands: out.Bands, Data: out.Data}, nil
}

// detectLocator finds objects for crop gravity=object:<class>.
type detectLocator struct{ svc *detect.Service }

func (l detectLocator) Locate(ctx context.Context, px vips.Pixels, class string) (image.Rectangle, bool, error) {
	opts := detect.DefaultOptions()
	opts.Classes = []string{class}
	res, err := l.svc.Detect(ctx, "", detect.Image{Width: px.Width, Height: px.Height, Bands: px.Bands, Data: px.Data}, opts)
	if err != nil {
		return image.Rectangle{}, false, err
	}
	best, ok := detect.Best(res.Detections, class)
	if !ok {
		return image.Rectangle{}, false, nil
	}
	return image.Rect(int(best.Box.X1), int(best.Box.Y1), int(math.Ceil(best.Box.X2)), int(math.Ceil(best.Box.Y2))), true, nil
}
