package main

import (
	"bufio"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	coltrace "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	"google.golang.org/protobuf/proto"
)

// span is what the tests read of an exported span, from either exporter.
type span struct {
	name, traceID, spanID, parentID string
	attrs                           map[string]string
}

// otlpReceiver is an OTLP/HTTP trace endpoint: it decodes every export request and keeps the
// spans, the way an OpenTelemetry collector would receive them.
type otlpReceiver struct {
	url   string
	mu    sync.Mutex
	spans []span
}

func startOTLPReceiver(t *testing.T) *otlpReceiver {
	r := &otlpReceiver{}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		if req.URL.Path != "/v1/traces" || req.Header.Get("Content-Type") != "application/x-protobuf" {
			t.Errorf("OTLP receiver: unexpected %s %s (%s)", req.Method, req.URL.Path, req.Header.Get("Content-Type"))
			http.Error(w, "unexpected", http.StatusBadRequest)
			return
		}
		body, _ := io.ReadAll(req.Body)
		var msg coltrace.ExportTraceServiceRequest
		if err := proto.Unmarshal(body, &msg); err != nil {
			t.Errorf("OTLP receiver: undecodable export: %v", err)
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		r.mu.Lock()
		for _, rs := range msg.ResourceSpans {
			for _, ss := range rs.ScopeSpans {
				for _, s := range ss.Spans {
					sp := span{name: s.Name, traceID: hex.EncodeToString(s.TraceId), spanID: hex.EncodeToString(s.SpanId),
						parentID: hex.EncodeToString(s.ParentSpanId), attrs: map[string]string{}}
					for _, a := range s.Attributes {
						sp.attrs[a.Key] = anyValue(a.Value.GetValue())
					}
					for _, a := range rs.Resource.GetAttributes() {
						sp.attrs["resource."+a.Key] = anyValue(a.Value.GetValue())
					}
					r.spans = append(r.spans, sp)
				}
			}
		}
		r.mu.Unlock()
		w.Header().Set("Content-Type", "application/x-protobuf")
		out, _ := proto.Marshal(&coltrace.ExportTraceServiceResponse{})
		w.Write(out)
	}))
	t.Cleanup(srv.Close)
	r.url = srv.URL
	return r
}

func anyValue(v any) string {
	b, _ := json.Marshal(v)
	s := string(b)
	// {"StringValue":"x"} → x, {"IntValue":3} → 3
	if i := strings.IndexByte(s, ':'); i >= 0 && strings.HasPrefix(s, "{") {
		s = strings.Trim(s[i+1:len(s)-1], `"`)
	}
	return s
}

func (r *otlpReceiver) all() []span {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]span(nil), r.spans...)
}

// fileSpans reads the spans the file exporter wrote (one JSON object a line).
func fileSpans(t *testing.T, path string) []span {
	f, err := os.Open(path)
	if os.IsNotExist(err) {
		return nil
	}
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var out []span
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 16<<20)
	for sc.Scan() {
		var s struct {
			Name        string
			SpanContext struct{ TraceID, SpanID string }
			Parent      struct{ TraceID, SpanID string }
			Attributes  []struct {
				Key   string
				Value struct{ Value any }
			}
		}
		if err := json.Unmarshal(sc.Bytes(), &s); err != nil {
			continue // the last line may still be being written
		}
		sp := span{name: s.Name, traceID: s.SpanContext.TraceID, spanID: s.SpanContext.SpanID,
			parentID: s.Parent.SpanID, attrs: map[string]string{}}
		for _, a := range s.Attributes {
			b, _ := json.Marshal(a.Value.Value)
			sp.attrs[a.Key] = strings.Trim(string(b), `"`)
		}
		out = append(out, sp)
	}
	return out
}

func findSpan(spans []span, traceID, name string) *span {
	for i := range spans {
		if spans[i].traceID == traceID && spans[i].name == name {
			return &spans[i]
		}
	}
	return nil
}

func spanNames(spans []span, traceID string) []string {
	var out []string
	for _, s := range spans {
		if s.traceID == traceID {
			out = append(out, s.name)
		}
	}
	return out
}

