package http

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/pb33f/libopenapi"
	validator "github.com/pb33f/libopenapi-validator"
	"github.com/pb33f/libopenapi-validator/config"

	"github.com/imaged/imaged"
)

// contractDoc is the document the server serves, built once for the package's tests.
var contractDoc = sync.OnceValues(func() (validator.Validator, error) {
	b, err := json.Marshal(OpenAPI("test", imaged.RegisteredOps()))
	if err != nil {
		return nil, err
	}
	doc, err := libopenapi.NewDocument(b)
	if err != nil {
		return nil, err
	}
	// Keys are the auth tests' business; here they would fail every test of auth off.
	v, errs := validator.NewValidator(doc, config.WithoutSecurityValidation())
	if len(errs) > 0 {
		return nil, fmt.Errorf("%v", errs)
	}
	return v, nil
})

func TestOpenAPIDocumentIsValid(t *testing.T) {
	v, err := contractDoc()
	if err != nil {
		t.Fatal(err)
	}
	if ok, errs := v.ValidateDocument(); !ok {
		for _, e := range errs {
			t.Errorf("%s: %s", e.Message, e.Reason)
			for _, se := range e.SchemaValidationErrors {
				t.Errorf("  %s", se.Reason)
			}
		}
	}
}

// TestOpenAPICoversEveryRoute holds the document to routes.go: a route missing from either
// fails.
func TestOpenAPICoversEveryRoute(t *testing.T) {
	src, err := os.ReadFile("routes.go")
	if err != nil {
		t.Fatal(err)
	}
	var inCode []string
	for _, m := range regexp.MustCompile(`mux\.Handle\("([A-Z]+) ([^"]+)"`).FindAllStringSubmatch(string(src), -1) {
		inCode = append(inCode, m[1]+" "+strings.ReplaceAll(m[2], "...}", "}"))
	}
	var inDoc []string
	doc := OpenAPI("test", imaged.RegisteredOps())
	for path, item := range doc["paths"].(map[string]any) {
		for method := range item.(map[string]any) {
			inDoc = append(inDoc, strings.ToUpper(method)+" "+path)
		}
	}
	slices.Sort(inCode)
	slices.Sort(inDoc)
	for _, r := range inCode {
		if !slices.Contains(inDoc, r) {
			t.Errorf("route %s is in routes.go but not in the OpenAPI document", r)
		}
	}
	for _, r := range inDoc {
		if !slices.Contains(inCode, r) {
			t.Errorf("route %s is in the OpenAPI document but not in routes.go", r)
		}
	}
	if len(inCode) < 30 {
		t.Fatalf("read only %d routes from routes.go", len(inCode))
	}
	t.Logf("%d routes, %d ops", len(inDoc), len(imaged.RegisteredOps()))
}

func TestServedDocumentAndOpsList(t *testing.T) {
	st := newStack(t, Config{}, Deps{}, false)
	r := st.do("GET", "/openapi.json", nil, nil) // no key needed
	if r.status != 200 || !strings.HasPrefix(r.header.Get("Content-Type"), "application/json") {
		t.Fatalf("GET /openapi.json: %d %s", r.status, r.body)
	}
	var doc struct {
		OpenAPI    string `json:"openapi"`
		Components struct {
			Schemas map[string]json.RawMessage `json:"schemas"`
		} `json:"components"`
	}
	if err := json.Unmarshal(r.body, &doc); err != nil || doc.OpenAPI != "3.1.0" {
		t.Fatalf("document: %v %q", err, doc.OpenAPI)
	}
	if _, ok := doc.Components.Schemas["Op_info"]; !ok {
		t.Errorf("no schema for info among %d", len(doc.Components.Schemas))
	}
	if r := st.do("GET", "/v1/ops", nil, nil); r.status != 401 {
		t.Errorf("GET /v1/ops without a key: %d, want 401", r.status)
	}
	r = st.withKey("GET", "/v1/ops", nil, nil)
	var ops opsList
	if err := json.Unmarshal(r.body, &ops); err != nil || r.status != 200 {
		t.Fatalf("GET /v1/ops: %d %s", r.status, r.body)
	}
	names := map[string]opView{}
	for _, o := range ops.Ops {
		names[o.Name] = o
	}
	if o, ok := names["info"]; !ok || o.Kind != "analysis" {
		t.Errorf("GET /v1/ops lists %v; want info as an analysis", ops.Ops)
	}
}

