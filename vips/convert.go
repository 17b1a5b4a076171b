package vips

import (
	"context"
	"math"
	"strings"

	govips "github.com/davidbyttow/govips/v2/vips"

	"github.com/imaged/imaged"
)

// output is how the result is encoded; see defaultOutput.
type output struct {
	format      string // "" keeps the input's format
	quality     int    // 0 is the format's default
	progressive bool
	lossless    bool
	keepMeta    bool
	subsample   string // JPEG chroma subsampling: auto (default), on, off
	compression int    // PNG zlib level 0..9; -1 is the default, 6
	palette     bool   // PNG: quantised to a palette of at most 2^bitdepth colours
	bitdepth    int    // PNG palette depth 1, 2, 4 or 8; 0 is 8
	effort      int    // WebP 0..6, AVIF 0..9; -1 is the default, 4
}

// defaultOutput is the output of a pipeline without convert, and what convert starts from:
// the input's format with each format's default settings (PNG at zlib level 6, WebP and AVIF
// at effort 4), metadata stripped.
func defaultOutput() output {
	return output{subsample: "auto", compression: -1, effort: -1}
}

// outputFormats are the formats convert accepts; auto picks from the request's Accept header.
var outputFormats = []string{"jpeg", "png", "webp", "avif", "tiff", "gif", "auto"}

// convertStep sets the output format and encoder settings: format (jpeg, png, webp, avif, tiff,
// gif, or auto: AVIF or WebP when the request's Accept header takes them, else JPEG; for an
// animation kept by frames, WebP when accepted, else GIF), quality 1..100 (defaults: jpeg 85,
// webp 80, avif 60), progressive (interlaced JPEG or PNG), lossless (WebP, AVIF), subsample
// (JPEG chroma subsampling: auto, the default, subsamples below quality 90; on; off),
// compression (PNG zlib level 0..9, default 6), palette (PNG quantised to at most 2^bitdepth
// colours, bitdepth 1, 2, 4 or 8, default 8; quality then sets the quantiser's), effort
// (encoder CPU for smaller files: WebP 0..6, AVIF 0..9, default 4) and strip (default true:
// EXIF, XMP and IPTC are dropped; an ICC profile is always applied to the pixels and dropped).
// Settings a format has no use for are ignored. Transparency is laid on white for
// JPEG, and formats other than GIF and WebP take the first frame of an animation. convert
// changes no pixel, but a pipeline that holds it produces a new file; the last convert of a
// pipeline wins.
type convertStep struct{ out output }

type convertArgs struct {
	opName
	Format      string `json:"format" doc:"output format" enum:"jpeg,png,webp,avif,tiff,gif,auto" required:"true"`
	Quality     *int   `json:"quality" doc:"lossy quality" min:"1" max:"100"`
	Progressive bool   `json:"progressive" doc:"progressive JPEG / interlaced PNG"`
	Lossless    bool   `json:"lossless" doc:"lossless WebP or AVIF"`
	Strip       *bool  `json:"strip" doc:"drop metadata (default true)" default:"true"`
	Subsample   string `json:"subsample" doc:"JPEG chroma subsampling" enum:"auto,on,off" default:"auto"`
	Compression *int   `json:"compression" doc:"PNG zlib compression" min:"0" max:"9" default:"6"`
	Palette     bool   `json:"palette" doc:"PNG with a palette (8 bits or fewer)"`
	Bitdepth    *int   `json:"bitdepth" doc:"PNG palette bit depth: 1, 2, 4 or 8" min:"1" max:"8"`
	Effort      *int   `json:"effort" doc:"encoder effort: WebP 0–6, AVIF 0–9" min:"0" max:"9"`
}

func init() {
	register(opSpec{OpSpec: imaged.OpSpec{Name: "convert", Summary: "sets the output format and its options",
		Frames: imaged.FramesWhole}, parse: parseArgs(parseConvert), streams: true})
}

