package vips

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"runtime"
	"slices"
	"strings"
	"sync/atomic"
	"unsafe"

	govips "github.com/davidbyttow/govips/v2/vips"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"

	"github.com/imaged/imaged"
)

// Processor runs pipelines on libvips. It holds no per-image state, so one Processor serves
// every request and worker concurrently.
type Processor struct {
	cfg     Config
	limits  imaged.Limits
	ops     map[string]*opSpec // the built-in ops and those of the configured engines
	mem     *budget
	images  atomic.Pointer[ImageSource] // nil: image watermarks are refused
	uploads *uploadCache                // recently read uploaded images, by id
}

var _ imaged.Processor = (*Processor)(nil)

// LibraryVersion is the version of the libvips the process runs on ("8.14.1"): outputs made
// by another may differ byte for byte.
func LibraryVersion() string { return govips.Version }

// New returns a Processor, starting libvips with cfg if Startup has not run. It panics when an
// analyzer or painter takes the name of another op or declares traits the pipeline cannot give
// it (another kind, running on animations): wiring mistakes that must not reach a request.
func New(cfg Config) *Processor {
	Startup(cfg)
	p := &Processor{cfg: cfg, limits: cfg.limits(), ops: make(map[string]*opSpec, len(builtins)+len(cfg.Analyzers)+len(cfg.Painters)),
		mem: cfg.budget(), uploads: newUploadCache()}
	for name, spec := range builtins {
		p.ops[name] = spec
	}
	p.SetImages(cfg.Images)
	for _, a := range cfg.Analyzers {
		// Analyzers stream: they take the pixels into memory themselves, in one pass.
		p.addEngineOp("analyzer", imaged.OpAnalysis, a.Spec(), true, parseFunc{params: a.Spec().Params, run: func(_ *Processor, i int, op imaged.Op) (step, error) {
			name := strings.ToLower(op.Name)
			if err := a.Validate(i, op); err != nil {
				var e *imaged.Error
				if errors.As(err, &e) {
					return nil, err
				}
				return nil, imaged.FieldErrorf(fieldPath(i, ""), "%s: %v", name, err)
			}
			return analyzerStep{name: name, a: a, op: op}, nil
		}})
	}
	for _, pt := range cfg.Painters {
		p.addEngineOp("painter", imaged.OpTransform, pt.Spec(), false, parseFunc{params: pt.Spec().Params, run: func(_ *Processor, i int, op imaged.Op) (step, error) {
			if err := pt.Validate(i, op); err != nil {
				return nil, err
			}
			return painterStep{name: strings.ToLower(op.Name), p: pt, op: op}, nil
		}})
	}
	return p
}

// addEngineOp adds an op served by an engine outside this package (an analyzer or a painter,
// whose ops are of kind want) under the traits it declares.
func (p *Processor) addEngineOp(role string, want imaged.OpKind, spec imaged.OpSpec, streams bool, parse parseFunc) {
	spec.Name = strings.ToLower(spec.Name)
	if _, clash := p.ops[spec.Name]; clash {
		panic(fmt.Sprintf("vips: %s %q takes the name of another op", role, spec.Name))
	}
	if spec.Kind != want {
		panic(fmt.Sprintf("vips: %s %q declares the wrong kind of op", role, spec.Name))
	}
	if spec.Plan == nil {
		// Its pipelines could not be planned before decoding.
		panic(fmt.Sprintf("vips: %s %q declares no plan", role, spec.Name))
	}
	if spec.Frames != imaged.FramesRefused {
		// Its step would run on each frame's own state and its analyses be lost with it.
		panic(fmt.Sprintf("vips: %s %q cannot run on animations", role, spec.Name))
	}
	p.ops[spec.Name] = &opSpec{OpSpec: spec, parse: parse, streams: streams}
}

// SetImages sets the source of uploaded images that watermark image=<id> reads, for wiring
// where the image store opens after the processor; nil refuses image watermarks again. It is
// safe while pipelines run: each pipeline keeps the source it was validated with.
func (p *Processor) SetImages(src ImageSource) {
	p.uploads.clear()
	if src == nil {
		p.images.Store(nil)
		return
	}
	p.images.Store(&src)
}

