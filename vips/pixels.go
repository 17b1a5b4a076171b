package vips

import (
	"bytes"
	"fmt"
	"image"
	"image/png"

	govips "github.com/davidbyttow/govips/v2/vips"

	"github.com/imaged/imaged"
)

// rgbPixels reads the current image as 8-bit sRGB without changing it.
func rgbPixels(img *govips.ImageRef) (imaged.Pixels, error) {
	c, err := img.Copy()
	if err != nil {
		return imaged.Pixels{}, err
	}
	defer c.Close()
	if c.Interpretation() != govips.InterpretationSRGB || c.Bands() < 3 {
		if err := c.ToColorSpace(govips.InterpretationSRGB); err != nil {
			return imaged.Pixels{}, err
		}
	}
	if c.Bands() > 4 {
		if err := c.ExtractBand(0, 4); err != nil {
			return imaged.Pixels{}, err
		}
	}
	if c.BandFormat() != govips.BandFormatUchar {
		if err := c.Cast(govips.BandFormatUchar); err != nil {
			return imaged.Pixels{}, err
		}
	}
	data, err := c.ToBytes()
	if err != nil {
		return imaged.Pixels{}, err
	}
	px := imaged.Pixels{Width: c.Width(), Height: c.Height(), Bands: c.Bands(), Data: data}
	if len(data) != px.Width*px.Height*px.Bands {
		return imaged.Pixels{}, fmt.Errorf("libvips returned %d bytes for a %d×%d×%d image", len(data), px.Width, px.Height, px.Bands)
	}
	return px, nil
}

// gray is one 8-bit band, row after row.
type gray struct {
	w, h int
	pix  []byte
}

// grayPixels reads the luminance of the current image, transparency laid on white, smoothed
// by a Gaussian of sigma pixels when sigma > 0.
func grayPixels(img *govips.ImageRef, sigma float64) (gray, error) {
	c, err := img.Copy()
	if err != nil {
		return gray{}, err
	}
	defer c.Close()
	if err := flattenAlpha(c); err != nil {
		return gray{}, err
	}
	if c.Interpretation() != govips.InterpretationBW || c.Bands() != 1 {
		if err := c.ToColorSpace(govips.InterpretationBW); err != nil {
			return gray{}, err
		}
	}
	if c.Bands() > 1 {
		if err := c.ExtractBand(0, 1); err != nil {
			return gray{}, err
		}
	}
	if sigma > 0 {
		if err := c.GaussianBlur(sigma); err != nil {
			return gray{}, err
		}
	}
	if c.BandFormat() != govips.BandFormatUchar {
		if err := c.Cast(govips.BandFormatUchar); err != nil {
			return gray{}, err
		}
	}
	data, err := c.ToBytes()
	if err != nil {
		return gray{}, err
	}
	g := gray{w: c.Width(), h: c.Height(), pix: data}
	if len(data) != g.w*g.h {
		return gray{}, fmt.Errorf("libvips returned %d bytes for a %d×%d grey image", len(data), g.w, g.h)
	}
	return g, nil
}

// greyPlan is the plan of an op drawn in Go on the grey pixels of an image of geometry in
// (grayPixels, then grayImage) at cost units a megapixel: the grey copy libvips writes, its Go
// copy, the result, its PNG and libvips' decode of that.
func greyPlan(in imaged.Geometry, cost float64) imaged.OpPlan {
	g := in.WithBands(1)
	return imaged.OpPlan{Out: g, Held: []imaged.Geometry{g, g, g, g, g}, Cost: cost * in.MP()}
}

// grayImage hands a grey buffer back to libvips. govips has no constructor from raw memory, so
// the pixels travel as an uncompressed PNG: a copy plus checksums, far cheaper than the ops
// that produce them.
func grayImage(pix []byte, w, h int) (*govips.ImageRef, error) {
	g := &image.Gray{Pix: pix, Stride: w, Rect: image.Rect(0, 0, w, h)}
	var buf bytes.Buffer
	buf.Grow(len(pix) + len(pix)/16 + 1024)
	enc := png.Encoder{CompressionLevel: png.NoCompression}
	if err := enc.Encode(&buf, g); err != nil {
		return nil, err
	}
	return govips.NewImageFromBuffer(buf.Bytes())
}
