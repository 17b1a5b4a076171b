package storetest

import (
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/imaged/imaged"
)

// RunAPIKeys runs the contract of imaged.APIKeyStore. open is called once per subtest and must
// return a new, empty store.
func RunAPIKeys(t *testing.T, open func(t *testing.T) imaged.APIKeyStore) {
	tests := []struct {
		name string
		fn   func(t *testing.T, s imaged.APIKeyStore)
	}{
		{"CreateAndFind", testKeyCreateAndFind},
		{"PrefixIsUnique", testKeyPrefixIsUnique},
		{"List", testKeyList},
		{"Revoke", testKeyRevoke},
		{"Touch", testKeyTouch},
		{"FirstKeyOnce", testFirstKeyOnce},
		{"FirstKeyNotAfterRevoked", testFirstKeyNotAfterRevoked},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) { tc.fn(t, open(t)) })
	}
}

func newKey(name, prefix string) *imaged.APIKey {
	return &imaged.APIKey{Name: name, Prefix: prefix, Hash: fmt.Sprintf("%064x", len(prefix)+len(name))}
}

func testKeyCreateAndFind(t *testing.T, s imaged.APIKeyStore) {
	ctx := t.Context()
	k := newKey("ci", "abcd1234")
	k.RateLimit, k.Burst, k.Concurrency, k.Admin = 120, 7, 3, true
	if err := s.CreateAPIKey(ctx, k); err != nil {
		t.Fatalf("CreateAPIKey: %v", err)
	}
	if k.ID == "" || k.CreatedAt.IsZero() {
		t.Fatalf("CreateAPIKey did not set ID and CreatedAt: %+v", k)
	}
	got, err := s.APIKeyByPrefix(ctx, "abcd1234")
	if err != nil {
		t.Fatalf("APIKeyByPrefix: %v", err)
	}
	if got.ID != k.ID || got.Name != "ci" || got.Hash != k.Hash || got.RateLimit != 120 || got.Burst != 7 ||
		got.Concurrency != 3 || !got.Admin || got.Revoked() || got.LastUsedAt != nil {
		t.Fatalf("APIKeyByPrefix = %+v, want %+v", got, k)
	}
	if !got.CreatedAt.Equal(k.CreatedAt) || got.CreatedAt.Location() != time.UTC {
		t.Fatalf("CreatedAt = %v, want %v in UTC", got.CreatedAt, k.CreatedAt)
	}
	if _, err := s.APIKeyByPrefix(ctx, "zzzz0000"); imaged.ErrorCode(err) != imaged.ENotFound {
		t.Fatalf("APIKeyByPrefix(absent) = %v, want not_found", err)
	}
}

func testKeyPrefixIsUnique(t *testing.T, s imaged.APIKeyStore) {
	ctx := t.Context()
	if err := s.CreateAPIKey(ctx, newKey("a", "same0000")); err != nil {
		t.Fatal(err)
	}
	if err := s.CreateAPIKey(ctx, newKey("b", "same0000")); imaged.ErrorCode(err) != imaged.EConflict {
		t.Fatalf("second key with one prefix: %v, want conflict", err)
	}
}

func testKeyList(t *testing.T, s imaged.APIKeyStore) {
	ctx := t.Context()
	keys, err := s.APIKeys(ctx)
	if err != nil || len(keys) != 0 {
		t.Fatalf("APIKeys of an empty store = %v, %v", keys, err)
	}
	base := time.Now().UTC().Add(-time.Hour)
	for i := range 3 {
		k := newKey(fmt.Sprintf("k%d", i), fmt.Sprintf("pref%04d", i))
		k.CreatedAt = base.Add(time.Duration(i) * time.Minute)
		if err := s.CreateAPIKey(ctx, k); err != nil {
			t.Fatal(err)
		}
	}
	keys, err = s.APIKeys(ctx)
	if err != nil || len(keys) != 3 {
		t.Fatalf("APIKeys = %d keys, %v; want 3", len(keys), err)
	}
	for i, k := range keys {
		if k.Name != fmt.Sprintf("k%d", i) {
			t.Fatalf("APIKeys[%d] = %s, want oldest first", i, k.Name)
		}
	}
}