func parseConvert(p *Processor, i int, op imaged.Op, a *convertArgs) (step, error) {
	format := strings.ToLower(a.Format)
	if format == "jpg" {
		format = "jpeg"
	}
	if format == "" {
		return nil, invalid(i, "format", "convert.format is required: one of %s", strings.Join(outputFormats, ", "))
	}
	if err := oneOf(i, "convert", "format", format, outputFormats...); err != nil {
		return nil, err
	}
	if format != "auto" && !canSave(format) {
		return nil, invalid(i, "format", "convert.format %s is not available on this server", format)
	}
	st := &convertStep{out: defaultOutput()}
	st.out.format, st.out.progressive, st.out.lossless = format, a.Progressive, a.Lossless
	st.out.keepMeta, st.out.palette = a.Strip != nil && !*a.Strip, a.Palette
	if err := optional(&st.out.quality, i, "convert", "quality", a.Quality, 1, 100); err != nil {
		return nil, err
	}
	if err := choose(&st.out.subsample, i, "convert", "subsample", a.Subsample, "auto", "on", "off"); err != nil {
		return nil, err
	}
	if err := optional(&st.out.compression, i, "convert", "compression", a.Compression, 0, 9); err != nil {
		return nil, err
	}
	if a.Bitdepth != nil {
		if !a.Palette {
			return nil, invalid(i, "bitdepth", "convert.bitdepth needs palette: true")
		}
		if d := *a.Bitdepth; d != 1 && d != 2 && d != 4 && d != 8 {
			return nil, invalid(i, "bitdepth", "convert.bitdepth must be 1, 2, 4 or 8")
		}
		st.out.bitdepth = *a.Bitdepth
	}
	if a.Effort != nil {
		// AVIF goes to 9; WebP, and auto (which may pick WebP), to 6.
		hi := 6
		if format == "avif" {
			hi = 9
		}
		if err := between(i, "convert", "effort", *a.Effort, 0, hi); err != nil {
			return nil, err
		}
		st.out.effort = *a.Effort
	}
	return st, nil
}

func (c *convertStep) apply(_ context.Context, s *state) error {
	s.out = c.out.negotiated(s.opts.Accept, s.frames > 1)
	return nil
}

// negotiated is o with format auto resolved for a client that accepts accept.
func (o output) negotiated(accept string, animated bool) output {
	if o.format == "auto" {
		o.format = negotiate(accept)
		if animated {
			o.format = negotiateAnimated(accept)
		}
	}
	return o
}

// plan is the encode's, in the format convert asks for (auto: the dearest it may pick; a
// processor that knows the client's Accept plans the format it will pick).
func (c *convertStep) plan(in imaged.Geometry) (imaged.OpPlan, error) {
	return encodePlan(c.out, in), nil
}

// encodePlan is what writing an image of geometry in with o costs and holds: the encoded
// bytes libvips writes and govips' Go copy of them, as many as the raw pixels for lossless
// formats and a quarter of them for lossy ones. Formats without animation write one frame;
// auto counts as the dearest format it may pick.
func encodePlan(o output, in imaged.Geometry) imaged.OpPlan {
	format := o.format
	if format == "auto" {
		format = "webp"
		if canSave("avif") {
			format = "avif"
		}
	}
	one := in
	if !animatedFormat(format) {
		one.Frames = 1
	}
	perMP, share := 0.0, 1.0
	switch format {
	case "jpeg":
		perMP, share = 15, 0.25
	case "webp":
		perMP, share = 40, 0.25
		if o.lossless {
			perMP, share = 150, 1
		}
	case "avif":
		// libaom: each effort step costs about half as much again as the one below.
		perMP, share = 700*math.Pow(1.5, float64(effortOr(o.effort, 4)-4)), 0.25
		if o.lossless {
			share = 1
		}
	case "gif":
		perMP, share = 420, 1/float64(max(in.Bands, 1))
	case "tiff":
		perMP = 3
	default: // png, and the formats that fall back to it
		perMP = 30
		if o.palette {
			perMP = 420
		}
	}
	enc := one.WithBands(max(1, int(math.Ceil(float64(max(in.Bands, 1))*share))))
	return imaged.OpPlan{Out: in, Held: []imaged.Geometry{enc, enc}, Cost: perMP * one.MP()}
}

