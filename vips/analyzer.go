package vips

import (
	"context"
	"encoding/json"
	"errors"

	"github.com/imaged/imaged"
)

// Analyzer adds an analysis op (ocr, detect) to the pipeline without this package knowing it.
// It reads the current image and returns JSON for Result.Analyses.
type Analyzer interface {
	// Validate checks the op's parameters without pixels; errors should be
	// imaged.FieldErrorf("ops[<index>].<field>", ...) so they name the op and field.
	Validate(index int, op imaged.Op) error
	// Analyze reads px, the current image as 8-bit sRGB, and returns its JSON result. An
	// *imaged.Error keeps its code; other errors are internal.
	Analyze(ctx context.Context, op imaged.Op, px Pixels) (json.RawMessage, error)
}

type analyzerStep struct {
	name string
	a    Analyzer
	op   imaged.Op
}

func (st analyzerStep) apply(ctx context.Context, s *state) error {
	if s.changed {
		// libvips computes lazily and keeps no cache: reading the pixels here and encoding
		// later would run the transforms so far twice. Compute them once, into memory.
		if err := s.hold(); err != nil {
			return err
		}
	}
	px, err := rgbPixels(s.img)
	if err != nil {
		return err
	}
	res, err := st.a.Analyze(ctx, st.op, px)
	if err != nil {
		var e *imaged.Error
		if errors.As(err, &e) || errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
			return err
		}
		return imaged.WrapError(imaged.EInternal, err, "%s failed", st.name)
	}
	if !json.Valid(res) {
		return imaged.Errorf(imaged.EInternal, "%s returned invalid JSON", st.name)
	}
	s.analyses = append(s.analyses, imaged.Analysis{Op: st.name, Result: res})
	return nil
}
