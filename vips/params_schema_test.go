package vips

import (
	"encoding/json"
	"errors"
	"maps"
	"slices"
	"testing"

	"github.com/imaged/imaged"
)

// bases are the smallest valid form of each op whose parameters need company, so that a probe
// of one parameter fails, if it does, on that parameter alone.
var bases = map[string]map[string]any{
	"resize":    {"width": 100},
	"crop":      {"width": 10, "height": 10},
	"rotate":    {"angle": 90},
	"convert":   {"format": "avif"},
	"watermark": {"text": "x"},
	"pad":       {"top": 1},
	"extend":    {"top": 1},
}

// companions are parameters whose probe needs other parameters set in a particular way.
var companions = map[string]map[string]map[string]any{
	"crop":    {"x": {"y": 0}, "y": {"x": 0}},
	"convert": {"bitdepth": {"palette": true, "format": "png"}},
	"pad":     {"width": {"height": 10, "top": nil}, "height": {"width": 10, "top": nil}},
	"extend":  {"width": {"height": 10, "top": nil}, "height": {"width": 10, "top": nil}},
}

// TestParamsMatchValidation sends every bound and enum value each op declares (GET /v1/ops, the
// OpenAPI document) through Validate, and one value past each bound: the declared values pass,
// the others are refused naming the parameter. A declaration that drifts from the code fails.
func TestParamsMatchValidation(t *testing.T) {
	p := New(Config{})
	probe := func(op string, name string, v any) error {
		args := map[string]any{"op": op}
		maps.Copy(args, bases[op])
		for k, x := range companions[op][name] {
			if x == nil {
				delete(args, k)
			} else {
				args[k] = x
			}
		}
		args[name] = v
		b, _ := json.Marshal(args)
		ops, err := imaged.ParseOps(append(append([]byte{'['}, b...), ']'))
		if err != nil {
			t.Fatalf("%s: %v", b, err)
		}
		return p.Validate(ops)
	}
	refusedOn := func(err error, name string) bool {
		var e *imaged.Error
		return errors.As(err, &e) && e.Field == "ops[0]."+name
	}
	probes := 0
	for _, name := range slices.Sorted(maps.Keys(builtins)) {
		spec := builtins[name]
		if name == "frames" {
			continue // its max is bounded by IMAGED_MAX_FRAMES, checked in frames_test.go
		}
		for _, prm := range spec.Params {
			if name == "watermark" && prm.Name == "scale" {
				continue // needs an uploaded image: watermark_test.go checks its range
			}
			step := 0.001
			if prm.Type == "integer" {
				step = 1
			}
			for _, b := range []struct {
				at   *float64
				past float64
			}{{prm.Min, -step}, {prm.Max, step}} {
				if b.at == nil {
					continue
				}
				probes += 2
				if err := probe(name, prm.Name, *b.at); refusedOn(err, prm.Name) {
					t.Errorf("%s.%s = %v (declared bound) refused: %v", name, prm.Name, *b.at, err)
				}
				if err := probe(name, prm.Name, *b.at+b.past); !refusedOn(err, prm.Name) {
					t.Errorf("%s.%s = %v (past the declared bound) not refused on it: %v", name, prm.Name, *b.at+b.past, err)
				}
			}
			for _, v := range prm.Enum {
				probes++
				if err := probe(name, prm.Name, v); err != nil {
					t.Errorf("%s.%s = %q (declared) refused: %v", name, prm.Name, v, err)
				}
			}
			if len(prm.Enum) > 0 {
				probes++
				if err := probe(name, prm.Name, "no-such-value"); !refusedOn(err, prm.Name) {
					t.Errorf("%s.%s = no-such-value not refused on it: %v", name, prm.Name, err)
				}
			}
			if prm.Default != nil {
				probes++
				if err := probe(name, prm.Name, prm.Default); err != nil {
					t.Errorf("%s.%s = %v (declared default) refused: %v", name, prm.Name, prm.Default, err)
				}
			}
		}
		if spec.Kind == imaged.OpTransform && name != "flop" && len(spec.Params) == 0 && !noParams[name] {
			t.Errorf("op %s declares no parameters", name)
		}
	}
	t.Logf("%d probes over %d ops", probes, len(builtins))
}

// noParams are the ops that take no parameters.
var noParams = map[string]bool{"grayscale": true, "greyscale": true, "invert": true, "autorotate": true, "normalize": true, "sepia": true}

func TestValidateListsEveryViolation(t *testing.T) {
	ops, err := imaged.ParseOps([]byte(`[{"op":"resize","width":0},{"op":"blur","sigma":1},{"op":"convert","format":"bmp"},{"op":"nope"}]`))
	if err != nil {
		t.Fatal(err)
	}
	err = New(Config{}).Validate(ops)
	var e *imaged.Error
	if !errors.As(err, &e) || e.Field != "ops[0].width" {
		t.Fatalf("Validate: %v, want the first violation on ops[0].width", err)
	}
	var fields []string
	for _, d := range e.Details {
		fields = append(fields, d.Field)
	}
	if want := []string{"ops[0].width", "ops[2].format", "ops[3].op"}; !slices.Equal(fields, want) {
		t.Errorf("details name %v, want %v", fields, want)
	}
}
