// Package s3 is the BlobStore on Amazon S3 or any S3-compatible server (MinIO, versitygw,
// Ceph), selected by IMAGED_STORAGE_URL=s3://bucket/prefix?endpoint=….
//
// Errors are classified so callers can tell transient from permanent: a missing object is
// ENotFound; an unreachable server, a timeout or a 5xx is EUnavailable (worth a retry, and what
// a circuit breaker counts); refused credentials and other rejected requests are EInternal.
package s3

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/aws/ratelimit"
	"github.com/aws/aws-sdk-go-v2/aws/retry"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/credentials"
	s3sdk "github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"

	"github.com/imaged/imaged"
)

const (
	// uploadConcurrency is how many parts of one object are in flight at once.
	uploadConcurrency = 4
	// cleanupTimeout bounds the abort of a failed multipart upload, which runs even when
	// the caller's context is done.
	cleanupTimeout = 30 * time.Second
	maxKeyLen      = 1024
)

// Store keeps objects in one bucket, under an optional prefix.
type Store struct {
	client  *s3sdk.Client
	presign *s3sdk.PresignClient
	cfg     Config
	where   string // the endpoint, for messages
}

var _ imaged.BlobStore = (*Store)(nil)

// New makes a store from cfg. It contacts the server only when cfg.CreateBucket is set, to
// create the bucket if it is missing; otherwise Ping is the first contact.
func New(ctx context.Context, cfg Config) (*Store, error) {
	cfg = cfg.withDefaults()
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	opts := []func(*config.LoadOptions) error{
		config.WithHTTPClient(newHTTPClient()),
		config.WithRetryer(func() aws.Retryer {
			// The SDK's client-side retry quota would turn an outage into "quota exceeded"
			// errors that hide the cause; the caller's breaker does that job.
			return retry.NewStandard(func(o *retry.StandardOptions) {
				o.MaxAttempts = 3
				o.MaxBackoff = 2 * time.Second
				o.RateLimiter = ratelimit.None
			})
		}),
		// Checksums only where S3 demands them: several S3-compatible servers reject the
		// SDK's newer default trailing checksums.
		config.WithRequestChecksumCalculation(aws.RequestChecksumCalculationWhenRequired),
		config.WithResponseChecksumValidation(aws.ResponseChecksumValidationWhenRequired),
	}
	if cfg.Region != "" {
		opts = append(opts, config.WithRegion(cfg.Region))
	}
	if cfg.AccessKey != "" {
		opts = append(opts, config.WithCredentialsProvider(credentials.NewStaticCredentialsProvider(cfg.AccessKey, cfg.SecretKey, "")))
	}
	awsCfg, err := config.LoadDefaultConfig(ctx, opts...)
	if err != nil {
		return nil, imaged.WrapError(imaged.EInvalid, err, "loading AWS configuration")
	}
	if awsCfg.Region == "" {
		awsCfg.Region = DefaultRegion
	}
	cfg.Region = awsCfg.Region

	clientFor := func(endpoint string) *s3sdk.Client {
		return s3sdk.NewFromConfig(awsCfg, func(o *s3sdk.Options) {
			if endpoint != "" {
				o.BaseEndpoint = aws.String(endpoint)
			}
			o.UsePathStyle = cfg.PathStyle
		})
	}
	s := &Store{client: clientFor(cfg.Endpoint), cfg: cfg, where: cfg.Endpoint}
	if s.where == "" {
		s.where = "AWS S3 (" + cfg.Region + ")"
	}
	presignClient := s.client
	if cfg.PublicEndpoint != "" {
		presignClient = clientFor(cfg.PublicEndpoint)
	}
	s.presign = s3sdk.NewPresignClient(presignClient)

	if cfg.CreateBucket {
		if err := s.ensureBucket(ctx); err != nil {
			return nil, err
		}
	}
	return s, nil
}

func newHTTPClient() *awshttp.BuildableClient {
	return awshttp.NewBuildableClient().
		WithDialerOptions(func(d *net.Dialer) { d.Timeout = 5 * time.Second }).
		WithTransportOptions(func(t *http.Transport) {
			// Counted from the end of the request body, so large uploads are not cut short.
			t.ResponseHeaderTimeout = time.Minute
			t.MaxIdleConnsPerHost = 32
		})
}

