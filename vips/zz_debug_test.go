package vips

import (
	"testing"
	"time"

	govips "github.com/davidbyttow/govips/v2/vips"
)

func TestZZDebug(t *testing.T) {
	big := bigJPEG(t)
	for i := 0; i < 2; i++ {
		start := time.Now()
		img, _ := govips.NewImageFromBuffer(big)
		t0 := time.Since(start)
		normalize(img)
		px, _ := img.GetPoint(10, 10) // forces decode
		t1 := time.Since(start)
		img.ResizeWithVScale(800.0/3383, 532.0/2250, govips.KernelLanczos3)
		c, _ := img.Copy()
		c.ToBytes()
		t2 := time.Since(start)
		b, _, _ := img.ExportJpeg(govips.NewJpegExportParams())
		t3 := time.Since(start)
		t.Log(px, t0, t1, t2, t3, len(b))
	}
}
