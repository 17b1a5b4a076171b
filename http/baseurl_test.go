package http

import (
	"net/http"
	"net/http/httptest"
	"net/netip"
	"path/filepath"
	"strings"
	"testing"

	"github.com/imaged/imaged"
	"github.com/imaged/imaged/fs"
)

// TestLinksFollowTheAddressTheClientUsed: with no public URL configured, a signed blob link
// made while serving a request names the host and scheme the client reached; a trusted proxy's
// X-Forwarded-* headers say what those were, anyone else's are ignored.
func TestLinksFollowTheAddressTheClientUsed(t *testing.T) {
	blobs, err := fs.New(filepath.Join(t.TempDir(), "blobs"), fs.Options{BaseURL: "http://localhost:8000",
		Secret: []byte("0123456789abcdef0123456789abcdef"), FromRequest: true})
	if err != nil {
		t.Fatal(err)
	}
	s := &Server{cfg: Config{TrustedProxies: []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")}}}
	link := func(remote, host string, header map[string]string) string {
		var got string
		h := s.withBaseURL(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			got, err = blobs.URL(r.Context(), "results/a.png", 0)
		}))
		r := httptest.NewRequest("GET", "/v1/tasks/x", nil)
		r.RemoteAddr, r.Host = remote, host
		for k, v := range header {
			r.Header.Set(k, v)
		}
		h.ServeHTTP(httptest.NewRecorder(), r)
		if err != nil {
			t.Fatal(err)
		}
		return got
	}
	fwd := map[string]string{"X-Forwarded-Proto": "https", "X-Forwarded-Host": "images.example.com, inner.local", "X-Forwarded-Prefix": "/imaged"}
	for _, tc := range []struct {
		name, remote, host string
		header             map[string]string
		want               string
	}{
		{"direct", "192.0.2.7:5000", "api.internal:8000", nil, "http://api.internal:8000/v1/blobs/results/a.png?"},
		{"trusted proxy", "10.1.2.3:5000", "imaged:8000", fwd, "https://images.example.com/imaged/v1/blobs/results/a.png?"},
		{"untrusted proxy", "192.0.2.7:5000", "imaged:8000", fwd, "http://imaged:8000/v1/blobs/results/a.png?"},
		{"bad forwarded host", "10.1.2.3:5000", "imaged:8000", map[string]string{"X-Forwarded-Host": "evil.com/path"}, "http://imaged:8000/v1/blobs/"},
	} {
		if got := link(tc.remote, tc.host, tc.header); !strings.HasPrefix(got, tc.want) {
			t.Errorf("%s: link %s, want it to start %s", tc.name, got, tc.want)
		}
	}
	// Outside a request (a worker), and with a public URL configured, the configured base counts.
	if got, _ := blobs.URL(t.Context(), "results/a.png", 0); !strings.HasPrefix(got, "http://localhost:8000/v1/blobs/") {
		t.Errorf("outside a request: %s", got)
	}
	fixed, _ := fs.New(filepath.Join(t.TempDir(), "b2"), fs.Options{BaseURL: "https://cdn.example.com", Secret: []byte("0123456789abcdef0123456789abcdef")})
	if got, _ := fixed.URL(imaged.WithBaseURL(t.Context(), "http://other:1"), "k", 0); !strings.HasPrefix(got, "https://cdn.example.com/") {
		t.Errorf("with a public URL: %s", got)
	}
}
