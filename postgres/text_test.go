package postgres

import "testing"

func TestReplaceJSONNul(t *testing.T) {
	cases := []struct{ in, want string }{
		{`{"a":"x"}`, `{"a":"x"}`},
		{`{"a":"x\u0000y"}`, `{"a":"x\ufffdy"}`},
		{`{"a":"x\\u0000y"}`, `{"a":"x\\u0000y"}`},   // an escaped backslash, then text
		{`{"a":"x\\\u0000y"}`, `{"a":"x\\\ufffdy"}`}, // an escaped backslash, then a NUL
		{`["\u0000\u0000","\"\u0000"]`, `["\ufffd\ufffd","\"\ufffd"]`},
		{`{"a":"\u00001"}`, `{"a":"\ufffd1"}`},
	}
	for _, c := range cases {
		if got := string(replaceJSONNul([]byte(c.in))); got != c.want {
			t.Errorf("replaceJSONNul(%s) = %s, want %s", c.in, got, c.want)
		}
	}
}

func TestStorableText(t *testing.T) {
	if got := storableText("a\x00b\xffc"); got != "a\uFFFDb\uFFFDc" {
		t.Fatalf("storableText = %q", got)
	}
	if got := storableText("plain ünïcode"); got != "plain ünïcode" {
		t.Fatalf("storableText changed valid text: %q", got)
	}
}
