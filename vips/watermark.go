package vips

import (
	"bytes"
	"context"
	"encoding/json"
	"image"
	"image/color"
	"image/png"
	"math"
	"strings"
	"sync"
	"unicode/utf8"

	govips "github.com/davidbyttow/govips/v2/vips"
	"golang.org/x/image/font"
	"golang.org/x/image/font/gofont/gobold"
	"golang.org/x/image/font/gofont/gomono"
	"golang.org/x/image/font/gofont/goregular"
	"golang.org/x/image/font/opentype"
	"golang.org/x/image/math/fixed"

	"github.com/imaged/imaged"
)

// watermarkStep draws text over the image: text (required, up to 200 characters, lines split
// at \n), size in pixels per line (default a twentieth of the shorter side, at least 12),
// color (default white), opacity 0..1 (default 0.5), gravity (default south_east), margin from
// the edges in pixels (default 10) and font: sans (default), bold or mono. Text too large for
// the image is set smaller so that it fits.
//
// The text is rendered in Go with the Go fonts, not with libvips' text operator: that one goes
// through Pango, whose fontconfig thread (Pango 1.50, Debian 12) races with libvips' cache
// clearing and crashes the process now and then.
type watermarkStep struct {
	text    string
	size    int // 0: from the image
	colour  rgba
	opacity float64
	gravity string
	margin  int
	font    string
}

var fontFiles = map[string][]byte{"sans": goregular.TTF, "bold": gobold.TTF, "mono": gomono.TTF}

var (
	fontsOnce sync.Once
	fonts     map[string]*opentype.Font
	fontsErr  error
)

func loadFonts() (map[string]*opentype.Font, error) {
	fontsOnce.Do(func() {
		fonts = map[string]*opentype.Font{}
		for name, ttf := range fontFiles {
			f, err := opentype.Parse(ttf)
			if err != nil {
				fontsErr = err
				return
			}
			fonts[name] = f
		}
	})
	return fonts, fontsErr
}

func init() { register("watermark", parseWatermark, false) }

func parseWatermark(p *Processor, i int, op imaged.Op) (step, error) {
	var a struct {
		opName
		Text    string          `json:"text"`
		Size    *int            `json:"size"`
		Color   json.RawMessage `json:"color"`
		Opacity *float64        `json:"opacity"`
		Gravity string          `json:"gravity"`
		Margin  *int            `json:"margin"`
		Font    string          `json:"font"`
	}
	if err := op.DecodeArgs(i, &a); err != nil {
		return nil, err
	}
	wm := &watermarkStep{text: strings.TrimSpace(a.Text), opacity: 0.5, gravity: "south_east", margin: 10, font: "sans"}
	if wm.text == "" {
		return nil, invalid(i, "text", "watermark.text is required")
	}
	if n := utf8.RuneCountInString(wm.text); n > 200 || !utf8.ValidString(wm.text) {
		return nil, invalid(i, "text", "watermark.text must be valid text of at most 200 characters")
	}
	if a.Size != nil {
		if err := between(i, "watermark", "size", *a.Size, 4, 1000); err != nil {
			return nil, err
		}
		wm.size = *a.Size
	}
	c, err := parseColour(i, "watermark", "color", a.Color, white)
	if err != nil {
		return nil, err
	}
	wm.colour = c
	if a.Opacity != nil {
		if err := between(i, "watermark", "opacity", *a.Opacity, 0, 1); err != nil {
			return nil, err
		}
		wm.opacity = *a.Opacity
	}
	if a.Gravity != "" {
		wm.gravity = strings.ToLower(a.Gravity)
		if err := oneOf(i, "watermark", "gravity", wm.gravity, gravities...); err != nil {
			return nil, err
		}
	}
	if a.Margin != nil {
		if err := between(i, "watermark", "margin", *a.Margin, 0, 1000); err != nil {
			return nil, err
		}
		wm.margin = *a.Margin
	}
	if a.Font != "" {
		wm.font = strings.ToLower(a.Font)
		if err := oneOf(i, "watermark", "font", wm.font, "sans", "bold", "mono"); err != nil {
			return nil, err
		}
	}
	return wm, nil
}

func (wm *watermarkStep) apply(_ context.Context, s *state) error {
	img := s.img
	w, h := img.Width(), img.Height()
	fs, err := loadFonts()
	if err != nil {
		return err
	}
	size := wm.size
	if size == 0 {
		size = max(12, min(w, h)/20)
	}
	m := min(wm.margin, w/4, h/4)
	availW, availH := max(1, w-2*m), max(1, h-2*m)
	mask, err := renderText(fs[wm.font], wm.text, float64(size))
	if err != nil {
		return err
	}
	if tw, th := mask.Bounds().Dx(), mask.Bounds().Dy(); tw > availW || th > availH {
		scale := min(float64(availW)/float64(tw), float64(availH)/float64(th))
		if mask, err = renderText(fs[wm.font], wm.text, math.Max(4, math.Floor(float64(size)*scale))); err != nil {
			return err
		}
	}
	tw, th := min(mask.Bounds().Dx(), w), min(mask.Bounds().Dy(), h)
	if tw == 0 || th == 0 {
		return nil
	}
	overlay, err := wm.overlay(mask, tw, th)
	if err != nil {
		return err
	}
	defer overlay.Close()
	x, y := place(wm.gravity, availW, availH, tw, th)
	x, y = max(0, min(x+m, w-tw)), max(0, min(y+m, h-th))

	hadAlpha := img.HasAlpha()
	if err := img.Composite(overlay, govips.BlendModeOver, x, y); err != nil {
		return err
	}
	if !hadAlpha && img.HasAlpha() {
		return img.ExtractBand(0, img.Bands()-1)
	}
	return nil
}

// overlay is the colour of the watermark with the text as its alpha, as a libvips image.
func (wm *watermarkStep) overlay(mask *image.Alpha, tw, th int) (*govips.ImageRef, error) {
	c := wm.colour
	a := wm.opacity * float64(c.A) / 255
	rgba := image.NewNRGBA(image.Rect(0, 0, tw, th))
	for y := 0; y < th; y++ {
		for x := 0; x < tw; x++ {
			v := mask.AlphaAt(x, y).A
			rgba.SetNRGBA(x, y, color.NRGBA{R: c.R, G: c.G, B: c.B, A: uint8(math.Round(float64(v) * a))})
		}
	}
	var buf bytes.Buffer
	enc := png.Encoder{CompressionLevel: png.BestSpeed}
	if err := enc.Encode(&buf, rgba); err != nil {
		return nil, err
	}
	return govips.NewImageFromBuffer(buf.Bytes())
}

// renderText draws text, one line per \n, as coverage in an alpha mask sized to its lines.
func renderText(f *opentype.Font, text string, size float64) (*image.Alpha, error) {
	face, err := opentype.NewFace(f, &opentype.FaceOptions{Size: size, DPI: 72, Hinting: font.HintingFull})
	if err != nil {
		return nil, err
	}
	defer face.Close()
	lines := strings.Split(text, "\n")
	metrics := face.Metrics()
	lineH := metrics.Height.Ceil()
	width := 0
	for _, l := range lines {
		width = max(width, font.MeasureString(face, l).Ceil())
	}
	mask := image.NewAlpha(image.Rect(0, 0, width, lineH*len(lines)))
	d := &font.Drawer{Dst: mask, Src: image.Opaque, Face: face}
	for i, l := range lines {
		d.Dot = fixed.P(0, i*lineH+metrics.Ascent.Ceil())
		d.DrawString(l)
	}
	return mask, nil
}
