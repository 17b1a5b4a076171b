package signedurl

import (
	"strings"
	"testing"

	"github.com/imaged/imaged"
)

// FuzzSignedPath holds the signed-URL reader to its promises on any path: no panic, errors are
// invalid_argument, what it accepts names a clean image id and ops that parse as JSON ops, and
// a signature verifies its own path and no other.
func FuzzSignedPath(f *testing.F) {
	for _, s := range []string{
		"/resize:w=800,h=600/convert:f=webp,q=80/0190c2a4-aaaa-7bbb-8ccc-123456789abc",
		"/abc", "/rotate:a=-90,bg=255;0;0/img", "/pad:bg=%23ff0000,top=5/img", "/resize:w=1,w=2/img",
		"//", "/%zz/x", "/a:b=c=d/x", "/" + strings.Repeat("blur/", 40) + "x",
	} {
		f.Add(s)
	}
	signer := testSigner(f, "fuzz")
	f.Fuzz(func(t *testing.T, path string) {
		req, err := Parse(path)
		if err != nil {
			if imaged.ErrorCode(err) != imaged.EInvalid {
				t.Fatalf("Parse(%q) error %v is not invalid_argument", path, err)
			}
		} else {
			if !validID(req.ImageID) {
				t.Fatalf("Parse(%q) accepted image id %q", path, req.ImageID)
			}
			if len(req.Ops) > imaged.MaxOps {
				t.Fatalf("Parse(%q) accepted %d ops", path, len(req.Ops))
			}
			for _, o := range req.Ops {
				if _, err := imaged.ParseOps(append(append([]byte("["), o.Args...), ']')); err != nil {
					t.Fatalf("Parse(%q) made op %s that does not parse: %v", path, o.Args, err)
				}
			}
		}
		sig := signer.Sign(path)
		if !signer.Verify(sig, path) {
			t.Fatalf("the signature of %q does not verify", path)
		}
		if signer.Verify(sig, path+"x") || (len(path) > 0 && signer.Verify(sig, path[1:])) {
			t.Fatalf("the signature of %q verifies another path", path)
		}
		want := "/" + strings.TrimPrefix(path, "/")
		if rs, rp, ok := Split(signer.URL(path)); !ok || rp != want || !signer.Verify(rs, rp) {
			t.Fatalf("Split(URL(%q)) = %q, %q, %v", path, rs, rp, ok)
		}
	})
}
