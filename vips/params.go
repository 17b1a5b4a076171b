package vips

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math"
	"strconv"
	"strings"

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

// oneOf checks that v is one of allowed, naming the choices in the error.
func oneOf(i int, op, name, v string, allowed ...string) error {
	for _, a := range allowed {
		if v == a {
			return nil
		}
	}
	return invalid(i, name, "%s.%s must be one of %s; got %q", op, name, strings.Join(allowed, ", "), v)
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
