package vips

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"image/png"
	"log/slog"
	"regexp"
	"slices"
	"strings"

	govips "github.com/davidbyttow/govips/v2/vips"
	"golang.org/x/image/bmp"

	"github.com/imaged/imaged"
)

// decode reads src once. When the first op is a downscaling resize, libvips' thumbnail loader
// shrinks while decoding (JPEG at 1/2, 1/4, 1/8 in the DCT, WebP at any scale), which is where
// most of the time of a typical request goes; otherwise the whole image is loaded. Either way the
// image is turned upright from its EXIF orientation and brought to 8-bit sRGB (or 8-bit grey).
//
// Only the first frame of an animation is loaded, unless the pipeline starts with frames: then
// every frame of an animated GIF or WebP is, once the header shows their number and pixels
// within the limits (see loadFrames). For a still image frames changes nothing, and the op after
// it may shrink on load as a first op does.
func (p *Processor) decode(ctx context.Context, src []byte, steps []compiled, opts imaged.ProcessOptions) (_ *state, err error) {
	if int64(len(src)) > p.limits.MaxBytes {
		return nil, imaged.Errorf(imaged.ETooLarge, "the image is %d bytes; the limit is %d bytes", len(src), p.limits.MaxBytes)
	}
	format := imaged.SniffFormat(src)
	switch format {
	case "jpeg", "png", "webp", "tiff", "gif", "bmp":
	default:
		return nil, undecodable("the data is not a jpeg, png, webp, tiff, bmp or gif image")
	}
	s := &state{op: "decode", opts: opts, limits: p.limits, maxOutput: p.cfg.maxOutputBytes(), frames: 1, input: src,
		out: defaultOutput()}
	defer func() {
		if err != nil {
			s.close()
		}
	}()
	// The header alone, no pixel.
	bands, err := s.readHeader(src, format)
	if err != nil {
		return nil, err
	}
	if s.src.width > p.limits.MaxWidth || s.src.height > p.limits.MaxHeight {
		return nil, imaged.Errorf(imaged.ETooLarge, "the image is %d×%d pixels; the limit is %d×%d",
			s.src.width, s.src.height, p.limits.MaxWidth, p.limits.MaxHeight)
	}

	fr, _ := steps[0].step.(*framesStep)
	if fr != nil {
		s.lead = 1
		if s.src.pages > 1 && (format == "gif" || format == "webp") {
			// An animation: its frames are loaded and no op is prescaled.
			if s.frames, err = p.keptFrames(fr, s.src); err != nil {
				return nil, err
			}
			s.lead = -1
		}
	}
	tw, th, shrinks := 0, 0, false
	if s.lead >= 0 && s.lead < len(steps) {
		if r, ok := steps[s.lead].step.(*resizeStep); ok {
			tw, th, shrinks = r.shrinkOnLoad(s.src.width, s.src.height)
		}
	}
	k := 1
	if shrinks && format == "jpeg" {
		k = jpegShrink(s.src.width, s.src.height, tw, th)
	}
	// The whole pipeline from the header: refused here when it is too large or too costly,
	// and charged to the memory budget at its peak.
	geom := imaged.Geometry{Width: s.src.width, Height: s.src.height, Bands: bands, Frames: s.frames}
	est, err := p.estimate(steps, geom, format, opts.Accept)
	if err != nil {
		return nil, err
	}
	if err := est.Check(p.limits); err != nil {
		return nil, err
	}
	decoding := mebibytes(geom.Bytes() * 3) // a BMP: Go's RGBA, its PNG and libvips' decode of that
	if s.img != nil {
		decoding = memoryCost(s.img, s.src.width, s.src.height*s.frames, tw, th, shrinks, k)
	}
	// No pixel has been decoded yet: wait here for the memory this pipeline will need, the
	// decoding of its source (and the strips its loader streams) and what its ops hold
	// besides.
	charge := decoding + mebibytes(strips(geom)/2+est.Peak-est.Source.Bytes())
	if s.release, err = p.mem.take(ctx, charge); err != nil {
		return nil, err
	}
	if decodeTrace != nil {
		decodeTrace(charge)
	}
	if format == "bmp" {
		if err := s.loadBMP(src); err != nil {
			return nil, err
		}
	}
	buf := s.input
	if s.frames > 1 {
		if err := s.loadFrames(buf); err != nil {
			return nil, err
		}
	}
	switch {
	case k > 1:
		if err := s.loadShrunk(buf, k); err != nil {
			return nil, err
		}
	case shrinks:
		if err := s.loadScaled(ctx, buf, tw, th, !streamable(steps[s.lead:])); err != nil {
			return nil, err
		}
	}
	rotated := s.img.Orientation() > 1
	if rotated {
		autoRotate := func(_ context.Context, f *state) error { return f.img.AutoRotate() }
		if s.frames > 1 {
			autoRotate = eachFrame(stepFunc(autoRotate))
		}
		if err := autoRotate(ctx, s); err != nil {
			return nil, s.fail(err)
		}
	}
	converted, err := normalizing(s.img)
	if err != nil {
		return nil, s.fail(err)
	}
	// A rotation or a colour transform of the decoded source is work a later op could make
	// libvips repeat; the thumbnail loader's image is held or streamed already (a JPEG decoded
	// at 1/k is neither).
	s.pending = (!s.prescaled || k > 1) && (rotated || converted)
	if err := s.settle(); err != nil {
		return nil, s.fail(err)
	}
	return s, nil
}

