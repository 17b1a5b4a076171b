package main

import (
	"context"
	"encoding/json"
	"fmt"

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
	vcfg := vips.Config{Concurrency: cfg.VipsConcurrency, Limits: cfg.limits(), MemoryBudget: cfg.MemoryBudget,
		Analyzers: map[string]vips.Analyzer{"ocr": ocrAnalyzer{e.ocr}, "detect": detectAnalyzer{e.detector}}}
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
