package s3

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"net"
	"testing"
	"time"

	"github.com/imaged/imaged/internal/versitygw"
)

// server is a private versitygw instance for one test: a real S3 server with signature checks.
type server = versitygw.Server

// startVersitygw starts one, or skips loudly when versitygw is not installed (fails with
// IMAGED_TEST_REQUIRE_SERVICES=1).
func startVersitygw(t *testing.T) *server { return versitygw.Start(t) }

func freePort() (string, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer l.Close()
	_, port, err := net.SplitHostPort(l.Addr().String())
	return port, err
}

// newTestStore makes a store on srv with a fresh bucket.
func newTestStore(t *testing.T, srv *server, mod func(*Config)) *Store {
	t.Helper()
	cfg := Config{
		Bucket:       "imaged-" + randomHex(4),
		Endpoint:     srv.Endpoint,
		Region:       "us-east-1",
		PathStyle:    true,
		AccessKey:    srv.AccessKey,
		SecretKey:    srv.SecretKey,
		CreateBucket: true,
	}
	if mod != nil {
		mod(&cfg)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	s, err := New(ctx, cfg)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	return s
}

func randomHex(n int) string {
	b := make([]byte, n)
	rand.Read(b)
	return hex.EncodeToString(b)
}
