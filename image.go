package imaged

import (
	"context"
	"io"
	"time"
)

// Image is an uploaded original.
type Image struct {
	ID          string    `json:"id"`
	Tenant      string    `json:"tenant"`
	Key         string    `json:"key"`
	Format      string    `json:"format"`
	ContentType string    `json:"content_type"`
	Width       int       `json:"width"`
	Height      int       `json:"height"`
	Bytes       int64     `json:"bytes"`
	SHA256      string    `json:"sha256"`
	Filename    string    `json:"filename,omitempty"`
	CreatedAt   time.Time `json:"created_at"`
}

// BlobInfo describes a stored object.
type BlobInfo struct {
	Key         string
	Size        int64
	ContentType string
	ModTime     time.Time
}

// BlobStore keeps image bytes: originals under images/ and results under results/.
type BlobStore interface {
	// Put stores data under key atomically: readers see the whole object or none.
	Put(ctx context.Context, key string, data []byte, contentType string) error
	// Get opens the object; ENotFound when absent. The caller closes the reader.
	Get(ctx context.Context, key string) (io.ReadCloser, *BlobInfo, error)
	// Head describes the object; ENotFound when absent.
	Head(ctx context.Context, key string) (*BlobInfo, error)
	// Delete removes the object; deleting an absent key is not an error.
	Delete(ctx context.Context, key string) error
	// URL returns a time-limited URL a plain HTTP client can GET, or "" when the store
	// cannot offer one.
	URL(ctx context.Context, key string, expiry time.Duration) (string, error)
	// List returns up to limit objects whose key starts with prefix and sorts after after
	// (bytewise), in key order: the next page starts after the last key of this one, and a
	// page shorter than limit is the last. ContentType may be empty.
	List(ctx context.Context, prefix, after string, limit int) ([]BlobInfo, error)
	// Ping checks the store is reachable.
	Ping(ctx context.Context) error
}

// Formats imaged accepts as input, by the name Probe reports.
var InputFormats = []string{"jpeg", "png", "webp", "tiff", "bmp", "gif"}

// ContentTypeOf maps a format name to its MIME type.
func ContentTypeOf(format string) string {
	switch format {
	case "jpeg":
		return "image/jpeg"
	case "png":
		return "image/png"
	case "webp":
		return "image/webp"
	case "tiff":
		return "image/tiff"
	case "bmp":
		return "image/bmp"
	case "gif":
		return "image/gif"
	case "avif":
		return "image/avif"
	case "heif":
		return "image/heif"
	}
	return "application/octet-stream"
}

// ExtensionOf maps a format name to a file extension.
func ExtensionOf(format string) string {
	switch format {
	case "jpeg":
		return "jpg"
	case "tiff":
		return "tif"
	case "":
		return "bin"
	}
	return format
}
