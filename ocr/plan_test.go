package ocr

import (
	"fmt"
	"math/rand/v2"
	"testing"

	"github.com/imaged/imaged"
)

// The page the engines read after preprocessing is the one the plan holds: its size and bands,
// for every preprocessing, so that a pipeline refused or charged for it before decoding is
// refused or charged for what Tesseract is given.
func TestPlanHoldsThePreprocessedPage(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for k := range 60 {
		w, h, bands := 1+rng.IntN(300), 1+rng.IntN(300), []int{3, 4}[rng.IntN(2)]
		pre := Preprocess{Grayscale: rng.IntN(2) == 0, Upscale: []float64{0, 1, 1.5, 2, 3.7, 4}[rng.IntN(6)], Deskew: rng.IntN(2) == 0}
		img := Image{Width: w, Height: h, Bands: bands, Data: make([]byte, w*h*bands)}
		for i := range img.Data {
			img.Data[i] = uint8(rng.IntN(256))
		}
		work, _ := pre.apply(img)
		op := imaged.Op{Name: "ocr", Args: []byte(fmt.Sprintf(`{"op":"ocr","preprocess":{"grayscale":%v,"upscale":%v,"deskew":%v}}`,
			pre.Grayscale, pre.Upscale, pre.Deskew))}
		p, err := plan(imaged.Geometry{Width: w, Height: h, Bands: bands, Frames: 1}, op)
		if err != nil {
			t.Fatal(err)
		}
		page := p.Held[len(p.Held)-2]
		if work.Width != page.Width || work.Height != page.Height || work.Bands > page.Bands {
			t.Fatalf("case %d, %d×%d×%d with %+v: read %d×%d×%d, planned %v×%d", k, w, h, bands, pre,
				work.Width, work.Height, work.Bands, page, page.Bands)
		}
		if want := recognitionCost * page.MP(); p.Cost != want {
			t.Fatalf("cost %v, want %v", p.Cost, want)
		}
	}
}
