package settings

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
)

// FileSecret returns the secret kept in the file name of the data directory dir, made first
// when the file is absent, or when valid (if not nil) refuses it: size random bytes, written as
// format puts them. A new file is linked into place, so of several processes starting together
// exactly one secret wins and all of them read it; created reports whether it was this one's.
// what names the secret in errors.
func FileSecret(dir, name, what string, size int, format func([]byte) string, valid func([]byte) bool) (secret []byte, created bool, err error) {
	path := filepath.Join(dir, name)
	b, err := os.ReadFile(path)
	if err == nil && (valid == nil || valid(b)) {
		return b, false, nil
	}
	refused := err == nil
	k := make([]byte, size)
	if _, err := rand.Read(k); err != nil {
		return nil, false, err
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, false, fmt.Errorf("setting IMAGED_DATA_DIR: %w", err)
	}
	tmp, err := os.CreateTemp(dir, "."+name+"-")
	if err != nil {
		return nil, false, fmt.Errorf("writing %s: %w", what, err)
	}
	defer os.Remove(tmp.Name())
	_, err = tmp.WriteString(format(k))
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		if err = os.Chmod(tmp.Name(), 0o600); err == nil {
			if refused {
				err = os.Rename(tmp.Name(), path)
			} else {
				err = os.Link(tmp.Name(), path)
			}
		}
	}
	if err != nil && !errors.Is(err, os.ErrExist) {
		return nil, false, fmt.Errorf("writing %s: %w", what, err)
	}
	created = err == nil
	if b, err = os.ReadFile(path); err != nil {
		return nil, false, fmt.Errorf("reading %s: %w", what, err)
	}
	return b, created, nil
}

// HexSecret is a secret of at least 32 characters: size random bytes in hex.
func HexSecret(dir, name, what string) ([]byte, bool, error) {
	return FileSecret(dir, name, what, 32, hex.EncodeToString, func(b []byte) bool { return len(b) >= 32 })
}
