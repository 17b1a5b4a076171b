package vips

import (
	"context"
	"encoding/json"

	govips "github.com/davidbyttow/govips/v2/vips"

	"github.com/imaged/imaged"
)

// infoStep describes the current image: its size, bands and colour space as the pipeline has
// made them (for an animation kept by frames, the size of one frame), and its output format;
// orientation, page count (an animation's frames), ICC profile and EXIF tags describe the
// original file (the image itself is always upright and in sRGB or grey by then).
type infoStep struct{}

// Info is the result of the info op.
type Info struct {
	Width       int               `json:"width"`
	Height      int               `json:"height"`
	Format      string            `json:"format"`
	Bands       int               `json:"bands"`
	HasAlpha    bool              `json:"has_alpha"`
	Space       string            `json:"space"`
	Pages       int               `json:"pages"`
	Orientation int               `json:"orientation"`
	ICC         bool              `json:"icc"`
	EXIF        map[string]string `json:"exif,omitempty"`
}

func init() {
	register(opSpec{OpSpec: imaged.OpSpec{Name: "info", Summary: "describes the image: size, format, bands, EXIF",
		Kind: imaged.OpAnalysis, Frames: imaged.FramesWhole}, parse: parseNumbers("info", nil, fixedStep(infoStep{})), streams: true})
}

func (infoStep) plan(in imaged.Geometry) (imaged.OpPlan, error) { return imaged.OpPlan{Out: in}, nil }

func (infoStep) apply(_ context.Context, s *state) error {
	img := s.img
	orientation := s.src.orientation
	if orientation < 1 {
		orientation = 1
	}
	info := Info{
		Width:       img.Width(),
		Height:      s.frameHeight(),
		Format:      s.outputFormat(),
		Bands:       img.Bands(),
		HasAlpha:    img.HasAlpha(),
		Space:       spaceName(img.Interpretation()),
		Pages:       s.src.pages,
		Orientation: orientation,
		ICC:         s.src.icc,
		EXIF:        s.src.exif,
	}
	if !s.changed {
		info.Format = s.src.format
	}
	b, err := json.Marshal(info)
	if err != nil {
		return err
	}
	s.analyses = append(s.analyses, imaged.Analysis{Op: s.op, Result: b})
	return nil
}

// spaceName is libvips' own name for a colour space.
func spaceName(i govips.Interpretation) string {
	switch i {
	case govips.InterpretationSRGB:
		return "srgb"
	case govips.InterpretationBW:
		return "b-w"
	case govips.InterpretationRGB:
		return "rgb"
	case govips.InterpretationRGB16:
		return "rgb16"
	case govips.InterpretationGrey16:
		return "grey16"
	case govips.InterpretationCMYK:
		return "cmyk"
	case govips.InterpretationLAB:
		return "lab"
	case govips.InterpretationLABS:
		return "labs"
	case govips.InterpretationLCH:
		return "lch"
	case govips.InterpretationXYZ:
		return "xyz"
	case govips.InterpretationScRGB:
		return "scrgb"
	case govips.InterpretationHSV:
		return "hsv"
	case govips.InterpretationMultiband:
		return "multiband"
	}
	return "other"
}
