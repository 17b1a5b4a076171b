package cli

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	"github.com/spf13/pflag"

	"github.com/imaged/imaged"
	"github.com/imaged/imaged/signedurl"
)

// opSyntax is the help of --op, shared by process and submit.
const opSyntax = `Each --op is one step of the pipeline, in order, written as in signed URLs:
  name:key=value,key=value      e.g. resize:width=800,fit=cover   convert:format=webp,quality=80
A value that is a number becomes a JSON number, true and false become booleans, a value with
semicolons becomes a list (--op 'detect:classes=cat;dog', quoted for the shell), anything else
a string. Short keys: w width,
h height, q quality, f format, g gravity, s sigma, a angle, bg background. An op whose values
hold commas is written as its JSON object instead: --op '{"op":"watermark","text":"Hello, world"}'.
The ops and their parameters are listed in the README (Operations in a pipeline).`

// opFlag is --op, of process and submit.
func opFlag(fs *pflag.FlagSet, o *options) {
	fs.StringArrayVar(&o.ops, "op", nil, "a step of the pipeline, `OP` = name:key=value,… (repeat, in order)")
}

// parseOps reads the --op values into a pipeline.
func parseOps(specs []string) ([]imaged.Op, error) {
	if len(specs) == 0 {
		return nil, errors.New("give the pipeline as one --op per step, e.g. --op resize:width=800 --op convert:format=webp")
	}
	ops := make([]imaged.Op, 0, len(specs))
	for _, s := range specs {
		op, err := parseOp(s)
		if err != nil {
			return nil, fmt.Errorf("--op %s: %s", s, errorText(err))
		}
		ops = append(ops, op)
	}
	if err := imaged.CheckOpsShape(ops); err != nil {
		return nil, fmt.Errorf("--op: %s", errorText(err))
	}
	return ops, nil
}

func parseOp(s string) (imaged.Op, error) {
	if strings.HasPrefix(strings.TrimSpace(s), "{") {
		var op imaged.Op
		err := json.Unmarshal([]byte(s), &op)
		return op, err
	}
	return signedurl.ParseOp(s)
}

// parseParams reads --param key=value values into an op's options: the value rules of --op,
// or a JSON value when it starts with [ or { (a list of one: languages=["eng"]).
func parseParams(params []string) (map[string]any, error) {
	out := map[string]any{}
	for _, p := range params {
		m, err := parseParam(p)
		if err != nil {
			return nil, fmt.Errorf("--param %s: %s", p, errorText(err))
		}
		for k, v := range m {
			if _, dup := out[k]; dup {
				return nil, fmt.Errorf("--param %s: %s is given twice", p, k)
			}
			out[k] = v
		}
	}
	return out, nil
}

func parseParam(p string) (map[string]any, error) {
	k, v, ok := strings.Cut(p, "=")
	if !ok {
		return nil, errors.New("parameters are key=value")
	}
	var raw any
	if strings.HasPrefix(v, "[") || strings.HasPrefix(v, "{") {
		if err := json.Unmarshal([]byte(v), &raw); err != nil {
			return nil, fmt.Errorf("the value is not JSON: %v", err)
		}
		v = "json" // stands in for the value while the key is checked
	}
	op, err := signedurl.ParseOp("param:" + k + "=" + v)
	if err != nil {
		return nil, err
	}
	var m map[string]any
	dec := json.NewDecoder(bytes.NewReader(op.Args))
	dec.UseNumber()
	if err := dec.Decode(&m); err != nil {
		return nil, err
	}
	delete(m, "op")
	if raw != nil {
		for key := range m {
			m[key] = raw
		}
	}
	return m, nil
}

// errorText is an error's message without the Go wrapping of imaged's errors.
func errorText(err error) string {
	var e *imaged.Error
	if errors.As(err, &e) {
		return e.Message
	}
	return err.Error()
}
