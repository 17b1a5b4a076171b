package http

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"strconv"
	"time"

	"github.com/imaged/imaged"
)

// pipelineRequest is the JSON shape of /v1/process and /v1/tasks.
type pipelineRequest struct {
	ImageID     string          `json:"image_id"`
	SourceURL   string          `json:"source_url,omitempty"`
	Ops         json.RawMessage `json:"ops"`
	CallbackURL string          `json:"callback_url,omitempty"`
	MaxAttempts int             `json:"max_attempts,omitempty"`
}

// decodeJSON decodes a bounded JSON body strictly into dst.
func decodeJSON(w http.ResponseWriter, r *http.Request, dst any) error {
	r.Body = http.MaxBytesReader(w, r.Body, maxFieldBytes)
	dec := json.NewDecoder(r.Body)
	dec.DisallowUnknownFields()
	if err := dec.Decode(dst); err != nil {
		if err == io.EOF {
			return imaged.Errorf(imaged.EInvalid, "the request body is empty; send a JSON object")
		}
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return bodyError(err, "")
		}
		return bodyJSONError(err)
	}
	if dec.More() {
		return imaged.Errorf(imaged.EInvalid, "the request body holds more than one JSON value")
	}
	return nil
}

// bodyJSONError is the error for a request body that does not decode, naming the field at
// fault in JSON's terms, never Go's.
func bodyJSONError(err error) error {
	field, problem := imaged.JSONProblem(err)
	switch {
	case problem == "is not a known field":
		return imaged.FieldErrorf(field, "the request body has no field %q", field)
	case field != "":
		return imaged.FieldErrorf(field, "%s %s", field, problem)
	}
	return imaged.Errorf(imaged.EInvalid, "the request body %s", problem)
}

// source is an image to run a pipeline over: bytes uploaded with the request or a stored image.
type source struct {
	data  []byte
	image *imaged.Image
}

// readPipelineRequest reads a pipeline request as JSON ({"image_id","ops"}) or multipart (a
// file part and an ops part). It validates the ops before any image is read or decoded.
func (s *Server) readPipelineRequest(w http.ResponseWriter, r *http.Request) (*pipelineRequest, []imaged.Op, *upload, error) {
	var req pipelineRequest
	var up *upload
	switch {
	case isMultipart(r):
		var err error
		if up, err = s.readUpload(w, r, false); err != nil {
			return nil, nil, nil, err
		}
		req.ImageID = up.fields["image_id"]
		req.SourceURL = up.fields["source_url"]
		req.Ops = json.RawMessage(up.fields["ops"])
		req.CallbackURL = up.fields["callback_url"]
		if v := up.fields["max_attempts"]; v != "" {
			n, err := strconv.Atoi(v)
			if err != nil {
				return nil, nil, nil, imaged.FieldErrorf("max_attempts", "max_attempts must be an integer")
			}
			req.MaxAttempts = n
		}
		if up.file == nil && req.ImageID == "" && req.SourceURL == "" {
			return nil, nil, nil, imaged.FieldErrorf("file", "send an image as a multipart part named file, an image_id or a source_url")
		}
	case isJSON(r) || r.Header.Get("Content-Type") == "":
		if err := decodeJSON(w, r, &req); err != nil {
			return nil, nil, nil, err
		}
		if req.ImageID == "" && req.SourceURL == "" {
			return nil, nil, nil, imaged.FieldErrorf("image_id", "image_id or source_url is required (or send multipart with a file part)")
		}
	default:
		return nil, nil, nil, imaged.Errorf(imaged.EUnsupported,
			"send application/json with image_id and ops, or multipart/form-data with file and ops parts")
	}
	if n := btoi(up != nil && up.file != nil) + btoi(req.ImageID != "") + btoi(req.SourceURL != ""); n > 1 {
		return nil, nil, nil, imaged.FieldErrorf("image_id", "send one of a file, an image_id or a source_url")
	}
	ops, err := imaged.ParseOps(req.Ops)
	if err != nil {
		return nil, nil, nil, err
	}
	if err := s.deps.Processor.Validate(ops); err != nil {
		return nil, nil, nil, err
	}
	if err := s.checkOverlays(r.Context(), tenantOf(r), ops, ""); err != nil {
		return nil, nil, nil, err
	}
	return &req, ops, up, nil
}