// decodeTrace, when set (by tests), hears each pipeline that passed its checks and took its
// memory (mib MiB): from there on, pixels are decoded.
var decodeTrace func(mib int)

// readHeader reads what the source says about itself, decoding no pixel, and returns the
// bands of its pixels as the pipeline will hold them (8-bit). libvips reads the header of
// every format but BMP, which Go reads (see loadBMP).
func (s *state) readHeader(src []byte, format string) (bands int, err error) {
	if format == "bmp" {
		cfg, err := bmp.DecodeConfig(bytes.NewReader(src))
		if err != nil {
			return 0, undecodable("the bmp is damaged: " + err.Error())
		}
		s.src = source{format: format, width: cfg.Width, height: cfg.Height, orientation: 1, pages: 1}
		return 4, nil
	}
	params := govips.NewImportParams()
	params.FailOnError.Set(false)
	img, err := govips.LoadImageFromBuffer(src, params)
	if err != nil {
		return 0, undecodable(vipsMessage(err))
	}
	s.img = img
	s.describeSource(format)
	return min(max(img.Bands(), 1), 4), nil
}

// describeSource keeps what the source file says about itself, for info after the pixels
// change.
func (s *state) describeSource(format string) {
	img := s.img
	s.src = source{
		format:      format,
		width:       img.Width(),
		height:      img.Height(),
		orientation: img.Orientation(),
		pages:       max(img.Pages(), 1),
		icc:         img.HasICCProfile(),
		exif:        exifFields(img),
	}
	if s.src.orientation >= 5 && s.src.orientation <= 8 {
		s.src.width, s.src.height = s.src.height, s.src.width
	}
}

// loadBMP decodes a BMP in Go, once its memory is taken: libvips reads BMP only through
// ImageMagick, which stays blocked. The pixels go on as an uncompressed PNG, which libvips
// reads lazily from s.input.
func (s *state) loadBMP(src []byte) error {
	buf, err := bmpToPNG(src)
	if err != nil {
		return undecodable("the bmp is damaged: " + err.Error())
	}
	params := govips.NewImportParams()
	params.FailOnError.Set(false)
	img, err := govips.LoadImageFromBuffer(buf, params)
	if err != nil {
		return undecodable(vipsMessage(err))
	}
	s.input = buf
	s.replace(img)
	w, h := img.Width(), img.Height()
	if w != s.src.width || h != s.src.height {
		return undecodable(fmt.Sprintf("the bmp decodes to %d×%d pixels; its header says %d×%d", w, h, s.src.width, s.src.height))
	}
	return nil
}