// ensureBucket creates the bucket unless it exists.
func (s *Store) ensureBucket(ctx context.Context) error {
	_, err := s.client.HeadBucket(ctx, &s3sdk.HeadBucketInput{Bucket: &s.cfg.Bucket})
	if err == nil {
		return nil
	}
	if e := s.classify(err, "checking bucket %s", s.cfg.Bucket); !imaged.IsCode(e, imaged.ENotFound) {
		return e
	}
	in := &s3sdk.CreateBucketInput{Bucket: &s.cfg.Bucket}
	if s.cfg.Region != DefaultRegion {
		in.CreateBucketConfiguration = &types.CreateBucketConfiguration{
			LocationConstraint: types.BucketLocationConstraint(s.cfg.Region),
		}
	}
	_, err = s.client.CreateBucket(ctx, in)
	if err == nil || isCode(err, "BucketAlreadyOwnedByYou") {
		return nil
	}
	if isCode(err, "BucketAlreadyExists") {
		return imaged.WrapError(imaged.EInternal, err, "bucket %s belongs to another account: choose another name", s.cfg.Bucket)
	}
	return s.classify(err, "creating bucket %s", s.cfg.Bucket)
}

// Put stores data under key, in parts when it is larger than the multipart threshold.
func (s *Store) Put(ctx context.Context, key string, data []byte, contentType string) error {
	k, err := s.fullKey(key)
	if err != nil {
		return err
	}
	if contentType == "" {
		contentType = "application/octet-stream"
	}
	if int64(len(data)) > s.cfg.MultipartThreshold {
		return s.putMultipart(ctx, key, k, data, contentType)
	}
	_, err = s.client.PutObject(ctx, &s3sdk.PutObjectInput{
		Bucket:        &s.cfg.Bucket,
		Key:           &k,
		Body:          bytes.NewReader(data),
		ContentLength: aws.Int64(int64(len(data))),
		ContentType:   &contentType,
	})
	return s.classify(err, "storing %s", key)
}

// putMultipart uploads data in parts. S3 shows the object only once the upload completes,
// so readers never see part of it; on any failure the upload is aborted so no parts linger.
func (s *Store) putMultipart(ctx context.Context, key, k string, data []byte, contentType string) (err error) {
	partSize := s.cfg.PartSize
	if need := (int64(len(data)) + maxParts - 1) / maxParts; need > partSize {
		partSize = need
	}
	created, err := s.client.CreateMultipartUpload(ctx, &s3sdk.CreateMultipartUploadInput{
		Bucket:      &s.cfg.Bucket,
		Key:         &k,
		ContentType: &contentType,
	})
	if err != nil {
		return s.classify(err, "storing %s", key)
	}
	uploadID := created.UploadId
	defer func() {
		if err == nil {
			return
		}
		actx, cancel := context.WithTimeout(context.WithoutCancel(ctx), cleanupTimeout)
		defer cancel()
		_, aerr := s.client.AbortMultipartUpload(actx, &s3sdk.AbortMultipartUploadInput{
			Bucket: &s.cfg.Bucket, Key: &k, UploadId: uploadID,
		})
		if aerr != nil && !isCode(aerr, "NoSuchUpload") {
			if e, ok := err.(*imaged.Error); ok {
				e.Message += fmt.Sprintf(" (and aborting the upload failed, parts may remain until the bucket's lifecycle rule removes them: %v)", aerr)
			}
		}
	}()

	nparts := int((int64(len(data)) + partSize - 1) / partSize)
	parts := make([]types.CompletedPart, nparts)
	pctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var (
		wg       sync.WaitGroup
		sem      = make(chan struct{}, uploadConcurrency)
		errOnce  sync.Once
		firstErr error
	)
	for i := range nparts {
		select {
		case sem <- struct{}{}:
		case <-pctx.Done():
		}
		if pctx.Err() != nil {
			break
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			start := int64(i) * partSize
			end := min(start+partSize, int64(len(data)))
			n := int32(i + 1)
			out, err := s.client.UploadPart(pctx, &s3sdk.UploadPartInput{
				Bucket:        &s.cfg.Bucket,
				Key:           &k,
				UploadId:      uploadID,
				PartNumber:    &n,
				Body:          bytes.NewReader(data[start:end]),
				ContentLength: aws.Int64(end - start),
			})
			if err != nil {
				errOnce.Do(func() { firstErr = err; cancel() })
				return
			}
			parts[i] = types.CompletedPart{ETag: out.ETag, PartNumber: &n}
		}()
	}
	wg.Wait()
	if firstErr == nil && pctx.Err() != nil {
		firstErr = pctx.Err()
	}
	if firstErr != nil {
		return s.classify(firstErr, "storing %s (part upload)", key)
	}
	_, err = s.client.CompleteMultipartUpload(ctx, &s3sdk.CompleteMultipartUploadInput{
		Bucket:          &s.cfg.Bucket,
		Key:             &k,
		UploadId:        uploadID,
		MultipartUpload: &types.CompletedMultipartUpload{Parts: parts},
	})
	return s.classify(err, "storing %s (completing upload)", key)
}

