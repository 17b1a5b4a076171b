package client

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"mime"
	"net/http"
	"strconv"

	"github.com/imaged/imaged"
)

// ProcessRequest is a synchronous pipeline (POST /v1/process) over one image: a file sent with
// the request, an uploaded image or a URL the server fetches; exactly one of the three.
type ProcessRequest struct {
	File      *File
	ImageID   string
	SourceURL string
	Ops       []imaged.Op
	// Accept chooses the format of convert:format=auto, e.g. "image/avif,image/webp".
	Accept string
}

// ProcessResult is a pipeline's answer: the image, when the pipeline changes it and analyses
// nothing; else the analyses in pipeline order, with the stored output image when the pipeline
// also changed it.
type ProcessResult struct {
	Data          []byte `json:"-"`
	ContentType   string `json:"-"`
	Width, Height int    `json:"-"`

	Analyses []imaged.Analysis `json:"analyses"`
	Output   *imaged.Output    `json:"output,omitempty"`

	// ImageID is the image stored from a SourceURL.
	ImageID string `json:"-"`
}

// Process runs a pipeline and waits for its answer.
func (c *Client) Process(ctx context.Context, req ProcessRequest) (*ProcessResult, error) {
	ops, err := opsJSON(req.Ops)
	if err != nil {
		return nil, err
	}
	r := request{route: "POST /v1/process", header: http.Header{}}
	if req.Accept != "" {
		r.header.Set("Accept", req.Accept)
	}
	if req.File != nil {
		r.body, r.contentType = multipartBody(req.File, map[string]string{"ops": ops, "image_id": req.ImageID, "source_url": req.SourceURL})
	} else {
		b, err := json.Marshal(map[string]any{"image_id": req.ImageID, "source_url": req.SourceURL, "ops": json.RawMessage(ops)})
		if err != nil {
			return nil, err
		}
		r.body, r.contentType = bytes.NewReader(b), "application/json"
	}
	resp, cancel, err := c.do(ctx, r)
	if err != nil {
		return nil, err
	}
	defer cancel()
	defer resp.Body.Close()
	res := &ProcessResult{ImageID: resp.Header.Get("X-Image-ID"), ContentType: resp.Header.Get("Content-Type")}
	if mt, _, _ := mime.ParseMediaType(res.ContentType); mt == "application/json" {
		if err := json.NewDecoder(resp.Body).Decode(res); err != nil {
			return nil, fmt.Errorf("POST /v1/process: the answer is not the JSON expected: %w", err)
		}
		return res, nil
	}
	if res.Data, err = io.ReadAll(resp.Body); err != nil {
		return nil, err
	}
	res.Width, _ = strconv.Atoi(resp.Header.Get("X-Image-Width"))
	res.Height, _ = strconv.Atoi(resp.Header.Get("X-Image-Height"))
	return res, nil
}

// AnalysisRequest is one OCR or detection over a file sent with it or an uploaded image.
// Options are the op's parameters, as in a pipeline: engine, languages, … for OCR; model,
// confidence, classes, … for detection.
type AnalysisRequest struct {
	File    *File
	ImageID string
	Options map[string]any
}

// OCR reads the text of an image (POST /v1/ocr); the answer is the ocr op's JSON: text, lines,
// words, boxes, engine, timings.
func (c *Client) OCR(ctx context.Context, req AnalysisRequest) (json.RawMessage, error) {
	return c.analyse(ctx, "POST /v1/ocr", req)
}

// Detect finds objects in an image (POST /v1/detect); the answer is the detect op's JSON:
// detections with class, confidence and box, the model, timings.
func (c *Client) Detect(ctx context.Context, req AnalysisRequest) (json.RawMessage, error) {
	return c.analyse(ctx, "POST /v1/detect", req)
}

func (c *Client) analyse(ctx context.Context, route string, req AnalysisRequest) (json.RawMessage, error) {
	var out json.RawMessage
	if req.File != nil {
		opts := ""
		if len(req.Options) > 0 {
			b, err := json.Marshal(req.Options)
			if err != nil {
				return nil, err
			}
			opts = string(b)
		}
		body, ct := multipartBody(req.File, map[string]string{"options": opts, "image_id": req.ImageID})
		err := c.call(ctx, request{route: route, body: body, contentType: ct}, &out)
		return out, err
	}
	params := map[string]any{"image_id": req.ImageID}
	for k, v := range req.Options {
		params[k] = v
	}
	err := c.callJSON(ctx, request{route: route}, params, &out)
	return out, err
}