// jpegShrink is the factor (8, 4 or 2) by which a w×h JPEG is best decoded on its way to
// tw×th, or 1 when none is. libvips' scaled IDCT decodes at 1/2, 1/4 or 1/8 of the size for much
// less than a full decode, and leaves the resize a quarter or less of the pixels. Like
// imgproxy, and unlike libvips' thumbnail (which keeps a factor of two in hand for the resize
// and so decodes four times the pixels), it takes the largest factor that still leaves the
// image at least as large as the target; the lanczos3 resize after it keeps the result sharp.
func jpegShrink(w, h, tw, th int) int {
	f := min(float64(w)/float64(max(tw, 1)), float64(h)/float64(max(th, 1)))
	for _, k := range []int{8, 4, 2} {
		if f >= float64(k) {
			return k
		}
	}
	return 1
}

// loadShrunk replaces the image with the JPEG in buf decoded at 1/k of its size. Its EXIF
// orientation is kept, for decode to apply; the resize that follows scales it to its target.
func (s *state) loadShrunk(buf []byte, k int) error {
	params := govips.NewImportParams()
	params.FailOnError.Set(false)
	params.JpegShrinkFactor.Set(k)
	img, err := govips.LoadImageFromBuffer(buf, params)
	if err != nil {
		return undecodable(vipsMessage(err))
	}
	s.replace(img)
	s.prescaled = true
	return nil
}

// loadScaled replaces the image with the source decoded at about tw×th by libvips' thumbnail
// loader, which shrinks while decoding.
func (s *state) loadScaled(ctx context.Context, buf []byte, tw, th int, hold bool) error {
	thumb, err := govips.LoadThumbnailFromBuffer(buf, tw, th, govips.InterestingNone, govips.SizeForce, nil)
	if err != nil {
		return undecodable(vipsMessage(err))
	}
	// The thumbnail is upright already; its metadata must say so. Its colours are not
	// managed yet.
	err = thumb.SetOrientation(1)
	if err == nil {
		err = normalize(thumb)
	}
	if err != nil {
		thumb.Close()
		return s.fail(err)
	}
	s.prescaled = true
	if !hold {
		s.replace(thumb)
		return nil
	}
	// libvips streams the thumbnail (sequential access, top to bottom, once), which ops such
	// as rotate or smart crop cannot work on: hold it in memory instead.
	defer thumb.Close()
	var held *govips.ImageRef
	if err := evaluating(ctx, thumb, func() (err error) { held, err = inMemory(thumb); return err }); err != nil {
		return s.fail(err)
	}
	s.replace(held)
	return nil
}

// streamable reports whether a pipeline that starts with a resize can run on the image as the
// thumbnail loader streams it, without holding it in memory first.
func streamable(steps []compiled) bool {
	if r, ok := steps[0].step.(*resizeStep); !ok || (r.fit == "cover" && slices.Contains(smartGravities, r.gravity)) {
		return false
	}
	for _, st := range steps[1:] {
		if !st.spec.streams {
			return false
		}
	}
	return true
}

// settle marks the image as the pages it holds: one, or the frames of an animation loaded
// whole. When only the first page or frame is loaded, the file's page count and page height
// stay in the metadata, and govips would then treat a resized or rotated image as a strip of
// animation frames; after an op over each frame, the stack takes the frames' new height.
func (s *state) settle() error {
	pages := max(s.frames, 1)
	if s.img.Pages() != pages {
		if err := s.img.SetPages(pages); err != nil {
			return err
		}
	}
	if ph := s.img.Height() / pages; s.img.PageHeight() != ph {
		return s.img.SetPageHeight(ph)
	}
	return nil
}

// normalize brings an image to 8 bits per band in sRGB, or in grey for grey images, applying
// an embedded ICC profile first so colours survive the profile being stripped on output.
func normalize(img *govips.ImageRef) error {
	_, err := normalizing(img)
	return err
}

