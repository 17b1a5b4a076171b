package http

import (
	"bytes"
	"io"
	"mime"
	"net/http"
	"strconv"
	"strings"

	"github.com/imaged/imaged"
)

// maxRangeBuffer is the largest object a ranged request reads into memory when its store
// streams without seeking (S3); larger ones are served whole.
const maxRangeBuffer = 128 << 20

// serveBlob answers with a stored object, or with ?redirect=true 302 to a time-limited URL when
// the store offers one. It speaks HTTP as caches and browsers expect: a strong ETag (the
// object's SHA-256, when known) with If-None-Match, Last-Modified with If-Modified-Since, byte
// ranges (206, Accept-Ranges), and Content-Disposition inline with filename (attachment with
// ?download=1).
func (s *Server) serveBlob(w http.ResponseWriter, r *http.Request, key, contentType, etag, filename string) {
	q := r.URL.Query()
	if redirect, _ := strconv.ParseBool(q.Get("redirect")); redirect {
		u, err := s.deps.Blobs.URL(r.Context(), key, s.cfg.URLExpiry)
		if err != nil {
			s.writeError(w, r, err)
			return
		}
		if u != "" {
			http.Redirect(w, r, u, http.StatusFound)
			return
		}
	}
	h := w.Header()
	if etag != "" {
		h.Set("ETag", `"`+etag+`"`)
		// Known without reading the object: a revalidation costs no storage read.
		if match := r.Header.Get("If-None-Match"); match != "" && strings.Contains(match, `"`+etag+`"`) {
			w.WriteHeader(http.StatusNotModified)
			return
		}
	}
	rc, info, err := s.deps.Blobs.Get(r.Context(), key)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	defer rc.Close()
	if contentType == "" {
		contentType = info.ContentType
	}
	h.Set("Content-Type", contentType)
	h.Set("Cache-Control", "private, max-age=3600")
	h.Set("Accept-Ranges", "bytes")
	disposition := "inline"
	if download, _ := strconv.ParseBool(q.Get("download")); download {
		disposition = "attachment"
	}
	if filename != "" {
		disposition = mime.FormatMediaType(disposition, map[string]string{"filename": filename})
	}
	h.Set("Content-Disposition", disposition)

	rs, seekable := rc.(io.ReadSeeker)
	if !seekable && r.Header.Get("Range") != "" && info.Size > 0 && info.Size <= maxRangeBuffer {
		b, err := io.ReadAll(rc)
		if err != nil {
			s.writeError(w, r, imaged.WrapError(imaged.EUnavailable, err, "reading the stored object failed; try again"))
			return
		}
		rs, seekable = bytes.NewReader(b), true
	}
	if seekable {
		// Ranges, If-Modified-Since, If-Range and Last-Modified.
		http.ServeContent(w, r, "", info.ModTime, rs)
		return
	}
	if !info.ModTime.IsZero() {
		h.Set("Last-Modified", info.ModTime.UTC().Format(http.TimeFormat))
		if since, err := http.ParseTime(r.Header.Get("If-Modified-Since")); err == nil && !info.ModTime.Truncate(1e9).After(since) {
			w.WriteHeader(http.StatusNotModified)
			return
		}
	}
	if info.Size > 0 {
		h.Set("Content-Length", strconv.FormatInt(info.Size, 10))
	}
	if _, err := io.Copy(w, rc); err != nil {
		s.log.WarnContext(r.Context(), "streaming a blob failed", "key", key, "error", err.Error())
	}
}

// imageFilename is the name an image is served under: its uploaded filename, else its id with
// its format's extension.
func imageFilename(img *imaged.Image) string {
	if img.Filename != "" {
		return img.Filename
	}
	return img.ID + "." + imaged.ExtensionOf(img.Format)
}
