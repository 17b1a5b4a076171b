package imaged

import (
	"strings"
	"testing"
)

func mustOps(t *testing.T, js string) []Op {
	t.Helper()
	ops, err := ParseOps([]byte(js))
	if err != nil {
		t.Fatal(err)
	}
	return ops
}

// A pipeline's key ignores how its JSON was written and changes with everything that changes
// the output.
func TestOutputCacheKey(t *testing.T) {
	const ops = `[{"op":"resize","width":800,"height":600},{"op":"convert","format":"webp","quality":80}]`
	key := func(tenant, content, js, negotiated, engine string) string {
		t.Helper()
		k, err := OutputCacheKey(tenant, content, mustOps(t, js), negotiated, engine)
		if err != nil {
			t.Fatal(err)
		}
		return k
	}
	base := key("a", "sum", ops, "", "v1")
	if len(base) != 64 || strings.Trim(base, "0123456789abcdef") != "" {
		t.Fatalf("key %q is not a hex SHA-256", base)
	}
	same := key("a", "sum", ` [ {"height":600.0, "width":8e2, "op":"RESIZE"}, {"quality":80,"format":"webp","op":"convert"} ] `, "", "v1")
	if same != base {
		t.Error("the same pipeline spelt otherwise has another key")
	}
	for name, other := range map[string]string{
		"tenant":     key("b", "sum", ops, "", "v1"),
		"content":    key("a", "sum2", ops, "", "v1"),
		"pipeline":   key("a", "sum", `[{"op":"resize","width":801,"height":600},{"op":"convert","format":"webp","quality":80}]`, "", "v1"),
		"op order":   key("a", "sum", `[{"op":"convert","format":"webp","quality":80},{"op":"resize","width":800,"height":600}]`, "", "v1"),
		"negotiated": key("a", "sum", ops, "image/avif", "v1"),
		"engine":     key("a", "sum", ops, "", "v2"),
		// Length prefixes: moving a character from one part to the next is another key.
		"boundary": key("as", "um", ops, "", "v1"),
	} {
		if other == base {
			t.Errorf("another %s gives the same key", name)
		}
	}
}

func TestCachedOutputBlobKey(t *testing.T) {
	for tenant, want := range map[string]string{
		"default":               "cache/default/k",
		"acme_Co-1":             "cache/acme_Co-1/k",
		"..":                    "cache/~",
		"a/b":                   "cache/~",
		".hidden":               "cache/~",
		strings.Repeat("x", 65): "cache/~",
	} {
		got := CachedOutputBlobKey(tenant, "k")
		if !strings.HasPrefix(got, want) || strings.Count(got, "/") != 2 || !strings.HasSuffix(got, "/k") {
			t.Errorf("CachedOutputBlobKey(%q) = %q, want %s…/k", tenant, got, want)
		}
	}
	if CachedOutputBlobKey("a/b", "k") == CachedOutputBlobKey("a:b", "k") {
		t.Error("two tenants share a directory")
	}
}
