package imaged

import (
	"context"
	"encoding/json"
	"image"
)

// ProcessOptions carry request context that some ops read.
type ProcessOptions struct {
	// Accept is the request's Accept header, for format=auto.
	Accept string
}

// Result is the outcome of running a pipeline.
type Result struct {
	// Data is the encoded image when Changed; nil when the pipeline only analysed the image.
	Data        []byte
	Format      string
	ContentType string
	Width       int
	Height      int
	Changed     bool
	Analyses    []Analysis
}

// Processor runs pipelines. The sync API path and the worker call the same Processor.
type Processor interface {
	// Validate checks every op's parameters without touching pixels; the error is EInvalid and
	// names the op and field.
	Validate(ops []Op) error
	// Process runs ops over the image in src, decoding once and encoding once. Bad parameters
	// are EInvalid; an image that cannot be decoded is EInvalid; other errors are internal.
	Process(ctx context.Context, src []byte, ops []Op, opts ProcessOptions) (*Result, error)
}

// HasAnalysis reports whether the pipeline holds an op that returns JSON (an OpAnalysis).
func HasAnalysis(ops []Op) bool {
	for _, o := range ops {
		if spec, ok := opSpecs[o.Name]; ok && spec.Kind == OpAnalysis {
			return true
		}
	}
	return false
}

// Pixels is an image handed between the pipeline and the engines that read or draw on it in
// Go: 8-bit interleaved sRGB, row after row, Width×Height×Bands bytes. The pipeline hands out 3
// bands (RGB) or 4 (RGBA) and takes back the same.
type Pixels struct {
	Width, Height, Bands int
	Data                 []byte
}

// Analyzer serves an analysis op (ocr, detect) that the pipeline runs without knowing it: it
// reads the current image and returns JSON for Result.Analyses.
type Analyzer interface {
	// Spec is the op it serves, as its package registers it (Kind OpAnalysis).
	Spec() OpSpec
	// Validate checks the op's parameters without pixels; errors should be
	// FieldErrorf("ops[<index>].<field>", ...) so they name the op and field.
	Validate(index int, op Op) error
	// Analyze reads px, the current image, and returns its JSON result. An *Error keeps its
	// code; other errors are internal.
	Analyze(ctx context.Context, op Op, px Pixels) (json.RawMessage, error)
}

// Painter serves a transform op drawn in Go (annotate draws the latest detections) that the
// pipeline runs without knowing it. It sees the analyses made so far.
type Painter interface {
	// Spec is the op it serves, as its package registers it (Kind OpTransform).
	Spec() OpSpec
	// Validate checks the op's parameters without pixels, naming op and field on error.
	Validate(index int, op Op) error
	// Paint returns the new image, 3 or 4 bands.
	Paint(ctx context.Context, op Op, px Pixels, analyses []Analysis) (Pixels, error)
}

// Locator finds the box of the best object of a class, for crop and resize gravity
// object:<class>. ok is false when there is none.
type Locator interface {
	Locate(ctx context.Context, px Pixels, class string) (box image.Rectangle, ok bool, err error)
}