// negotiate picks the output for format auto: AVIF when the client accepts it, else WebP,
// else JPEG.
func negotiate(accept string) string {
	accept = strings.ToLower(accept)
	switch {
	case strings.Contains(accept, "image/avif") && canSave("avif"):
		return "avif"
	case strings.Contains(accept, "image/webp") && canSave("webp"):
		return "webp"
	}
	return "jpeg"
}

// outputFormat is the format the result is written in: convert's choice, else the input's
// (BMP becomes PNG, and any format libvips cannot write falls back to PNG).
func (s *state) outputFormat() string {
	if s.out.format != "" {
		return s.out.format
	}
	return defaultFormat(s.src.format)
}

// defaultFormat is the output format of a pipeline without convert on a source in format.
func defaultFormat(format string) string {
	if format == "bmp" || !canSave(format) {
		return "png"
	}
	return format
}

// encode writes the current image once, in the output format.
func (s *state) encode() ([]byte, string, error) {
	format := s.outputFormat()
	if err := s.keepFrames(animatedFormat(format)); err != nil {
		return nil, "", err
	}
	o := s.out
	strip := !o.keepMeta
	img := s.img
	var (
		data []byte
		err  error
	)
	switch format {
	case "jpeg":
		if err := flattenAlpha(img); err != nil {
			return nil, "", err
		}
		p := govips.NewJpegExportParams()
		p.Quality = qualityOr(o.quality, 85)
		p.Interlace = o.progressive
		p.OptimizeCoding = true
		p.StripMetadata = strip
		p.SubsampleMode = govips.VipsForeignSubsampleAuto
		switch o.subsample {
		case "on":
			p.SubsampleMode = govips.VipsForeignSubsampleOn
		case "off":
			p.SubsampleMode = govips.VipsForeignSubsampleOff
		}
		data, _, err = img.ExportJpeg(p)
	case "png":
		p := govips.NewPngExportParams()
		p.Compression = 6
		if o.compression >= 0 {
			p.Compression = o.compression
		}
		p.Interlace = o.progressive
		p.StripMetadata = strip
		if o.palette {
			p.Palette = true
			p.Quality = qualityOr(o.quality, 100)
			p.Bitdepth = 8
			if o.bitdepth > 0 {
				p.Bitdepth = o.bitdepth
			}
		}
		data, _, err = img.ExportPng(p)
	case "webp":
		p := govips.NewWebpExportParams()
		p.Quality = qualityOr(o.quality, 80)
		p.Lossless = o.lossless
		p.StripMetadata = strip
		p.ReductionEffort = effortOr(o.effort, 4)
		data, _, err = img.ExportWebp(p)
	case "avif":
		p := govips.NewAvifExportParams()
		p.Quality = qualityOr(o.quality, 60)
		p.Lossless = o.lossless
		p.Effort = effortOr(o.effort, 4)
		p.StripMetadata = strip
		data, _, err = img.ExportAvif(p)
	case "tiff":
		p := govips.NewTiffExportParams()
		p.Quality = qualityOr(o.quality, 85)
		p.StripMetadata = strip
		data, _, err = img.ExportTiff(p)
	case "gif":
		p := govips.NewGifExportParams()
		p.Dither = 1.0
		p.StripMetadata = strip
		data, _, err = img.ExportGIF(p)
	default:
		return nil, "", imaged.Errorf(imaged.EInternal, "no encoder for %s", format)
	}
	if err != nil {
		return nil, "", err
	}
	return data, format, nil
}

func qualityOr(q, def int) int {
	if q > 0 {
		return q
	}
	return def
}

// flattenAlpha puts an image with transparency on white, for formats without alpha.
func flattenAlpha(img *govips.ImageRef) error {
	if !img.HasAlpha() {
		return nil
	}
	if img.Bands() < 3 {
		if err := img.ToColorSpace(govips.InterpretationSRGB); err != nil {
			return err
		}
	}
	return img.Flatten(&govips.Color{R: 255, G: 255, B: 255})
}

func effortOr(e, def int) int {
	if e < 0 {
		return def
	}
	return e
}
