package vips

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
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

// watermarkStep lays text or an uploaded image over the image; it takes exactly one of them.
//
// Both forms take opacity 0..1 (default 0.5), gravity (default south_east; centre or a compass
// point) and margin from the edges in pixels (default 10, at most a quarter of each side).
//
// Text: text (up to 200 characters, lines split at \n), size in pixels per line (default a
// twentieth of the shorter side, at least 12), color (default white) and font: sans (default),
// bold or mono. Text too large for the image is set smaller so that it fits. It is rendered in
// Go with the Go fonts, not with libvips' text operator: that one goes through Pango, whose
// fontconfig thread (Pango 1.50, Debian 12) races with libvips' cache clearing and crashes the
// process now and then.
//
// Image: image is the id of an uploaded image (read through Config.Images, under the same
// limits as any source; an animation gives its first frame), and scale 0.01..1 its width as a
// share of the image's (aspect ratio kept; default its own size). An overlay larger than the
// image within its margins is shrunk to fit. Its transparency is kept, and opacity multiplies it.
type watermarkStep struct {
	index   int
	opacity float64
	gravity string
	margin  int
	// text
	text   string
	size   int // 0: from the image
	colour rgba
	font   string
	// image
	image  string
	scale  float64 // 0: the overlay's own size
	upload func(ctx context.Context, id string) ([]byte, error)

	// made is the overlay laid on the last image, reused for every frame of an animation.
	made struct {
		ready  bool
		w, h   int // of the image it was made for
		img    *govips.ImageRef
		x, y   int
		upload []byte
	}
}