// Get opens the object under key.
func (s *Store) Get(ctx context.Context, key string) (io.ReadCloser, *imaged.BlobInfo, error) {
	k, err := s.fullKey(key)
	if err != nil {
		return nil, nil, err
	}
	out, err := s.client.GetObject(ctx, &s3sdk.GetObjectInput{Bucket: &s.cfg.Bucket, Key: &k})
	if err != nil {
		return nil, nil, s.classify(err, "reading %s", key)
	}
	return out.Body, &imaged.BlobInfo{
		Key:         key,
		Size:        aws.ToInt64(out.ContentLength),
		ContentType: aws.ToString(out.ContentType),
		ModTime:     aws.ToTime(out.LastModified),
	}, nil
}

// Head describes the object under key.
func (s *Store) Head(ctx context.Context, key string) (*imaged.BlobInfo, error) {
	k, err := s.fullKey(key)
	if err != nil {
		return nil, err
	}
	out, err := s.client.HeadObject(ctx, &s3sdk.HeadObjectInput{Bucket: &s.cfg.Bucket, Key: &k})
	if err != nil {
		return nil, s.classify(err, "describing %s", key)
	}
	return &imaged.BlobInfo{
		Key:         key,
		Size:        aws.ToInt64(out.ContentLength),
		ContentType: aws.ToString(out.ContentType),
		ModTime:     aws.ToTime(out.LastModified),
	}, nil
}

// Delete removes the object under key; a missing key is not an error.
func (s *Store) Delete(ctx context.Context, key string) error {
	k, err := s.fullKey(key)
	if err != nil {
		return err
	}
	_, err = s.client.DeleteObject(ctx, &s3sdk.DeleteObjectInput{Bucket: &s.cfg.Bucket, Key: &k})
	if err = s.classify(err, "deleting %s", key); imaged.IsCode(err, imaged.ENotFound) {
		return nil
	}
	return err
}

// URL returns a presigned GET URL that lasts expiry (the configured PresignExpiry when zero
// or less). It does not check that the object exists.
func (s *Store) URL(ctx context.Context, key string, expiry time.Duration) (string, error) {
	k, err := s.fullKey(key)
	if err != nil {
		return "", err
	}
	if expiry <= 0 {
		expiry = s.cfg.PresignExpiry
	}
	if expiry > maxPresignExpiry {
		return "", imaged.Errorf(imaged.EInvalid, "URL expiry %v is longer than S3 allows (%v)", expiry, maxPresignExpiry)
	}
	req, err := s.presign.PresignGetObject(ctx, &s3sdk.GetObjectInput{Bucket: &s.cfg.Bucket, Key: &k},
		s3sdk.WithPresignExpires(expiry))
	if err != nil {
		return "", s.classify(err, "presigning %s", key)
	}
	return req.URL, nil
}

// Ping checks that the bucket is reachable with the configured credentials.
func (s *Store) Ping(ctx context.Context) error {
	_, err := s.client.HeadBucket(ctx, &s3sdk.HeadBucketInput{Bucket: &s.cfg.Bucket})
	err = s.classify(err, "checking bucket %s", s.cfg.Bucket)
	if imaged.IsCode(err, imaged.ENotFound) {
		return imaged.WrapError(imaged.EInternal, err, "bucket %s does not exist at %s", s.cfg.Bucket, s.where)
	}
	return err
}

// fullKey validates key and puts the prefix in front of it.
func (s *Store) fullKey(key string) (string, error) {
	switch {
	case key == "":
		return "", imaged.FieldErrorf("key", "blob key is empty")
	case strings.HasPrefix(key, "/"):
		return "", imaged.FieldErrorf("key", "blob key %q is an absolute path", key)
	case strings.ContainsAny(key, "\\\x00"):
		return "", imaged.FieldErrorf("key", "blob key %q contains a backslash or NUL byte", key)
	}
	if slices.ContainsFunc(strings.Split(key, "/"), func(seg string) bool { return seg == "" || seg == "." || seg == ".." }) {
		return "", imaged.FieldErrorf("key", "blob key %q has an empty, \".\" or \"..\" segment", key)
	}
	if s.cfg.Prefix != "" {
		key = s.cfg.Prefix + "/" + key
	}
	if len(key) > maxKeyLen {
		return "", imaged.FieldErrorf("key", "blob key is longer than %d bytes", maxKeyLen)
	}
	return key, nil
}
