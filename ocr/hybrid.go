package ocr

import (
	"context"
	"sort"
	"sync"
	"time"

	"github.com/imaged/imaged"
)

// Hybrid runs Tesseract and Paddle at once and merges their lines: lines that overlap (box IoU
// ≥ 0.3) are one line, read by the engine more confident of it; a line only one engine found is
// kept when that engine is fairly sure of it (confidence ≥ 60). Without the Paddle models it
// answers with Tesseract alone and a warning.
type Hybrid struct {
	Tesseract *Tesseract
	Paddle    *Paddle
}

const (
	hybridMatchIoU = 0.3
	hybridKeepConf = 60
)

// Recognize implements Engine.
func (h *Hybrid) Recognize(ctx context.Context, img Image, opts Options) (*Result, error) {
	start := time.Now()
	if err := h.Tesseract.CheckLanguages(opts.languages()); err != nil {
		return nil, err
	}
	if err := h.Paddle.Available(); err != nil {
		res, terr := h.Tesseract.Recognize(ctx, img, opts)
		if terr != nil {
			return nil, terr
		}
		res.Engine = EngineHybrid
		res.Warnings = append(res.Warnings, "paddle engine unavailable, answered with tesseract alone: "+imaged.ErrorMessage(err))
		return res, nil
	}
	var (
		wg         sync.WaitGroup
		tres, pres *Result
		terr, perr error
	)
	wg.Add(2)
	go func() { defer wg.Done(); tres, terr = h.Tesseract.Recognize(ctx, img, opts) }()
	go func() { defer wg.Done(); pres, perr = h.Paddle.Recognize(ctx, img, opts) }()
	wg.Wait()
	switch {
	case terr != nil && perr != nil:
		return nil, terr
	case terr != nil:
		if imaged.IsCode(terr, imaged.EInvalid) {
			return nil, terr
		}
		pres.Engine = EngineHybrid
		pres.Warnings = append(pres.Warnings, "tesseract engine failed, answered with paddle alone: "+imaged.ErrorMessage(terr))
		return pres, nil
	case perr != nil:
		tres.Engine = EngineHybrid
		tres.Warnings = append(tres.Warnings, "paddle engine failed, answered with tesseract alone: "+imaged.ErrorMessage(perr))
		return tres, nil
	}
	res := &Result{Engine: EngineHybrid, Lines: mergeLines(tres.Lines, pres.Lines), HOCR: tres.HOCR, Timings: map[string]float64{}}
	for k, v := range tres.Timings {
		res.Timings["tesseract_"+k] = v
	}
	for k, v := range pres.Timings {
		res.Timings["paddle_"+k] = v
	}
	res.Text = joinLines(res.Lines)
	if opts.Raw {
		res.Raw = map[string]*Result{EngineTesseract: tres, EnginePaddle: pres}
	}
	res.Timings["total"] = ms(time.Since(start))
	return res, nil
}

// mergeLines pairs each line of a with the line of b it overlaps most and keeps the more
// confident reading. The order is that of the engine whose readings won more often, with lines
// only the other engine found placed by their tops.
func mergeLines(a, b []Line) []Line {
	for i := range a {
		a[i].Engine = EngineTesseract
	}
	for i := range b {
		b[i].Engine = EnginePaddle
	}
	matchB := make([]int, len(a))
	usedB := make([]bool, len(b))
	for i := range a {
		matchB[i] = -1
		best := hybridMatchIoU
		for j := range b {
			if iou := a[i].Box.IoU(b[j].Box); !usedB[j] && iou >= best {
				best, matchB[i] = iou, j
			}
		}
		if matchB[i] >= 0 {
			usedB[matchB[i]] = true
		}
	}
	var merged, extra []Line
	winsA, winsB := 0, 0
	for i, j := range matchB {
		switch {
		case j < 0:
			if a[i].Confidence >= hybridKeepConf {
				extra = append(extra, a[i])
			}
		case a[i].Confidence >= b[j].Confidence:
			winsA++
			merged = append(merged, a[i])
		default:
			winsB++
			merged = append(merged, b[j])
		}
	}
	if winsB > winsA {
		// Keep b's order (it knows when a page was upside down).
		at := map[int]Line{}
		idx := 0
		for _, j := range matchB {
			if j >= 0 {
				at[j] = merged[idx]
				idx++
			}
		}
		ordered := make([]Line, 0, len(merged))
		for j := range b {
			if l, ok := at[j]; ok {
				ordered = append(ordered, l)
			}
		}
		merged = ordered
	}
	for j := range b {
		if !usedB[j] && b[j].Confidence >= hybridKeepConf {
			extra = append(extra, b[j])
		}
	}
	for _, l := range extra {
		k := sort.Search(len(merged), func(i int) bool { return merged[i].Box.Y1 > l.Box.Y1 })
		merged = append(merged[:k], append([]Line{l}, merged[k:]...)...)
	}
	return merged
}
