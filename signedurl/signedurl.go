// Package signedurl signs and reads imaged's delivery URLs, which a CDN can fetch without an API
// key because the signature authorises exactly one pipeline over one image:
//
//	/i/{signature}/{op}/{op}/…/{image_id}
//
// Each op is one path segment, its name then, after a colon, comma-separated parameters:
//
//	resize:w=800,h=600,fit=cover/blur:s=2/convert:f=webp,q=80
//
// A parameter is key=value. Keys are the op's JSON parameter names or the short forms w (width),
// h (height), q (quality), f (format), g (gravity), s (sigma), a (angle) and bg (background).
// A value that is a number becomes a JSON number, true and false become booleans, a value with
// semicolons becomes a list (bg=255;255;255), and anything else a string. Segments are
// percent-decoded after the signature is checked. The output format is the convert op's;
// convert:f=auto picks it from the request's Accept header. No op at all serves the original.
//
// The signature is HMAC-SHA256 over the salt followed by the path after the signature segment,
// exactly as sent (percent-encoding included, leading slash included), in unpadded base64url.
// Several key/salt pairs may verify, for rotation; the first signs.
package signedurl

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"strconv"
	"strings"

	"github.com/imaged/imaged"
	"github.com/imaged/imaged/settings"
)

// Prefix is the route of signed URLs.
const Prefix = "/i/"

// MaxPath bounds the length of a signed path.
const MaxPath = 2048

// Key is one signing key with its salt.
type Key struct {
	Key  []byte
	Salt []byte
}

// Signer signs with its first key and verifies with any.
type Signer struct {
	keys []Key
}

// New returns a Signer; at least one key is needed and every key must be 32 bytes or more.
func New(keys []Key) (*Signer, error) {
	if len(keys) == 0 {
		return nil, errors.New("no signing key")
	}
	for i, k := range keys {
		if len(k.Key) < 32 {
			return nil, fmt.Errorf("signing key %d is %d bytes; use 32 or more", i+1, len(k.Key))
		}
	}
	return &Signer{keys: keys}, nil
}

// ParseKeys reads comma-separated hex keys and salts, paired by position. Salts may be absent
// (empty) but, when given, there must be one per key.
func ParseKeys(keys, salts string) ([]Key, error) {
	ks := settings.List(keys)
	ss := settings.List(salts)
	if len(ss) != 0 && len(ss) != len(ks) {
		return nil, fmt.Errorf("%d keys but %d salts; give one salt per key", len(ks), len(ss))
	}
	out := make([]Key, len(ks))
	for i, k := range ks {
		b, err := hex.DecodeString(k)
		if err != nil {
			return nil, fmt.Errorf("key %d is not hex", i+1)
		}
		out[i].Key = b
		if len(ss) > 0 {
			if out[i].Salt, err = hex.DecodeString(ss[i]); err != nil {
				return nil, fmt.Errorf("salt %d is not hex", i+1)
			}
		}
	}
	return out, nil
}

func mac(k Key, path string) []byte {
	h := hmac.New(sha256.New, k.Key)
	h.Write(k.Salt)
	h.Write([]byte(path))
	return h.Sum(nil)
}

// Sign returns the signature of path (the part after the signature segment, leading slash
// included).
func (s *Signer) Sign(path string) string {
	return base64.RawURLEncoding.EncodeToString(mac(s.keys[0], path))
}

// Verify reports whether sig is the signature of path under any of the keys.
func (s *Signer) Verify(sig, path string) bool {
	got, err := base64.RawURLEncoding.DecodeString(sig)
	if err != nil || len(got) != sha256.Size {
		return false
	}
	ok := false
	for _, k := range s.keys {
		if hmac.Equal(got, mac(k, path)) {
			ok = true
		}
	}
	return ok
}

// URL returns the signed URL path of path ("resize:w=800/<image_id>" or with a leading slash).
func (s *Signer) URL(path string) string {
	path = "/" + strings.TrimPrefix(path, "/")
	return strings.TrimSuffix(Prefix, "/") + "/" + s.Sign(path) + path
}

// Split takes a request path (/i/{signature}/…) apart into the signature and the signed path.
func Split(requestPath string) (sig, path string, ok bool) {
	rest, found := strings.CutPrefix(requestPath, Prefix)
	if !found {
		return "", "", false
	}
	sig, path, found = strings.Cut(rest, "/")
	if !found || sig == "" {
		return "", "", false
	}
	return sig, "/" + path, true
}

// Request is what a signed path asks for.
type Request struct {
	Ops     []imaged.Op // empty: the original
	ImageID string
}

var aliases = map[string]string{
	"w": "width", "h": "height", "q": "quality", "f": "format", "g": "gravity",
	"s": "sigma", "a": "angle", "bg": "background",
}

