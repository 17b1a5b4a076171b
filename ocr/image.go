package ocr

import (
	"fmt"
	"math"
	"strconv"
)

// gray returns the image as one band, with alpha composed over white (text on transparent
// backgrounds reads as dark on light).
func (im Image) gray() Image {
	if im.Bands == 1 {
		return im
	}
	out := Image{Width: im.Width, Height: im.Height, Bands: 1, Data: make([]byte, im.Width*im.Height)}
	n := im.Width * im.Height
	for i := 0; i < n; i++ {
		p := im.Data[i*im.Bands : i*im.Bands+im.Bands]
		var y, a float64
		switch im.Bands {
		case 2:
			y, a = float64(p[0]), float64(p[1])
		case 3:
			y, a = 0.299*float64(p[0])+0.587*float64(p[1])+0.114*float64(p[2]), 255
		case 4:
			y, a = 0.299*float64(p[0])+0.587*float64(p[1])+0.114*float64(p[2]), float64(p[3])
		}
		y = y*a/255 + 255*(1-a/255)
		out.Data[i] = uint8(y + 0.5)
	}
	return out
}

// rgb returns the image as three bands, alpha composed over white.
func (im Image) rgb() Image {
	if im.Bands == 3 {
		return im
	}
	out := Image{Width: im.Width, Height: im.Height, Bands: 3, Data: make([]byte, im.Width*im.Height*3)}
	n := im.Width * im.Height
	for i := 0; i < n; i++ {
		p := im.Data[i*im.Bands : i*im.Bands+im.Bands]
		var c [3]float64
		a := 255.0
		switch im.Bands {
		case 1:
			c = [3]float64{float64(p[0]), float64(p[0]), float64(p[0])}
		case 2:
			c = [3]float64{float64(p[0]), float64(p[0]), float64(p[0])}
			a = float64(p[1])
		case 4:
			c = [3]float64{float64(p[0]), float64(p[1]), float64(p[2])}
			a = float64(p[3])
		}
		for k := 0; k < 3; k++ {
			out.Data[i*3+k] = uint8(c[k]*a/255 + 255*(1-a/255) + 0.5)
		}
	}
	return out
}

// pnm encodes a 1- or 3-band image as binary PGM/PPM, which Leptonica reads without a codec.
func (im Image) pnm() []byte {
	magic := "P5"
	if im.Bands == 3 {
		magic = "P6"
	}
	head := magic + "\n" + strconv.Itoa(im.Width) + " " + strconv.Itoa(im.Height) + "\n255\n"
	n := im.Width * im.Height * im.Bands
	b := make([]byte, 0, len(head)+n)
	b = append(b, head...)
	return append(b, im.Data[:n]...)
}

// at samples band k at (x, y) bilinearly, clamping at the edges.
func (im Image) at(x, y float64, k int) float64 {
	if x < 0 {
		x = 0
	}
	if y < 0 {
		y = 0
	}
	maxX, maxY := float64(im.Width-1), float64(im.Height-1)
	if x > maxX {
		x = maxX
	}
	if y > maxY {
		y = maxY
	}
	x0, y0 := int(x), int(y)
	x1, y1 := min(x0+1, im.Width-1), min(y0+1, im.Height-1)
	fx, fy := x-float64(x0), y-float64(y0)
	w, b := im.Width, im.Bands
	p00 := float64(im.Data[(y0*w+x0)*b+k])
	p10 := float64(im.Data[(y0*w+x1)*b+k])
	p01 := float64(im.Data[(y1*w+x0)*b+k])
	p11 := float64(im.Data[(y1*w+x1)*b+k])
	return (p00*(1-fx)+p10*fx)*(1-fy) + (p01*(1-fx)+p11*fx)*fy
}

// resize scales the image to w×h bilinearly, pixel centres aligned.
func (im Image) resize(w, h int) Image {
	if w == im.Width && h == im.Height {
		return im
	}
	out := Image{Width: w, Height: h, Bands: im.Bands, Data: make([]byte, w*h*im.Bands)}
	sx, sy := float64(im.Width)/float64(w), float64(im.Height)/float64(h)
	for y := 0; y < h; y++ {
		fy := (float64(y)+0.5)*sy - 0.5
		for x := 0; x < w; x++ {
			fx := (float64(x)+0.5)*sx - 0.5
			for k := 0; k < im.Bands; k++ {
				out.Data[(y*w+x)*im.Bands+k] = uint8(im.at(fx, fy, k) + 0.5)
			}
		}
	}
	return out
}

// rotate turns the image by deg degrees counter-clockwise about its centre, keeping its size and
// filling the uncovered corners with white.
func (im Image) rotate(deg float64) Image {
	out := Image{Width: im.Width, Height: im.Height, Bands: im.Bands, Data: make([]byte, len(im.Data))}
	rad := deg * math.Pi / 180
	c, s := math.Cos(rad), math.Sin(rad)
	cx, cy := float64(im.Width-1)/2, float64(im.Height-1)/2
	for y := 0; y < im.Height; y++ {
		for x := 0; x < im.Width; x++ {
			dx, dy := float64(x)-cx, float64(y)-cy
			// Inverse map: rotating the output point clockwise finds its source (y grows down).
			sx := c*dx - s*dy + cx
			sy := s*dx + c*dy + cy
			inside := sx >= -0.5 && sy >= -0.5 && sx <= float64(im.Width)-0.5 && sy <= float64(im.Height)-0.5
			for k := 0; k < im.Bands; k++ {
				v := 255.0
				if inside {
					v = im.at(sx, sy, k)
				}
				out.Data[(y*im.Width+x)*im.Bands+k] = uint8(v + 0.5)
			}
		}
	}
	return out
}

// rotate180 turns the image upside down.
func (im Image) rotate180() Image {
	out := Image{Width: im.Width, Height: im.Height, Bands: im.Bands, Data: make([]byte, len(im.Data))}
	n, b := im.Width*im.Height, im.Bands
	for i := 0; i < n; i++ {
		copy(out.Data[(n-1-i)*b:(n-i)*b], im.Data[i*b:(i+1)*b])
	}
	return out
}

func (im Image) String() string { return fmt.Sprintf("%dx%dx%d", im.Width, im.Height, im.Bands) }
