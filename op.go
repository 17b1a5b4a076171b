package imaged

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strings"
)

// Op is one step of a pipeline: {"op":"resize","width":800}. Name is the "op" field; Args holds
// the whole JSON object so the engine that owns the op can decode and validate its own fields.
type Op struct {
	Name string
	Args json.RawMessage
}

// MarshalJSON writes the op back as the object it came from.
func (o Op) MarshalJSON() ([]byte, error) {
	if len(o.Args) == 0 {
		return json.Marshal(map[string]string{"op": o.Name})
	}
	return o.Args, nil
}

// UnmarshalJSON keeps the raw object and reads its "op" field.
func (o *Op) UnmarshalJSON(b []byte) error {
	var head struct {
		Op *string `json:"op"`
	}
	trimmed := bytes.TrimSpace(b)
	if len(trimmed) == 0 || trimmed[0] != '{' {
		return FieldErrorf("op", "each operation must be a JSON object")
	}
	if err := json.Unmarshal(trimmed, &head); err != nil {
		_, problem := JSONProblem(err)
		return FieldErrorf("op", "operation %s", problem)
	}
	if head.Op == nil || *head.Op == "" {
		return FieldErrorf("op", `operation has no "op" field naming it`)
	}
	o.Name = strings.ToLower(*head.Op)
	o.Args = append(json.RawMessage(nil), trimmed...)
	return nil
}

// DecodeArgs decodes the op's fields into dst, refusing fields dst does not know, and names the
// op and field in the error.
func (o Op) DecodeArgs(index int, dst any) error {
	dec := json.NewDecoder(bytes.NewReader(o.Args))
	dec.DisallowUnknownFields()
	if err := dec.Decode(dst); err != nil {
		name, problem := JSONProblem(err)
		field := fmt.Sprintf("ops[%d]", index)
		if name != "" {
			field += "." + name
		}
		msg := fmt.Sprintf("%s %s", o.Name, problem)
		switch {
		case problem == "is not a known field":
			msg = fmt.Sprintf("%s has no parameter %q", o.Name, name)
		case name != "":
			msg = fmt.Sprintf("%s.%s %s", o.Name, name, problem)
		}
		return &Error{Code: EInvalid, Message: msg, Field: field}
	}
	return nil
}

// MaxOps bounds the length of one pipeline.
const MaxOps = 32

// ParseOps parses a JSON list of operations. It checks the shape only; the engine that runs
// the pipeline validates each op's parameters.
func ParseOps(data []byte) ([]Op, error) {
	data = bytes.TrimSpace(data)
	if len(data) == 0 {
		return nil, FieldErrorf("ops", "ops is required: a JSON list of operations")
	}
	var ops []Op
	if err := json.Unmarshal(data, &ops); err != nil {
		if e, ok := err.(*Error); ok {
			return nil, e
		}
		_, problem := JSONProblem(err)
		return nil, FieldErrorf("ops", "ops must be a JSON list of operations: it %s", problem)
	}
	if err := CheckOpsShape(ops); err != nil {
		return nil, err
	}
	return ops, nil
}

// CheckOpsShape checks the list itself: not empty, not too long, every op named.
func CheckOpsShape(ops []Op) error {
	if len(ops) == 0 {
		return FieldErrorf("ops", "ops must hold at least one operation")
	}
	if len(ops) > MaxOps {
		return FieldErrorf("ops", "ops holds %d operations; the limit is %d", len(ops), MaxOps)
	}
	for i, o := range ops {
		if o.Name == "" {
			return FieldErrorf(fmt.Sprintf("ops[%d].op", i), `operation %d has no "op" field`, i)
		}
	}
	return nil
}

// Task types, derived from the pipeline (DESIGN §7).
const (
	TaskTypeTransform = "transform"
	TaskTypeOCR       = "ocr"
	TaskTypeDetect    = "detect"
)

// TaskTypes lists every task type, e.g. for queue declarations and metrics.
var TaskTypes = []string{TaskTypeTransform, TaskTypeOCR, TaskTypeDetect}

// TaskTypeOf derives the task type of a pipeline from its ops' registered traits (OpSpec): ocr
// if an op needs the OCR engines, else detect if one runs the object detector, else transform.
// Workers that hold the models consume the ocr and detect queues.
func TaskTypeOf(ops []Op) string {
	typ := TaskTypeTransform
	for _, o := range ops {
		spec, ok := opSpecs[o.Name]
		if !ok {
			continue
		}
		switch t := spec.taskType(o); t {
		case TaskTypeOCR:
			return t
		case TaskTypeDetect:
			typ = t
		}
	}
	return typ
}
