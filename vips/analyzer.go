package vips

import (
	"context"
	"encoding/json"
	"errors"

	"github.com/imaged/imaged"
)

// analyzerStep runs an analysis op served by an engine outside this package (ocr, detect).
type analyzerStep struct {
	name string
	a    imaged.Analyzer
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

// plan is the engine's own plan with the pixels handed to it, and the copy held before when
// the transforms so far must be computed once.
func (st analyzerStep) plan(in imaged.Geometry) (imaged.OpPlan, error) {
	p, err := st.a.Spec().Plan(in, st.op)
	if err != nil {
		return p, err
	}
	p.Held = append(append(p.Held, handoff(in)...), in)
	return p, nil
}
