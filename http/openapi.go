package http

import (
	"encoding/json"
	"net/http"
	"reflect"
	"strings"
	"sync"

	"github.com/invopop/jsonschema"

	"github.com/imaged/imaged"
)

// The API's contract, served at GET /openapi.json: every route of routes.go (a test compares
// the two), the auth schemes, the error shape, and each op of the pipeline as its own schema,
// discriminated on "op", made from the ops' own declarations (imaged.OpSpec.Params). The
// schemas of the answers are reflected from the Go types the handlers write, so the document
// cannot describe a field the API does not send.

// apiRoute is one route as the document describes it.
type apiRoute struct {
	method, path, summary, tag string
	// public routes need no key.
	public bool
	query  []apiParam
	// body is the request body: "" none, or one of the request kinds of requestBody.
	body string
	// ok is the status of success and answer the Go value it carries as JSON; with media set,
	// the answer is bytes of that media type instead.
	ok     int
	answer any
	media  string
}

// apiParam is a query parameter.
type apiParam struct {
	name, typ, doc string
}

var (
	pageParams = []apiParam{{"cursor", "string", "the next_cursor of the page before"},
		{"limit", "integer", "items per page (1–200, default 50)"}}
	tenantParam = apiParam{"tenant", "string", "admin keys only: act for this tenant"}
	blobParams  = []apiParam{{"download", "boolean", "1: Content-Disposition attachment"},
		{"redirect", "boolean", "1: redirect to a presigned storage URL where the store has one"}}
)

