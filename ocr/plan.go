package ocr

import (
	"math"

	"github.com/imaged/imaged"
)

// Costs of reading text, in imaged's cost units (about a millisecond of one core) per
// megapixel of the page the engine reads, measured with Tesseract 5.3 on one thread: a page
// dense with 22-pixel text took 800 a megapixel, the same page enlarged twice 350. Paddle's
// detector reads the page shrunk to at most 960 pixels a side, and is cheaper.
const (
	recognitionCost = 800
	// tesseractBytes is what Leptonica and Tesseract hold per pixel of the page while they
	// read it (peak resident memory over the page's pixels, measured: about 10 with
	// Tesseract's own 30 MB included).
	tesseractBytes = 8
)

// plan is the ocr op's plan (imaged.OpSpec.Plan): the page the engines read after
// preprocessing (grey, enlarged by upscale, turned by deskew, each a new copy) and Tesseract's
// copy of it (its PNM) and working images, and the cost of reading it. The pixels it is handed
// are the caller's to count.
func plan(in imaged.Geometry, op imaged.Op) (imaged.OpPlan, error) {
	var a Args
	if err := op.DecodeArgs(0, &a); err != nil {
		return imaged.OpPlan{}, err
	}
	page := in
	page.Frames = 1
	page.Bands = 3
	if in.HasAlpha() {
		page.Bands = 4
	}
	var held []imaged.Geometry
	if p := a.Preprocess; p != nil {
		if p.Grayscale {
			page = page.WithBands(1)
			held = append(held, page)
		}
		if p.Upscale > 1 {
			page = page.Resized(int(math.Round(float64(page.Width)*p.Upscale)), int(math.Round(float64(page.Height)*p.Upscale)))
			held = append(held, page)
		}
		if p.Deskew {
			// The turned page; the skew search's grey copy of at most 800 pixels a side
			// with its dark pixels (16 bytes each) is scratch.
			held = append(held, page)
		}
	}
	held = append(held, page, page.WithBands(tesseractBytes))
	p := imaged.OpPlan{Out: in, Held: held, Cost: recognitionCost * page.MP()}
	if a.Preprocess != nil && a.Preprocess.Deskew {
		p.Scratch = 800 * 800 * 17
	}
	return p, nil
}
