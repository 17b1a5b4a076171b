package vips

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math"
	"reflect"
	"strconv"
	"strings"

	govips "github.com/davidbyttow/govips/v2/vips"

	"github.com/imaged/imaged"
)

// opName lets every parameter struct accept the "op" key that names the op itself.
type opName struct {
	Op string `json:"op"`
}

// fieldPath names a field of op i the way error responses do: ops[2].width.
func fieldPath(i int, name string) string {
	if name == "" {
		return fmt.Sprintf("ops[%d]", i)
	}
	return fmt.Sprintf("ops[%d].%s", i, name)
}

// invalid returns an EInvalid error for field name of op i.
func invalid(i int, name, format string, args ...any) error {
	return imaged.FieldErrorf(fieldPath(i, name), format, args...)
}

// between checks lo <= v <= hi for a parameter, naming it in the error as op.name.
func between[T int | float64](i int, op, name string, v, lo, hi T) error {
	if v < lo || v > hi {
		return invalid(i, name, "%s.%s must be between %v and %v", op, name, lo, hi)
	}
	return nil
}

// optional checks a parameter given as v against lo..hi, as between does, and stores it in
// dst; dst keeps its default when the parameter is absent (v is nil).
func optional[T int | float64](dst *T, i int, op, name string, v *T, lo, hi T) error {
	if v == nil {
		return nil
	}
	if err := between(i, op, name, *v, lo, hi); err != nil {
		return err
	}
	*dst = *v
	return nil
}

// choose checks an optional choice parameter, lower-cased, against allowed and stores it in
// dst; dst keeps its default when the parameter is absent (v is "").
func choose(dst *string, i int, op, name, v string, allowed ...string) error {
	if v == "" {
		return nil
	}
	v = strings.ToLower(v)
	if err := oneOf(i, op, name, v, allowed...); err != nil {
		return err
	}
	*dst = v
	return nil
}

// sides checks the width and height parameters of an op that makes or cuts a box against the
// largest image, as optional does, and stores them in w and h.
func (p *Processor) sides(i int, op string, width, height, w, h *int) error {
	if err := optional(w, i, op, "width", width, 1, p.limits.MaxWidth); err != nil {
		return err
	}
	return optional(h, i, op, "height", height, 1, p.limits.MaxHeight)
}

// number is a numeric parameter of an op: in lo..hi, def when absent. A whole one takes whole
// numbers only; a required one (need says why it is) has no default.
type number struct {
	name        string
	lo, hi, def float64
	whole       bool
	need        string
	doc         string
}

// parseNumbers is the parser of an op whose parameters are all numbers (or that has none): it
// checks each against its range and builds the step from their values, in the order declared.
// The parameters decode into a struct made here, once per op, so that DecodeArgs refuses
// unknown fields and values of the wrong type as it does for every op.
func parseNumbers(name string, params []number, build func(v []float64) step) parseFunc {
	fields := []reflect.StructField{{Name: "Op", Type: reflect.TypeFor[string](), Tag: `json:"op"`}}
	for k, n := range params {
		t := reflect.TypeFor[*float64]()
		if n.whole {
			t = reflect.TypeFor[*int]()
		}
		fields = append(fields, reflect.StructField{Name: fmt.Sprintf("P%d", k), Type: t,
			Tag: reflect.StructTag(fmt.Sprintf("json:%q", n.name))})
	}
	args := reflect.StructOf(fields)
	return parseFunc{params: numberParams(params), run: func(p *Processor, i int, op imaged.Op) (step, error) {
		a := reflect.New(args)
		if err := op.DecodeArgs(i, a.Interface()); err != nil {
			return nil, err
		}
		v := make([]float64, len(params))
		for k, n := range params {
			f := a.Elem().Field(k + 1)
			var err error
			switch {
			case f.IsNil() && n.need != "":
				err = invalid(i, n.name, "%s.%s is required (%s)", name, n.name, n.need)
			case f.IsNil():
				v[k] = n.def
			case n.whole:
				x := int(f.Elem().Int())
				v[k] = float64(x)
				err = between(i, name, n.name, x, int(n.lo), int(n.hi))
			default:
				v[k] = f.Elem().Float()
				err = between(i, name, n.name, v[k], n.lo, n.hi)
			}
			if err != nil {
				return nil, err
			}
		}
		return build(v), nil
	}}
}

// numberParams declares numeric parameters for clients.
func numberParams(params []number) []imaged.Param {
	out := make([]imaged.Param, 0, len(params))
	for _, n := range params {
		p := imaged.Param{Name: n.name, Type: "number", Min: imaged.Bound(n.lo), Max: imaged.Bound(n.hi),
			Description: n.doc, Required: n.need != ""}
		if n.whole {
			p.Type = "integer"
		}
		if n.need == "" {
			p.Default = n.def
		}
		out = append(out, p)
	}
	return out
}