// apiRoutes is the document's list of routes, in the order of routes.go.
var apiRoutes = []apiRoute{
	{method: "POST", path: "/v1/images", tag: "images", summary: "Upload an image (multipart part file, or the raw body)", body: "upload", ok: 201, answer: &imaged.Image{}},
	{method: "GET", path: "/v1/images", tag: "images", summary: "List the tenant's images, newest first", query: pageParams, ok: 200, answer: list[*imaged.Image]{}},
	{method: "GET", path: "/v1/images/{id}", tag: "images", summary: "An image's record", ok: 200, answer: &imaged.Image{}},
	{method: "GET", path: "/v1/images/{id}/content", tag: "images", summary: "An image's bytes (Range, ETag, Last-Modified)", query: blobParams, ok: 200, media: "*/*"},
	{method: "DELETE", path: "/v1/images/{id}", tag: "images", summary: "Delete an image, its bytes and its derived results", ok: 204},

	{method: "POST", path: "/v1/process", tag: "pipelines", summary: "Run a pipeline now: image bytes back, or JSON when it holds analysis ops", body: "pipeline", ok: 200, answer: processResponse{}, media: "image/*"},
	{method: "POST", path: "/v1/ocr", tag: "pipelines", summary: "Read the text of an image", body: "analysis", ok: 200, answer: processResponse{}},
	{method: "POST", path: "/v1/detect", tag: "pipelines", summary: "Find the objects in an image", body: "analysis", ok: 200, answer: processResponse{}},

	{method: "POST", path: "/v1/tasks", tag: "tasks", summary: "Queue a pipeline as a task (Idempotency-Key honoured)", body: "pipeline", ok: 202, answer: taskView{}},
	{method: "GET", path: "/v1/tasks", tag: "tasks", summary: "List the tenant's tasks, newest first",
		query: append([]apiParam{{"status", "string", "only tasks in this status"}, {"batch_id", "string", "only the tasks of this batch"}}, pageParams...), ok: 200, answer: list[taskView]{}},
	{method: "GET", path: "/v1/tasks/{id}", tag: "tasks", summary: "A task's status, result and error", ok: 200, answer: taskView{}},
	{method: "DELETE", path: "/v1/tasks/{id}", tag: "tasks", summary: "Cancel a task that has not started", ok: 200, answer: taskView{}},
	{method: "GET", path: "/v1/tasks/{id}/result", tag: "tasks", summary: "A completed task's output bytes", query: blobParams, ok: 200, media: "*/*"},
	{method: "GET", path: "/v1/tasks/{id}/events", tag: "tasks", summary: "A task's events as Server-Sent Events", ok: 200, media: "text/event-stream"},
	{method: "GET", path: "/v1/tasks/{id}/deliveries", tag: "tasks", summary: "The webhook deliveries of a task", ok: 200, answer: list[deliveryView]{}},
	{method: "POST", path: "/v1/deliveries/{id}/redeliver", tag: "tasks", summary: "Send a webhook delivery again", ok: 202, answer: deliveryView{}},

	{method: "POST", path: "/v1/batches", tag: "batches", summary: "Queue many pipelines as one batch", body: "batch", ok: 202, answer: batchView{}},
	{method: "GET", path: "/v1/batches", tag: "batches", summary: "List the tenant's batches, newest first", query: pageParams, ok: 200, answer: list[*imaged.Batch]{}},
	{method: "GET", path: "/v1/batches/{id}", tag: "batches", summary: "A batch's status, progress and items", ok: 200, answer: batchView{}},
	{method: "DELETE", path: "/v1/batches/{id}", tag: "batches", summary: "Cancel the items of a batch that have not started", ok: 200, answer: batchView{}},
	{method: "GET", path: "/v1/batches/{id}/events", tag: "batches", summary: "A batch's events as Server-Sent Events", ok: 200, media: "text/event-stream"},

	{method: "POST", path: "/v1/keys", tag: "admin", summary: "Create an API key (admin); the key is shown this once", body: "key", ok: 201, answer: keyCreated{}},
	{method: "GET", path: "/v1/keys", tag: "admin", summary: "List API keys (admin)", query: []apiParam{tenantParam}, ok: 200, answer: list[*imaged.APIKey]{}},
	{method: "DELETE", path: "/v1/keys/{id}", tag: "admin", summary: "Revoke an API key (admin)", ok: 200, answer: &imaged.APIKey{}},
	{method: "GET", path: "/v1/tenants", tag: "admin", summary: "List tenants with their usage (admin)", ok: 200, answer: list[tenantView]{}},
	{method: "GET", path: "/v1/tenants/{id}", tag: "admin", summary: "A tenant's limits and usage (admin)", ok: 200, answer: tenantView{}},
	{method: "PUT", path: "/v1/tenants/{id}", tag: "admin", summary: "Set a tenant's quotas and limits (admin)", body: "tenant", ok: 200, answer: tenantView{}},

	{method: "GET", path: "/v1/ops", tag: "pipelines", summary: "The ops this server runs, with their parameters", ok: 200, answer: opsList{}},
	{method: "GET", path: "/v1/blobs/{key}", tag: "signed", summary: "A stored object by signed link (expires, sig)", public: true,
		query: append([]apiParam{{"expires", "integer", "Unix time the link expires"}, {"sig", "string", "the link's signature"}}, blobParams...), ok: 200, media: "*/*"},
	{method: "GET", path: "/i/{signature}/{path}", tag: "signed", summary: "Run the pipeline a signed URL names (imgproxy style)", public: true, ok: 200, media: "image/*", answer: map[string]any{}},

	{method: "GET", path: "/health", tag: "health", summary: "Every dependency's state", public: true, ok: 200, answer: healthReport{}},
	{method: "GET", path: "/health/live", tag: "health", summary: "The process answers", public: true, ok: 200, answer: map[string]string{}},
	{method: "GET", path: "/health/ready", tag: "health", summary: "Ready to take work (503 while a required dependency is down)", public: true, ok: 200, answer: map[string]any{}},
	{method: "GET", path: "/metrics", tag: "health", summary: "Prometheus metrics (when not served on IMAGED_METRICS_ADDR)", public: true, ok: 200, media: "text/plain"},
	{method: "GET", path: "/openapi.json", tag: "health", summary: "This document", public: true, ok: 200, answer: map[string]any{}},
}

