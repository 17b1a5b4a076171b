package imaged

import "context"

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

// HasAnalysis reports whether the pipeline holds an op that returns JSON.
func HasAnalysis(ops []Op) bool {
	for _, o := range ops {
		switch o.Name {
		case "info", "ocr", "detect":
			return true
		}
	}
	return false
}
