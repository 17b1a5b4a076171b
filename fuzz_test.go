package imaged

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

// FuzzProbe holds upload validation to its promises on any input: it never panics, and what it
// accepts has the format its magic bytes say, a size within the limits and a whole file end.
// Seeds: testdata/fuzz/FuzzProbe, plus the first bytes of the sample images.
func FuzzProbe(f *testing.F) {
	for _, name := range []string{"chelsea.png", "coffee.png", "astronaut.jpg"} {
		if b, err := os.ReadFile(filepath.Join("testdata", name)); err == nil {
			f.Add(b[:min(len(b), 4096)])
		}
	}
	lim := Limits{MaxBytes: 1 << 20, MaxWidth: 5000, MaxHeight: 5000}
	f.Fuzz(func(t *testing.T, b []byte) {
		h, err := Probe(b, lim)
		if err != nil {
			if ErrorCode(err) == EInternal {
				t.Fatalf("Probe failed without a domain error: %v", err)
			}
			return
		}
		if h.Format != SniffFormat(b) || h.Format == "" || h.Format == "avif" {
			t.Fatalf("Probe accepted %q, magic bytes say %q", h.Format, SniffFormat(b))
		}
		if h.Width <= 0 || h.Height <= 0 || h.Width > lim.MaxWidth || h.Height > lim.MaxHeight {
			t.Fatalf("Probe accepted a %d×%d image against %d×%d", h.Width, h.Height, lim.MaxWidth, lim.MaxHeight)
		}
		if int64(len(b)) > lim.MaxBytes {
			t.Fatalf("Probe accepted %d bytes against %d", len(b), lim.MaxBytes)
		}
	})
}

// FuzzParseOps holds the ops parser to its shape rules on any input: it never panics, errors
// are invalid_argument, and what it accepts is 1..MaxOps named ops that survive a round trip.
func FuzzParseOps(f *testing.F) {
	for _, s := range []string{
		`[{"op":"resize","width":800,"height":600,"fit":"inside"},{"op":"blur","sigma":2},{"op":"convert","format":"webp","quality":80}]`,
		`[{"op":"ocr","lang":["eng"]},{"op":"detect","model":"yolo"}]`,
		`[]`, `{}`, `[{}]`, `[{"op":""}]`, `[{"op":null}]`, `[1]`, `[{"op":"X","op":"y"}]`, `null`, ` [ {"op" : "info"} ] `,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		ops, err := ParseOps(b)
		if err != nil {
			if ErrorCode(err) != EInvalid {
				t.Fatalf("ParseOps error %v is not invalid_argument", err)
			}
			return
		}
		if len(ops) == 0 || len(ops) > MaxOps {
			t.Fatalf("ParseOps accepted %d ops", len(ops))
		}
		for _, o := range ops {
			if o.Name == "" || o.Name != strings.ToLower(o.Name) {
				t.Fatalf("ParseOps accepted op name %q", o.Name)
			}
		}
		again, err := json.Marshal(ops)
		if err != nil {
			t.Fatalf("accepted ops do not marshal: %v", err)
		}
		ops2, err := ParseOps(again)
		if err != nil || len(ops2) != len(ops) {
			t.Fatalf("accepted ops do not parse again: %v", err)
		}
		for i := range ops {
			if ops[i].Name != ops2[i].Name || !reflect.DeepEqual(decode(t, ops[i].Args), decode(t, ops2[i].Args)) {
				t.Fatalf("op %d changed in a round trip: %s → %s", i, ops[i].Args, ops2[i].Args)
			}
		}
	})
}

// decode reads JSON with exact numbers, so that equal values compare equal however they were
// written ("&" and "\u0026" alike).
func decode(t *testing.T, b []byte) any {
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		t.Fatalf("accepted op %s is not valid JSON: %v", b, err)
	}
	return v
}