// oneOf checks that v is one of allowed, naming the choices in the error.
func oneOf(i int, op, name, v string, allowed ...string) error {
	for _, a := range allowed {
		if v == a {
			return nil
		}
	}
	return invalid(i, name, "%s.%s must be one of %s; got %q", op, name, strings.Join(allowed, ", "), imaged.EchoID(v))
}

// rgba is a colour parameter: "#rgb", "#rrggbb", "#rrggbbaa", a name (black, white,
// transparent), or a JSON list [r, g, b] or [r, g, b, a] of 0..255 values.
type rgba struct {
	R, G, B, A uint8
}

var (
	black       = rgba{0, 0, 0, 255}
	white       = rgba{255, 255, 255, 255}
	transparent = rgba{0, 0, 0, 0}
)

// opaque reports whether the colour has no transparency.
func (c rgba) opaque() bool { return c.A == 255 }

// gray reports whether the colour has no hue, so a one-band image can take it as is.
func (c rgba) gray() bool { return c.R == c.G && c.G == c.B }

// background is the colour of the new pixels of an op that grows or turns the canvas.
type background struct {
	colour rgba
	given  bool // false: the op's default, or transparency on an image with alpha
}

// parseBackground reads the background parameter; def is the colour when it is absent.
func parseBackground(i int, op string, raw json.RawMessage, def rgba) (background, error) {
	c, err := parseColour(i, op, "background", raw, def)
	return background{colour: c, given: len(raw) > 0}, err
}

// on is the colour of new pixels on img: an image with alpha is padded with transparency unless
// a background was given.
func (b background) on(img *govips.ImageRef) rgba {
	if !b.given && img.HasAlpha() {
		return transparent
	}
	return b.colour
}

// parseColour reads a colour parameter; raw is empty when the field was absent, and def is
// then returned.
func parseColour(i int, op, name string, raw json.RawMessage, def rgba) (rgba, error) {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 || bytes.Equal(raw, []byte("null")) {
		return def, nil
	}
	bad := invalid(i, name, `%s.%s must be a colour: "#rrggbb", "#rrggbbaa", "black", "white", "transparent" or [r, g, b(, a)] with values 0..255`, op, name)
	if raw[0] == '[' {
		var v []float64
		if err := json.Unmarshal(raw, &v); err != nil || (len(v) != 3 && len(v) != 4) {
			return rgba{}, bad
		}
		c := []uint8{0, 0, 0, 255}
		for k, x := range v {
			if x < 0 || x > 255 || x != math.Trunc(x) {
				return rgba{}, bad
			}
			c[k] = uint8(x)
		}
		return rgba{c[0], c[1], c[2], c[3]}, nil
	}
	var s string
	if err := json.Unmarshal(raw, &s); err != nil {
		return rgba{}, bad
	}
	switch strings.ToLower(strings.TrimSpace(s)) {
	case "black":
		return black, nil
	case "white":
		return white, nil
	case "transparent", "none":
		return transparent, nil
	}
	hex := strings.TrimPrefix(strings.TrimSpace(s), "#")
	if len(hex) == 3 {
		hex = string([]byte{hex[0], hex[0], hex[1], hex[1], hex[2], hex[2]})
	}
	if len(hex) == 6 {
		hex += "ff"
	}
	if len(hex) != 8 {
		return rgba{}, bad
	}
	n, err := strconv.ParseUint(hex, 16, 32)
	if err != nil {
		return rgba{}, bad
	}
	return rgba{uint8(n >> 24), uint8(n >> 16), uint8(n >> 8), uint8(n)}, nil
}

// Gravities name where a box sits inside a larger one.
var gravities = []string{"centre", "center", "north", "south", "east", "west",
	"north_east", "north_west", "south_east", "south_west"}

// smartGravities pick the box by content rather than position.
var smartGravities = []string{"smart", "attention", "entropy"}

// cropGravities place a box cut out of an image, by position or content.
var cropGravities = append(append([]string{}, gravities...), smartGravities...)

// place returns where an inner box goes inside an outer one for a gravity: against the top
// for north*, the bottom for south*, the left for *west, the right for *east, centred on the
// other axis and for centre.
func place(gravity string, outerW, outerH, innerW, innerH int) (x, y int) {
	x, y = (outerW-innerW)/2, (outerH-innerH)/2
	if strings.Contains(gravity, "west") {
		x = 0
	}
	if strings.Contains(gravity, "east") {
		x = outerW - innerW
	}
	if strings.HasPrefix(gravity, "north") {
		y = 0
	}
	if strings.HasPrefix(gravity, "south") {
		y = outerH - innerH
	}
	return x, y
}
