package http

import (
	"bytes"
	"strings"
	"testing"

	"github.com/imaged/imaged/signedurl"
)

func testSigner(t *testing.T) *signedurl.Signer {
	t.Helper()
	s, err := signedurl.New([]signedurl.Key{{Key: bytes.Repeat([]byte("k"), 32), Salt: []byte("salt")}})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestSignedImage(t *testing.T) {
	signer := testSigner(t)
	st := newStack(t, Config{}, Deps{Signer: signer}, false)
	id := st.uploadImage()

	u := signer.URL("resize:w=800,h=600/convert:f=webp/" + id)
	r := st.do("GET", u, nil, nil)
	if r.status != 200 || r.header.Get("Content-Type") != "image/webp" {
		t.Fatalf("GET %s: %d %s", u, r.status, r.body)
	}
	if want := `out:[{"height":600,"op":"resize","width":800},{"format":"webp","op":"convert"}]`; string(r.body) != want {
		t.Fatalf("body %s, want %s", r.body, want)
	}
	etag := r.header.Get("ETag")
	if len(etag) < 10 || !strings.HasPrefix(r.header.Get("Cache-Control"), "public, max-age=31536000") ||
		r.header.Get("Cross-Origin-Resource-Policy") != "cross-origin" {
		t.Fatalf("caching headers: ETag %q, Cache-Control %q, CORP %q", etag, r.header.Get("Cache-Control"), r.header.Get("Cross-Origin-Resource-Policy"))
	}
	calls := st.proc.calls.Load()
	for _, inm := range []string{etag, "W/" + etag, `"other", ` + etag, "*"} {
		r = st.do("GET", u, nil, map[string]string{"If-None-Match": inm})
		if r.status != 304 || len(r.body) != 0 || r.header.Get("ETag") != etag {
			t.Fatalf("If-None-Match %s: %d", inm, r.status)
		}
	}
	if st.proc.calls.Load() != calls {
		t.Fatal("a 304 ran the pipeline")
	}
	if r = st.do("GET", u, nil, map[string]string{"If-None-Match": `"other"`}); r.status != 200 {
		t.Fatalf("a stale If-None-Match: %d", r.status)
	}
	// Another pipeline has another ETag.
	r2 := st.do("GET", signer.URL("blur:s=2/"+id), nil, nil)
	if r2.status != 200 || r2.header.Get("ETag") == etag {
		t.Fatalf("another pipeline: %d, ETag %s", r2.status, r2.header.Get("ETag"))
	}
	// No op: the original.
	r = st.do("GET", signer.URL(id), nil, nil)
	if r.status != 200 || !bytes.Equal(r.body, pngBytes(t)) || r.header.Get("Content-Type") != "image/png" {
		t.Fatalf("the original: %d %s", r.status, r.header.Get("Content-Type"))
	}
	// convert:f=auto varies with Accept.
	auto := signer.URL("convert:f=auto/" + id)
	a := st.do("GET", auto, nil, map[string]string{"Accept": "image/avif"})
	b := st.do("GET", auto, nil, map[string]string{"Accept": "image/webp"})
	if a.header.Get("Vary") != "Accept" || a.header.Get("ETag") == b.header.Get("ETag") {
		t.Fatalf("negotiated format: Vary %q, ETags %s %s", a.header.Get("Vary"), a.header.Get("ETag"), b.header.Get("ETag"))
	}
}

func TestSignedImageRefusesBeforeWork(t *testing.T) {
	signer := testSigner(t)
	st := newStack(t, Config{}, Deps{Signer: signer}, false)
	id := st.uploadImage()
	good := signer.URL("resize:w=100/" + id)
	sig, path, _ := signedurl.Split(good)
	reads, calls := st.store.imageReads.Load(), st.proc.calls.Load()
	for _, bad := range []string{
		"/i/" + sig + strings.Replace(path, "w=100", "w=101", 1),
		"/i/" + sig + "/resize:w=100/" + id + "x",
		"/i/" + sig + "/" + id,
		"/i/" + strings.ToUpper(sig) + path,
		"/i/AAAA" + path,
		"/i/" + sig[:len(sig)-1] + path,
		"/i/x/" + id,
	} {
		r := st.do("GET", bad, nil, nil)
		if r.status != 403 || r.errorCode() != "permission_denied" {
			t.Errorf("GET %s: %d %s, want 403", bad, r.status, r.body)
		}
	}
	if st.store.imageReads.Load() != reads || st.proc.calls.Load() != calls {
		t.Fatal("a request with a bad signature looked up the image or ran the pipeline")
	}
	// A valid signature over a bad pipeline or an unknown image.
	for u, want := range map[string]int{
		signer.URL("sharpen:x=1/" + id):                    400,
		signer.URL("info/" + id):                           400,
		signer.URL("resize:w=1/0190c2a4-aaaa-7bbb-8ccc-1"): 404,
		signer.URL("resize:w/" + id):                       400,
	} {
		if r := st.do("GET", u, nil, nil); r.status != want {
			t.Errorf("GET %s: %d %s, want %d", u, r.status, r.body, want)
		}
	}
	// A key does not stand in for the signature.
	if r := st.withKey("GET", "/i/x/"+id, nil, nil); r.status != 403 {
		t.Errorf("an unsigned URL with a key: %d", r.status)
	}
}

func TestSignedImageRotation(t *testing.T) {
	old := testSigner(t)
	rotated, _ := signedurl.New([]signedurl.Key{{Key: bytes.Repeat([]byte("n"), 32), Salt: []byte("new")},
		{Key: bytes.Repeat([]byte("k"), 32), Salt: []byte("salt")}})
	st := newStack(t, Config{}, Deps{Signer: rotated}, false)
	id := st.uploadImage()
	for _, u := range []string{old.URL("blur:s=1/" + id), rotated.URL("blur:s=1/" + id)} {
		if r := st.do("GET", u, nil, nil); r.status != 200 {
			t.Fatalf("GET %s after rotation: %d", u, r.status)
		}
	}
}

func TestSignedImageOff(t *testing.T) {
	st := newStack(t, Config{}, Deps{}, false)
	if r := st.do("GET", testSigner(t).URL("blur:s=1/abc"), nil, nil); r.status != 404 {
		t.Fatalf("signed URLs without a signer: %d", r.status)
	}
}
