package http

import (
	"crypto/sha256"
	"encoding/hex"
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
		auto := negotiates(req.Ops)
		tag := signedETag(path, img.SHA256, auto, r.Header.Get("Accept"))
		h := w.Header()
		h.Set("ETag", tag)
		h.Set("Cache-Control", s.signedCacheControl())
		if auto {
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
		_, src, err := imaged.ReadImage(ctx, s.deps.Store, s.deps.Blobs, img.Tenant, img.ID, 0)
		if err != nil {
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
		h.Set("Content-Type", res.ContentType)
		h.Set("Content-Length", strconv.Itoa(len(res.Data)))
		w.WriteHeader(http.StatusOK)
		if r.Method != http.MethodHead {
			_, _ = w.Write(res.Data)
		}
	})
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

// outputRevision changes when an op gives other output for the same parameters, so that the
// ETags of signed URLs change with it and caches fetch the new output. 2: a bare flip mirrors
// top to bottom (it mirrored left to right).
const outputRevision = "2"

// signedETag names one output: the signed path over the image's content, the output revision,
// and the Accept header when the format is negotiated.
func signedETag(path, contentSHA string, auto bool, accept string) string {
	h := sha256.New()
	h.Write([]byte(outputRevision))
	h.Write([]byte{0})
	h.Write([]byte(path))
	h.Write([]byte{0})
	h.Write([]byte(contentSHA))
	if auto {
		h.Write([]byte{0})
		h.Write([]byte(accept))
	}
	return `"` + hex.EncodeToString(h.Sum(nil)[:16]) + `"`
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
