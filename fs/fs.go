// Package fs is the local-disk BlobStore, the embedded default (IMAGED_STORAGE_URL=file://…).
//
// An object is a plain file at root/<key>, so the data directory stays readable by people and
// tools. Its content type lives in a hidden sidecar beside it (".<name>.meta"). Writes go to a
// temp file under root/.tmp (the same file system, so the rename is atomic; one directory, so
// New cleans up after a crash without walking every object), are fsynced and renamed into
// place: readers see the whole old object or the whole new one. Key segments that start with
// "." are refused: that namespace belongs to the store's own files, which therefore can never
// be read as objects.
package fs

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io"
	iofs "io/fs"
	"mime"
	"net/url"
	"os"
	"path"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
	"unicode/utf8"

	"github.com/imaged/imaged"
)

const (
	tempDir    = ".tmp"
	metaSuffix = ".meta"

	// staleAfter is how old a temp file must be before New removes it: younger ones may
	// belong to a Put in flight in another process sharing the directory.
	staleAfter = 15 * time.Minute

	// maxKeyLen and maxSegmentLen keep every file the store makes (the segment plus the
	// temp or sidecar decoration) under the usual 255-byte name limit.
	maxKeyLen     = 1024
	maxSegmentLen = 200

	// DefaultURLExpiry applies when URL is asked for a non-positive expiry.
	DefaultURLExpiry = time.Hour
)

// Options configure a Store.
type Options struct {
	// BaseURL is the public address of the HTTP server that serves /v1/blobs/{key...};
	// together with Secret it enables URL.
	BaseURL string
	// Secret signs blob URLs (HMAC-SHA256). Keep it private and at least 32 bytes.
	Secret []byte
	// FromRequest makes URL use the address the request being served was sent to
	// (imaged.BaseURL of its context) when there is one, BaseURL otherwise: set it when no
	// public URL is configured and BaseURL is only a guess from the listen address.
	FromRequest bool
}

// Store keeps objects as files under a root directory.
type Store struct {
	root    string
	baseURL     string
	secret      []byte
	fromRequest bool

	// locks make the two renames of a Put one step for readers and writers of the same key in
	// this process. Across processes the sidecar's file identity check does the same job,
	// less cheaply.
	locks [64]sync.RWMutex
}

var _ imaged.BlobStore = (*Store)(nil)

// New opens (creating if needed) a store rooted at root and removes temp files that a crash
// left behind.
func New(root string, opts Options) (*Store, error) {
	if root == "" {
		return nil, imaged.Errorf(imaged.EInvalid, "blob directory is empty")
	}
	abs, err := filepath.Abs(root)
	if err != nil {
		return nil, imaged.WrapError(imaged.EInvalid, err, "blob directory %q", root)
	}
	if err := os.MkdirAll(filepath.Join(abs, tempDir), 0o755); err != nil {
		return nil, imaged.WrapError(imaged.EInternal, err, "creating blob directory %q", abs)
	}
	if (opts.BaseURL == "") != (len(opts.Secret) == 0) {
		return nil, imaged.Errorf(imaged.EInvalid, "blob URLs need both a base URL and a secret")
	}
	if opts.BaseURL != "" {
		u, err := url.Parse(opts.BaseURL)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return nil, imaged.Errorf(imaged.EInvalid, "blob base URL %q is not an http(s) URL", opts.BaseURL)
		}
	}
	s := &Store{
		root:    abs,
		baseURL: strings.TrimRight(opts.BaseURL, "/"),
		secret:  append([]byte(nil), opts.Secret...),

		fromRequest: opts.FromRequest,
	}
	if err := s.removeStale(time.Now().Add(-staleAfter)); err != nil {
		return nil, imaged.WrapError(imaged.EInternal, err, "cleaning blob directory %q", abs)
	}
	return s, nil
}

// Root returns the absolute directory the store keeps its files in.
func (s *Store) Root() string { return s.root }

