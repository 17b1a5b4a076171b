package main

import (
	"encoding/json"
	"testing"

	"github.com/pb33f/libopenapi"
	validator "github.com/pb33f/libopenapi-validator"
)

// TestServedContractDescribesEveryOp: the document a real server serves, with every engine
// linked, validates as OpenAPI 3.1 and holds a schema for each op GET /v1/ops lists, with the
// parameters the ops declare.
func TestServedContractDescribesEveryOp(t *testing.T) {
	s := startServer(t, "")
	r := s.do("GET", "/openapi.json", nil, map[string]string{"X-API-Key": ""})
	if r.status != 200 {
		t.Fatalf("GET /openapi.json: %d %s", r.status, r.body)
	}
	doc, err := libopenapi.NewDocument(r.body)
	if err != nil {
		t.Fatal(err)
	}
	v, errs := validator.NewValidator(doc)
	if len(errs) > 0 {
		t.Fatal(errs)
	}
	if ok, verrs := v.ValidateDocument(); !ok {
		for _, e := range verrs {
			t.Errorf("%s: %s", e.Message, e.Reason)
		}
	}
	var parsed struct {
		Paths      map[string]map[string]any `json:"paths"`
		Components struct {
			Schemas map[string]json.RawMessage `json:"schemas"`
		} `json:"components"`
	}
	if err := json.Unmarshal(r.body, &parsed); err != nil {
		t.Fatal(err)
	}
	var ops struct {
		Ops []struct {
			Name   string `json:"name"`
			Params []struct {
				Name string `json:"name"`
			} `json:"params"`
		} `json:"ops"`
	}
	if err := json.Unmarshal(s.get("/v1/ops").body, &ops); err != nil {
		t.Fatal(err)
	}
	routes := 0
	for _, item := range parsed.Paths {
		routes += len(item)
	}
	params := map[string]int{}
	for _, o := range ops.Ops {
		params[o.Name] = len(o.Params)
		var schema struct {
			Properties map[string]any `json:"properties"`
		}
		if err := json.Unmarshal(parsed.Components.Schemas["Op_"+o.Name], &schema); err != nil || schema.Properties["op"] == nil {
			t.Errorf("op %s has no schema in the document (%v)", o.Name, err)
			continue
		}
		if len(schema.Properties) != len(o.Params)+1 {
			t.Errorf("op %s: %d properties in its schema, %d parameters in GET /v1/ops", o.Name, len(schema.Properties), len(o.Params))
		}
	}
	for _, want := range []string{"resize", "crop", "convert", "watermark", "ocr", "detect", "annotate", "frames"} {
		if _, ok := params[want]; !ok {
			t.Errorf("GET /v1/ops lacks %s", want)
		}
	}
	if params["resize"] < 5 || params["ocr"] < 4 {
		t.Errorf("resize declares %d parameters, ocr %d", params["resize"], params["ocr"])
	}
	t.Logf("the served document: %d routes, %d ops", routes, len(ops.Ops))
}
