package detect

import (
	"image"
	"image/color"
	_ "image/jpeg"
	_ "image/png"
	"os"
	"path/filepath"
	"testing"

	"github.com/imaged/imaged/onnx"
)

// photoDirs are searched in order for the real photos the tests use: our own testdata (darknet's
// dog.jpg, MIT), then the Debian packages that ship them (python3-skimage, darknet).
var photoDirs = []string{
	"testdata",
	"/usr/lib/python3/dist-packages/skimage/data",
	"/usr/share/darknet/data",
}

// requireServices is set in CI: what a test needs must be there, not skipped.
func requireServices() bool { return os.Getenv("IMAGED_TEST_REQUIRE_SERVICES") == "1" }

func skipOrFail(t testing.TB, format string, args ...any) {
	t.Helper()
	if requireServices() {
		t.Fatalf(format, args...)
	}
	t.Skipf("SKIPPED: "+format, args...)
}

// loadPhoto decodes a real photo into RGB pixels (grey photos stay one band).
func loadPhoto(t testing.TB, name string) Image {
	t.Helper()
	for _, dir := range photoDirs {
		f, err := os.Open(filepath.Join(dir, name))
		if err != nil {
			continue
		}
		defer f.Close()
		m, _, err := image.Decode(f)
		if err != nil {
			t.Fatalf("decode %s: %v", name, err)
		}
		return fromImage(m)
	}
	skipOrFail(t, "photo %s not found in %v (install python3-skimage and darknet)", name, photoDirs)
	return Image{}
}

func fromImage(m image.Image) Image {
	b := m.Bounds()
	if g, ok := m.(*image.Gray); ok {
		im := Image{Width: b.Dx(), Height: b.Dy(), Bands: 1, Data: make([]byte, 0, b.Dx()*b.Dy())}
		for y := b.Min.Y; y < b.Max.Y; y++ {
			im.Data = append(im.Data, g.Pix[(y-b.Min.Y)*g.Stride:(y-b.Min.Y)*g.Stride+b.Dx()]...)
		}
		return im
	}
	im := Image{Width: b.Dx(), Height: b.Dy(), Bands: 3, Data: make([]byte, 0, b.Dx()*b.Dy()*3)}
	for y := b.Min.Y; y < b.Max.Y; y++ {
		for x := b.Min.X; x < b.Max.X; x++ {
			c := color.RGBAModel.Convert(m.At(x, y)).(color.RGBA)
			im.Data = append(im.Data, c.R, c.G, c.B)
		}
	}
	return im
}

// testRuntime is the ONNX runtime over the models directory ($IMAGED_MODELS_DIR or
// ~/.cache/imaged/models), when the library and the named files are there.
func testRuntime(t testing.TB, files ...string) *onnx.Runtime {
	t.Helper()
	rt := onnx.New(onnx.Config{})
	if err := rt.Available(files...); err != nil {
		skipOrFail(t, "%v", err)
	}
	return rt
}
