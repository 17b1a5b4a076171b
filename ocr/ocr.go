// Package ocr extracts text from images for the ocr op. Three engines answer the same
// interface: Tesseract (through its C++ library), PaddleOCR PP-OCRv4 (a deep-learning detector,
// direction classifier and recogniser run on ONNX Runtime) and a hybrid that runs both at once
// and keeps, line by line, the reading it is more confident of.
package ocr

import (
	"context"
	"fmt"
)

// Engine names as requests spell them.
const (
	EngineTesseract = "tesseract"
	EnginePaddle    = "paddle"
	EngineHybrid    = "hybrid"
)

// Image is 8-bit interleaved pixels, row by row: 1 band (gray), 3 (sRGB) or 4 (sRGB + alpha).
type Image struct {
	Width, Height, Bands int
	Data                 []byte
}

func (im Image) check() error {
	if im.Width <= 0 || im.Height <= 0 {
		return fmt.Errorf("ocr: empty image %dx%d", im.Width, im.Height)
	}
	switch im.Bands {
	case 1, 2, 3, 4:
	default:
		return fmt.Errorf("ocr: images with %d bands are not supported", im.Bands)
	}
	if len(im.Data) < im.Width*im.Height*im.Bands {
		return fmt.Errorf("ocr: image data holds %d bytes, %dx%dx%d needs %d", len(im.Data), im.Width, im.Height, im.Bands, im.Width*im.Height*im.Bands)
	}
	return nil
}

// Options tune one recognition.
type Options struct {
	// Languages are Tesseract language codes ("eng", "deu"); ["eng"] where empty. The Paddle
	// model reads Chinese and Latin script whatever is asked.
	Languages []string
	// HOCR asks Tesseract for its hOCR document too.
	HOCR bool
	// Raw keeps each engine's own result inside a hybrid result.
	Raw bool
}

func (o Options) languages() []string {
	if len(o.Languages) == 0 {
		return []string{"eng"}
	}
	return o.Languages
}

// Box is an axis-aligned rectangle in pixels of the image given to the engine: X1,Y1 inclusive
// top-left, X2,Y2 exclusive bottom-right.
type Box struct {
	X1 int `json:"x1"`
	Y1 int `json:"y1"`
	X2 int `json:"x2"`
	Y2 int `json:"y2"`
}

func (b Box) area() int {
	if b.X2 <= b.X1 || b.Y2 <= b.Y1 {
		return 0
	}
	return (b.X2 - b.X1) * (b.Y2 - b.Y1)
}

// IoU is the intersection over union of two boxes.
func (b Box) IoU(o Box) float64 {
	in := Box{max(b.X1, o.X1), max(b.Y1, o.Y1), min(b.X2, o.X2), min(b.Y2, o.Y2)}.area()
	u := b.area() + o.area() - in
	if u <= 0 {
		return 0
	}
	return float64(in) / float64(u)
}

// Word is one recognised word.
type Word struct {
	Text       string  `json:"text"`
	Confidence float64 `json:"confidence"`
	Box        Box     `json:"box"`
}

// Line is one recognised line of text. Points are the corners of the line's (possibly rotated)
// quadrilateral, clockwise from the top-left of the text as read; Box encloses them.
type Line struct {
	Text       string        `json:"text"`
	Confidence float64       `json:"confidence"`
	Box        Box           `json:"box"`
	Points     [4][2]float64 `json:"points"`
	Words      []Word        `json:"words,omitempty"`
	Engine     string        `json:"engine,omitempty"`
}

// Result is what an engine read. Confidences are 0–100.
type Result struct {
	Text     string             `json:"text"`
	Lines    []Line             `json:"lines"`
	Engine   string             `json:"engine"`
	Timings  map[string]float64 `json:"timings_ms"`
	Warnings []string           `json:"warnings,omitempty"`
	HOCR     string             `json:"hocr,omitempty"`
	// Raw holds each engine's own result when a hybrid was asked for them.
	Raw map[string]*Result `json:"raw,omitempty"`
}

// Engine reads text.
type Engine interface {
	// Recognize reads the text in img. An unsupported language is imaged.EInvalid; an engine
	// whose models are not installed is imaged.ENotInstalled; ctx's end is returned as its error.
	Recognize(ctx context.Context, img Image, opts Options) (*Result, error)
}

// joinLines is the result's full text: lines in reading order, one per line.
func joinLines(lines []Line) string {
	n := 0
	for _, l := range lines {
		n += len(l.Text) + 1
	}
	b := make([]byte, 0, n)
	for i, l := range lines {
		if i > 0 {
			b = append(b, '\n')
		}
		b = append(b, l.Text...)
	}
	return string(b)
}

func rectPoints(b Box) [4][2]float64 {
	return [4][2]float64{
		{float64(b.X1), float64(b.Y1)}, {float64(b.X2), float64(b.Y1)},
		{float64(b.X2), float64(b.Y2)}, {float64(b.X1), float64(b.Y2)},
	}
}
