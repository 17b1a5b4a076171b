package imaged

import (
	"fmt"
	"sort"
)

// OpSpec is what the domain knows about one op, declared once by the package that implements
// it (vips for transforms, ocr and detect for the ops their engines serve) and registered with
// RegisterOp. Everything that depends on an op's nature reads it from here rather than from a
// list of op names: the task type of a pipeline, whether it answers with JSON, whether it may
// follow the frames op, its parameters behind the OpenAPI schemas and GET /v1/ops, its plan
// (geometry, memory and cost before decode). An engine adds what it needs to run the op to its
// own registration.
type OpSpec struct {
	// Name is the "op" field that selects the op, lower case.
	Name string
	// Summary is one line saying what the op does, for listings of the ops.
	Summary string
	// Kind says whether the op changes the image, reports on it, or only sets up the run.
	Kind OpKind
	// Frames says what the op does with an animation (a pipeline that starts with frames).
	Frames FrameMode
	// TaskType is the task type the op gives its pipeline (TaskTypeOCR, TaskTypeDetect); ""
	// leaves it a transform.
	TaskType string
	// TaskTypeFor, when set, decides the task type from the op's parameters instead: a crop
	// with gravity object:<class> runs the object detector.
	TaskTypeFor func(Op) string
	// Params are the op's parameters as clients see them (GET /v1/ops, the OpenAPI document),
	// declared where the op validates them; see Param.
	Params []Param
	// Plan gives the op's output geometry (width × height × bands × frames), the images it
	// holds on the way and its cost, from its input's geometry and its parameters, so that a
	// pipeline's largest image, its memory and its CPU are known before any pixel is decoded
	// (Estimate). Every op declares one: Untouched for those that hold no pixels, PerMegapixel
	// for those that keep the geometry.
	Plan PlanFunc
}

// OpKind is the nature of an op's effect on a pipeline.
type OpKind int

const (
	// OpTransform changes the image, so the pipeline answers with new image bytes.
	OpTransform OpKind = iota
	// OpAnalysis reads the image and adds a JSON entry to Result.Analyses without changing it.
	OpAnalysis
	// OpSetting changes neither the pixels nor the answer, only how the pipeline runs (frames
	// decides how the source is loaded).
	OpSetting
)

// FrameMode is what an op does with the frames of an animation.
type FrameMode int

const (
	// FramesRefused is the zero value, so that an op added later is refused after the frames op
	// rather than silently treating the stack of frames as one tall image.
	FramesRefused FrameMode = iota
	// FramesEach runs the op on every frame as on a still image, giving every frame one size.
	FramesEach
	// FramesWhole runs the op once over the animation: it reads metadata or settles the output,
	// not pixels.
	FramesWhole
)

// taskType is the task type the op gives its pipeline.
func (s *OpSpec) taskType(o Op) string {
	if s.TaskTypeFor != nil {
		if t := s.TaskTypeFor(o); t != "" {
			return t
		}
	}
	if s.TaskType != "" {
		return s.TaskType
	}
	return TaskTypeTransform
}

// opSpecs holds every registered op. It is written before any op is looked up (by init
// functions), so reads need no lock.
var opSpecs = map[string]*OpSpec{}

// RegisterOp makes an op's traits known to the domain. Call it from the init function of the
// package that implements the op, as image.RegisterFormat is called by the image codecs: a
// process knows the ops of the packages it links. (A test that links none of them may declare
// stand-ins before it uses them; registering is not safe while ops are looked up.)
// Registering a name twice is a programming error and panics.
func RegisterOp(spec OpSpec) {
	if spec.Name == "" {
		panic("imaged: RegisterOp with no name")
	}
	if _, dup := opSpecs[spec.Name]; dup {
		panic(fmt.Sprintf("imaged: op %q registered twice", spec.Name))
	}
	opSpecs[spec.Name] = &spec
}

// LookupOp returns the registered traits of the op named name.
func LookupOp(name string) (OpSpec, bool) {
	if s, ok := opSpecs[name]; ok {
		return *s, true
	}
	return OpSpec{}, false
}

// RegisteredOps lists the registered ops, sorted by name.
func RegisteredOps() []OpSpec {
	out := make([]OpSpec, 0, len(opSpecs))
	for _, s := range opSpecs {
		out = append(out, *s)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}