// Put stores data under key atomically.
func (s *Store) Put(ctx context.Context, key string, data []byte, contentType string) error {
	p, err := s.path(key)
	if err != nil {
		return err
	}
	if err := ctx.Err(); err != nil {
		return imaged.WrapError(imaged.EUnavailable, err, "storing %s", key)
	}
	if contentType == "" {
		contentType = "application/octet-stream"
	}
	dir, name := filepath.Split(p)
	if fi, err := os.Lstat(p); err == nil && fi.IsDir() {
		return imaged.Errorf(imaged.EConflict, "storing %s: other objects lie under this key", key)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		if errors.Is(err, syscall.ENOTDIR) || errors.Is(err, syscall.EEXIST) {
			return imaged.WrapError(imaged.EConflict, err, "storing %s: a prefix of this key is an object", key)
		}
		return fileError(err, "storing %s", key)
	}

	tmp := filepath.Join(s.root, tempDir)
	dataTmp, err := writeTemp(tmp, data)
	if err != nil {
		return fileError(err, "storing %s", key)
	}
	defer os.Remove(dataTmp) // no-op once renamed
	id, err := fileIDOf(dataTmp)
	if err != nil {
		return fileError(err, "storing %s", key)
	}
	meta, err := json.Marshal(sidecar{ContentType: contentType, File: id})
	if err != nil {
		return imaged.WrapError(imaged.EInternal, err, "storing %s", key)
	}
	metaTmp, err := writeTemp(tmp, meta)
	if err != nil {
		return fileError(err, "storing %s", key)
	}
	defer os.Remove(metaTmp)
	if err := ctx.Err(); err != nil {
		return imaged.WrapError(imaged.EUnavailable, err, "storing %s", key)
	}

	// Sidecar first: a reader that opens the new data file finds its sidecar already there.
	// A reader that still holds the old file sees a sidecar naming another file and retries.
	mu := s.lock(key)
	mu.Lock()
	err = os.Rename(metaTmp, filepath.Join(dir, metaName(name)))
	if err == nil {
		err = os.Rename(dataTmp, p)
	}
	mu.Unlock()
	if err != nil {
		return fileError(err, "storing %s", key)
	}
	return syncDir(dir)
}

// Get opens the object under key.
func (s *Store) Get(ctx context.Context, key string) (io.ReadCloser, *imaged.BlobInfo, error) {
	p, err := s.path(key)
	if err != nil {
		return nil, nil, err
	}
	if err := ctx.Err(); err != nil {
		return nil, nil, imaged.WrapError(imaged.EUnavailable, err, "reading %s", key)
	}
	mu := s.lock(key)
	for attempt := 0; ; attempt++ {
		mu.RLock()
		f, info, ok, err := s.open(p, key)
		mu.RUnlock()
		if err != nil {
			return nil, nil, err // not f: a nil *os.File would make a non-nil io.ReadCloser
		}
		if ok || attempt >= 3 {
			return f, info, nil
		}
		// Another process is between its two renames: the next open sees a matching pair.
		f.Close()
		time.Sleep(time.Millisecond)
	}
}

// open opens the object file and reports whether its sidecar belongs to it.
func (s *Store) open(p, key string) (*os.File, *imaged.BlobInfo, bool, error) {
	f, err := os.Open(p)
	if err != nil {
		return nil, nil, false, fileError(err, "reading %s", key)
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, nil, false, fileError(err, "reading %s", key)
	}
	if !fi.Mode().IsRegular() {
		f.Close()
		return nil, nil, false, notFound(key)
	}
	ct, ok := s.contentType(p, fi)
	return f, &imaged.BlobInfo{Key: key, Size: fi.Size(), ContentType: ct, ModTime: fi.ModTime()}, ok, nil
}

// Head describes the object under key.
func (s *Store) Head(ctx context.Context, key string) (*imaged.BlobInfo, error) {
	p, err := s.path(key)
	if err != nil {
		return nil, err
	}
	if err := ctx.Err(); err != nil {
		return nil, imaged.WrapError(imaged.EUnavailable, err, "describing %s", key)
	}
	mu := s.lock(key)
	for attempt := 0; ; attempt++ {
		mu.RLock()
		fi, err := os.Stat(p)
		var ct string
		var ok bool
		if err == nil && fi.Mode().IsRegular() {
			ct, ok = s.contentType(p, fi)
		}
		mu.RUnlock()
		if err != nil {
			return nil, fileError(err, "describing %s", key)
		}
		if !fi.Mode().IsRegular() {
			return nil, notFound(key)
		}
		if ok || attempt >= 3 {
			return &imaged.BlobInfo{Key: key, Size: fi.Size(), ContentType: ct, ModTime: fi.ModTime()}, nil
		}
		time.Sleep(time.Millisecond)
	}
}

