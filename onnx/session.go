package onnx

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	ort "github.com/yalue/onnxruntime_go"

	"github.com/imaged/imaged"
)

// Tensor is a float32 tensor in row-major order.
type Tensor struct {
	Shape []int64
	Data  []float32
}

// Size is the number of elements the shape describes.
func (t Tensor) Size() int {
	n := 1
	for _, d := range t.Shape {
		n *= int(d)
	}
	return n
}

// Session is one loaded model. It is not for two goroutines at once: take it from a Pool.
type Session struct {
	s       *ort.DynamicAdvancedSession
	inputs  []string
	outputs []string
}

// NewSession loads the model at path with one intra-op and one inter-op thread: on small
// machines, parallelising across requests beats parallelising inside one inference. The runtime
// library must already be loaded (a Runtime's pools do that). A missing model is ENotInstalled.
func NewSession(path string, inputs, outputs []string) (*Session, error) {
	if _, err := os.Stat(path); err != nil {
		return nil, notInstalled(err, "the model file %s is missing", filepath.Base(path))
	}
	opts, err := ort.NewSessionOptions()
	if err != nil {
		return nil, fmt.Errorf("onnx: session options: %w", err)
	}
	defer opts.Destroy()
	if err := opts.SetIntraOpNumThreads(1); err != nil {
		return nil, fmt.Errorf("onnx: intra-op threads: %w", err)
	}
	if err := opts.SetInterOpNumThreads(1); err != nil {
		return nil, fmt.Errorf("onnx: inter-op threads: %w", err)
	}
	s, err := ort.NewDynamicAdvancedSession(path, inputs, outputs, opts)
	if err != nil {
		return nil, &imaged.Error{Code: imaged.ENotInstalled, Message: fmt.Sprintf("the model %s could not be loaded; an operator reinstalls it with `make models`", filepath.Base(path)), Err: err}
	}
	return &Session{s: s, inputs: inputs, outputs: outputs}, nil
}

// Run feeds one tensor per input name and returns one per output name, copied out of the
// runtime's memory. When ctx ends first, the runtime is told to terminate the run, which it
// does between kernels, and Run returns the context's error.
func (s *Session) Run(ctx context.Context, inputs ...Tensor) ([]Tensor, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if len(inputs) != len(s.inputs) {
		return nil, fmt.Errorf("onnx: the model takes %d inputs, got %d", len(s.inputs), len(inputs))
	}
	in := make([]ort.Value, len(inputs))
	defer func() {
		for _, v := range in {
			if v != nil {
				v.Destroy()
			}
		}
	}()
	for i, t := range inputs {
		if t.Size() != len(t.Data) {
			return nil, fmt.Errorf("onnx: input %s has shape %v but %d values", s.inputs[i], t.Shape, len(t.Data))
		}
		v, err := ort.NewTensor(ort.NewShape(t.Shape...), t.Data)
		if err != nil {
			return nil, fmt.Errorf("onnx: input %s: %w", s.inputs[i], err)
		}
		in[i] = v
	}
	out := make([]ort.Value, len(s.outputs))
	defer func() {
		for _, v := range out {
			if v != nil {
				v.Destroy()
			}
		}
	}()
	if err := s.run(ctx, in, out); err != nil {
		return nil, err
	}
	res := make([]Tensor, len(out))
	for i, v := range out {
		t, ok := v.(*ort.Tensor[float32])
		if !ok {
			return nil, fmt.Errorf("onnx: output %s is not a float32 tensor", s.outputs[i])
		}
		res[i] = Tensor{
			Shape: append([]int64(nil), t.GetShape()...),
			Data:  append([]float32(nil), t.GetData()...),
		}
	}
	return res, nil
}

// run runs the model, terminating it when ctx ends.
func (s *Session) run(ctx context.Context, in, out []ort.Value) error {
	if ctx.Done() == nil {
		if err := s.s.Run(in, out); err != nil {
			return fmt.Errorf("onnx: run: %w", err)
		}
		return nil
	}
	opts, err := ort.NewRunOptions()
	if err != nil {
		return fmt.Errorf("onnx: run options: %w", err)
	}
	defer opts.Destroy()
	terminated := make(chan struct{})
	stop := context.AfterFunc(ctx, func() {
		opts.Terminate()
		close(terminated)
	})
	err = s.s.RunWithOptions(in, out, opts)
	if !stop() {
		<-terminated
	}
	if cerr := ctx.Err(); cerr != nil && err != nil {
		return cerr
	}
	if err != nil {
		return fmt.Errorf("onnx: run: %w", err)
	}
	return nil
}

// Close frees the session.
func (s *Session) Close() error {
	if s == nil || s.s == nil {
		return nil
	}
	err := s.s.Destroy()
	s.s = nil
	return err
}

var errPoolClosed = errors.New("onnx: pool is closed")
