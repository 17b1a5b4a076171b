package vips

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"image"
	"image/png"

	govips "github.com/davidbyttow/govips/v2/vips"

	"github.com/imaged/imaged"
)

// painterStep runs a transform op drawn in Go by an engine outside this package (annotate).
type painterStep struct {
	name string
	p    imaged.Painter
	op   imaged.Op
}

func (st painterStep) apply(ctx context.Context, s *state) error {
	px, err := rgbPixels(s.img)
	if err != nil {
		return err
	}
	out, err := st.p.Paint(ctx, st.op, px, s.analyses)
	if err != nil {
		var e *imaged.Error
		if errors.As(err, &e) || errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
			return err
		}
		return imaged.WrapError(imaged.EInternal, err, "%s failed", st.name)
	}
	img, err := pixelsImage(out)
	if err != nil {
		return err
	}
	s.replace(img)
	return nil
}

// pixelsImage hands interleaved 8-bit RGB or RGBA pixels back to libvips (as an uncompressed
// PNG: govips has no constructor from raw memory).
func pixelsImage(px imaged.Pixels) (*govips.ImageRef, error) {
	if len(px.Data) != px.Width*px.Height*px.Bands || (px.Bands != 3 && px.Bands != 4) {
		return nil, fmt.Errorf("a painter returned %d bytes for a %d×%d×%d image", len(px.Data), px.Width, px.Height, px.Bands)
	}
	rect := image.Rect(0, 0, px.Width, px.Height)
	var img image.Image
	if px.Bands == 4 {
		img = &image.NRGBA{Pix: px.Data, Stride: 4 * px.Width, Rect: rect}
	} else {
		rgba := image.NewNRGBA(rect)
		for i, j := 0, 0; i < len(px.Data); i, j = i+3, j+4 {
			rgba.Pix[j], rgba.Pix[j+1], rgba.Pix[j+2], rgba.Pix[j+3] = px.Data[i], px.Data[i+1], px.Data[i+2], 255
		}
		img = rgba
	}
	var buf bytes.Buffer
	buf.Grow(px.Width*px.Height*4 + 1024)
	if err := (&png.Encoder{CompressionLevel: png.NoCompression}).Encode(&buf, img); err != nil {
		return nil, err
	}
	out, err := govips.NewImageFromBuffer(buf.Bytes())
	if err != nil {
		return nil, err
	}
	if px.Bands == 3 {
		if err := out.ExtractBand(0, 3); err != nil {
			out.Close()
			return nil, err
		}
	}
	return out, nil
}

// objectPlan is what finding an object on an image of geometry in holds and costs: the pixels
// handed to the locator, and what the object detector holds and costs, as the detect op it
// also serves declares it.
func objectPlan(in imaged.Geometry) imaged.OpPlan {
	var p imaged.OpPlan
	if spec, ok := imaged.LookupOp("detect"); ok && spec.Plan != nil {
		p, _ = spec.Plan(in, imaged.Op{Name: "detect", Args: []byte(`{"op":"detect"}`)})
	}
	p.Held = append(p.Held, handoff(in)...)
	return p
}

func (st painterStep) plan(in imaged.Geometry) (imaged.OpPlan, error) {
	p, err := st.p.Spec().Plan(in, st.op)
	if err != nil {
		return p, err
	}
	// The pixels handed over, the painted image as pixelsImage makes it (RGBA and its PNG)
	// and libvips' decode of that.
	out := p.Out.WithBands(4)
	p.Held = append(append(p.Held, handoff(in)...), out, out, out)
	return p, nil
}

// cropObject crops cw×ch (0 = the object's own size) centred on the best object of class,
// clamped to the image; with no such object it falls back to the centre.
func cropObject(ctx context.Context, s *state, loc imaged.Locator, class string, cw, ch int) error {
	px, err := rgbPixels(s.img)
	if err != nil {
		return err
	}
	box, ok, err := loc.Locate(ctx, px, class)
	if err != nil {
		return err
	}
	w, h := s.img.Width(), s.img.Height()
	if !ok {
		return cropGravity(s.img, orDefault(cw, w), orDefault(ch, h), "centre")
	}
	box = box.Intersect(image.Rect(0, 0, w, h))
	cw, ch = min(orDefault(cw, box.Dx()), w), min(orDefault(ch, box.Dy()), h)
	cx, cy := (box.Min.X+box.Max.X)/2, (box.Min.Y+box.Max.Y)/2
	x := min(max(cx-cw/2, 0), w-cw)
	y := min(max(cy-ch/2, 0), h-ch)
	return s.img.ExtractArea(x, y, max(cw, 1), max(ch, 1))
}

func orDefault(v, def int) int {
	if v <= 0 {
		return def
	}
	return v
}
