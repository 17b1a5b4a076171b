package imaged

import (
	"context"
	"io"
)

// ReadImage returns the record and the bytes of the stored image id of tenant: the record names the
// blob, the blob store holds the bytes. With limit > 0 the read stops past limit bytes, so a
// caller that refuses large images never holds more than one byte over its limit.
//
// Domain errors keep their code (ENotFound above all: the image is gone, and trying again will
// not bring it back); any other failure of the store or the blob store is EUnavailable, so a
// worker tries its task again rather than failing it for a storage hiccup.
func ReadImage(ctx context.Context, store TaskStore, blobs BlobStore, tenant, id string, limit int64) (*Image, []byte, error) {
	img, err := LookupImage(ctx, store, tenant, id)
	if err != nil {
		return nil, nil, err
	}
	data, err := ReadImageData(ctx, blobs, img, limit)
	if err != nil {
		return nil, nil, err
	}
	return img, data, nil
}

// LookupImage returns the record of the stored image id of tenant, with ReadImage's errors: for
// a caller that needs the record first and the bytes only sometimes (ReadImageData).
func LookupImage(ctx context.Context, store TaskStore, tenant, id string) (*Image, error) {
	if err := CheckTenant(tenant); err != nil {
		return nil, err
	}
	img, err := store.Image(ctx, tenant, id)
	if err != nil {
		return nil, unavailable(err, "reading the record of image %s failed", id)
	}
	return img, nil
}

// ReadImageData returns the bytes of the stored image img, as ReadImage does once it has the
// record.
func ReadImageData(ctx context.Context, blobs BlobStore, img *Image, limit int64) ([]byte, error) {
	rc, _, err := blobs.Get(ctx, img.Key)
	if err != nil {
		return nil, unavailable(err, "reading image %s failed", img.ID)
	}
	defer rc.Close()
	var r io.Reader = rc
	if limit > 0 {
		r = io.LimitReader(rc, limit+1)
	}
	data, err := io.ReadAll(r)
	if err != nil {
		return nil, WrapError(EUnavailable, err, "reading image %s failed", img.ID)
	}
	return data, nil
}

// unavailable keeps a domain error and makes any other a temporary failure.
func unavailable(err error, format string, args ...any) error {
	if ErrorCode(err) == EInternal {
		return WrapError(EUnavailable, err, format, args...)
	}
	return err
}