// Parse reads a signed path ("/op/op/…/image_id", percent-encoded as sent). Errors are
// EInvalid and name the segment at fault.
func Parse(path string) (*Request, error) {
	if len(path) > MaxPath {
		return nil, imaged.Errorf(imaged.EInvalid, "the path is over %d characters", MaxPath)
	}
	segs := strings.Split(strings.TrimPrefix(path, "/"), "/")
	if len(segs) > imaged.MaxOps+1 {
		return nil, imaged.Errorf(imaged.EInvalid, "the path holds more than %d operations", imaged.MaxOps)
	}
	id, err := url.PathUnescape(segs[len(segs)-1])
	if err != nil || !validID(id) {
		return nil, imaged.Errorf(imaged.EInvalid, "the path must end with an image id")
	}
	req := &Request{ImageID: id}
	if len(segs) == 1 {
		return req, nil
	}
	var list bytes.Buffer
	list.WriteByte('[')
	for i, seg := range segs[:len(segs)-1] {
		seg, err := url.PathUnescape(seg)
		if err != nil {
			return nil, imaged.Errorf(imaged.EInvalid, "operation %d is not validly percent-encoded", i+1)
		}
		obj, err := parseOp(seg)
		if err != nil {
			return nil, imaged.Errorf(imaged.EInvalid, "operation %d (%.40q): %s", i+1, seg, err.Error())
		}
		if i > 0 {
			list.WriteByte(',')
		}
		list.Write(obj)
	}
	list.WriteByte(']')
	ops, err := imaged.ParseOps(list.Bytes())
	if err != nil {
		return nil, err
	}
	req.Ops = ops
	return req, nil
}

// ParseOp reads one op written as a path segment is, "name:k=v,k=v" (already percent-decoded),
// with the short parameter names and the value rules of the package comment. The command line's
// --op takes this syntax, so an op reads the same in a signed URL and in a shell.
func ParseOp(seg string) (imaged.Op, error) {
	obj, err := parseOp(seg)
	if err != nil {
		return imaged.Op{}, err
	}
	var op imaged.Op
	if err := json.Unmarshal(obj, &op); err != nil {
		return imaged.Op{}, err
	}
	return op, nil
}

// parseOp turns "name:k=v,k=v" into the JSON object of the op.
func parseOp(seg string) ([]byte, error) {
	name, params, _ := strings.Cut(seg, ":")
	if !validName(name) {
		return nil, errors.New("an operation starts with its name (letters, digits and _)")
	}
	obj := map[string]any{"op": name}
	if params != "" {
		for _, p := range strings.Split(params, ",") {
			k, v, found := strings.Cut(p, "=")
			if !found || !validName(k) {
				return nil, errors.New("parameters are key=value, separated by commas")
			}
			if full, ok := aliases[k]; ok {
				k = full
			}
			if k == "op" {
				return nil, errors.New(`"op" is not a parameter`)
			}
			if _, dup := obj[k]; dup {
				return nil, fmt.Errorf("the parameter %s is given twice", k)
			}
			obj[k] = value(v)
		}
	}
	return json.Marshal(obj)
}

func value(v string) any {
	if strings.Contains(v, ";") {
		parts := strings.Split(v, ";")
		list := make([]any, len(parts))
		for i, p := range parts {
			list[i] = scalar(p)
		}
		return list
	}
	return scalar(v)
}

func scalar(v string) any {
	switch v {
	case "true":
		return true
	case "false":
		return false
	}
	if n, err := strconv.ParseFloat(v, 64); err == nil && isPlainNumber(v) {
		return json.Number(strconv.FormatFloat(n, 'f', -1, 64))
	}
	return v
}

// isPlainNumber accepts decimal numbers only (no hex, no exponent, no Inf or NaN).
func isPlainNumber(v string) bool {
	v = strings.TrimPrefix(v, "-")
	if v == "" || v[0] == '.' || v[len(v)-1] == '.' {
		return false
	}
	dot := false
	for _, c := range v {
		switch {
		case c == '.' && !dot:
			dot = true
		case c < '0' || c > '9':
			return false
		}
	}
	return true
}

// validName is an op or parameter name: letters, digits and underscores, at most 32.
func validName(s string) bool { return validToken(s, 32, "_") }

// validID is an image id: letters, digits, '-' and '_', at most 64.
func validID(s string) bool { return validToken(s, 64, "-_") }

func validToken(s string, max int, extra string) bool {
	if s == "" || len(s) > max {
		return false
	}
	for _, c := range s {
		if !((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || strings.ContainsRune(extra, c)) {
			return false
		}
	}
	return true
}
