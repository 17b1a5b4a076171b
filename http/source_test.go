package http

import (
	"encoding/json"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/imaged/imaged"
	"github.com/imaged/imaged/outbound"
)

// sourceServer serves a PNG on 127.0.0.1 and counts its requests.
func sourceServer(t *testing.T) (*httptest.Server, *atomic.Int64) {
	var hits atomic.Int64
	png := pngBytes(t)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		switch r.URL.Path {
		case "/photo.png":
			w.Write(png)
		case "/text":
			w.Write([]byte("not an image"))
		default:
			http.NotFound(w, r)
		}
	}))
	t.Cleanup(srv.Close)
	return srv, &hits
}

func TestSourceURL(t *testing.T) {
	src, hits := sourceServer(t)
	allowed := outbound.New(outbound.Config{Allow: []netip.Prefix{netip.MustParsePrefix("127.0.0.1/32")}})
	st := newStack(t, Config{}, Deps{Fetcher: allowed}, false)
	ct := map[string]string{"Content-Type": "application/json"}

	r := st.withKey("POST", "/v1/process", []byte(`{"source_url":"`+src.URL+`/photo.png","ops":[{"op":"blur"}]}`), ct)
	if r.status != 200 || !strings.HasPrefix(string(r.body), "out:") || r.header.Get("X-Image-ID") == "" {
		t.Fatalf("process from source_url: %d %s", r.status, r.body)
	}
	img, err := st.store.Image(t.Context(), imaged.DefaultTenant, r.header.Get("X-Image-ID"))
	if err != nil || img.Format != "png" || img.Width != 8 || img.Filename != "photo.png" {
		t.Fatalf("the fetched image was stored as %+v, %v", img, err)
	}

	r = st.withKey("POST", "/v1/tasks", []byte(`{"source_url":"`+src.URL+`/photo.png","ops":[{"op":"blur"}]}`), ct)
	var task imaged.Task
	json.Unmarshal(r.body, &task)
	if r.status != 202 || task.ImageID == "" {
		t.Fatalf("task from source_url: %d %s", r.status, r.body)
	}
	if _, err := st.store.Image(t.Context(), imaged.DefaultTenant, task.ImageID); err != nil {
		t.Fatalf("the task's image: %v", err)
	}

	for body, want := range map[string]string{
		`{"source_url":"` + src.URL + `/missing","ops":[{"op":"blur"}]}`:                  "404",
		`{"source_url":"` + src.URL + `/text","ops":[{"op":"blur"}]}`:                     "not an image",
		`{"source_url":"` + src.URL + `/photo.png","image_id":"x","ops":[{"op":"blur"}]}`: "one of",
		`{"source_url":"ftp://example.com/a.png","ops":[{"op":"blur"}]}`:                  "only http and https",
		`{"source_url":"` + src.URL + `/photo.png","ops":[{"op":"nope"}]}`:                "unknown op",
	} {
		r := st.withKey("POST", "/v1/process", []byte(body), ct)
		if r.status < 400 || r.status >= 500 || !strings.Contains(string(r.body), want) {
			t.Errorf("%s: %d %s, want a 4xx naming %q", body, r.status, r.body, want)
		}
	}
	_ = hits
}

func TestSourceURLRefusedByPolicy(t *testing.T) {
	src, hits := sourceServer(t)
	_, port, _ := net.SplitHostPort(strings.TrimPrefix(src.URL, "http://"))
	st := newStack(t, Config{}, Deps{Fetcher: outbound.New(outbound.Config{})}, false)
	ct := map[string]string{"Content-Type": "application/json"}
	for _, u := range []string{
		src.URL + "/photo.png",
		"http://localhost:" + port + "/photo.png",
		"http://[::ffff:127.0.0.1]:" + port + "/photo.png",
		"http://2130706433:" + port + "/photo.png",
		"http://100.64.0.1/photo.png",
	} {
		for _, path := range []string{"/v1/process", "/v1/tasks"} {
			r := st.withKey("POST", path, []byte(`{"source_url":"`+u+`","ops":[{"op":"blur"}]}`), ct)
			var b errorBody
			json.Unmarshal(r.body, &b)
			if r.status != 400 || b.Error.Field != "source_url" || !strings.Contains(b.Error.Message, "refused") {
				t.Errorf("POST %s with %s: %d %s, want 400 naming the refusal", path, u, r.status, r.body)
			}
		}
	}
	if hits.Load() != 0 {
		t.Fatalf("the loopback source was reached %d times", hits.Load())
	}
	// Multipart carries source_url too.
	st2 := newStack(t, Config{}, Deps{}, false)
	r := st2.withKey("POST", "/v1/process", []byte("--b\r\nContent-Disposition: form-data; name=\"source_url\"\r\n\r\nhttp://example.com/a.png\r\n--b\r\nContent-Disposition: form-data; name=\"ops\"\r\n\r\n[{\"op\":\"blur\"}]\r\n--b--\r\n"),
		map[string]string{"Content-Type": "multipart/form-data; boundary=b"})
	if r.status != 400 || !strings.Contains(string(r.body), "not enabled") {
		t.Fatalf("source_url without a fetcher: %d %s", r.status, r.body)
	}
}