// checkContract wraps the API so that every request a test sends and every answer it gets is
// validated against the OpenAPI document; a violation fails the test. Event streams and bodies
// over 4 MiB are passed through unchecked.
func checkContract(t *testing.T, h *Server) http.Handler {
	v, err := contractDoc()
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex // the validator is not documented as safe for concurrent use
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var body []byte
		if r.Body != nil && r.ContentLength >= 0 && r.ContentLength <= 4<<20 {
			body, _ = io.ReadAll(r.Body)
			r.Body = io.NopCloser(bytes.NewReader(body))
		}
		rec := &teeRecorder{ResponseWriter: w, status: 200}
		h.ServeHTTP(rec, r)
		if strings.HasPrefix(rec.Header().Get("Content-Type"), "text/event-stream") || rec.overflow || body == nil && r.ContentLength != 0 {
			return
		}
		req := httptest.NewRequest(r.Method, r.URL.String(), bytes.NewReader(body))
		req.Header = r.Header.Clone()
		res := &http.Response{StatusCode: rec.status, Header: rec.Header().Clone(), Body: io.NopCloser(bytes.NewReader(rec.buf.Bytes())), Request: req}
		mu.Lock()
		defer mu.Unlock()
		if _, pattern := h.mux.Handler(r); pattern == "" || pattern == "/" || strings.HasSuffix(pattern, "...}") {
			// Unknown paths (their 404 is not a route of the contract), and the routes whose
			// last parameter spans several segments, which OpenAPI paths cannot express.
			return
		}
		if rec.status < 400 {
			if ok, errs := v.ValidateHttpRequest(req); !ok {
				t.Errorf("contract: request %s %s: %s", r.Method, r.URL.Path, describe(errs))
			}
			req.Body = io.NopCloser(bytes.NewReader(body))
		}
		if ok, errs := v.ValidateHttpResponse(req, res); !ok {
			t.Errorf("contract: answer %d to %s %s: %s\n%.300s", rec.status, r.Method, r.URL.Path, describe(errs), rec.buf.Bytes())
		}
	})
}

func describe[E interface{ Error() string }](errs []E) string {
	var parts []string
	for _, e := range errs {
		parts = append(parts, e.Error())
	}
	return strings.Join(parts, "; ")
}

// teeRecorder passes an answer through and keeps a copy of it.
type teeRecorder struct {
	http.ResponseWriter
	status   int
	buf      bytes.Buffer
	overflow bool
}

func (t *teeRecorder) WriteHeader(code int) {
	t.status = code
	t.ResponseWriter.WriteHeader(code)
}

func (t *teeRecorder) Write(p []byte) (int, error) {
	if t.buf.Len()+len(p) > 4<<20 {
		t.overflow = true
	} else if !t.overflow {
		t.buf.Write(p)
	}
	return t.ResponseWriter.Write(p)
}

func (t *teeRecorder) Flush() {
	if f, ok := t.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}

func (t *teeRecorder) Unwrap() http.ResponseWriter { return t.ResponseWriter }

// TestContractCheckCatchesDrift shows that the check every test runs through can fail: an
// answer whose field has the wrong type, and a pipeline with an unknown op, are violations.
func TestContractCheckCatchesDrift(t *testing.T) {
	v, err := contractDoc()
	if err != nil {
		t.Fatal(err)
	}
	req := httptest.NewRequest("GET", "/v1/tasks/abc", nil)
	res := &http.Response{StatusCode: 200, Header: http.Header{"Content-Type": {"application/json"}},
		Body: io.NopCloser(strings.NewReader(`{"id":"abc","attempts":"three"}`)), Request: req}
	if ok, _ := v.ValidateHttpResponse(req, res); ok {
		t.Error("a task whose attempts is a string passed the contract")
	}
	bad := httptest.NewRequest("POST", "/v1/tasks", strings.NewReader(`{"image_id":"x","ops":[{"op":"no-such-op"}]}`))
	bad.Header.Set("Content-Type", "application/json")
	if ok, _ := v.ValidateHttpRequest(bad); ok {
		t.Error("a pipeline with an unknown op passed the contract")
	}
	good := httptest.NewRequest("POST", "/v1/tasks", strings.NewReader(`{"image_id":"x","ops":[{"op":"info"}]}`))
	good.Header.Set("Content-Type", "application/json")
	if ok, errs := v.ValidateHttpRequest(good); !ok {
		t.Errorf("a valid pipeline failed the contract: %s", describe(errs))
	}
}

func TestErrorsListEveryViolation(t *testing.T) {
	st := newStack(t, Config{}, Deps{}, false)
	id := st.uploadImage()
	r := st.withKey("POST", "/v1/tasks", []byte(`{"image_id":"`+id+`","ops":[{"op":"a"},{"op":"resize"},{"op":"b"}]}`),
		map[string]string{"Content-Type": "application/json"})
	var body errorBody
	if err := json.Unmarshal(r.body, &body); err != nil || r.status != 400 {
		t.Fatalf("%d %s", r.status, r.body)
	}
	if body.Error.Field != "ops[0].op" || len(body.Error.Details) != 2 || body.Error.Details[1].Field != "ops[2].op" {
		t.Errorf("error %+v, want ops[0].op first and details for ops[0] and ops[2]", body.Error)
	}
	r = st.withKey("POST", "/v1/tasks", []byte(`{"image_id":"`+id+`","ops":[{"op":"a"}]}`), map[string]string{"Content-Type": "application/json"})
	body = errorBody{}
	if json.Unmarshal(r.body, &body); len(body.Error.Details) != 1 || body.Error.Details[0].Field != "ops[0].op" {
		t.Errorf("a lone violation: %s, want it as the one entry of details", r.body)
	}
}
