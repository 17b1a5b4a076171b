package http

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io"
	"mime"
	"net/http"
	"path"
	"strconv"
	"strings"
	"time"

	"github.com/imaged/imaged"
)

// maxFieldBytes bounds the non-file parts of a multipart request (ops JSON and the like).
const maxFieldBytes = 1 << 20

// upload is what a request carried: an image file (multipart part "file" or the raw body) and,
// for multipart, its other fields.
type upload struct {
	file     []byte
	filename string
	fields   map[string]string
}

func isMultipart(r *http.Request) bool {
	mt, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type"))
	return mt == "multipart/form-data"
}

func isJSON(r *http.Request) bool {
	mt, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type"))
	return mt == "application/json"
}

// readUpload reads a multipart form (streaming, each part bounded) or, when rawOK, the raw body
// as the file. Bodies over the limit are ETooLarge before they are read in full.
func (s *Server) readUpload(w http.ResponseWriter, r *http.Request, rawOK bool) (*upload, error) {
	limit := s.cfg.Limits.MaxBytes
	r.Body = http.MaxBytesReader(w, r.Body, limit+maxFieldBytes)
	up := &upload{fields: map[string]string{}}
	if !isMultipart(r) {
		if !rawOK {
			return nil, imaged.Errorf(imaged.EUnsupported, "send multipart/form-data with a file part")
		}
		b, err := readLimited(r.Body, limit, r.ContentLength)
		if err != nil {
			return nil, err
		}
		up.file = b
		return up, nil
	}
	mr, err := r.MultipartReader()
	if err != nil {
		return nil, imaged.WrapError(imaged.EInvalid, err, "the multipart body is malformed")
	}
	for {
		part, err := mr.NextPart()
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, bodyError(err, "the multipart body is malformed")
		}
		name := part.FormName()
		switch {
		case name == "file":
			if up.file != nil {
				return nil, imaged.FieldErrorf("file", "send one file per request")
			}
			b, err := readLimited(part, limit, r.ContentLength)
			if err != nil {
				return nil, err
			}
			up.file, up.filename = b, part.FileName()
		case name != "":
			b, err := io.ReadAll(io.LimitReader(part, maxFieldBytes+1))
			if err != nil {
				return nil, bodyError(err, "the multipart body is malformed")
			}
			if len(b) > maxFieldBytes {
				return nil, &imaged.Error{Code: imaged.ETooLarge, Field: name, Message: "the field " + name + " is over 1 MiB"}
			}
			up.fields[name] = string(b)
		}
		part.Close()
	}
	return up, nil
}

// readLimited reads at most limit bytes. sizeHint (the request's Content-Length, or -1) sizes
// the buffer up front: growing it by doubling would hold up to twice a large upload.
func readLimited(r io.Reader, limit, sizeHint int64) ([]byte, error) {
	var buf bytes.Buffer
	if sizeHint > 0 {
		buf.Grow(int(min(sizeHint, limit) + 1))
	}
	_, err := buf.ReadFrom(io.LimitReader(r, limit+1))
	b := buf.Bytes()
	if err != nil {
		return nil, bodyError(err, "reading the body failed")
	}
	if int64(len(b)) > limit {
		return nil, imaged.Errorf(imaged.ETooLarge, "the image is over the limit of %d bytes", limit)
	}
	return b, nil
}

func bodyError(err error, msg string) error {
	var mbe *http.MaxBytesError
	if errors.As(err, &mbe) {
		return imaged.Errorf(imaged.ETooLarge, "the request body is over the limit of %d bytes", mbe.Limit)
	}
	return imaged.WrapError(imaged.EInvalid, err, "%s", msg)
}