// imageSource is the source of uploaded images, nil when there is none.
func (p *Processor) imageSource() ImageSource {
	if src := p.images.Load(); src != nil {
		return *src
	}
	return nil
}

// step is one compiled op: its parameters are checked and it only needs the image.
type step interface {
	apply(ctx context.Context, s *state) error
}

// closer is a step that holds libvips images between the frames of an animation (watermark's
// overlay); Process closes it when the pipeline ends.
type closer interface {
	close()
}

// parseFunc checks the parameters of op i and compiles it into a step; params declares those
// parameters for clients (imaged.Param), from the same place.
type parseFunc struct {
	run    func(p *Processor, i int, op imaged.Op) (step, error)
	params []imaged.Param
}

// parseArgs is the parser of an op whose parameters decode into an A: check validates them and
// compiles the step. A's fields and tags declare the parameters (imaged.ParamsOf).
func parseArgs[A any](check func(p *Processor, i int, op imaged.Op, a *A) (step, error)) parseFunc {
	return parseFunc{params: imaged.ParamsOf[A](), run: func(p *Processor, i int, op imaged.Op) (step, error) {
		var a A
		if err := op.DecodeArgs(i, &a); err != nil {
			return nil, err
		}
		return check(p, i, op, &a)
	}}
}

// opSpec is the registration of an op: everything the pipeline needs to know about it, so that
// adding an op is its file and one register call. The embedded imaged.OpSpec holds the traits
// the domain reads too (kind, task type, behaviour on animations, parameters, and the plan,
// which register makes from the step's own plan method) and is registered with the root
// package; the other fields say how the op runs on libvips' lazy images.
type opSpec struct {
	imaged.OpSpec
	parse parseFunc
	// heavy ops leave work behind them that is costly to compute again: resampling,
	// convolutions, rotations, and the searches of trim. See state.hold.
	heavy bool
	// rereads reports whether the compiled step asks for overlapping regions of its input (a
	// resampling kernel, a convolution, an interpolated rotation) or reads it twice (the search
	// of trim and of smart crop). On a lazy image each such request recomputes the work
	// upstream of it. Nil: never.
	rereads func(step) bool
	// streams is set for ops that read the image once from top to bottom, so that they can work
	// on an image the thumbnail loader streams (sequential access).
	streams bool
	// animatable, when set, refuses at validation parameters with which an op that runs on each
	// frame would treat the frames differently (a smart crop cuts a different box from each).
	animatable func(i int, st step) error
}

// always is the rereads of ops that reread whatever their parameters.
func always(step) bool { return true }

// builtins is filled by each op family's file.
var builtins = map[string]*opSpec{}

// register adds a built-in op to the pipeline and its domain traits to the root package's
// registry.
func register(spec opSpec) {
	if spec.Plan == nil {
		spec.Plan = planVia(spec.parse)
	}
	if spec.Params == nil {
		spec.Params = spec.parse.params
	}
	imaged.RegisterOp(spec.OpSpec)
	builtins[spec.Name] = &spec
}

type compiled struct {
	name    string
	step    step
	spec    *opSpec
	rereads bool
}

// Ops lists the ops this processor runs, built-in and from the engines, sorted.
func (p *Processor) Ops() []string {
	return slices.Sorted(maps.Keys(p.ops))
}

// Validate checks every op's parameters without touching pixels. Errors are EInvalid and name
// the op and the field (ops[i].field).
func (p *Processor) Validate(ops []imaged.Op) error {
	_, err := p.compile(ops)
	return err
}