// processResponse is the JSON answer of a pipeline with analysis ops.
type processResponse struct {
	Analyses []imaged.Analysis `json:"analyses"`
	Output   *imaged.Output    `json:"output,omitempty"`
}

func (s *Server) handleProcess() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if err := s.roomForPipeline(); err != nil {
			s.writeError(w, r, err)
			return
		}
		req, ops, up, err := s.readPipelineRequest(w, r)
		if err != nil {
			s.writeError(w, r, err)
			return
		}
		ctx := r.Context()
		var src []byte
		var img *imaged.Image // the stored image the pipeline runs over; nil for a file sent along
		switch {
		case req.SourceURL != "":
			if img, src, err = s.fetchSource(ctx, req.SourceURL); err == nil {
				w.Header().Set("X-Image-ID", img.ID)
			}
		case req.ImageID != "":
			img, err = imaged.LookupImage(ctx, s.deps.Store, tenantOf(r), req.ImageID)
		default:
			src, err = s.sourceBytes(ctx, up, "")
		}
		if err != nil {
			s.writeError(w, r, err)
			return
		}
		var oc *outputCache
		if img != nil {
			if oc, err = s.outputOf(r, tenantOf(r), img, ops); err != nil {
				s.writeError(w, r, err)
				return
			}
			if data := oc.lookup(ctx, w.Header()); data != nil {
				e := oc.entry
				writeImage(w, oc, data, e.ContentType, e.Width, e.Height)
				return
			}
		}
		if src == nil {
			if src, err = imaged.ReadImageData(ctx, s.deps.Blobs, img, 0); err != nil {
				s.writeError(w, r, err)
				return
			}
		}
		start := time.Now()
		res, err := s.execute(ctx, src, ops, r.Header.Get("Accept"))
		if err != nil {
			s.writeError(w, r, err)
			return
		}
		w.Header().Set("X-Processing-Seconds", strconv.FormatFloat(time.Since(start).Seconds(), 'f', 4, 64))
		if len(res.Analyses) == 0 {
			if !res.Changed {
				s.writeError(w, r, imaged.FieldErrorf("ops", "the pipeline neither changes nor analyses the image"))
				return
			}
			if oc != nil {
				oc.store(ctx, res)
			}
			writeImage(w, oc, res.Data, res.ContentType, res.Width, res.Height)
			return
		}
		// A synchronous result is no task's: it gets an id of its own, so that it never
		// overwrites another.
		saved, err := imaged.SaveResult(ctx, s.deps.Blobs, imaged.SyncResultID(), time.Now().UTC(), res, s.cfg.URLExpiry)
		if err != nil {
			s.writeError(w, r, err)
			return
		}
		writeJSON(w, http.StatusOK, processResponse{Analyses: saved.Analyses, Output: saved.Output})
	})
}

// writeImage answers /v1/process with an image, from the processed-output cache or fresh (oc
// is nil for a file sent with the request): the same headers either way.
func writeImage(w http.ResponseWriter, oc *outputCache, data []byte, contentType string, width, height int) {
	h := w.Header()
	if oc != nil && oc.cacheable {
		h.Set("ETag", oc.etag())
		if cc := oc.cacheControl(); cc != "" {
			h.Set("Cache-Control", cc)
		}
	}
	h.Set("Content-Type", contentType)
	h.Set("Content-Length", strconv.Itoa(len(data)))
	h.Set("X-Image-Width", strconv.Itoa(width))
	h.Set("X-Image-Height", strconv.Itoa(height))
	h.Set("Vary", "Accept")
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(data)
}

