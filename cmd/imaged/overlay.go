package main

import (
	"context"
	"io"

	"github.com/imaged/imaged"
	"github.com/imaged/imaged/vips"
)

// uploadedImages is where watermark image=<id> finds the image it lays over a picture: the
// image's record names its blob, and the blob store holds its bytes. A read stops past limit
// bytes; the processor refuses such an overlay as too large, as it would any source.
func uploadedImages(store imaged.TaskStore, blobs imaged.BlobStore, limit int64) vips.ImageSource {
	return func(ctx context.Context, id string) ([]byte, error) {
		img, err := store.Image(ctx, id)
		if err != nil {
			return nil, unavailable(err, "reading the watermark image's record failed")
		}
		rc, _, err := blobs.Get(ctx, img.Key)
		if err != nil {
			return nil, unavailable(err, "reading the watermark image failed")
		}
		defer rc.Close()
		data, err := io.ReadAll(io.LimitReader(rc, limit+1))
		if err != nil {
			return nil, imaged.WrapError(imaged.EUnavailable, err, "reading the watermark image failed")
		}
		return data, nil
	}
}

// unavailable keeps a domain error (ENotFound above all) and makes any other a temporary
// failure, so a worker tries the task again rather than failing it for a storage hiccup.
func unavailable(err error, msg string) error {
	if imaged.ErrorCode(err) == imaged.EInternal {
		return imaged.WrapError(imaged.EUnavailable, err, "%s", msg)
	}
	return err
}

// useUploads lets the pipeline's watermark op read uploaded images, once the task store and
// blob store are open (after newEngines, which starts libvips first).
func (e *engines) useUploads(a *adapters, limits imaged.Limits) {
	e.processor.SetImages(uploadedImages(a.store, a.blobs, limits.MaxBytes))
}
