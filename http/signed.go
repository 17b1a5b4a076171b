package http

import (
	"io"
	"net/http"
	"sort"
	"strconv"
	"strings"

	"github.com/imaged/imaged"
	"github.com/imaged/imaged/signedurl"
)

// handleSignedImage serves GET /i/{signature}/{ops…}/{image_id}: the signature is checked
// before anything else is done (a bad one is a 403 without a lookup), then the image's ETag
// answers If-None-Match without running the pipeline, and only then does the pipeline run.
//
// The signature authorises exactly one image id, whatever its tenant: a URL is signed by the
// operator (imaged sign signs any id it is given), who holds the signing key and is trusted
// across tenants. Everything else the pipeline reads (a watermark's image) must belong to the
// image's tenant, or the answer is 404 as for any other tenant's id.
func (s *Server) handleSignedImage() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if s.deps.Signer == nil {
			s.writeError(w, r, imaged.Errorf(imaged.ENotFound, "signed image URLs are not enabled"))
			return
		}
		sig, path, ok := signedurl.Split(r.URL.EscapedPath())
		if !ok || len(path) > signedurl.MaxPath || !s.deps.Signer.Verify(sig, path) {
			s.writeError(w, r, imaged.Errorf(imaged.EPermissionDenied, "the URL signature is invalid"))
			return
		}
		if r.URL.RawQuery != "" {
			// Nothing outside the signed path changes the answer; a query would only make
			// caches keep copies of one image under many URLs.
			names := make([]string, 0, 4)
			for name := range r.URL.Query() {
				names = append(names, strconv.Quote(imaged.EchoID(name)))
			}
			sort.Strings(names)
			if len(names) > 4 {
				names = append(names[:4], "…")
			}
			s.writeError(w, r, imaged.FieldErrorf("query", "signed image URLs take no query parameters; got %s", strings.Join(names, ", ")))
			return
		}
		req, err := signedurl.Parse(path)
		if err != nil {
			s.writeError(w, r, err)
			return
		}
		if len(req.Ops) > 0 {
			if err := s.deps.Processor.Validate(req.Ops); err != nil {
				s.writeError(w, r, err)
				return
			}
			if imaged.HasAnalysis(req.Ops) {
				s.writeError(w, r, imaged.FieldErrorf("ops", "signed URLs deliver images; analysis ops belong in /v1/process"))
				return
			}
		}
		ctx := r.Context()
		// The signature authorises this one image id, whoever's it is; everything else the
		// request reads (a watermark's overlay) must be of the same tenant.
		img, err := s.deps.Store.Image(ctx, imaged.AnyTenant, req.ImageID)
		if err == nil {
			err = s.checkOverlays(ctx, img.Tenant, req.Ops, "")
		}
		if err != nil {
			s.writeError(w, r, err)
			return
		}
		// The ETag is the output's key in the processed-output cache: known before anything
		// runs, so If-None-Match is answered without the pipeline.
		oc, err := s.outputOf(r, img.Tenant, img, req.Ops)
		if err != nil {
			s.writeError(w, r, err)
			return
		}
		tag := oc.etag()
		h := w.Header()
		h.Set("ETag", tag)
		h.Set("Cache-Control", s.signedCacheControl())
		if negotiates(req.Ops) {
			h.Set("Vary", "Accept")
		}
		if etagMatches(r.Header.Get("If-None-Match"), tag) {
			w.WriteHeader(http.StatusNotModified)
			return
		}
		if len(req.Ops) == 0 {
			s.streamOriginal(w, r, img)
			return
		}
		ctx = imaged.WithTenant(ctx, img.Tenant)
		if data := oc.lookup(ctx, h); data != nil {
			writeSigned(w, r, data, oc.entry.ContentType)
			return
		}
		src, err := imaged.ReadImageData(ctx, s.deps.Blobs, img, 0)
		if err != nil {
			h.Del("ETag")
			h.Set("Cache-Control", "no-store")
			s.writeError(w, r, err)
			return
		}
		res, err := s.execute(ctx, src, req.Ops, r.Header.Get("Accept"))
		if err != nil {
			h.Del("ETag")
			h.Set("Cache-Control", "no-store")
			s.writeError(w, r, err)
			return
		}
		oc.store(ctx, res)
		writeSigned(w, r, res.Data, res.ContentType)
	})
}

// writeSigned answers a signed URL with an image, from the processed-output cache or fresh.
func writeSigned(w http.ResponseWriter, r *http.Request, data []byte, contentType string) {
	w.Header().Set("Content-Type", contentType)
	w.Header().Set("Content-Length", strconv.Itoa(len(data)))
	w.WriteHeader(http.StatusOK)
	if r.Method != http.MethodHead {
		_, _ = w.Write(data)
	}
}

// streamOriginal serves the stored image as it was uploaded.
func (s *Server) streamOriginal(w http.ResponseWriter, r *http.Request, img *imaged.Image) {
	rc, info, err := s.deps.Blobs.Get(r.Context(), img.Key)
	if err != nil {
		w.Header().Del("ETag")
		w.Header().Set("Cache-Control", "no-store")
		s.writeError(w, r, err)
		return
	}
	defer rc.Close()
	w.Header().Set("Content-Type", img.ContentType)
	if info.Size > 0 {
		w.Header().Set("Content-Length", strconv.FormatInt(info.Size, 10))
	}
	w.WriteHeader(http.StatusOK)
	if r.Method == http.MethodHead {
		return
	}
	if _, err := io.Copy(w, rc); err != nil {
		s.log.WarnContext(r.Context(), "streaming an image failed", "image_id", img.ID, "error", err.Error())
	}
}

func (s *Server) signedCacheControl() string {
	return "public, max-age=" + strconv.Itoa(int(s.cfg.SignedMaxAge.Seconds())) + ", immutable"
}

// negotiates reports whether the pipeline picks its output format from Accept.
func negotiates(ops []imaged.Op) bool {
	for _, o := range ops {
		if o.Name == "convert" && strings.Contains(string(o.Args), `"auto"`) {
			return true
		}
	}
	return false
}

// etagMatches reads If-None-Match: a list of entity tags, weak ones included, or *.
func etagMatches(header, tag string) bool {
	for _, t := range strings.Split(header, ",") {
		t = strings.TrimPrefix(strings.TrimSpace(t), "W/")
		if t == tag || t == "*" {
			return true
		}
	}
	return false
}
