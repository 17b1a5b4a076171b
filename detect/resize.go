package detect

import "math"

// resizeTF1 resizes img to w×h the way TensorFlow 1's ResizeBilinear does with
// align_corners=false and half_pixel_centers=false (the resize the SSD graph was trained with):
// output pixel i samples input position i×(in/out), with float32 arithmetic throughout. Other
// bilinear variants (half-pixel centres, x/image/draw) shift the scores noticeably. The result is
// NHWC float32 RGB 0..255.
func resizeTF1(img Image, w, h int) []float32 {
	xs := tf1Weights(img.Width, w)
	ys := tf1Weights(img.Height, h)
	out := make([]float32, w*h*3)
	bands := img.Bands
	rowStride := img.Width * bands
	for y, wy := range ys {
		top := img.Data[wy.lo*rowStride : (wy.lo+1)*rowStride]
		bot := img.Data[wy.hi*rowStride : (wy.hi+1)*rowStride]
		orow := out[y*w*3 : (y+1)*w*3]
		fy := wy.frac
		for x, wx := range xs {
			l, r := wx.lo*bands, wx.hi*bands
			tl, tr := top[l:l+bands], top[r:r+bands]
			bl, br := bot[l:l+bands], bot[r:r+bands]
			o := orow[x*3 : x*3+3]
			if bands < 3 { // grey: the same value in all three channels
				v := lerp2(tl[0], tr[0], bl[0], br[0], wx.frac, fy)
				o[0], o[1], o[2] = v, v, v
				continue
			}
			o[0] = lerp2(tl[0], tr[0], bl[0], br[0], wx.frac, fy)
			o[1] = lerp2(tl[1], tr[1], bl[1], br[1], wx.frac, fy)
			o[2] = lerp2(tl[2], tr[2], bl[2], br[2], wx.frac, fy)
		}
	}
	return out
}

// lerp2 is TF's compute_lerp: across the top and bottom rows, then between them, in float32.
func lerp2(tl, tr, bl, br byte, fx, fy float32) float32 {
	t := float32(tl) + (float32(tr)-float32(tl))*fx
	b := float32(bl) + (float32(br)-float32(bl))*fx
	return t + (b-t)*fy
}

type weight struct {
	lo, hi int
	frac   float32
}

func tf1Weights(in, out int) []weight {
	scale := float32(in) / float32(out)
	ws := make([]weight, out)
	for i := range ws {
		src := float32(i) * scale
		f := float32(math.Floor(float64(src)))
		ws[i] = weight{
			lo:   max(int(f), 0),
			hi:   min(int(math.Ceil(float64(src))), in-1),
			frac: src - f,
		}
	}
	return ws
}

// letterbox is how an image was fitted into a model's input: scaled by gain keeping its aspect,
// then padded by left and top pixels on the sides.
type letterbox struct {
	gain      float64
	padX      float64
	padY      float64
	newW      int // scaled size before padding
	newH      int
	left, top int
}

// fitLetterbox computes Ultralytics' LetterBox (auto=false, centred) for an image of w×h into an
// input of inW×inH, including its rounding (Python's round: half to even).
func fitLetterbox(w, h, inW, inH int) letterbox {
	gain := math.Min(float64(inH)/float64(h), float64(inW)/float64(w))
	nw := int(math.RoundToEven(float64(w) * gain))
	nh := int(math.RoundToEven(float64(h) * gain))
	dw, dh := float64(inW-nw)/2, float64(inH-nh)/2
	return letterbox{
		gain: gain,
		// scale_boxes takes the padding from the unrounded scaled size.
		padX: math.RoundToEven((float64(inW)-float64(w)*gain)/2 - 0.1),
		padY: math.RoundToEven((float64(inH)-float64(h)*gain)/2 - 0.1),
		newW: nw, newH: nh,
		left: int(math.RoundToEven(dw - 0.1)),
		top:  int(math.RoundToEven(dh - 0.1)),
	}
}

// toImage maps a box in model-input pixels back to pixels of the original image, clipped to it.
func (lb letterbox) toImage(b Box, w, h int) Box {
	return Box{
		X1: clamp((b.X1-lb.padX)/lb.gain, 0, float64(w)),
		Y1: clamp((b.Y1-lb.padY)/lb.gain, 0, float64(h)),
		X2: clamp((b.X2-lb.padX)/lb.gain, 0, float64(w)),
		Y2: clamp((b.Y2-lb.padY)/lb.gain, 0, float64(h)),
	}
}

// letterboxNCHW fits img into inW×inH as Ultralytics does (bilinear resize with half-pixel
// centres, as OpenCV's INTER_LINEAR, then grey 114 borders) and returns NCHW float32 RGB 0..1.
func letterboxNCHW(img Image, inW, inH int, lb letterbox) []float32 {
	plane := inW * inH
	out := make([]float32, 3*plane)
	const grey = float32(114) / 255
	for i := range out {
		out[i] = grey
	}
	xs := halfPixelWeights(img.Width, lb.newW)
	ys := halfPixelWeights(img.Height, lb.newH)
	for y, wy := range ys {
		oy := y + lb.top
		if oy < 0 || oy >= inH {
			continue
		}
		for x, wx := range xs {
			ox := x + lb.left
			if ox < 0 || ox >= inW {
				continue
			}
			r0, g0, b0 := img.rgb(wx.lo, wy.lo)
			r1, g1, b1 := img.rgb(wx.hi, wy.lo)
			r2, g2, b2 := img.rgb(wx.lo, wy.hi)
			r3, g3, b3 := img.rgb(wx.hi, wy.hi)
			o := oy*inW + ox
			out[o] = lerp2(r0, r1, r2, r3, wx.frac, wy.frac) / 255
			out[plane+o] = lerp2(g0, g1, g2, g3, wx.frac, wy.frac) / 255
			out[2*plane+o] = lerp2(b0, b1, b2, b3, wx.frac, wy.frac) / 255
		}
	}
	return out
}

func halfPixelWeights(in, out int) []weight {
	scale := float64(in) / float64(out)
	ws := make([]weight, out)
	for i := range ws {
		src := (float64(i)+0.5)*scale - 0.5
		if src < 0 {
			src = 0
		}
		lo := int(math.Floor(src))
		if lo > in-1 {
			lo = in - 1
		}
		ws[i] = weight{lo: lo, hi: min(lo+1, in-1), frac: float32(src - float64(lo))}
	}
	return ws
}