// Delete removes the object under key; a missing key is not an error. Emptied directories
// are left in place: removing them would race with a Put into the same directory.
func (s *Store) Delete(ctx context.Context, key string) error {
	p, err := s.path(key)
	if err != nil {
		return err
	}
	if err := ctx.Err(); err != nil {
		return imaged.WrapError(imaged.EUnavailable, err, "deleting %s", key)
	}
	fi, err := os.Lstat(p)
	switch {
	case isNotFound(err):
		return nil
	case err != nil:
		return fileError(err, "deleting %s", key)
	case !fi.Mode().IsRegular():
		return nil // a directory of other objects, not an object
	}
	mu := s.lock(key)
	mu.Lock()
	err = os.Remove(p)
	if err == nil || isNotFound(err) {
		err = os.Remove(filepath.Join(filepath.Dir(p), metaName(filepath.Base(p))))
	}
	mu.Unlock()
	if err != nil && !isNotFound(err) {
		return fileError(err, "deleting %s", key)
	}
	return nil
}

// URL returns a signed URL for the HTTP server's /v1/blobs/{key...} route, or "" when the
// store was opened without a base URL and secret.
func (s *Store) URL(ctx context.Context, key string, expiry time.Duration) (string, error) {
	if _, err := s.path(key); err != nil {
		return "", err
	}
	if s.baseURL == "" || len(s.secret) == 0 {
		return "", nil
	}
	base := s.baseURL
	if b := imaged.BaseURL(ctx); s.fromRequest && b != "" {
		base = strings.TrimRight(b, "/")
	}
	if expiry <= 0 {
		expiry = DefaultURLExpiry
	}
	expires := time.Now().Add(expiry).Unix()
	segs := strings.Split(key, "/")
	for i, seg := range segs {
		segs[i] = url.PathEscape(seg)
	}
	q := url.Values{}
	q.Set("expires", strconv.FormatInt(expires, 10))
	q.Set("sig", s.sign(key, expires))
	return base + "/v1/blobs/" + strings.Join(segs, "/") + "?" + q.Encode(), nil
}

// Verify reports whether sig is this store's signature of key and expires, and expires is
// still ahead of now. key is the decoded path after /v1/blobs/.
func (s *Store) Verify(key string, expires int64, sig string, now time.Time) bool {
	if len(s.secret) == 0 || now.Unix() >= expires {
		return false
	}
	got, err := hex.DecodeString(sig)
	if err != nil {
		return false
	}
	want, _ := hex.DecodeString(s.sign(key, expires))
	return hmac.Equal(got, want)
}

// Ping checks that the root directory is still there and writable.
func (s *Store) Ping(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return imaged.WrapError(imaged.EUnavailable, err, "checking blob directory")
	}
	f, err := os.CreateTemp(filepath.Join(s.root, tempDir), "ping-")
	if err != nil {
		return imaged.WrapError(imaged.EUnavailable, err, "blob directory %s is not writable", s.root)
	}
	f.Close()
	os.Remove(f.Name())
	return nil
}

func (s *Store) sign(key string, expires int64) string {
	m := hmac.New(sha256.New, s.secret)
	m.Write([]byte(key + "\n" + strconv.FormatInt(expires, 10)))
	return hex.EncodeToString(m.Sum(nil))
}

func (s *Store) lock(key string) *sync.RWMutex {
	h := uint32(2166136261) // FNV-1a: cheap and spreads similar keys
	for i := 0; i < len(key); i++ {
		h = (h ^ uint32(key[i])) * 16777619
	}
	return &s.locks[h%uint32(len(s.locks))]
}

// path validates key and maps it to a file under the root.
func (s *Store) path(key string) (string, error) {
	if err := ValidateKey(key); err != nil {
		return "", err
	}
	return filepath.Join(s.root, filepath.FromSlash(key)), nil
}

// ValidateKey reports whether key may name an object: relative, slash-separated, without
// empty, "." or ".." segments, backslashes, NUL bytes, or segments starting with "."
// (reserved for the store's own files).
func ValidateKey(key string) error {
	switch {
	case key == "":
		return imaged.FieldErrorf("key", "blob key is empty")
	case len(key) > maxKeyLen:
		return imaged.FieldErrorf("key", "blob key is longer than %d bytes", maxKeyLen)
	case !utf8.ValidString(key):
		return imaged.FieldErrorf("key", "blob key is not valid UTF-8")
	case strings.HasPrefix(key, "/"):
		return imaged.FieldErrorf("key", "blob key %q is an absolute path", key)
	case strings.ContainsAny(key, "\\\x00"):
		return imaged.FieldErrorf("key", "blob key %q contains a backslash or NUL byte", key)
	}
	for seg := range strings.SplitSeq(key, "/") {
		switch {
		case seg == "":
			return imaged.FieldErrorf("key", "blob key %q has an empty segment", key)
		case seg == "." || seg == "..":
			return imaged.FieldErrorf("key", "blob key %q has a %q segment", key, seg)
		case strings.HasPrefix(seg, "."):
			return imaged.FieldErrorf("key", "blob key %q has a segment starting with \".\"", key)
		case len(seg) > maxSegmentLen:
			return imaged.FieldErrorf("key", "blob key %q has a segment longer than %d bytes", key, maxSegmentLen)
		}
	}
	return nil
}

