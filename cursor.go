package imaged

import (
	"bytes"
	"encoding/base64"
	"strings"
	"time"
	"unicode/utf8"
)

// cursorLayout is fixed width at the microsecond precision stores keep.
const cursorLayout = "2006-01-02T15:04:05.000000Z"

// EncodeCursor returns the opaque cursor of a list page that ends with the row created at
// created with that id: the next page holds the rows before it, newest first.
func EncodeCursor(created time.Time, id string) string {
	return base64.RawURLEncoding.EncodeToString([]byte(created.UTC().Format(cursorLayout) + " " + id))
}

// DecodeCursor reads a cursor EncodeCursor made; EInvalid naming the cursor field otherwise.
func DecodeCursor(c string) (created time.Time, id string, err error) {
	bad := FieldErrorf("cursor", "the cursor is not one this service issued")
	b, err := base64.RawURLEncoding.DecodeString(c)
	if err != nil || !utf8.Valid(b) || bytes.IndexByte(b, 0) >= 0 {
		return time.Time{}, "", bad
	}
	at, id, ok := strings.Cut(string(b), " ")
	if !ok || id == "" {
		return time.Time{}, "", bad
	}
	created, err = time.Parse(cursorLayout, at)
	if err != nil {
		return time.Time{}, "", bad
	}
	return created, id, nil
}