// One async task, created with the caller's traceparent, is traced across two processes: the
// API process exports over OTLP/HTTP, the worker process to a file. Both hold spans of the same
// trace, the worker's consumer span is the child of the span whose context travelled with the
// message (the publish span for a broker, the request's span for the database queue), and both
// processes' log lines carry the trace id.
func TestTraceCrossesAPIAndWorker(t *testing.T) {
	if testing.Short() {
		t.Skip("multi-process tracing test")
	}
	queues := []struct {
		name string
		open func(testing.TB) string
	}{
		{"rabbitmq", func(tb testing.TB) string { return rabbitBroker(tb).queueURL }},
		{"kafka", func(tb testing.TB) string { return kafkaBroker(tb).queueURL }},
		{"db", func(testing.TB) string { return "db://" }},
	}
	for _, q := range queues {
		t.Run(q.name, func(t *testing.T) {
			recv := startOTLPReceiver(t)
			c := newCluster(t, q.open(t), "IMAGED_TRACE_EXPORTER=otlp", "IMAGED_TRACE_ENDPOINT="+recv.url)
			spanFile := filepath.Join(t.TempDir(), "worker-spans.jsonl")
			worker := startImaged(t, "worker", append(c.envFor(), "IMAGED_WORKERS=1", "IMAGED_NO_MIGRATE=1",
				"IMAGED_TRACE_EXPORTER=file", "IMAGED_TRACE_FILE="+spanFile))

			img := c.upload(testPNG(t, 640, 480))
			traceID, parentID := randomHex(t, 16), randomHex(t, 8)
			status, hdr, body := c.api.call("POST", "/v1/tasks", map[string]any{"image_id": img, "ops": []map[string]any{
				{"op": "resize", "width": 320}, {"op": "convert", "format": "webp"}}},
				map[string]string{"traceparent": "00-" + traceID + "-" + parentID + "-01"})
			if status != 202 {
				t.Fatalf("create task: %d %s", status, body)
			}
			if got := hdr.Get("X-Trace-ID"); got != traceID {
				t.Errorf("X-Trace-ID = %q, want the caller's trace %s", got, traceID)
			}
			var task struct{ ID string }
			json.Unmarshal(body, &task)
			c.waitCounts(60*time.Second, "the task to complete", func(m map[string]int) bool { return m["completed"] == 1 })

			// The API process: the request's server span continues the caller's span; the
			// task row and the publish span hang under it.
			var server, publish *span
			waitFor(t, 30*time.Second, "the API's spans over OTLP", func() bool {
				spans := recv.all()
				server, publish = findSpan(spans, traceID, "POST /v1/tasks"), findSpan(spans, traceID, "publish transform")
				return server != nil && publish != nil && findSpan(spans, traceID, "db CreateTasks") != nil
			})
			if server.parentID != parentID {
				t.Errorf("server span's parent = %s, want the caller's span %s", server.parentID, parentID)
			}
			if server.attrs["http.route"] != "/v1/tasks" || server.attrs["http.response.status_code"] != "202" {
				t.Errorf("server span attributes = %v", server.attrs)
			}
			if server.attrs["resource.imaged.role"] != "api" || server.attrs["resource.service.name"] != "imaged" {
				t.Errorf("API resource = %v", server.attrs)
			}
			if publish.parentID != server.spanID {
				t.Errorf("publish span's parent = %s, want the server span %s", publish.parentID, server.spanID)
			}

			// The worker process: a consumer span of the same trace, the child of the context the
			// message carried, with the pipeline's and the stores' spans under it.
			wantParent := publish.spanID
			if q.name == "db" {
				wantParent = server.spanID // the task row carries the request's traceparent
			}
			want := []string{"process transform", "blob Get", "pipeline", "op resize", "op convert", "blob Put", "db CompleteTask"}
			var spans []span
			waitFor(t, 30*time.Second, "the worker's spans in "+spanFile, func() bool {
				spans = fileSpans(t, spanFile)
				for _, n := range want {
					if findSpan(spans, traceID, n) == nil {
						return false
					}
				}
				return true
			})
			process := findSpan(spans, traceID, "process transform")
			if process.parentID != wantParent {
				t.Errorf("worker's consumer span's parent = %s, want %s; worker spans of the trace: %v",
					process.parentID, wantParent, spanNames(spans, traceID))
			}
			if process.attrs["imaged.task_id"] != task.ID || process.attrs["imaged.attempt"] != "1" {
				t.Errorf("consumer span attributes = %v, want task %s attempt 1", process.attrs, task.ID)
			}
			pipeline := findSpan(spans, traceID, "pipeline")
			for _, n := range []string{"op resize", "op convert"} {
				if s := findSpan(spans, traceID, n); s.parentID != pipeline.spanID {
					t.Errorf("%s's parent = %s, want the pipeline span %s", n, s.parentID, pipeline.spanID)
				}
			}
			if put := findSpan(spans, traceID, "blob Put"); put.attrs["imaged.bytes"] == "" || put.attrs["imaged.bytes"] == "0" {
				t.Errorf("blob Put span without its size: %v", put.attrs)
			}
			for _, s := range spans {
				if s.traceID == traceID && s.spanID == server.spanID {
					t.Errorf("the worker exported the API's span %s", s.name)
				}
			}

			// Log lines of both processes carry the trace id.
			for name, logs := range map[string]string{"api": c.api.logs.String(), "worker": worker.logs.String()} {
				if !strings.Contains(logs, `"trace_id":"`+traceID+`"`) {
					t.Errorf("%s logs carry no trace_id %s:\n%s", name, traceID, tail(logs, 3000))
				}
			}
		})
	}
}

func randomHex(t *testing.T, n int) string {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(b)
}
