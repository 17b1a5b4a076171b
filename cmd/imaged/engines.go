package main

import (
	"context"
	"fmt"

	"github.com/imaged/imaged"
	"github.com/imaged/imaged/cli"
	"github.com/imaged/imaged/config"
	"github.com/imaged/imaged/detect"
	"github.com/imaged/imaged/ocr"
	"github.com/imaged/imaged/onnx"
	"github.com/imaged/imaged/prom"
	"github.com/imaged/imaged/vips"
)

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
	vcfg := vips.Config{Concurrency: cfg.VipsConcurrency, Limits: cfg.Limits(), MemoryBudget: cfg.MemoryBudget, MaxFrames: cfg.MaxFrames, MaxOutputBytes: cfg.MaxOutputBytes,
		Analyzers: []imaged.Analyzer{e.ocr, e.detector},
		Painters:  []imaged.Painter{e.detector.Annotator()},
		Locator:   e.detector}
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

// useUploads lets the pipeline's watermark op read uploaded images (image=<id>), once the task
// store and blob store are open (after newEngines, which starts libvips first). A read stops
// past the upload limit; the processor refuses such an overlay as it would any source. An
// overlay is read within the tenant ctx carries (the request's, or the task's in a worker), so
// a pipeline can never reach another tenant's image.
func (e *engines) useUploads(a *adapters, limits imaged.Limits) {
	e.processor.SetImages(func(ctx context.Context, id string) ([]byte, error) {
		_, data, err := imaged.ReadImage(ctx, a.store, a.blobs, imaged.TenantOf(ctx), id, limits.MaxBytes)
		return data, err
	})
}

// localPipeline is the pipeline of `imaged process --local`: the engines serve builds, on the
// same settings, so that an image comes out of it as it comes out of the server.
func localPipeline(getenv func(string) string) (*cli.Pipeline, error) {
	cfg, err := config.Parse("process --local", nil, getenv)
	if err != nil {
		return nil, err
	}
	e, err := newEngines(cfg, prom.New())
	if err != nil {
		return nil, err
	}
	return &cli.Pipeline{Processor: e.processor, Limits: cfg.Limits(), Close: func() {
		e.close()
		vips.Shutdown()
	}}, nil
}
