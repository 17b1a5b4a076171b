package s3

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	s3sdk "github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/smithy-go/middleware"

	"github.com/imaged/imaged"
	"github.com/imaged/imaged/blobtest"
)

func TestContract(t *testing.T) {
	srv := startVersitygw(t)
	store := newTestStore(t, srv, nil)
	blobtest.Run(t, store, "contract")
}

func TestPrefixIsPrependedToKeys(t *testing.T) {
	srv := startVersitygw(t)
	plain := newTestStore(t, srv, nil)
	prefixed := newTestStore(t, srv, func(c *Config) { c.Bucket = plain.cfg.Bucket; c.Prefix = "/tenant/one/" })
	ctx := t.Context()
	if err := prefixed.Put(ctx, "images/a.png", []byte("a"), "image/png"); err != nil {
		t.Fatal(err)
	}
	info, err := plain.Head(ctx, "tenant/one/images/a.png")
	if err != nil {
		t.Fatalf("object not stored under the prefix: %v", err)
	}
	if info.Size != 1 {
		t.Fatalf("Size = %d", info.Size)
	}
	if _, err := plain.Head(ctx, "images/a.png"); !imaged.IsCode(err, imaged.ENotFound) {
		t.Fatalf("object also outside the prefix: %v", err)
	}
	got, err := prefixed.Head(ctx, "images/a.png")
	if err != nil || got.Key != "images/a.png" {
		t.Fatalf("prefixed Head = %+v, %v; want the key without the prefix", got, err)
	}
	// List sees only the prefix's objects, and names them without it.
	if err := plain.Put(ctx, "images/outside.png", []byte("o"), "image/png"); err != nil {
		t.Fatal(err)
	}
	listed, err := prefixed.List(ctx, "images/", "", 10)
	if err != nil || len(listed) != 1 || listed[0].Key != "images/a.png" {
		t.Fatalf("prefixed List = %+v, %v; want images/a.png alone", listed, err)
	}
	if listed, err := prefixed.List(ctx, "images/", "images/a.png", 10); err != nil || len(listed) != 0 {
		t.Fatalf("prefixed List after its only key = %+v, %v; want nothing", listed, err)
	}
}