func (p *Processor) compile(ops []imaged.Op) ([]compiled, error) {
	if err := imaged.CheckOpsShape(ops); err != nil {
		return nil, err
	}
	steps := make([]compiled, len(ops))
	// Every op is checked, so that the error lists every violation (imaged.Violations), not
	// only the first.
	var errs []error
	for i, op := range ops {
		name := strings.ToLower(op.Name)
		spec, ok := p.ops[name]
		if !ok {
			errs = append(errs, imaged.FieldErrorf(fieldPath(i, "op"), "unknown op %q; known ops: %s",
				imaged.EchoID(name), strings.Join(p.Ops(), ", ")))
			continue
		}
		st, err := spec.parse.run(p, i, op)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		steps[i] = compiled{name: name, step: st, spec: spec, rereads: spec.rereads != nil && spec.rereads(st)}
	}
	if err := imaged.Violations(errs); err != nil {
		return nil, err
	}
	if _, ok := steps[0].step.(*framesStep); ok {
		for i, c := range steps[1:] {
			if err := animatable(i+1, c); err != nil {
				return nil, err
			}
		}
	}
	return steps, nil
}

// estimate plans the compiled pipeline over a source of geometry src in format, for a client
// that accepts accept (convert's format auto), with the encode at its end when no convert says
// how (a pipeline that changes the image is encoded in its source's format; see encodePlan).
// That encode is the last step, of index -1.
func (p *Processor) estimate(steps []compiled, src imaged.Geometry, format, accept string) (*imaged.PipelineEstimate, error) {
	ops := make([]imaged.Op, len(steps), len(steps)+1)
	converts, changes := false, false
	for i, c := range steps {
		ops[i] = imaged.Op{Name: c.name}
		_, isConvert := c.step.(*convertStep)
		converts = converts || isConvert
		changes = changes || c.spec.Kind == imaged.OpTransform
	}
	if changes && !converts {
		ops = append(ops, imaged.Op{Name: "encode"})
	}
	e, err := imaged.EstimateWith(ops, src, func(i int, in imaged.Geometry) (imaged.OpPlan, error) {
		if i == len(steps) {
			o := defaultOutput()
			o.format = defaultFormat(format)
			p := encodePlan(o, in)
			p.Buffers += strips(p.Out)
			return p, nil
		}
		var p imaged.OpPlan
		var err error
		if c, ok := steps[i].step.(*convertStep); ok {
			p = encodePlan(c.out.negotiated(accept, in.Frames > 1), in)
		} else {
			p, err = planStep(steps[i].step, in)
		}
		p.Buffers += strips(p.Out)
		return p, err
	})
	if err == nil && len(ops) > len(steps) {
		e.Steps[len(steps)].Index = -1
	}
	return e, err
}