// storeImage validates an upload from its header (no pixel is decoded), stores the bytes and
// records the image. If recording fails the stored bytes are removed, so nothing half-made
// remains.
func (s *Server) storeImage(ctx context.Context, data []byte, filename string) (*imaged.Image, error) {
	if len(data) == 0 {
		return nil, imaged.FieldErrorf("file", "the upload is empty: send the image as the body or as a multipart part named file")
	}
	h, err := imaged.Probe(data, s.cfg.Limits)
	if err != nil {
		return nil, err
	}
	sum := sha256.Sum256(data)
	now := time.Now().UTC()
	img := &imaged.Image{
		ID: imaged.NewID(), Tenant: imaged.TenantOf(ctx), Key: imaged.ImageKey(h.Format, now), Format: h.Format,
		ContentType: imaged.ContentTypeOf(h.Format), Width: h.Width, Height: h.Height,
		Bytes: int64(len(data)), SHA256: hex.EncodeToString(sum[:]), Filename: cleanFilename(filename), CreatedAt: now,
	}
	release, err := s.checkQuota(ctx, img.Bytes)
	if err != nil {
		return nil, err
	}
	defer release()
	if err := s.deps.Blobs.Put(ctx, img.Key, data, img.ContentType); err != nil {
		return nil, err
	}
	if err := s.deps.Store.CreateImage(ctx, img); err != nil {
		if derr := s.deps.Blobs.Delete(context.WithoutCancel(ctx), img.Key); derr != nil {
			s.log.ErrorContext(ctx, "removing an orphaned upload failed", "key", img.Key, "error", derr.Error())
		}
		return nil, err
	}
	s.deps.Metrics.ImagesUploaded.Inc()
	s.publish(ctx, imaged.Event{Type: imaged.EventImageUploaded, ImageID: img.ID})
	return img, nil
}

func cleanFilename(name string) string {
	name = strings.Map(func(r rune) rune {
		if r < 0x20 || r == 0x7f {
			return -1
		}
		return r
	}, name)
	if len(name) > 255 {
		name = name[:255]
	}
	return name
}

func (s *Server) handleImageUpload() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		up, err := s.readUpload(w, r, true)
		if err != nil {
			s.writeError(w, r, err)
			return
		}
		img, err := s.storeImage(r.Context(), up.file, up.filename)
		if err != nil {
			s.writeError(w, r, err)
			return
		}
		w.Header().Set("Location", "/v1/images/"+img.ID)
		writeJSON(w, http.StatusCreated, img)
	})
}

func (s *Server) handleImageGet() http.Handler {
	return owned(s, s.deps.Store.Image, func(w http.ResponseWriter, _ *http.Request, img *imaged.Image) error {
		writeJSON(w, http.StatusOK, img)
		return nil
	})
}

func (s *Server) handleImageContent() http.Handler {
	return owned(s, s.deps.Store.Image, func(w http.ResponseWriter, r *http.Request, img *imaged.Image) error {
		s.serveBlob(w, r, img.Key, img.ContentType, img.SHA256, imageFilename(img))
		return nil
	})
}

func (s *Server) handleImageDelete() http.Handler {
	return owned(s, s.deps.Store.Image, func(w http.ResponseWriter, r *http.Request, img *imaged.Image) error {
		// The record goes first: a crash in between leaves an unreferenced object, never a
		// record that points at nothing.
		if err := s.deps.Store.DeleteImage(r.Context(), img.Tenant, img.ID); err != nil {
			return err
		}
		if err := s.deps.Blobs.Delete(r.Context(), img.Key); err != nil {
			s.log.ErrorContext(r.Context(), "deleting image bytes failed", "key", img.Key, "error", err.Error())
		}
		w.WriteHeader(http.StatusNoContent)
		return nil
	})
}

// blobVerifier is offered by stores that sign their own URLs (the local-disk store).
type blobVerifier interface {
	Verify(key string, expires int64, sig string, now time.Time) bool
}

func (s *Server) handleSignedBlob() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		v, ok := s.deps.Blobs.(blobVerifier)
		if !ok {
			s.writeError(w, r, imaged.Errorf(imaged.ENotFound, "this storage serves no signed URLs"))
			return
		}
		key := r.PathValue("key")
		expires, _ := strconv.ParseInt(r.URL.Query().Get("expires"), 10, 64)
		if !v.Verify(key, expires, r.URL.Query().Get("sig"), time.Now()) {
			s.writeError(w, r, imaged.Errorf(imaged.EPermissionDenied, "the URL signature is invalid or expired"))
			return
		}
		s.serveBlob(w, r, key, "", "", path.Base(key))
	})
}