// opsList is the answer of GET /v1/ops.
type opsList struct {
	Ops []opView `json:"ops"`
}

// opView is one op as GET /v1/ops lists it.
type opView struct {
	Name     string         `json:"name"`
	Summary  string         `json:"summary"`
	Kind     string         `json:"kind" jsonschema:"enum=transform,enum=analysis,enum=setting"`
	TaskType string         `json:"task_type" jsonschema:"enum=transform,enum=ocr,enum=detect"`
	Params   []imaged.Param `json:"params"`
}

// serverOps are the registered traits of the ops the server's processor runs (every registered
// op when the processor does not say).
func (s *Server) serverOps() []imaged.OpSpec {
	lister, ok := s.deps.Processor.(interface{ Ops() []string })
	if !ok {
		return imaged.RegisteredOps()
	}
	var out []imaged.OpSpec
	for _, name := range lister.Ops() {
		if spec, ok := imaged.LookupOp(name); ok {
			out = append(out, spec)
		}
	}
	return out
}

func viewOp(spec imaged.OpSpec) opView {
	v := opView{Name: spec.Name, Summary: spec.Summary, Params: spec.Params,
		Kind:     [...]string{imaged.OpTransform: "transform", imaged.OpAnalysis: "analysis", imaged.OpSetting: "setting"}[spec.Kind],
		TaskType: imaged.TaskTypeOf([]imaged.Op{{Name: spec.Name}})}
	if v.Params == nil {
		v.Params = []imaged.Param{}
	}
	return v
}

func (s *Server) handleOps() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		out := opsList{Ops: []opView{}}
		for _, spec := range s.serverOps() {
			out.Ops = append(out.Ops, viewOp(spec))
		}
		writeJSON(w, http.StatusOK, out)
	})
}

func (s *Server) handleOpenAPI() http.Handler {
	var once sync.Once
	var doc []byte
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		once.Do(func() {
			doc, _ = json.MarshalIndent(OpenAPI(s.cfg.Version, s.serverOps()), "", "  ")
		})
		w.Header().Set("Content-Type", "application/json")
		w.Write(doc)
	})
}

// OpenAPI builds the document for a server running ops.
func OpenAPI(version string, ops []imaged.OpSpec) map[string]any {
	if version == "" {
		version = "dev"
	}
	schemas := map[string]any{
		"Error": reflectSchema(errorBody{}),
		"Op":    opUnion(ops),
	}
	for _, spec := range ops {
		schemas[opSchemaName(spec.Name)] = spec.Schema()
	}
	paths := map[string]any{}
	for _, rt := range apiRoutes {
		item, _ := paths[rt.path].(map[string]any)
		if item == nil {
			item = map[string]any{}
			paths[rt.path] = item
		}
		item[strings.ToLower(rt.method)] = operation(rt)
	}
	return map[string]any{
		"openapi": "3.1.0",
		"info": map[string]any{"title": "imaged", "version": version,
			"description": "Upload, transform, OCR and detect objects in images, synchronously or as tasks and batches.",
			"license":     map[string]any{"name": "Apache-2.0", "identifier": "Apache-2.0"}},
		"servers": []any{map[string]any{"url": "/"}},
		"paths":   paths,
		"components": map[string]any{
			"schemas": schemas,
			"securitySchemes": map[string]any{
				"apiKey": map[string]any{"type": "apiKey", "in": "header", "name": "X-API-Key"},
				"bearer": map[string]any{"type": "http", "scheme": "bearer"},
			},
		},
		"security": []any{map[string]any{"apiKey": []any{}}, map[string]any{"bearer": []any{}}},
	}
}

func opSchemaName(op string) string { return "Op_" + op }

