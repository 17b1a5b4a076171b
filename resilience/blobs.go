package resilience

import (
	"context"
	"io"
	"time"

	"github.com/imaged/imaged"
)

// BlobConfig configures Blobs.
type BlobConfig struct {
	// Breaker guards Get, Head, Delete and Ping; defaults: name "storage", 5 failures, 60 s.
	Breaker BreakerConfig
	// Upload guards Put on its own, so that failing uploads stop early without cutting reads
	// off; defaults: name "storage_upload", 3 failures, 30 s.
	Upload BreakerConfig
	// Retry applies to Put, Get, Head and Delete.
	Retry RetryConfig
}

// DefaultBlobConfig returns the specification's defaults.
func DefaultBlobConfig() BlobConfig {
	return BlobConfig{
		Breaker: BreakerConfig{Name: "storage", Failures: DefaultFailures, Recovery: DefaultRecovery},
		Upload:  BreakerConfig{Name: "storage_upload", Failures: DefaultUploadFailures, Recovery: DefaultUploadRecovery},
		Retry:   RetryConfig{}.withDefaults(),
	}
}

// Blobs decorates a BlobStore with circuit breakers and retries. m may be nil.
//
// Put stores a whole object atomically, so repeating it is safe; Get, Head and Delete (absent
// is not an error) are safe too. All four retry transient failures. Put goes through the upload
// breaker, the others and Ping (not retried) through the storage breaker. URL goes straight to
// the store: it signs a URL locally and calls nothing, and a task view carrying a URL should
// not fail because storage is briefly down. Errors while reading an opened object's body are
// the caller's to see and count nowhere.
func Blobs(next imaged.BlobStore, cfg BlobConfig, m *Metrics) imaged.BlobStore {
	cfg.Breaker = cfg.Breaker.withDefaults("storage", DefaultFailures, DefaultRecovery)
	cfg.Upload = cfg.Upload.withDefaults("storage_upload", DefaultUploadFailures, DefaultUploadRecovery)
	rc := cfg.Retry.withDefaults()
	b := &blobs{
		next:   next,
		r:      &retrier{b: NewBreaker(cfg.Breaker, m), cfg: rc, m: m},
		upload: &retrier{b: NewBreaker(cfg.Upload, m), cfg: rc, m: m},
	}
	if v, ok := next.(verifier); ok {
		return &verifyingBlobs{b, v}
	}
	return b
}

// verifier is offered by stores that sign their own URLs (the local-disk store); the HTTP
// layer checks for it, so the decorator keeps it visible exactly when the store has it.
type verifier interface {
	Verify(key string, expires int64, sig string, now time.Time) bool
}

type verifyingBlobs struct {
	*blobs
	v verifier
}

// Verify checks a URL signature locally, without the breaker.
func (s *verifyingBlobs) Verify(key string, expires int64, sig string, now time.Time) bool {
	return s.v.Verify(key, expires, sig, now)
}

type blobs struct {
	next      imaged.BlobStore
	r, upload *retrier
}

// Unwrap returns the decorated store.
func (s *blobs) Unwrap() imaged.BlobStore { return s.next }

// Breakers returns the storage and upload breakers.
func (s *blobs) Breakers() (storage, upload *Breaker) { return s.r.b, s.upload.b }

func (s *blobs) Put(ctx context.Context, key string, data []byte, contentType string) error {
	return s.upload.retryErr(ctx, "put", func(ctx context.Context) error { return s.next.Put(ctx, key, data, contentType) })
}

type opened struct {
	rc   io.ReadCloser
	info *imaged.BlobInfo
}

func (s *blobs) Get(ctx context.Context, key string) (io.ReadCloser, *imaged.BlobInfo, error) {
	o, err := retry(ctx, s.r, "get", func(ctx context.Context) (opened, error) {
		rc, info, err := s.next.Get(ctx, key)
		if err != nil && rc != nil {
			rc.Close()
			rc = nil
		}
		return opened{rc, info}, err
	})
	return o.rc, o.info, err
}

func (s *blobs) Head(ctx context.Context, key string) (*imaged.BlobInfo, error) {
	return retry(ctx, s.r, "head", func(ctx context.Context) (*imaged.BlobInfo, error) {
		return s.next.Head(ctx, key)
	})
}

func (s *blobs) Delete(ctx context.Context, key string) error {
	return s.r.retryErr(ctx, "delete", func(ctx context.Context) error { return s.next.Delete(ctx, key) })
}

func (s *blobs) URL(ctx context.Context, key string, expiry time.Duration) (string, error) {
	return s.next.URL(ctx, key, expiry)
}

func (s *blobs) List(ctx context.Context, prefix, after string, limit int) ([]imaged.BlobInfo, error) {
	return retry(ctx, s.r, "list", func(ctx context.Context) ([]imaged.BlobInfo, error) {
		return s.next.List(ctx, prefix, after, limit)
	})
}

func (s *blobs) Ping(ctx context.Context) error {
	return s.r.do(ctx, func(ctx context.Context) error { return s.next.Ping(ctx) })
}