// execute runs a synchronous pipeline in one of the bounded slots, with its metrics.
func (s *Server) execute(ctx context.Context, src []byte, ops []imaged.Op, accept string) (*imaged.Result, error) {
	release, err := s.acquire(ctx)
	if err != nil {
		return nil, err
	}
	defer release()
	typ := imaged.TaskTypeOf(ops)
	start := time.Now()
	res, err := s.deps.Processor.Process(ctx, src, ops, imaged.ProcessOptions{Accept: accept})
	s.deps.Metrics.ProcessingDuration.WithLabelValues(typ).Observe(time.Since(start).Seconds())
	status := "success"
	if err != nil {
		status = "failure"
	}
	s.deps.Metrics.ImagesProcessed.WithLabelValues(typ, status).Inc()
	return res, err
}

// sourceBytes returns the image a request names: its uploaded file, checked from the header,
// or a stored image.
func (s *Server) sourceBytes(ctx context.Context, up *upload, imageID string) ([]byte, error) {
	if up != nil && up.file != nil {
		if _, err := imaged.Probe(up.file, s.cfg.Limits); err != nil {
			return nil, err
		}
		return up.file, nil
	}
	_, b, err := imaged.ReadImage(ctx, s.deps.Store, s.deps.Blobs, imaged.TenantOf(ctx), imageID, 0)
	return b, err
}

// handleAnalysis is a shortcut for a one-op analysis pipeline (POST /v1/ocr, /v1/detect): the
// op's parameters come as the JSON body next to image_id, or as the multipart part "options"
// next to the file; the answer is the analysis result itself.
func (s *Server) handleAnalysis(opName string) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if err := s.roomForPipeline(); err != nil {
			s.writeError(w, r, err)
			return
		}
		ctx := r.Context()
		var up *upload
		params := map[string]json.RawMessage{}
		imageID := ""
		switch {
		case isMultipart(r):
			var err error
			if up, err = s.readUpload(w, r, false); err != nil {
				s.writeError(w, r, err)
				return
			}
			if o := up.fields["options"]; o != "" {
				if err := json.Unmarshal([]byte(o), &params); err != nil {
					_, problem := imaged.JSONProblem(err)
					s.writeError(w, r, imaged.FieldErrorf("options", "options %s", problem))
					return
				}
			}
			imageID = up.fields["image_id"]
		case isJSON(r) || r.Header.Get("Content-Type") == "":
			if err := decodeJSON(w, r, &params); err != nil {
				s.writeError(w, r, err)
				return
			}
			if raw, ok := params["image_id"]; ok {
				if err := json.Unmarshal(raw, &imageID); err != nil {
					s.writeError(w, r, imaged.FieldErrorf("image_id", "image_id must be a string"))
					return
				}
			}
		default:
			s.writeError(w, r, imaged.Errorf(imaged.EUnsupported,
				"send application/json with image_id and options, or multipart/form-data with file and options parts"))
			return
		}
		delete(params, "image_id")
		if (up == nil || up.file == nil) && imageID == "" {
			s.writeError(w, r, imaged.FieldErrorf("file", "send an image as a multipart part named file, or an image_id"))
			return
		}
		params["op"], _ = json.Marshal(opName)
		raw, _ := json.Marshal([]map[string]json.RawMessage{params})
		ops, err := imaged.ParseOps(raw)
		if err == nil {
			err = s.deps.Processor.Validate(ops)
		}
		if err != nil {
			s.writeError(w, r, err)
			return
		}
		src, err := s.sourceBytes(ctx, up, imageID)
		if err != nil {
			s.writeError(w, r, err)
			return
		}
		res, err := s.execute(ctx, src, ops, "")
		if err != nil {
			s.writeError(w, r, err)
			return
		}
		if len(res.Analyses) != 1 {
			s.writeError(w, r, imaged.Errorf(imaged.EInternal, "%s returned no result", opName))
			return
		}
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusOK)
		_, _ = w.Write(res.Analyses[0].Result)
	})
}
