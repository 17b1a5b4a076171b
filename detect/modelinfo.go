package detect

import (
	"errors"
	"fmt"

	"google.golang.org/protobuf/encoding/protowire"
)

// modelInfo is what a detector needs to know about an ONNX file before it runs it: the graph's
// input and output tensors and the model's metadata (Ultralytics keeps class names and the
// image size there). It is read straight from the protobuf, so it needs no runtime.
type modelInfo struct {
	Inputs   []tensorInfo
	Outputs  []tensorInfo
	Metadata map[string]string
}

// tensorInfo is a graph input or output; a dimension that is not fixed is -1.
type tensorInfo struct {
	Name string
	Dims []int64
}

// Field numbers of onnx.proto.
const (
	modelGraph         = 7
	modelMetadataProps = 14
	entryKey           = 1
	entryValue         = 2
	graphInitializer   = 5
	graphInput         = 11
	graphOutput        = 12
	tensorProtoName    = 8
	valueInfoName      = 1
	valueInfoType      = 2
	typeTensor         = 1
	tensorTypeShape    = 2
	shapeDim           = 1
	dimValue           = 1
)

var errProto = errors.New("not an ONNX model")

// parseModelInfo reads an ONNX ModelProto.
func parseModelInfo(b []byte) (*modelInfo, error) {
	mi := &modelInfo{Metadata: map[string]string{}}
	var graph []byte
	err := fields(b, func(num protowire.Number, v []byte) error {
		switch num {
		case modelGraph:
			graph = v
		case modelMetadataProps:
			var k, val string
			if err := fields(v, func(n protowire.Number, s []byte) error {
				switch n {
				case entryKey:
					k = string(s)
				case entryValue:
					val = string(s)
				}
				return nil
			}); err != nil {
				return err
			}
			mi.Metadata[k] = val
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	if graph == nil {
		return nil, fmt.Errorf("%w: it has no graph", errProto)
	}
	inits := map[string]bool{}
	var inputs, outputs []tensorInfo
	err = fields(graph, func(num protowire.Number, v []byte) error {
		switch num {
		case graphInitializer:
			return fields(v, func(n protowire.Number, s []byte) error {
				if n == tensorProtoName {
					inits[string(s)] = true
				}
				return nil
			})
		case graphInput, graphOutput:
			t, err := parseValueInfo(v)
			if err != nil {
				return err
			}
			if num == graphInput {
				inputs = append(inputs, t)
			} else {
				outputs = append(outputs, t)
			}
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	// Older exporters list the weights among the inputs too.
	for _, t := range inputs {
		if !inits[t.Name] {
			mi.Inputs = append(mi.Inputs, t)
		}
	}
	mi.Outputs = outputs
	return mi, nil
}

func parseValueInfo(b []byte) (tensorInfo, error) {
	var t tensorInfo
	err := fields(b, func(n protowire.Number, v []byte) error {
		switch n {
		case valueInfoName:
			t.Name = string(v)
		case valueInfoType:
			return fields(v, func(n protowire.Number, v []byte) error {
				if n != typeTensor {
					return nil
				}
				return fields(v, func(n protowire.Number, v []byte) error {
					if n != tensorTypeShape {
						return nil
					}
					return fields(v, func(n protowire.Number, v []byte) error {
						if n != shapeDim {
							return nil
						}
						d := int64(-1)
						err := varints(v, func(n protowire.Number, x uint64) {
							if n == dimValue {
								d = int64(x)
							}
						})
						t.Dims = append(t.Dims, d)
						return err
					})
				})
			})
		}
		return nil
	})
	return t, err
}

// fields calls fn with every length-delimited field of the message b, skipping the others.
func fields(b []byte, fn func(protowire.Number, []byte) error) error {
	return walk(b, protowire.BytesType, func(num protowire.Number, b []byte) (int, error) {
		v, m := protowire.ConsumeBytes(b)
		if m < 0 {
			return m, nil
		}
		return m, fn(num, v)
	})
}

// varints calls fn with every varint field of the message b.
func varints(b []byte, fn func(protowire.Number, uint64)) error {
	return walk(b, protowire.VarintType, func(num protowire.Number, b []byte) (int, error) {
		x, m := protowire.ConsumeVarint(b)
		if m >= 0 {
			fn(num, x)
		}
		return m, nil
	})
}

// walk calls read with every field of wire type typ of the message b, and the message from the
// field's value on; read returns the length of the value, negative when it is malformed.
// Fields of other types are skipped.
func walk(b []byte, typ protowire.Type, read func(protowire.Number, []byte) (int, error)) error {
	for len(b) > 0 {
		num, t, n := protowire.ConsumeTag(b)
		if n < 0 {
			return errProto
		}
		b = b[n:]
		var m int
		if t == typ {
			var err error
			if m, err = read(num, b); err != nil {
				return err
			}
		} else {
			m = protowire.ConsumeFieldValue(num, t, b)
		}
		if m < 0 {
			return errProto
		}
		b = b[m:]
	}
	return nil
}
