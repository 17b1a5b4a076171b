package main

import (
	"os"
	"path/filepath"
	"testing"
)

// The signing key's file is never replaced: URLs signed with it would stop working.
func TestDamagedSigningKeyFileIsRefusedNotReplaced(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "signing-key"), []byte("damaged"), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg := &Config{DataDir: dir}
	if _, err := newSigner(cfg); err == nil {
		t.Fatal("a damaged signing key file was accepted")
	}
	if b, _ := os.ReadFile(filepath.Join(dir, "signing-key")); string(b) != "damaged" {
		t.Fatalf("the damaged signing key file was replaced by %q", b)
	}
}
