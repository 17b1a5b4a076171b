package vips

import (
	"context"
	"errors"
	"math"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	govips "github.com/davidbyttow/govips/v2/vips"

	"github.com/imaged/imaged"
)

// libvips starts once per process and cannot restart, so the tests share one start.
func TestMain(m *testing.M) {
	if os.Getenv(peakChildEnv) != "" {
		os.Exit(peakChild())
	}
	Startup(Config{})
	code := m.Run()
	Shutdown()
	os.Exit(code)
}

func readTestdata(t testing.TB, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func parseOps(t testing.TB, js string) []imaged.Op {
	t.Helper()
	ops, err := imaged.ParseOps([]byte(js))
	if err != nil {
		t.Fatalf("ops %s: %v", js, err)
	}
	return ops
}

// process runs a pipeline that must succeed.
func process(t testing.TB, p *Processor, src []byte, js string) *imaged.Result {
	t.Helper()
	res, err := p.Process(context.Background(), src, parseOps(t, js), imaged.ProcessOptions{})
	if err != nil {
		t.Fatalf("process %s: %v", js, err)
	}
	return res
}

// processErr runs a pipeline that must fail with code, and returns the error.
func processErr(t testing.TB, p *Processor, src []byte, js, code string) *imaged.Error {
	t.Helper()
	_, err := p.Process(context.Background(), src, parseOps(t, js), imaged.ProcessOptions{})
	var e *imaged.Error
	if !errors.As(err, &e) || e.Code != code {
		t.Fatalf("process %s: got %v (code %q), want code %s", js, err, imaged.ErrorCode(err), code)
	}
	return e
}

// raw is a decoded image as 8-bit interleaved bands.
type raw struct {
	w, h, bands int
	pix         []byte
}

func (r raw) at(x, y, band int) byte { return r.pix[(y*r.w+x)*r.bands+band] }

// decodeRaw decodes an encoded image with libvips, keeping its bands as stored.
func decodeRaw(t testing.TB, data []byte) raw {
	t.Helper()
	img, err := govips.NewImageFromBuffer(data)
	if err != nil {
		t.Fatalf("decode result: %v", err)
	}
	defer img.Close()
	if img.BandFormat() != govips.BandFormatUchar {
		if err := img.Cast(govips.BandFormatUchar); err != nil {
			t.Fatal(err)
		}
	}
	pix, err := img.ToBytes()
	if err != nil {
		t.Fatal(err)
	}
	r := raw{w: img.Width(), h: img.Height(), bands: img.Bands(), pix: pix}
	if len(pix) != r.w*r.h*r.bands {
		t.Fatalf("decoded %d bytes for %dx%dx%d", len(pix), r.w, r.h, r.bands)
	}
	return r
}

// luma is the mean of the colour bands of each pixel.
func (r raw) luma() []float64 {
	n := r.bands
	if n == 2 || n == 4 {
		n-- // leave alpha out
	}
	out := make([]float64, r.w*r.h)
	for k := range out {
		s := 0.0
		for b := 0; b < n; b++ {
			s += float64(r.pix[k*r.bands+b])
		}
		out[k] = s / float64(n)
	}
	return out
}

func mean(v []float64) float64 {
	s := 0.0
	for _, x := range v {
		s += x
	}
	return s / float64(len(v))
}

func stddev(v []float64) float64 {
	m := mean(v)
	s := 0.0
	for _, x := range v {
		s += (x - m) * (x - m)
	}
	return math.Sqrt(s / float64(len(v)))
}

// edgeEnergy is the mean absolute difference between horizontal and vertical neighbours: it
// falls when an image is blurred and rises when it is sharpened.
func (r raw) edgeEnergy() float64 {
	l := r.luma()
	s := 0.0
	for y := 0; y < r.h-1; y++ {
		for x := 0; x < r.w-1; x++ {
			k := y*r.w + x
			s += math.Abs(l[k+1]-l[k]) + math.Abs(l[k+r.w]-l[k])
		}
	}
	return s / float64((r.w-1)*(r.h-1))
}

// meanAbsDiff compares two images of the same size band by band.
func meanAbsDiff(t testing.TB, a, b raw) float64 {
	t.Helper()
	if a.w != b.w || a.h != b.h || a.bands != b.bands {
		t.Fatalf("sizes differ: %dx%dx%d vs %dx%dx%d", a.w, a.h, a.bands, b.w, b.h, b.bands)
	}
	s := 0.0
	for k := range a.pix {
		s += math.Abs(float64(a.pix[k]) - float64(b.pix[k]))
	}
	return s / float64(len(a.pix))
}

func checkFormat(t testing.TB, res *imaged.Result, format string, w, h int) {
	t.Helper()
	if res.Format != format || imaged.SniffFormat(res.Data) != format || res.ContentType != imaged.ContentTypeOf(format) {
		t.Fatalf("format: result says %s (%s), data sniffs as %s; want %s",
			res.Format, res.ContentType, imaged.SniffFormat(res.Data), format)
	}
	if res.Width != w || res.Height != h {
		t.Fatalf("size: result says %dx%d, want %dx%d", res.Width, res.Height, w, h)
	}
	if !res.Changed || len(res.Data) == 0 {
		t.Fatalf("result has no image data (changed=%v)", res.Changed)
	}
}

func contains(s, sub string) bool { return strings.Contains(s, sub) }

func imagedOptions() imaged.ProcessOptions { return imaged.ProcessOptions{} }

var (
	bigOnce sync.Once
	bigData []byte
	bigErr  error
)

// bigJPEG is a 3383x2250 (7.6 MP) photo: chelsea scaled up 7.5 times, as a camera-sized JPEG.
func bigJPEG(t testing.TB) []byte {
	t.Helper()
	bigOnce.Do(func() {
		img, err := govips.NewImageFromBuffer(readTestdata(t, "chelsea.png"))
		if err != nil {
			bigErr = err
			return
		}
		defer img.Close()
		if bigErr = img.Resize(7.5, govips.KernelLanczos3); bigErr != nil {
			return
		}
		p := govips.NewJpegExportParams()
		p.Quality = 90
		p.Interlace = false
		bigData, _, bigErr = img.ExportJpeg(p)
	})
	if bigErr != nil {
		t.Fatal(bigErr)
	}
	return bigData
}