// Process runs ops over the image in src: it validates them, decodes once, runs each op in order
// on the one in-memory image and encodes once. Bad parameters and undecodable images are
// EInvalid, an image over the limits is ETooLarge, and libvips failures are EInternal. When no
// op changed the image, Result.Data is nil.
func (p *Processor) Process(ctx context.Context, src []byte, ops []imaged.Op, opts imaged.ProcessOptions) (_ *imaged.Result, err error) {
	steps, err := p.compile(ops)
	if err != nil {
		return nil, err
	}
	if !ready(p.cfg) {
		return nil, imaged.Errorf(imaged.EUnavailable, "the image processor has shut down")
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	defer processed.Add(1)
	defer func() {
		for _, st := range steps {
			if c, ok := st.step.(closer); ok {
				c.close()
			}
		}
	}()
	ctx, span := tracer.Start(ctx, "pipeline", trace.WithAttributes(attribute.Int("imaged.ops", len(steps)),
		attribute.Int("imaged.input_bytes", len(src))))
	defer func() { endSpan(span, err) }()
	dctx, dspan := tracer.Start(ctx, "decode")
	s, err := p.decode(dctx, src, steps, opts)
	endSpan(dspan, err)
	if err != nil {
		return nil, err
	}
	defer s.close()
	span.SetAttributes(attribute.String("imaged.input_format", s.src.format), attribute.Int("imaged.input_width", s.src.width),
		attribute.Int("imaged.input_height", s.src.height), attribute.Int("imaged.frames", s.frames))
	for i, st := range steps {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		s.index, s.op = i, st.name
		if s.pending && st.rereads {
			if err := evaluating(ctx, s.img, s.hold); err != nil {
				return nil, s.fail(err)
			}
		}
		before := s.current()
		apply := st.step.apply
		if s.frames > 1 && st.spec.Frames != imaged.FramesWhole {
			apply = eachFrame(st.step)
		}
		octx, ospan := tracer.Start(ctx, "op "+st.name, trace.WithAttributes(attribute.Int("imaged.op_index", i)))
		err := evaluating(octx, s.img, func() error { return apply(octx, s) })
		endSpan(ospan, err)
		if err != nil {
			return nil, s.fail(err)
		}
		if st.spec.heavy && s.current() != before {
			s.pending = true
		}
		if st.spec.Kind == imaged.OpTransform {
			s.changed = true
			if err := s.checkSize(); err != nil {
				return nil, err
			}
			if err := s.settle(); err != nil {
				return nil, s.fail(err)
			}
		}
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	// libvips is lazy: most ops only build the graph, and the pixels are computed here.
	_, espan := tracer.Start(ctx, "encode")
	var res *imaged.Result
	err = evaluating(ctx, s.img, func() (err error) {
		res, err = s.finish()
		return err
	})
	if res != nil {
		espan.SetAttributes(attribute.String("imaged.output_format", res.Format), attribute.Int("imaged.output_bytes", len(res.Data)))
	}
	endSpan(espan, err)
	return res, err
}

// tracer makes the spans of a pipeline run: the run, its decode, each op and the encode.
var tracer = otel.Tracer("github.com/imaged/imaged/vips")

func endSpan(span trace.Span, err error) {
	if err != nil {
		span.RecordError(err)
		span.SetStatus(codes.Error, imaged.ErrorMessage(err))
	}
	span.End()
}

// state is one pipeline run: the current image and what the ops have decided so far.
type state struct {
	img       *govips.ImageRef
	src       source
	index     int    // index of the running op
	op        string // name of the running op
	opts      imaged.ProcessOptions
	limits    imaged.Limits
	maxOutput int    // the most bytes an encoded result may have
	out       output // set by convert
	changed   bool
	prescaled bool // the loader already applied the resize of op lead
	lead      int  // the op the loader may prescale for: the first, or the one after frames
	// frames is the number of frames of an animation loaded whole (the frames op), stacked
	// top to bottom in one image of frames × the frame height; 1 for a still image.
	frames int
	anim   animation // an animation's timing, written back when it is encoded
	// pending is set when the image carries costly work that libvips has not computed yet
	// (libvips is lazy): a resampling, a convolution, a rotation. See hold.
	pending  bool
	analyses []imaged.Analysis
	release  func() // gives back the pipeline's share of the memory budget
	// input is the encoded source the images were loaded from. libvips does not copy a buffer
	// it loads: it reads it lazily, up to the encode, so the Go memory must stay reachable
	// until the last image made from it is closed (close keeps it alive until then).
	input []byte
}

// source is what the original file said about itself, kept for info after the pixels change.
type source struct {
	format      string
	width       int // as displayed, after orientation
	height      int
	orientation int
	pages       int
	icc         bool
	exif        map[string]string
}

func (s *state) close() {
	if s.img != nil {
		s.img.Close()
		s.img = nil
	}
	runtime.KeepAlive(s.input)
	s.input = nil
	if s.release != nil {
		s.release()
		s.release = nil
	}
}

// replace swaps the current image for img.
func (s *state) replace(img *govips.ImageRef) {
	if s.img != nil && s.img != img {
		s.img.Close()
	}
	s.img = img
}

// hold computes the image into memory, so that the next op reads finished pixels instead of
// making libvips recompute the pending work for every region it asks for. libvips' operation
// cache is off, and without this an enlargement followed by a blur and a resize ran the
// enlargement hundreds of times over. The image then costs width×height×bands bytes, which
// the output limits bound.
func (s *state) hold() error {
	held, err := inMemory(s.img)
	if err != nil {
		return err
	}
	s.replace(held)
	s.pending = false
	if holdTrace != nil {
		holdTrace(s.op)
	}
	return nil
}

// holdTrace, when set (by tests), hears the op before which the image was held in memory.
var holdTrace func(op string)

// current identifies the image as it stands, to tell whether a step changed it.
func (s *state) current() uintptr {
	if !refImageOK {
		return uintptr(unsafe.Pointer(s.img)) ^ uintptr(s.img.Width())<<32 ^ uintptr(s.img.Height())
	}
	return uintptr(unsafe.Pointer(*vipsImage(s.img)))
}

// invalid returns an EInvalid error for a field of the running op.
func (s *state) invalid(field, format string, args ...any) error {
	return invalid(s.index, field, format, args...)
}

// checkSize refuses an op whose result is larger than the output limits: each frame of an
// animation within the width and height limits, and all its frames together within as many
// pixels as one image of the largest size.
func (s *state) checkSize() error {
	w, h := s.img.Width(), s.frameHeight()
	if w > s.limits.MaxWidth || h > s.limits.MaxHeight {
		return s.invalid("", "%s would make the image %d×%d pixels; the limit is %d×%d",
			s.op, w, h, s.limits.MaxWidth, s.limits.MaxHeight)
	}
	if s.frames > 1 && int64(w)*int64(h)*int64(s.frames) > s.limits.MaxPixels {
		return s.invalid("", "%s would make the animation %d frames of %d×%d pixels; the limit is %d pixels over all frames",
			s.op, s.frames, w, h, s.limits.MaxPixels)
	}
	return nil
}

// frameHeight is the height of one frame: the image's, or for an animation its stack's
// divided by the frame count.
func (s *state) frameHeight() int {
	return s.img.Height() / max(s.frames, 1)
}

// fail turns an error from a step into a domain error: domain errors and cancellations pass
// through, a decoding failure that surfaced late (libvips decodes lazily) is EInvalid, and any
// other libvips failure is internal.
func (s *state) fail(err error) error {
	var e *imaged.Error
	if errors.As(err, &e) || errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return err
	}
	msg := vipsMessage(err)
	if decodeFailure(msg) {
		return undecodable(msg)
	}
	return imaged.WrapError(imaged.EInternal, errors.New(msg), "%s failed", s.op)
}

// finish encodes the image when an op changed it and describes the result.
func (s *state) finish() (*imaged.Result, error) {
	res := &imaged.Result{
		Analyses: s.analyses,
		Changed:  s.changed,
		Width:    s.img.Width(),
		Height:   s.frameHeight(),
	}
	if !s.changed {
		res.Format = s.src.format
		res.ContentType = imaged.ContentTypeOf(s.src.format)
		return res, nil
	}
	s.op = "encode"
	data, format, err := s.encode()
	if err != nil {
		return nil, s.fail(err)
	}
	if len(data) > s.maxOutput {
		return nil, imaged.Errorf(imaged.ETooLarge, "the result would be %d bytes of %s; the limit is %d bytes: make it smaller (resize) or compress it more (convert)",
			len(data), format, s.maxOutput)
	}
	res.Data = data
	res.Format = format
	res.ContentType = imaged.ContentTypeOf(format)
	res.Width, res.Height = s.img.Width(), s.frameHeight()
	return res, nil
}

// undecodable is the error for a source libvips cannot read.
func undecodable(reason string) error {
	return imaged.WrapError(imaged.EInvalid, errors.New(reason), "the image could not be decoded: %s", reason)
}

// vipsMessage keeps the libvips part of a govips error: govips appends a Go stack trace,
// which belongs in no message.
func vipsMessage(err error) string {
	msg, _, _ := strings.Cut(err.Error(), "\nStack:")
	var lines []string
	for _, l := range strings.Split(msg, "\n") {
		if l = strings.TrimSpace(l); l != "" {
			lines = append(lines, l)
		}
	}
	msg = strings.Join(lines, "; ")
	if len(msg) > 300 {
		msg = msg[:300] + "…"
	}
	if msg == "" {
		msg = "libvips failed without a message"
	}
	return msg
}

// decodeFailure recognises libvips errors raised by a loader rather than by an operation.
func decodeFailure(msg string) bool {
	m := strings.ToLower(msg)
	if strings.Contains(m, "save") {
		return false
	}
	for _, k := range []string{"load", "vipsjpeg", "libpng", "png2vips", "webp2vips", "tiff2vips",
		"gif", "premature end", "corrupt", "not a known", "truncated", "read error"} {
		if strings.Contains(m, k) {
			return true
		}
	}
	return false
}