// opUnion is the schema of one op of a pipeline: one of the ops' schemas, chosen by "op".
func opUnion(ops []imaged.OpSpec) map[string]any {
	var one []any
	mapping := map[string]any{}
	for _, spec := range ops {
		ref := "#/components/schemas/" + opSchemaName(spec.Name)
		one = append(one, map[string]any{"$ref": ref})
		mapping[spec.Name] = ref
	}
	return map[string]any{"oneOf": one, "discriminator": map[string]any{"propertyName": "op", "mapping": mapping}}
}

func operation(rt apiRoute) map[string]any {
	op := map[string]any{"summary": rt.summary, "tags": []any{rt.tag},
		"operationId": operationID(rt)}
	if rt.public {
		op["security"] = []any{}
	}
	var params []any
	for _, seg := range strings.Split(rt.path, "/") {
		if strings.HasPrefix(seg, "{") {
			params = append(params, map[string]any{"name": strings.Trim(seg, "{}"), "in": "path", "required": true,
				"schema": map[string]any{"type": "string"}})
		}
	}
	for _, q := range rt.query {
		params = append(params, map[string]any{"name": q.name, "in": "query", "description": q.doc,
			"schema": map[string]any{"type": q.typ}})
	}
	if params != nil {
		op["parameters"] = params
	}
	if b := requestBody(rt.body); b != nil {
		op["requestBody"] = b
	}
	ok := map[string]any{"description": "success"}
	content := map[string]any{}
	if rt.answer != nil {
		content["application/json"] = map[string]any{"schema": reflectSchema(rt.answer)}
	}
	if rt.media != "" {
		content[rt.media] = map[string]any{"schema": map[string]any{"type": "string", "format": "binary"}}
	}
	if len(content) > 0 {
		ok["content"] = content
	}
	errResp := map[string]any{"description": "an error: its code, message, the field at fault, and every violation found",
		"content": map[string]any{"application/json": map[string]any{"schema": map[string]any{"$ref": "#/components/schemas/Error"}}}}
	responses := map[string]any{itoa(rt.ok): ok, "4XX": errResp, "5XX": errResp}
	if strings.HasPrefix(rt.path, "/v1/images/{id}/content") || strings.HasPrefix(rt.path, "/v1/tasks/{id}/result") ||
		strings.HasPrefix(rt.path, "/v1/blobs/") || strings.HasPrefix(rt.path, "/i/") {
		responses["206"] = map[string]any{"description": "the byte range asked for"}
		responses["416"] = map[string]any{"description": "the byte range is outside the object (Go's net/http answer)",
			"content": map[string]any{"text/plain": map[string]any{"schema": map[string]any{"type": "string"}}}}
		responses["304"] = map[string]any{"description": "not modified (If-None-Match, If-Modified-Since)"}
	}
	if strings.HasPrefix(rt.path, "/v1/tasks/{id}/result") || strings.HasPrefix(rt.path, "/v1/blobs/") {
		responses["302"] = map[string]any{"description": "redirect=1: to a presigned storage URL"}
	}
	if rt.path == "/health/ready" || rt.path == "/health" {
		responses["503"] = map[string]any{"description": "a required dependency is down",
			"content": map[string]any{"application/json": map[string]any{"schema": map[string]any{"type": "object"}}}}
	}
	op["responses"] = responses
	return op
}

func operationID(rt apiRoute) string {
	var b strings.Builder
	b.WriteString(strings.ToLower(rt.method))
	for _, seg := range strings.Split(rt.path, "/") {
		seg = strings.Trim(seg, "{}.")
		if seg == "" || seg == "v1" {
			continue
		}
		for _, part := range strings.FieldsFunc(seg, func(r rune) bool { return r == '_' || r == '-' || r == '.' }) {
			b.WriteString(strings.ToUpper(part[:1]) + part[1:])
		}
	}
	return b.String()
}

func itoa(n int) string {
	b, _ := json.Marshal(n)
	return string(b)
}

