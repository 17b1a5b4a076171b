package auth_test

import (
	"log/slog"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/imaged/imaged"
	"github.com/imaged/imaged/auth"
	"github.com/imaged/imaged/sqlite"
)

func openStore(t *testing.T) *sqlite.Store {
	t.Helper()
	s, err := sqlite.Open(t.Context(), filepath.Join(t.TempDir(), "imaged.db"), sqlite.OpenOptions{Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func TestGenerateParse(t *testing.T) {
	seen := map[string]bool{}
	for range 100 {
		token, prefix, hash, err := auth.Generate()
		if err != nil {
			t.Fatal(err)
		}
		if !strings.HasPrefix(token, "imk_"+prefix+"_") || len(prefix) != 8 || len(hash) != 64 {
			t.Fatalf("Generate() = %q, %q, %q", token, prefix, hash)
		}
		p, secret, ok := auth.Parse(token)
		if !ok || p != prefix || auth.Hash(secret) != hash {
			t.Fatalf("Parse(%q) = %q, %q, %v", token, p, secret, ok)
		}
		if seen[prefix] {
			t.Fatalf("prefix %s generated twice", prefix)
		}
		seen[prefix] = true
	}
	token, _, _, _ := auth.Generate()
	for _, bad := range []string{"", "imk_", "imk__", "abc", "Bearer " + token, token + "x", token[:len(token)-1],
		strings.Replace(token, "imk_", "imx_", 1), strings.ToUpper(token), token[:4] + "1" + token[5:],
		strings.Replace(token, "_", "-", 2)} {
		if _, _, ok := auth.Parse(bad); ok {
			t.Errorf("Parse(%q) accepted a malformed key", bad)
		}
	}
}

func TestAuthenticate(t *testing.T) {
	ctx := t.Context()
	store := openStore(t)
	svc := auth.New(store, auth.Options{TouchEvery: time.Millisecond})
	rec := &imaged.APIKey{Name: "ci", RateLimit: 10, Burst: 2}
	token, err := auth.Create(ctx, store, rec)
	if err != nil {
		t.Fatal(err)
	}
	k, err := svc.Authenticate(ctx, token)
	if err != nil || k.ID != rec.ID || k.RateLimit != 10 || k.Burst != 2 {
		t.Fatalf("Authenticate(valid) = %+v, %v", k, err)
	}
	prefix, _, _ := auth.Parse(token)
	other, _, _, _ := auth.Generate()
	_, otherSecret, _ := auth.Parse(other)
	for name, tok := range map[string]string{
		"empty":         "",
		"malformed":     "not-a-key",
		"unknown":       other,
		"wrong secret":  "imk_" + prefix + "_" + otherSecret,
		"truncated key": token[:len(token)-2],
	} {
		if _, err := svc.Authenticate(ctx, tok); imaged.ErrorCode(err) != imaged.EUnauthenticated {
			t.Errorf("Authenticate(%s) = %v, want unauthenticated", name, err)
		}
	}
	// The last use is recorded off the request path.
	deadline := time.Now().Add(5 * time.Second)
	for {
		got, _ := store.APIKeyByPrefix(ctx, prefix)
		if got != nil && got.LastUsedAt != nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("last use never recorded")
		}
		time.Sleep(10 * time.Millisecond)
	}
	if _, err := store.RevokeAPIKey(ctx, rec.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := svc.Authenticate(ctx, token); imaged.ErrorCode(err) != imaged.EUnauthenticated ||
		!strings.Contains(imaged.ErrorMessage(err), "revoked") {
		t.Fatalf("Authenticate(revoked) = %v", err)
	}
}

func TestStoreKeepsNoSecret(t *testing.T) {
	ctx := t.Context()
	store := openStore(t)
	token, err := auth.Create(ctx, store, &imaged.APIKey{Name: "x"})
	if err != nil {
		t.Fatal(err)
	}
	_, secret, _ := auth.Parse(token)
	keys, _ := store.APIKeys(ctx)
	if len(keys) != 1 || strings.Contains(keys[0].Hash, secret) || keys[0].Hash != auth.Hash(secret) {
		t.Fatalf("stored key %+v", keys[0])
	}
}

func TestBootstrap(t *testing.T) {
	ctx := t.Context()
	store := openStore(t)
	first, err := auth.Bootstrap(ctx, store, "")
	if err != nil || first == "" {
		t.Fatalf("Bootstrap on an empty store = %q, %v; want a new key", first, err)
	}
	svc := auth.New(store, auth.Options{})
	if k, err := svc.Authenticate(ctx, first); err != nil || !k.Admin {
		t.Fatalf("the bootstrap key: %+v, %v", k, err)
	}
	if again, err := auth.Bootstrap(ctx, store, ""); err != nil || again != "" {
		t.Fatalf("second Bootstrap = %q, %v; want nothing new", again, err)
	}

	given, _, _, _ := auth.Generate()
	for range 2 { // idempotent
		if shown, err := auth.Bootstrap(ctx, store, given); err != nil || shown != "" {
			t.Fatalf("Bootstrap(given) = %q, %v", shown, err)
		}
	}
	if _, err := svc.Authenticate(ctx, given); err != nil {
		t.Fatalf("a configured bootstrap key does not authenticate: %v", err)
	}
	if _, err := auth.Bootstrap(ctx, store, "imk_short_key"); err == nil {
		t.Fatal("Bootstrap accepted a malformed configured key")
	}
	prefix, _, _ := auth.Parse(given)
	_, otherSecret, _ := auth.Parse(first)
	if _, err := auth.Bootstrap(ctx, store, "imk_"+prefix+"_"+otherSecret); err == nil {
		t.Fatal("Bootstrap accepted a configured key whose prefix belongs to another key")
	}
}