func testKeyRevoke(t *testing.T, s imaged.APIKeyStore) {
	ctx := t.Context()
	a, b := newKey("a", "revokeaa"), newKey("b", "revokebb")
	for _, k := range []*imaged.APIKey{a, b} {
		if err := s.CreateAPIKey(ctx, k); err != nil {
			t.Fatal(err)
		}
	}
	got, err := s.RevokeAPIKey(ctx, a.ID)
	if err != nil || !got.Revoked() || got.ID != a.ID {
		t.Fatalf("RevokeAPIKey(id) = %+v, %v", got, err)
	}
	first := *got.RevokedAt
	again, err := s.RevokeAPIKey(ctx, "revokeaa")
	if err != nil || !again.RevokedAt.Equal(first) {
		t.Fatalf("revoking twice = %+v, %v; want the first time %v kept", again, err, first)
	}
	if got, err := s.RevokeAPIKey(ctx, "revokebb"); err != nil || got.ID != b.ID || !got.Revoked() {
		t.Fatalf("RevokeAPIKey(prefix) = %+v, %v", got, err)
	}
	if k, _ := s.APIKeyByPrefix(ctx, "revokeaa"); k == nil || !k.Revoked() {
		t.Fatalf("a revoked key reads back as %+v", k)
	}
	if _, err := s.RevokeAPIKey(ctx, "nothing0"); imaged.ErrorCode(err) != imaged.ENotFound {
		t.Fatalf("RevokeAPIKey(absent) = %v, want not_found", err)
	}
}

func testKeyTouch(t *testing.T, s imaged.APIKeyStore) {
	ctx := t.Context()
	k := newKey("a", "touch000")
	if err := s.CreateAPIKey(ctx, k); err != nil {
		t.Fatal(err)
	}
	at := time.Date(2030, 1, 2, 3, 4, 5, 6000, time.UTC)
	if err := s.TouchAPIKey(ctx, k.ID, at); err != nil {
		t.Fatal(err)
	}
	got, err := s.APIKeyByPrefix(ctx, "touch000")
	if err != nil || got.LastUsedAt == nil || !got.LastUsedAt.Equal(at) {
		t.Fatalf("LastUsedAt = %v (%v), want %v", got.LastUsedAt, err, at)
	}
}

func testFirstKeyOnce(t *testing.T, s imaged.APIKeyStore) {
	ctx := t.Context()
	var wg sync.WaitGroup
	created := make([]bool, 8)
	errs := make([]error, 8)
	for i := range created {
		wg.Add(1)
		go func() {
			defer wg.Done()
			created[i], errs[i] = s.CreateFirstAPIKey(ctx, newKey("admin", fmt.Sprintf("first%03d", i)))
		}()
	}
	wg.Wait()
	n := 0
	for i := range created {
		if errs[i] != nil {
			t.Fatalf("CreateFirstAPIKey: %v", errs[i])
		}
		if created[i] {
			n++
		}
	}
	keys, err := s.APIKeys(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if n != 1 || len(keys) != 1 {
		t.Fatalf("8 concurrent CreateFirstAPIKey created %d (store holds %d), want exactly 1", n, len(keys))
	}
}

func testFirstKeyNotAfterRevoked(t *testing.T, s imaged.APIKeyStore) {
	ctx := t.Context()
	k := newKey("old", "old00000")
	if err := s.CreateAPIKey(ctx, k); err != nil {
		t.Fatal(err)
	}
	if _, err := s.RevokeAPIKey(ctx, k.ID); err != nil {
		t.Fatal(err)
	}
	ok, err := s.CreateFirstAPIKey(ctx, newKey("new", "new00000"))
	if err != nil || ok {
		t.Fatalf("CreateFirstAPIKey with only a revoked key present = %v, %v; want false", ok, err)
	}
}