var opsRef = map[string]any{"type": "array", "minItems": 1, "maxItems": imaged.MaxOps,
	"items": map[string]any{"$ref": "#/components/schemas/Op"}}

// requestBody describes each kind of request body.
func requestBody(kind string) map[string]any {
	str := map[string]any{"type": "string"}
	multipartUpload := func(extra map[string]any) map[string]any {
		props := map[string]any{"file": map[string]any{"type": "string", "format": "binary"}}
		for k, v := range extra {
			props[k] = v
		}
		return map[string]any{"schema": map[string]any{"type": "object", "properties": props}}
	}
	var content map[string]any
	switch kind {
	case "":
		return nil
	case "upload":
		content = map[string]any{
			"multipart/form-data":      multipartUpload(map[string]any{"source_url": str}),
			"application/octet-stream": map[string]any{"schema": map[string]any{"type": "string", "format": "binary"}},
			"image/*":                  map[string]any{"schema": map[string]any{"type": "string", "format": "binary"}},
		}
	case "pipeline", "analysis":
		props := map[string]any{
			"image_id": str, "source_url": map[string]any{"type": "string", "format": "uri"},
			"ops":          opsRef,
			"callback_url": map[string]any{"type": "string", "format": "uri"},
			"max_attempts": map[string]any{"type": "integer", "minimum": 1, "maximum": 10},
		}
		schema := map[string]any{"type": "object", "properties": props, "additionalProperties": false}
		if kind == "analysis" {
			// The op's parameters sit next to image_id.
			schema = map[string]any{"type": "object", "properties": map[string]any{"image_id": str},
				"description": "image_id and the op's parameters (see GET /v1/ops)"}
		}
		content = map[string]any{
			"application/json":    map[string]any{"schema": schema},
			"multipart/form-data": multipartUpload(map[string]any{"ops": str, "options": str, "image_id": str, "source_url": str, "callback_url": str, "max_attempts": str}),
		}
	case "batch":
		content = map[string]any{"application/json": map[string]any{"schema": reflectSchema(batchRequest{})}}
	case "key":
		content = map[string]any{"application/json": map[string]any{"schema": map[string]any{"type": "object",
			"properties": map[string]any{"name": str, "tenant": str, "admin": map[string]any{"type": "boolean"},
				"rate_limit": map[string]any{"type": "integer"}, "burst": map[string]any{"type": "integer"},
				"concurrency": map[string]any{"type": "integer"}}}}}
	case "tenant":
		content = map[string]any{"application/json": map[string]any{"schema": reflectSchema(imaged.TenantChange{})}}
	default:
		panic("openapi: unknown request body " + kind)
	}
	return map[string]any{"required": true, "content": content}
}

// reflectSchema is the JSON Schema of the Go value v as encoding/json writes it, inline.
func reflectSchema(v any) any {
	r := &jsonschema.Reflector{DoNotReference: true, ExpandedStruct: true, AllowAdditionalProperties: true, RequiredFromJSONSchemaTags: true,
		Mapper: func(t reflect.Type) *jsonschema.Schema {
			switch t {
			case reflect.TypeFor[json.RawMessage]():
				return &jsonschema.Schema{}
			case reflect.TypeFor[[]imaged.Op](), reflect.TypeFor[imaged.Op]():
				if t.Kind() == reflect.Slice {
					return &jsonschema.Schema{Type: "array", Items: &jsonschema.Schema{Ref: "#/components/schemas/Op"}}
				}
				return &jsonschema.Schema{Ref: "#/components/schemas/Op"}
			}
			return nil
		}}
	s := r.Reflect(v)
	s.Version, s.ID = "", "" // inline: its refs point into the document, not into an $id of its own
	b, err := json.Marshal(s)
	if err != nil {
		panic(err)
	}
	var m any
	if err := json.Unmarshal(b, &m); err != nil {
		panic(err)
	}
	return m
}
