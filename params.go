package imaged

import (
	"encoding/json"
	"fmt"
	"reflect"
	"strconv"
	"strings"
)

// Param is one parameter of an op as clients see it, in GET /v1/ops and in the op's schema in
// the OpenAPI document. The package that implements the op declares its parameters with the
// op (OpSpec.Params), next to the code that validates them, and a test of that package sends
// each declared bound and one value past it through the validator, so the two cannot drift.
type Param struct {
	Name string `json:"name"`
	// Type is the JSON type: integer, number, boolean, string, colour (a "#rrggbb" string or a
	// list of 3 or 4 channel values), list or object.
	Type        string   `json:"type"`
	Description string   `json:"description,omitempty"`
	Min         *float64 `json:"minimum,omitempty"`
	Max         *float64 `json:"maximum,omitempty"`
	Default     any      `json:"default,omitempty"`
	Enum        []string `json:"enum,omitempty"`
	Required    bool     `json:"required,omitempty"`
}

// Param types beyond JSON's own.
const (
	ParamColour = "colour"
	ParamList   = "list"
	ParamObject = "object"
)

// ParamsOf reads the parameters of an op from the struct its parameters decode into: each
// field's JSON name and type, and these tags:
//
//	doc:"…"          one line saying what the parameter does
//	min:"1" max:"9"  the range of a number
//	default:"…"      the value used when the parameter is absent, as JSON ("80", "true", "inside")
//	enum:"a,b,c"     the values a string may take
//	required:"true"  the op is refused without it
//	type:"colour"    a type the Go type does not tell (a json.RawMessage holding a colour)
//
// The "op" field, which names the op itself, is not a parameter. An embedded struct's fields
// are read as the struct's own.
func ParamsOf[A any]() []Param {
	return paramsOf(reflect.TypeFor[A]())
}

func paramsOf(t reflect.Type) []Param {
	var out []Param
	for f := range t.Fields() {
		if f.Anonymous && f.Type.Kind() == reflect.Struct {
			out = append(out, paramsOf(f.Type)...)
			continue
		}
		name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
		if name == "" || name == "-" || name == "op" || !f.IsExported() {
			continue
		}
		p := Param{Name: name, Type: f.Tag.Get("type"), Description: f.Tag.Get("doc"),
			Required: f.Tag.Get("required") == "true"}
		if p.Type == "" {
			p.Type = paramType(f.Type)
		}
		p.Min, p.Max = tagNumber(f, "min"), tagNumber(f, "max")
		if d := f.Tag.Get("default"); d != "" {
			if err := json.Unmarshal([]byte(d), &p.Default); err != nil {
				p.Default = d // a bare word: a string
			}
		}
		if e := f.Tag.Get("enum"); e != "" {
			p.Enum = strings.Split(e, ",")
		}
		out = append(out, p)
	}
	return out
}

// paramType names the JSON type of a Go type; one that could hold anything is an object.
func paramType(t reflect.Type) string {
	if k := jsonType(t); k != "" {
		return k
	}
	return ParamObject
}

func tagNumber(f reflect.StructField, tag string) *float64 {
	s := f.Tag.Get(tag)
	if s == "" {
		return nil
	}
	v, err := strconv.ParseFloat(s, 64)
	if err != nil {
		panic(fmt.Sprintf("imaged: field %s: tag %s=%q is not a number", f.Name, tag, s))
	}
	return &v
}

// Bound returns a pointer to v, for Param.Min and Param.Max.
func Bound(v float64) *float64 { return &v }

// Schema is the op's JSON Schema (2020-12, as OpenAPI 3.1 uses): an object whose "op" is the
// op's name and whose other properties are its parameters, refusing any other.
func (s *OpSpec) Schema() map[string]any {
	props := map[string]any{"op": map[string]any{"const": s.Name, "description": s.Summary}}
	required := []string{"op"}
	for _, p := range s.Params {
		props[p.Name] = p.schema()
		if p.Required {
			required = append(required, p.Name)
		}
	}
	// An op that declares nothing (Params nil, as a test's stand-in) takes any parameter;
	// one that declares none (an empty list) refuses every other field.
	return map[string]any{"type": "object", "title": s.Name, "description": s.Summary,
		"properties": props, "required": required, "additionalProperties": s.Params == nil}
}

func (p Param) schema() map[string]any {
	m := map[string]any{}
	switch p.Type {
	case ParamColour:
		m["oneOf"] = []any{
			map[string]any{"type": "string"},
			map[string]any{"type": "array", "items": map[string]any{"type": "integer", "minimum": 0, "maximum": 255}, "minItems": 3, "maxItems": 4},
		}
	case ParamList:
		m["type"] = "array"
	case ParamObject:
		// Free-form: a number or an object, as the op's description says.
	default:
		m["type"] = p.Type
	}
	if p.Description != "" {
		m["description"] = p.Description
	}
	if p.Min != nil {
		m["minimum"] = *p.Min
	}
	if p.Max != nil {
		m["maximum"] = *p.Max
	}
	if p.Default != nil {
		m["default"] = p.Default
	}
	if len(p.Enum) > 0 {
		m["enum"] = p.Enum
	}
	return m
}