// sidecar is the stored metadata of one object. File identifies the data file it was
// written with, so a reader can tell a sidecar that belongs to a newer or older version.
type sidecar struct {
	ContentType string `json:"content_type"`
	File        string `json:"file,omitempty"`
}

// contentType returns the object's content type and whether its sidecar matched the data
// file fi describes. Without a matching sidecar (a writer mid-rename, or files copied in by
// hand) it falls back to the type the extension suggests.
func (s *Store) contentType(p string, fi os.FileInfo) (string, bool) {
	b, err := os.ReadFile(filepath.Join(filepath.Dir(p), metaName(filepath.Base(p))))
	if err == nil {
		var m sidecar
		if json.Unmarshal(b, &m) == nil && m.ContentType != "" && (m.File == "" || m.File == fileID(fi)) {
			return m.ContentType, true
		}
	}
	ok := isNotFound(err) // no sidecar at all is final; a mismatched one is worth a retry
	if ct := mime.TypeByExtension(path.Ext(p)); ct != "" {
		return ct, ok
	}
	return "application/octet-stream", ok
}

// removeStale deletes temp files last touched before cutoff: what a crash in the middle of a
// Put leaves behind.
func (s *Store) removeStale(cutoff time.Time) error {
	dir := filepath.Join(s.root, tempDir)
	entries, err := os.ReadDir(dir)
	if err != nil {
		return err
	}
	for _, e := range entries {
		fi, err := e.Info()
		if err != nil || !fi.Mode().IsRegular() || fi.ModTime().After(cutoff) {
			continue
		}
		if err := os.Remove(filepath.Join(dir, e.Name())); err != nil && !isNotFound(err) {
			return err
		}
	}
	return nil
}

func metaName(name string) string { return "." + name + metaSuffix }

// writeTemp writes data to a new temp file in dir and fsyncs it.
func writeTemp(dir string, data []byte) (string, error) {
	f, err := os.CreateTemp(dir, "put-")
	if err != nil {
		return "", err
	}
	_, err = f.Write(data)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		os.Remove(f.Name())
		return "", err
	}
	// CreateTemp makes 0600 files; objects are as readable as any other file the service writes.
	if err := os.Chmod(f.Name(), 0o644); err != nil {
		os.Remove(f.Name())
		return "", err
	}
	return f.Name(), nil
}

// syncDir makes the renames in dir durable.
func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return fileError(err, "syncing %s", dir)
	}
	defer d.Close()
	if err := d.Sync(); err != nil && !errors.Is(err, syscall.EINVAL) && !errors.Is(err, errors.ErrUnsupported) {
		return fileError(err, "syncing %s", dir)
	}
	return nil
}

func fileIDOf(p string) (string, error) {
	fi, err := os.Stat(p)
	if err != nil {
		return "", err
	}
	return fileID(fi), nil
}

func isNotFound(err error) bool {
	// ENOTDIR: a segment of the key is an object, so nothing can lie below it.
	return errors.Is(err, iofs.ErrNotExist) || errors.Is(err, syscall.ENOTDIR)
}

func notFound(key string) error {
	return imaged.Errorf(imaged.ENotFound, "blob %s not found", key)
}

// fileError maps a file-system error to a domain error.
func fileError(err error, format string, args ...any) error {
	switch {
	case isNotFound(err):
		e := imaged.WrapError(imaged.ENotFound, err, format, args...)
		e.Message += ": not found"
		return e
	case errors.Is(err, syscall.ENOSPC), errors.Is(err, syscall.EDQUOT):
		return imaged.WrapError(imaged.EUnavailable, err, format+": disk full", args...)
	case errors.Is(err, syscall.EISDIR), errors.Is(err, syscall.EEXIST), errors.Is(err, syscall.ENOTEMPTY):
		return imaged.WrapError(imaged.EConflict, err, format+": a key prefix and an object clash", args...)
	}
	return imaged.WrapError(imaged.EInternal, err, format, args...)
}