func TestPresignedURL(t *testing.T) {
	srv := startVersitygw(t)
	store := newTestStore(t, srv, nil)
	ctx := t.Context()
	data := []byte("\x89PNG presigned bytes")
	if err := store.Put(ctx, "images/p.png", data, "image/png"); err != nil {
		t.Fatal(err)
	}
	get := func(u string) (int, []byte) {
		t.Helper()
		resp, err := http.Get(u)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, b
	}

	raw, err := store.URL(ctx, "images/p.png", time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(raw, srv.Endpoint+"/"+store.cfg.Bucket+"/images/p.png?") {
		t.Fatalf("URL = %s, want a path-style URL on the endpoint", raw)
	}
	if code, body := get(raw); code != http.StatusOK || !bytes.Equal(body, data) {
		t.Fatalf("GET presigned URL: %d %q", code, body)
	}

	u, _ := url.Parse(raw)
	q := u.Query()
	sig := []byte(q.Get("X-Amz-Signature"))
	if sig[0] == '0' {
		sig[0] = '1'
	} else {
		sig[0] = '0'
	}
	q.Set("X-Amz-Signature", string(sig))
	u.RawQuery = q.Encode()
	if code, body := get(u.String()); code != http.StatusForbidden {
		t.Fatalf("GET with a tampered signature: %d %q, want 403", code, body)
	}

	other, _ := url.Parse(raw)
	other.Path = strings.Replace(other.Path, "p.png", "q.png", 1)
	if code, _ := get(other.String()); code != http.StatusForbidden {
		t.Fatalf("GET another key with the signature: %d, want 403", code)
	}

	short, err := store.URL(ctx, "images/p.png", time.Second)
	if err != nil {
		t.Fatal(err)
	}
	time.Sleep(2100 * time.Millisecond)
	if code, _ := get(short); code != http.StatusForbidden {
		t.Fatalf("GET an expired URL: %d, want 403", code)
	}

	if _, err := store.URL(ctx, "images/p.png", 8*24*time.Hour); !imaged.IsCode(err, imaged.EInvalid) {
		t.Fatalf("URL with an expiry over 7 days: %v, want %s", err, imaged.EInvalid)
	}
}

func TestPublicEndpointSignsForThatHost(t *testing.T) {
	srv := startVersitygw(t)
	// The server is reached as 127.0.0.1 internally and as localhost by clients.
	public := strings.Replace(srv.Endpoint, "127.0.0.1", "localhost", 1)
	store := newTestStore(t, srv, func(c *Config) { c.PublicEndpoint = public })
	ctx := t.Context()
	if err := store.Put(ctx, "images/pub.png", []byte("pub"), "image/png"); err != nil {
		t.Fatal(err)
	}
	raw, err := store.URL(ctx, "images/pub.png", time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(raw, public+"/") {
		t.Fatalf("URL = %s, want it on %s", raw, public)
	}
	resp, err := http.Get(raw)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || string(body) != "pub" {
		t.Fatalf("GET %s: %d %q", raw, resp.StatusCode, body)
	}
}

func TestMultipartUpload(t *testing.T) {
	srv := startVersitygw(t)
	store := newTestStore(t, srv, nil)
	ctx := t.Context()
	data := make([]byte, 20_000_000)
	for i := range data {
		data[i] = byte(i*7 + i>>13)
	}
	if err := store.Put(ctx, "results/2024/01/02/big.tif", data, "image/tiff"); err != nil {
		t.Fatal(err)
	}
	head, err := store.client.HeadObject(ctx, &s3sdk.HeadObjectInput{Bucket: &store.cfg.Bucket, Key: ptr("results/2024/01/02/big.tif")})
	if err != nil {
		t.Fatal(err)
	}
	// A multipart object's ETag ends in -<number of parts>: 20 MB in 8 MiB parts is 3.
	if etag := strings.Trim(*head.ETag, `"`); !strings.HasSuffix(etag, "-3") {
		t.Fatalf("ETag %s: want a 3-part multipart object", etag)
	}
	rc, info, err := store.Get(ctx, "results/2024/01/02/big.tif")
	if err != nil {
		t.Fatal(err)
	}
	got, err := io.ReadAll(rc)
	rc.Close()
	if err != nil {
		t.Fatal(err)
	}
	if sha256.Sum256(got) != sha256.Sum256(data) || info.Size != int64(len(data)) || info.ContentType != "image/tiff" {
		t.Fatalf("read back %d bytes (size %d, type %q), not the %d put", len(got), info.Size, info.ContentType, len(data))
	}
	assertNoUploads(t, store)
}

func TestFailedMultipartUploadLeavesNothing(t *testing.T) {
	srv := startVersitygw(t)
	store := newTestStore(t, srv, nil)
	// The second part fails on its way out; the first reached the server.
	var aborts atomic.Int32
	store.client = s3sdk.New(store.client.Options(), func(o *s3sdk.Options) {
		o.APIOptions = append(o.APIOptions, func(stack *middleware.Stack) error {
			return stack.Initialize.Add(middleware.InitializeMiddlewareFunc("failSecondPart",
				func(ctx context.Context, in middleware.InitializeInput, next middleware.InitializeHandler) (middleware.InitializeOutput, middleware.Metadata, error) {
					switch p := in.Parameters.(type) {
					case *s3sdk.UploadPartInput:
						if *p.PartNumber == 2 {
							return middleware.InitializeOutput{}, middleware.Metadata{}, errors.New("connection lost")
						}
					case *s3sdk.AbortMultipartUploadInput:
						aborts.Add(1)
					}
					return next.HandleInitialize(ctx, in)
				}), middleware.Before)
		})
	})
	ctx := t.Context()
	err := store.Put(ctx, "results/broken.tif", make([]byte, 20_000_000), "image/tiff")
	if err == nil {
		t.Fatal("Put succeeded although a part failed")
	}
	if _, err := store.Head(ctx, "results/broken.tif"); !imaged.IsCode(err, imaged.ENotFound) {
		t.Fatalf("Head after a failed upload: %v, want %s", err, imaged.ENotFound)
	}
	if n := aborts.Load(); n != 1 {
		t.Fatalf("upload aborted %d times, want once", n)
	}
	assertNoUploads(t, store)
}

func assertNoUploads(t *testing.T, store *Store) {
	t.Helper()
	out, err := store.client.ListMultipartUploads(t.Context(), &s3sdk.ListMultipartUploadsInput{Bucket: &store.cfg.Bucket})
	if err != nil {
		t.Fatal(err)
	}
	if len(out.Uploads) != 0 {
		t.Fatalf("%d multipart uploads left open", len(out.Uploads))
	}
}

func TestCreateBucket(t *testing.T) {
	srv := startVersitygw(t)
	store := newTestStore(t, srv, nil) // creates it
	// Creating an existing bucket is fine.
	again := newTestStore(t, srv, func(c *Config) { c.Bucket = store.cfg.Bucket })
	if err := again.Ping(t.Context()); err != nil {
		t.Fatal(err)
	}
	// Without CreateBucket a missing bucket is reported, not made.
	missing := newTestStore(t, srv, func(c *Config) { c.CreateBucket = false })
	err := missing.Ping(t.Context())
	if !imaged.IsCode(err, imaged.EInternal) || !strings.Contains(err.Error(), "does not exist") {
		t.Fatalf("Ping of a missing bucket: %v, want %s saying it does not exist", err, imaged.EInternal)
	}
	if err := missing.Put(t.Context(), "images/a.png", []byte("a"), "image/png"); !imaged.IsCode(err, imaged.EInternal) {
		t.Fatalf("Put into a missing bucket: %v, want %s", err, imaged.EInternal)
	}
}

func TestWrongCredentialsAreInternal(t *testing.T) {
	srv := startVersitygw(t)
	good := newTestStore(t, srv, nil)
	if err := good.Put(t.Context(), "images/a.png", []byte("a"), "image/png"); err != nil {
		t.Fatal(err)
	}
	bad := newTestStore(t, srv, func(c *Config) {
		c.Bucket = good.cfg.Bucket
		c.SecretKey = "not-" + c.SecretKey
		c.CreateBucket = false
	})
	ctx := t.Context()
	for name, err := range map[string]error{
		"Ping": bad.Ping(ctx),
		"Get":  func() error { _, _, err := bad.Get(ctx, "images/a.png"); return err }(),
		"Head": func() error { _, err := bad.Head(ctx, "images/a.png"); return err }(),
		"Put":  bad.Put(ctx, "images/b.png", []byte("b"), "image/png"),
	} {
		if !imaged.IsCode(err, imaged.EInternal) || !strings.Contains(err.Error(), "credentials") {
			t.Errorf("%s with a wrong secret: %v, want %s naming the credentials", name, err, imaged.EInternal)
		}
		if strings.Contains(imaged.ErrorMessage(err), "not-") {
			t.Errorf("%s error message shows the secret key: %s", name, imaged.ErrorMessage(err))
		}
	}
}

func TestCredentialsFromEnvironment(t *testing.T) {
	srv := startVersitygw(t)
	t.Setenv("AWS_ACCESS_KEY_ID", srv.AccessKey)
	t.Setenv("AWS_SECRET_ACCESS_KEY", srv.SecretKey)
	// Files that cannot exist, whatever the machine holds: the keys must come from the environment.
	absent := filepath.Join(t.TempDir(), "absent")
	t.Setenv("AWS_CONFIG_FILE", absent)
	t.Setenv("AWS_SHARED_CREDENTIALS_FILE", absent)
	cfg, err := ParseURL("s3://imaged-env/data?endpoint=" + url.QueryEscape(srv.Endpoint) + "&path_style=true&create_bucket=true")
	if err != nil {
		t.Fatal(err)
	}
	store, err := New(t.Context(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := store.Put(t.Context(), "images/env.png", []byte("env"), "image/png"); err != nil {
		t.Fatal(err)
	}
}

func TestUnreachableServerIsUnavailable(t *testing.T) {
	port, err := freePort() // free, so nothing listens there
	if err != nil {
		t.Fatal(err)
	}
	cfg := Config{
		Bucket: "imaged-test", Endpoint: "http://127.0.0.1:" + port, Region: "us-east-1",
		PathStyle: true, AccessKey: "AK", SecretKey: "SK",
	}
	ctx := t.Context()
	start := time.Now()
	store, err := New(ctx, cfg)
	if err != nil {
		t.Fatalf("New without CreateBucket contacts no server, yet: %v", err)
	}
	for name, err := range map[string]error{
		"Ping":   store.Ping(ctx),
		"Put":    store.Put(ctx, "images/a.png", []byte("a"), "image/png"),
		"Get":    func() error { _, _, err := store.Get(ctx, "images/a.png"); return err }(),
		"Head":   func() error { _, err := store.Head(ctx, "images/a.png"); return err }(),
		"Delete": store.Delete(ctx, "images/a.png"),
	} {
		if !imaged.IsCode(err, imaged.EUnavailable) {
			t.Errorf("%s against a closed port: %v, want %s", name, err, imaged.EUnavailable)
		}
		if !errors.Is(err, syscall.ECONNREFUSED) {
			t.Errorf("%s against a closed port: cause %v is not connection refused", name, err)
		}
	}
	cfg.CreateBucket = true
	if _, err := New(ctx, cfg); !imaged.IsCode(err, imaged.EUnavailable) {
		t.Errorf("New with CreateBucket against a closed port: %v, want %s", err, imaged.EUnavailable)
	}
	if d := time.Since(start); d > 15*time.Second {
		t.Errorf("6 calls against a closed port took %v", d)
	}
}

func TestServerErrorsAreUnavailable(t *testing.T) {
	// Only a misbehaving server answers 503; versitygw cannot be made to, so a stub does.
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/xml")
		w.WriteHeader(http.StatusServiceUnavailable)
		io.WriteString(w, `<?xml version="1.0" encoding="UTF-8"?><Error><Code>SlowDown</Code><Message>Please reduce your request rate.</Message></Error>`)
	}))
	defer srv.Close()
	store, err := New(t.Context(), Config{
		Bucket: "imaged-test", Endpoint: srv.URL, Region: "us-east-1",
		PathStyle: true, AccessKey: "AK", SecretKey: "SK",
	})
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	_, _, err = store.Get(t.Context(), "images/a.png")
	if !imaged.IsCode(err, imaged.EUnavailable) {
		t.Fatalf("Get answered 503 SlowDown: %v, want %s", err, imaged.EUnavailable)
	}
	if d := time.Since(start); d > 10*time.Second {
		t.Fatalf("Get retried for %v", d)
	}
}

func TestTimeoutIsUnavailable(t *testing.T) {
	srv := startVersitygw(t)
	store := newTestStore(t, srv, nil)
	ctx, cancel := context.WithTimeout(t.Context(), time.Nanosecond)
	defer cancel()
	<-ctx.Done()
	err := store.Ping(ctx)
	if !imaged.IsCode(err, imaged.EUnavailable) || !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Ping past its deadline: %v, want %s wrapping the deadline", err, imaged.EUnavailable)
	}
}

func TestInvalidKeys(t *testing.T) {
	store, err := New(t.Context(), Config{Bucket: "imaged-test", Endpoint: "http://127.0.0.1:1", AccessKey: "AK", SecretKey: "SK"})
	if err != nil {
		t.Fatal(err)
	}
	for _, key := range []string{"", "/abs.png", "a/../b.png", "a//b.png", "a/./b.png", `a\b.png`, "a/", strings.Repeat("k", 1025)} {
		if err := store.Put(t.Context(), key, nil, "image/png"); !imaged.IsCode(err, imaged.EInvalid) {
			t.Errorf("Put(%q): %v, want %s", key, err, imaged.EInvalid)
		}
		if _, err := store.URL(t.Context(), key, time.Minute); !imaged.IsCode(err, imaged.EInvalid) {
			t.Errorf("URL(%q): %v, want %s", key, err, imaged.EInvalid)
		}
	}
}

func ptr[T any](v T) *T { return &v }