// normalizing is normalize, also reporting whether it changed pixel values (a colour
// transform or conversion), not only metadata.
func normalizing(img *govips.ImageRef) (converted bool, err error) {
	if img.HasICCProfile() {
		switch img.Interpretation() {
		case govips.InterpretationSRGB, govips.InterpretationRGB, govips.InterpretationRGB16,
			govips.InterpretationCMYK:
			if isSRGBProfile(img.GetICCProfile()) {
				// Most photos carry sRGB itself: a transform would cost a pass over every
				// pixel and change nothing.
				break
			}
			if err := img.TransformICCProfile(govips.SRGBIEC6196621ICCProfilePath); err != nil {
				// A broken profile is common in the wild; the pixels are usable without it.
				slog.Debug("ignoring an ICC profile libvips cannot apply", "error", vipsMessage(err))
			} else {
				converted = true
			}
		}
		if err := img.RemoveICCProfile(); err != nil {
			return converted, err
		}
	}
	switch img.Interpretation() {
	case govips.InterpretationSRGB, govips.InterpretationBW:
	case govips.InterpretationGrey16:
		converted = true
		if err := img.ToColorSpace(govips.InterpretationBW); err != nil {
			return converted, err
		}
	default:
		converted = true
		if err := img.ToColorSpace(govips.InterpretationSRGB); err != nil {
			return converted, err
		}
	}
	if img.BandFormat() != govips.BandFormatUchar {
		converted = true
		if err := img.Cast(govips.BandFormatUchar); err != nil {
			return converted, err
		}
	}
	return converted, nil
}

// isSRGBProfile reports whether an ICC profile describes sRGB, by the description tag that
// sRGB profiles (IEC 61966-2.1 and its compact variants) carry, in ASCII (ICC v2 "desc") or
// UTF-16 (ICC v4 "mluc").
func isSRGBProfile(icc []byte) bool {
	if len(icc) < 132 {
		return false
	}
	n := int(binary.BigEndian.Uint32(icc[128:132]))
	for i := 0; i < n && 132+12*i+12 <= len(icc); i++ {
		e := icc[132+12*i:]
		if string(e[:4]) != "desc" {
			continue
		}
		off, size := int(binary.BigEndian.Uint32(e[4:8])), int(binary.BigEndian.Uint32(e[8:12]))
		if off < 0 || size < 0 || off+size > len(icc) || off+size < off {
			return false
		}
		desc := icc[off : off+size]
		return bytes.Contains(desc, []byte("sRGB")) || bytes.Contains(desc, []byte("\x00s\x00R\x00G\x00B"))
	}
	return false
}

func bmpToPNG(src []byte) ([]byte, error) {
	img, err := bmp.Decode(bytes.NewReader(src))
	if err != nil {
		return nil, err
	}
	var out bytes.Buffer
	enc := png.Encoder{CompressionLevel: png.NoCompression}
	if err := enc.Encode(&out, img); err != nil {
		return nil, err
	}
	return out.Bytes(), nil
}

// exifValue splits libvips' rendering of an EXIF field, "Canon (Canon, ASCII, 6 components,
// 6 bytes)", into its plain value.
var exifValue = regexp.MustCompile(`^(.*) \(.*, [A-Za-z]+, \d+ components?, \d+ bytes?\)$`)

// exifFields keeps the readable EXIF tags of the source by their EXIF name (Make, Model,
// DateTimeOriginal…), leaving out binary blobs.
func exifFields(img *govips.ImageRef) map[string]string {
	out := map[string]string{}
	for _, k := range img.ImageFields() {
		// Only the exif-ifd* fields are strings; reading exif-data (a blob) as one would leave
		// an error in libvips' shared error buffer.
		if !strings.HasPrefix(k, "exif-ifd") {
			continue
		}
		v := img.GetString(k)
		_, name, ok := strings.Cut(strings.TrimPrefix(k, "exif-ifd"), "-")
		if !ok || name == "" || name == "MakerNote" || strings.HasPrefix(name, "0x") {
			continue
		}
		if m := exifValue.FindStringSubmatch(v); m != nil {
			v = m[1]
		}
		v = strings.TrimSpace(v)
		if v == "" || len(v) > 256 {
			continue
		}
		out[name] = v
	}
	if len(out) == 0 {
		return nil
	}
	return out
}
