package settings

import (
	"bytes"
	"os"
	"path/filepath"
	"sync"
	"testing"
)

// Processes starting together on one data directory all end up with the one secret that won.
func TestDataSecretIsMadeOnceAndShared(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "data")
	const n = 8
	secrets := make([][]byte, n)
	created := make([]bool, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var err error
			if secrets[i], created[i], err = HexSecret(dir, "webhook-secret", "the webhook signing key"); err != nil {
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	makers := 0
	for i := range n {
		if !bytes.Equal(secrets[i], secrets[0]) {
			t.Fatalf("secret %d differs: %q vs %q", i, secrets[i], secrets[0])
		}
		if created[i] {
			makers++
		}
	}
	if makers != 1 || len(secrets[0]) != 64 {
		t.Fatalf("%d processes made the secret (want 1); it is %d characters (want 64)", makers, len(secrets[0]))
	}
	if fi, err := os.Stat(filepath.Join(dir, "webhook-secret")); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("secret file: %v, %v", fi, err)
	}
	again, made, err := HexSecret(dir, "webhook-secret", "the webhook signing key")
	if err != nil || made || !bytes.Equal(again, secrets[0]) {
		t.Fatalf("a later start read %q (made %v, %v), want the same secret", again, made, err)
	}
}

// A secret file too short to be one is replaced.
func TestDataSecretReplacesAShortOne(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "url-secret")
	if err := os.WriteFile(path, []byte("short"), 0o600); err != nil {
		t.Fatal(err)
	}
	s, made, err := HexSecret(dir, "url-secret", "the URL signing key")
	if err != nil || !made || len(s) != 64 {
		t.Fatalf("got %q (made %v, %v), want a new 64-character secret", s, made, err)
	}

}
