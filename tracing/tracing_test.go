package tracing_test

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"go.opentelemetry.io/otel"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"

	"github.com/imaged/imaged"
	"github.com/imaged/imaged/sqlite"
	"github.com/imaged/imaged/tracing"
)

// recorder installs an in-memory tracer provider for the test and returns its spans' recorder.
func recorder(t *testing.T) *tracetest.SpanRecorder {
	rec := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec))
	prev := otel.GetTracerProvider()
	otel.SetTracerProvider(tp)
	if _, err := tracing.Setup(context.Background(), tracing.Config{}); err != nil { // propagator only
		t.Fatal(err)
	}
	t.Cleanup(func() { otel.SetTracerProvider(prev) })
	return rec
}

func TestStoreSpansAndTraceParent(t *testing.T) {
	rec := recorder(t)
	raw, err := sqlite.Open(t.Context(), filepath.Join(t.TempDir(), "t.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer raw.Close()
	s := tracing.Store(raw, "sqlite")
	ctx, parent := otel.Tracer("test").Start(t.Context(), "request")
	img := &imaged.Image{Key: "images/x.png", Format: "png", ContentType: "image/png", Width: 1, Height: 1, Bytes: 10}
	if err := s.CreateImage(ctx, img); err != nil {
		t.Fatal(err)
	}
	task := &imaged.Task{ImageID: img.ID, Ops: []imaged.Op{{Name: "blur", Args: json.RawMessage(`{"op":"blur","sigma":1}`)}}, MaxAttempts: 1}
	if _, err := s.CreateTasks(ctx, []*imaged.Task{task}, nil); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Task(ctx, imaged.DefaultTenant, "missing"); !imaged.IsCode(err, imaged.ENotFound) {
		t.Fatalf("Task(missing) = %v, want not found", err)
	}
	parent.End()

	// The stored task carries the request's traceparent, and the worker's claim returns it.
	claimed, err := raw.ClaimTask(t.Context(), task.ID, nil, "w", 0)
	if err != nil || claimed == nil {
		t.Fatalf("ClaimTask: %v %v", claimed, err)
	}
	want := "00-" + parent.SpanContext().TraceID().String() + "-" + parent.SpanContext().SpanID().String() + "-01"
	if claimed.TraceParent != want {
		t.Fatalf("stored traceparent = %q, want %q", claimed.TraceParent, want)
	}
	// Carried in a message, it continues the trace.
	back := tracing.Extract(context.Background(), map[string]string{"traceparent": claimed.TraceParent})
	if _, sp := otel.Tracer("test").Start(back, "process"); sp.SpanContext().TraceID() != parent.SpanContext().TraceID() {
		t.Fatal("a span started from the stored traceparent is not in the request's trace")
	}

	names := map[string]sdktrace.ReadOnlySpan{}
	for _, sp := range rec.Ended() {
		names[sp.Name()] = sp
	}
	for _, n := range []string{"db CreateImage", "db CreateTasks", "db Task"} {
		sp, ok := names[n]
		if !ok {
			t.Fatalf("no %q span; spans: %v", n, keys(names))
		}
		if sp.Parent().SpanID() != parent.SpanContext().SpanID() {
			t.Errorf("%s is not a child of the request span", n)
		}
	}
	// Not found is an expected outcome, not a failed call.
	if st := names["db Task"].Status(); st.Code.String() == "Error" {
		t.Errorf("db Task (not found) has status %v", st)
	}
}

func keys(m map[string]sdktrace.ReadOnlySpan) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	return out
}

func TestLogHandlerAddsTraceID(t *testing.T) {
	recorder(t)
	var buf bytes.Buffer
	log := slog.New(tracing.LogHandler{Handler: slog.NewJSONHandler(&buf, nil)})
	ctx, sp := otel.Tracer("test").Start(t.Context(), "x")
	log.InfoContext(ctx, "inside")
	sp.End()
	log.InfoContext(t.Context(), "outside")
	lines := strings.Split(strings.TrimSpace(buf.String()), "\n")
	if !strings.Contains(lines[0], `"trace_id":"`+sp.SpanContext().TraceID().String()+`"`) ||
		!strings.Contains(lines[0], `"span_id":"`+sp.SpanContext().SpanID().String()+`"`) {
		t.Errorf("line logged inside a span lacks its ids: %s", lines[0])
	}
	if strings.Contains(lines[1], "trace_id") {
		t.Errorf("line logged outside any span has a trace id: %s", lines[1])
	}
}

func TestFileExporter(t *testing.T) {
	prev := otel.GetTracerProvider()
	t.Cleanup(func() { otel.SetTracerProvider(prev) })
	path := filepath.Join(t.TempDir(), "spans.jsonl")
	shutdown, err := tracing.Setup(t.Context(), tracing.Config{Exporter: tracing.ExporterFile, File: path, SampleRatio: 1, Role: "worker"})
	if err != nil {
		t.Fatal(err)
	}
	_, sp := otel.Tracer("test").Start(t.Context(), "written")
	sp.End()
	if err := shutdown(t.Context()); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var got struct {
		Name        string
		SpanContext struct{ TraceID string }
	}
	if err := json.Unmarshal(bytes.TrimSpace(b), &got); err != nil {
		t.Fatalf("file holds %q: %v", b, err)
	}
	if got.Name != "written" || got.SpanContext.TraceID != sp.SpanContext().TraceID().String() {
		t.Fatalf("exported span = %+v", got)
	}
}

func TestSetupRefusesBadSettings(t *testing.T) {
	for _, cfg := range []tracing.Config{
		{Exporter: "jaeger"},
		{Exporter: tracing.ExporterFile},
		{Exporter: tracing.ExporterFile, File: filepath.Join(t.TempDir(), "x"), SampleRatio: 2},
	} {
		if _, err := tracing.Setup(t.Context(), cfg); err == nil {
			t.Errorf("Setup(%+v) accepted it", cfg)
		}
	}
}
