package main

import (
	"context"
	"encoding/json"

	"github.com/imaged/imaged"
	"github.com/imaged/imaged/detect"
	"github.com/imaged/imaged/ocr"
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
