package imaged

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"reflect"
	"strings"
)

// JSONProblem describes an encoding/json decoding error for the person who sent the JSON: the
// field it concerns (a dotted path, "" for the value as a whole) and what is wrong with it in
// JSON's words ("must be a number, not a string"), never Go's ("cannot unmarshal string into Go
// struct field …").
func JSONProblem(err error) (field, msg string) {
	var te *json.UnmarshalTypeError
	var se *json.SyntaxError
	switch {
	case errors.As(err, &te):
		return te.Field, fmt.Sprintf("must be %s, not %s", JSONKind(te.Type), jsonValue(te.Value))
	case errors.As(err, &se):
		return "", fmt.Sprintf("is not valid JSON: %s (at byte %d)", strings.TrimPrefix(se.Error(), "json: "), se.Offset)
	case errors.Is(err, io.ErrUnexpectedEOF), errors.Is(err, io.EOF):
		return "", "is not valid JSON: it ends early"
	}
	msg = err.Error()
	if name, ok := strings.CutPrefix(msg, "json: unknown field "); ok {
		return strings.Trim(name, `"`), "is not a known field"
	}
	var e *Error
	if errors.As(err, &e) {
		return e.Field, e.Message
	}
	return "", "is not valid JSON"
}

// JSONKind names what a Go type holds as JSON: "a number", "an integer", "a string", "true or
// false", "a list", "an object".
func JSONKind(t reflect.Type) string {
	switch jsonType(t) {
	case "integer":
		return "an integer"
	case "number":
		return "a number"
	case "string":
		return "a string"
	case "boolean":
		return "true or false"
	case ParamList:
		return "a list"
	case ParamObject:
		return "an object"
	}
	return "a JSON value"
}

// jsonType is the JSON type a Go type holds, in JSON Schema's words (integer, number, string,
// boolean; list and object), "" when it could be any. A json.RawMessage is an object.
func jsonType(t reflect.Type) string {
	for t != nil && t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	if t == nil {
		return ""
	}
	if t == reflect.TypeFor[json.RawMessage]() {
		return ParamObject
	}
	switch t.Kind() {
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return "integer"
	case reflect.Float32, reflect.Float64:
		return "number"
	case reflect.String:
		return "string"
	case reflect.Bool:
		return "boolean"
	case reflect.Slice, reflect.Array:
		return ParamList
	case reflect.Map, reflect.Struct:
		return ParamObject
	}
	return ""
}

// jsonValue names the JSON value encoding/json found ("string", "number 1.5", "array").
func jsonValue(v string) string {
	switch {
	case v == "string":
		return "a string"
	case v == "number":
		return "a number"
	case strings.HasPrefix(v, "number "):
		return strings.TrimPrefix(v, "number ")
	case v == "bool":
		return "true or false"
	case v == "array":
		return "a list"
	case v == "object":
		return "an object"
	case v == "null":
		return "null"
	}
	return "that value"
}
