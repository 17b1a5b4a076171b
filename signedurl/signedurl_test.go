package signedurl

import (
	"bytes"
	"encoding/hex"
	"encoding/json"
	"strings"
	"testing"

	"github.com/imaged/imaged"
)

func testSigner(t testing.TB, keys ...string) *Signer {
	t.Helper()
	var ks []Key
	for _, k := range keys {
		ks = append(ks, Key{Key: bytes.Repeat([]byte(k), 32), Salt: []byte("salt-" + k)})
	}
	s, err := New(ks)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestSignVerify(t *testing.T) {
	s := testSigner(t, "a")
	path := "/resize:w=800,h=600/convert:f=webp/0190c2a4-aaaa-7bbb-8ccc-123456789abc"
	sig := s.Sign(path)
	if len(sig) != 43 || !s.Verify(sig, path) {
		t.Fatalf("Sign = %q does not verify", sig)
	}
	for _, tampered := range []string{
		"/resize:w=801,h=600/convert:f=webp/0190c2a4-aaaa-7bbb-8ccc-123456789abc",
		"/resize:w=800,h=600/convert:f=png/0190c2a4-aaaa-7bbb-8ccc-123456789abc",
		"/resize:w=800,h=600/0190c2a4-aaaa-7bbb-8ccc-123456789abc",
		"/resize:w=800,h=600/convert:f=webp/0190c2a4-aaaa-7bbb-8ccc-123456789abd",
		"resize:w=800,h=600/convert:f=webp/0190c2a4-aaaa-7bbb-8ccc-123456789abc",
		"/resize:w=800%2Ch=600/convert:f=webp/0190c2a4-aaaa-7bbb-8ccc-123456789abc",
	} {
		if s.Verify(sig, tampered) {
			t.Errorf("the signature of %s verifies %s", path, tampered)
		}
	}
	for _, bad := range []string{"", "x", sig[:42], sig + "A", strings.ToUpper(sig), sig[:42] + "=", "%%%"} {
		if s.Verify(bad, path) {
			t.Errorf("Verify(%q) accepted", bad)
		}
	}
	// The salt takes part: another salt with the same key refuses.
	other, _ := New([]Key{{Key: bytes.Repeat([]byte("a"), 32), Salt: []byte("other")}})
	if other.Verify(sig, path) {
		t.Fatal("a signature verifies under another salt")
	}
}

func TestRotation(t *testing.T) {
	old := testSigner(t, "old")
	both := testSigner(t, "new", "old")
	path := "/blur:s=2/abc"
	if !both.Verify(old.Sign(path), path) {
		t.Fatal("a URL signed with the previous key does not verify after rotation")
	}
	if got, want := both.Sign(path), testSigner(t, "new").Sign(path); got != want {
		t.Fatal("the first key does not sign")
	}
	if old.Verify(both.Sign(path), path) {
		t.Fatal("a URL signed with the new key verifies under the old key alone")
	}
}

func TestNewAndParseKeys(t *testing.T) {
	if _, err := New(nil); err == nil {
		t.Fatal("New without keys")
	}
	if _, err := New([]Key{{Key: []byte("short")}}); err == nil {
		t.Fatal("New with a 5-byte key")
	}
	k32 := hex.EncodeToString(bytes.Repeat([]byte{1}, 32))
	keys, err := ParseKeys(k32+", "+k32, "aa,bb")
	if err != nil || len(keys) != 2 || !bytes.Equal(keys[1].Salt, []byte{0xbb}) {
		t.Fatalf("ParseKeys = %v, %v", keys, err)
	}
	if _, err := ParseKeys(k32, "aa,bb"); err == nil {
		t.Fatal("ParseKeys with more salts than keys")
	}
	if _, err := ParseKeys("zz", ""); err == nil {
		t.Fatal("ParseKeys with a key that is not hex")
	}
}

func TestURLAndSplit(t *testing.T) {
	s := testSigner(t, "a")
	u := s.URL("resize:w=10/abc")
	sig, path, ok := Split(u)
	if !ok || path != "/resize:w=10/abc" || !s.Verify(sig, path) {
		t.Fatalf("URL = %s; Split = %q, %q, %v", u, sig, path, ok)
	}
	for _, bad := range []string{"/i/", "/i/sig", "/x/sig/abc", "/i//abc"} {
		if _, _, ok := Split(bad); ok {
			t.Errorf("Split(%q) accepted", bad)
		}
	}
}

func opsJSON(t *testing.T, ops []imaged.Op) string {
	t.Helper()
	b, err := json.Marshal(ops)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestParse(t *testing.T) {
	for _, tc := range []struct{ path, ops, id string }{
		{"/abc-123", "", "abc-123"},
		{"/resize:w=800,h=600/convert:f=webp,q=80/img1",
			`[{"height":600,"op":"resize","width":800},{"format":"webp","op":"convert","quality":80}]`, "img1"},
		{"/grayscale/blur:s=2.5/img", `[{"op":"grayscale"},{"op":"blur","sigma":2.5}]`, "img"},
		{"/resize:w=100,enlarge=true,fit=cover/img", `[{"enlarge":true,"fit":"cover","op":"resize","width":100}]`, "img"},
		{"/rotate:a=-90,bg=255;0;0/img", `[{"angle":-90,"background":[255,0,0],"op":"rotate"}]`, "img"},
		{"/pad:bg=%23ff0000,top=5/img", `[{"background":"#ff0000","op":"pad","top":5}]`, "img"},
		{"/convert:f=auto/img", `[{"format":"auto","op":"convert"}]`, "img"},
		{"/crop:g=smart,w=0x10/img", `[{"gravity":"smart","op":"crop","width":"0x10"}]`, "img"},
	} {
		req, err := Parse(tc.path)
		if err != nil {
			t.Errorf("Parse(%s): %v", tc.path, err)
			continue
		}
		got := ""
		if len(req.Ops) > 0 {
			got = opsJSON(t, req.Ops)
		}
		if got != tc.ops || req.ImageID != tc.id {
			t.Errorf("Parse(%s) = %s / %s, want %s / %s", tc.path, got, req.ImageID, tc.ops, tc.id)
		}
	}
}

func TestParseRefuses(t *testing.T) {
	for _, path := range []string{
		"/", "//", "/resize:w=1/", "/resize:w=1/a b", "/resize:w=1/../etc", "/resize:w=1/%zz",
		"/:w=1/img", "/re size/img", "/resize:w/img", "/resize:=1/img", "/resize:w=1,w=2/img",
		"/resize:w=1,width=2/img", "/resize:op=blur/img", "/resize:w=1,,h=2/img", "/res%ize/img",
		"/" + strings.Repeat("blur/", imaged.MaxOps+1) + "img", "/" + strings.Repeat("a", MaxPath) + "/img",
		"/" + strings.Repeat("x", 65),
	} {
		if req, err := Parse(path); err == nil {
			t.Errorf("Parse(%.80s) = %+v, want an error", path, req)
		} else if imaged.ErrorCode(err) != imaged.EInvalid {
			t.Errorf("Parse(%.80s): %v, want invalid_argument", path, err)
		}
	}
}

// ParseOp reads one op in the path syntax, as the command line's --op does.
func TestParseOp(t *testing.T) {
	op, err := ParseOp("resize:w=800,fit=cover,enlarge=true")
	if err != nil || op.Name != "resize" || string(op.Args) != `{"enlarge":true,"fit":"cover","op":"resize","width":800}` {
		t.Fatalf("%+v %s %v", op, op.Args, err)
	}
	for _, bad := range []string{"", ":w=1", "resize:w", "resize:op=crop", "resize:w=1,w=2"} {
		if _, err := ParseOp(bad); err == nil {
			t.Errorf("ParseOp(%q) accepted it", bad)
		}
	}
}