type watermarkArgs struct {
	opName
	Text    string          `json:"text" doc:"text to lay over the image (or image)"`
	Image   *string         `json:"image" doc:"id of an uploaded image to lay over the image (or text)"`
	Size    *int            `json:"size" doc:"text size in pixels" min:"4" max:"1000"`
	Color   json.RawMessage `json:"color" type:"colour" doc:"text colour"`
	Opacity *float64        `json:"opacity" doc:"0 invisible, 1 opaque" min:"0" max:"1"`
	Gravity string          `json:"gravity" doc:"where the mark sits: centre, north, south-east…"`
	Margin  *int            `json:"margin" doc:"distance from the edge in pixels" min:"0" max:"1000"`
	Font    string          `json:"font" doc:"text font" enum:"sans,bold,mono" default:"sans"`
	Scale   *float64        `json:"scale" doc:"image watermark width as a fraction of the image width" min:"0.01" max:"1"`
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

func init() {
	register(opSpec{OpSpec: imaged.OpSpec{Name: "watermark", Summary: "lays text or an uploaded image over the image",
		Frames: imaged.FramesEach}, parse: parseArgs(parseWatermark), heavy: true})
}

func parseWatermark(p *Processor, i int, op imaged.Op, a *watermarkArgs) (step, error) {
	wm := &watermarkStep{index: i, text: strings.TrimSpace(a.Text), opacity: 0.5, gravity: "south_east", margin: 10, font: "sans"}
	if err := optional(&wm.opacity, i, "watermark", "opacity", a.Opacity, 0, 1); err != nil {
		return nil, err
	}
	if err := choose(&wm.gravity, i, "watermark", "gravity", a.Gravity, gravities...); err != nil {
		return nil, err
	}
	if err := optional(&wm.margin, i, "watermark", "margin", a.Margin, 0, 1000); err != nil {
		return nil, err
	}
	if a.Image != nil {
		if wm.text != "" {
			return nil, invalid(i, "image", "watermark takes text or image, not both")
		}
		return wm, wm.parseImage(p, i, strings.TrimSpace(*a.Image), a.Scale, a.Size != nil, len(a.Color) > 0, a.Font != "")
	}
	if wm.text == "" {
		return nil, invalid(i, "text", "watermark.text is required, or watermark.image with the id of an uploaded image")
	}
	if a.Scale != nil {
		return nil, invalid(i, "scale", "watermark.scale applies to an image watermark; text takes size")
	}
	if n := utf8.RuneCountInString(wm.text); n > 200 || !utf8.ValidString(wm.text) {
		return nil, invalid(i, "text", "watermark.text must be valid text of at most 200 characters")
	}
	if err := optional(&wm.size, i, "watermark", "size", a.Size, 4, 1000); err != nil {
		return nil, err
	}
	c, err := parseColour(i, "watermark", "color", a.Color, white)
	if err != nil {
		return nil, err
	}
	wm.colour = c
	if err := choose(&wm.font, i, "watermark", "font", a.Font, "sans", "bold", "mono"); err != nil {
		return nil, err
	}
	return wm, nil
}

// parseImage checks the parameters of an image watermark.
func (wm *watermarkStep) parseImage(p *Processor, i int, id string, scale *float64, size, colour, font bool) error {
	for _, f := range []struct {
		name  string
		given bool
	}{{"size", size}, {"color", colour}, {"font", font}} {
		if f.given {
			return invalid(i, f.name, "watermark.%s applies to a text watermark; an image watermark takes scale", f.name)
		}
	}
	if id == "" || len(id) > 200 || !utf8.ValidString(id) {
		return invalid(i, "image", "watermark.image must be the id of an uploaded image")
	}
	wm.image = id
	if scale != nil {
		if err := between(i, "watermark", "scale", *scale, 0.01, 1); err != nil {
			return err
		}
		wm.scale = *scale
	}
	src := p.imageSource()
	if src == nil {
		return invalid(i, "image", "watermark.image is not available on this server: it has no access to uploaded images")
	}
	wm.upload = func(ctx context.Context, id string) ([]byte, error) { return p.uploads.read(ctx, src, id) }
	return nil
}

func (wm *watermarkStep) apply(ctx context.Context, s *state) error {
	img := s.img
	w, h := img.Width(), img.Height()
	if !wm.made.ready || wm.made.w != w || wm.made.h != h {
		wm.close()
		var err error
		if wm.image != "" {
			err = wm.makeImage(ctx, s, w, h)
		} else {
			err = wm.makeText(w, h)
		}
		if err != nil {
			return err
		}
		wm.made.ready, wm.made.w, wm.made.h = true, w, h
	}
	if wm.made.img == nil {
		return nil
	}
	hadAlpha := img.HasAlpha()
	if err := img.Composite(wm.made.img, govips.BlendModeOver, wm.made.x, wm.made.y); err != nil {
		return err
	}
	if !hadAlpha && img.HasAlpha() {
		return img.ExtractBand(0, img.Bands()-1)
	}
	return nil
}

// plan: the overlay is made once for every frame, at most the size of one (text too large is
// set smaller, an image overlay shrunk to fit), and composited over each. Text is drawn in Go
// (its coverage mask, the RGBA overlay and its PNG) and decoded by libvips; an uploaded image
// is decoded by libvips' thumbnail loader, which streams a strip of it at a time (a strip of
// an image as wide as the width limit), into the overlay, held in memory. Reading and
// decoding the upload is counted as a 100-megapixel JPEG's decode at 1/8.
func (wm *watermarkStep) plan(in imaged.Geometry) (imaged.OpPlan, error) {
	one := in
	one.Frames = 1
	overlay := one.WithBands(4)
	p := imaged.Reshaped(in, 5*in.MP())
	if wm.image != "" {
		p.Held = append(p.Held, overlay, overlay)
		p.Scratch = int64(imaged.DefaultLimits.MaxWidth) * 256 * 4
		p.Cost += 100
		return p, nil
	}
	p.Held = append(p.Held, one.WithBands(1), overlay, overlay, overlay)
	p.Cost += 20 * one.MP()
	return p, nil
}

func (wm *watermarkStep) close() {
	if wm.made.img != nil {
		wm.made.img.Close()
	}
	wm.made.img, wm.made.ready = nil, false
}

// area is the box the overlay must fit in on a w×h image: the image less its margins, and the
// margin itself.
func (wm *watermarkStep) area(w, h int) (availW, availH, m int) {
	m = min(wm.margin, w/4, h/4)
	return max(1, w-2*m), max(1, h-2*m), m
}

// position places a tw×th overlay on a w×h image by gravity, inside the margins.
func (wm *watermarkStep) position(w, h, tw, th int) (x, y int) {
	availW, availH, m := wm.area(w, h)
	x, y = place(wm.gravity, availW, availH, tw, th)
	return max(0, min(x+m, w-tw)), max(0, min(y+m, h-th))
}

// makeText renders the text overlay for a w×h image.
func (wm *watermarkStep) makeText(w, h int) error {
	fs, err := loadFonts()
	if err != nil {
		return err
	}
	size := wm.size
	if size == 0 {
		size = max(12, min(w, h)/20)
	}
	availW, availH, _ := wm.area(w, h)
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
	if wm.made.img, err = wm.textOverlay(mask, tw, th); err != nil {
		return err
	}
	wm.made.x, wm.made.y = wm.position(w, h, tw, th)
	return nil
}

// textOverlay is the colour of the watermark with the text as its alpha, as a libvips image.
func (wm *watermarkStep) textOverlay(mask *image.Alpha, tw, th int) (*govips.ImageRef, error) {
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

// makeImage reads and decodes the uploaded image and readies it as the overlay of a w×h image:
// scaled, 8-bit sRGB with alpha, the alpha times opacity, and held in memory (it is small, and
// the composite may read it out of order).
func (wm *watermarkStep) makeImage(ctx context.Context, s *state, w, h int) error {
	data := wm.made.upload
	if data == nil {
		var err error
		if data, err = wm.upload(ctx, wm.image); err != nil {
			if imaged.ErrorCode(err) == imaged.ENotFound {
				return &imaged.Error{Code: imaged.ENotFound, Field: fieldPath(wm.index, "image"), Err: err,
					Message: fmt.Sprintf("watermark.image: there is no uploaded image with id %q", imaged.EchoID(wm.image))}
			}
			return err
		}
		wm.made.upload = data
	}
	availW, availH, _ := wm.area(w, h)
	ov, err := wm.decodeOverlay(data, s.limits, w, availW, availH)
	if err != nil {
		return err
	}
	defer ov.Close()
	if err := wm.prepareOverlay(ov); err != nil {
		return err
	}
	held, err := inMemory(ov)
	if err != nil {
		return err
	}
	wm.made.img = held
	wm.made.x, wm.made.y = wm.position(w, h, held.Width(), held.Height())
	return nil
}

// decodeOverlay decodes an uploaded image, checked against the limits as any source is, at the
// size the watermark takes on an image w pixels wide whose area inside the margins is
// availW×availH. libvips' thumbnail loader shrinks while decoding, so a large logo is never
// decoded whole.
func (wm *watermarkStep) decodeOverlay(data []byte, lim imaged.Limits, w, availW, availH int) (*govips.ImageRef, error) {
	field := fieldPath(wm.index, "image")
	if int64(len(data)) > lim.MaxBytes {
		return nil, &imaged.Error{Code: imaged.ETooLarge, Field: field,
			Message: fmt.Sprintf("watermark.image is %d bytes; the limit is %d bytes", len(data), lim.MaxBytes)}
	}
	switch imaged.SniffFormat(data) {
	case "jpeg", "png", "webp", "tiff", "gif":
	case "bmp":
		var err error
		if data, err = bmpToPNG(data); err != nil {
			return nil, invalid(wm.index, "image", "watermark.image %q is a damaged bmp: %v", imaged.EchoID(wm.image), err)
		}
	default:
		return nil, invalid(wm.index, "image", "watermark.image %q is not a jpeg, png, webp, tiff, bmp or gif image", imaged.EchoID(wm.image))
	}
	params := govips.NewImportParams()
	params.FailOnError.Set(false)
	head, err := govips.LoadImageFromBuffer(data, params)
	if err != nil {
		return nil, invalid(wm.index, "image", "watermark.image %q could not be decoded: %s", imaged.EchoID(wm.image), vipsMessage(err))
	}
	ow, oh := head.Width(), head.Height()
	if o := head.Orientation(); o >= 5 && o <= 8 {
		ow, oh = oh, ow
	}
	head.Close()
	if ow > lim.MaxWidth || oh > lim.MaxHeight {
		return nil, &imaged.Error{Code: imaged.ETooLarge, Field: field,
			Message: fmt.Sprintf("watermark.image is %d×%d pixels; the limit is %d×%d", ow, oh, lim.MaxWidth, lim.MaxHeight)}
	}
	tw, th := ow, oh
	if wm.scale > 0 {
		tw = max(1, int(math.Round(float64(w)*wm.scale)))
		th = max(1, int(math.Round(float64(oh)*float64(tw)/float64(ow))))
	}
	if tw > availW || th > availH {
		f := min(float64(availW)/float64(tw), float64(availH)/float64(th))
		tw, th = max(1, int(math.Round(float64(tw)*f))), max(1, int(math.Round(float64(th)*f)))
	}
	ov, err := govips.LoadThumbnailFromBuffer(data, tw, th, govips.InterestingNone, govips.SizeForce, nil)
	if err != nil {
		return nil, invalid(wm.index, "image", "watermark.image %q could not be decoded: %s", imaged.EchoID(wm.image), vipsMessage(err))
	}
	// The thumbnail is upright already; its colours are not managed yet.
	err = ov.SetOrientation(1)
	if err == nil {
		err = normalize(ov)
	}
	if err != nil {
		ov.Close()
		return nil, err
	}
	return ov, nil
}

// prepareOverlay brings a decoded overlay to 8-bit sRGB with alpha, the alpha scaled by
// opacity.
func (wm *watermarkStep) prepareOverlay(ov *govips.ImageRef) error {
	if ov.Bands() < 3 {
		if err := ov.ToColorSpace(govips.InterpretationSRGB); err != nil {
			return err
		}
	}
	if !ov.HasAlpha() {
		if err := ov.AddAlpha(); err != nil {
			return err
		}
	}
	if wm.opacity >= 1 {
		return nil
	}
	if err := ov.Linear([]float64{1, 1, 1, wm.opacity}, []float64{0, 0, 0, 0}); err != nil {
		return err
	}
	return ov.Cast(govips.BandFormatUchar)
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
