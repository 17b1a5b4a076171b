// Package auth issues and checks imaged's API keys. A key reads imk_<prefix>_<secret>: the
// prefix finds the record, the secret (256 random bits) is checked against the SHA-256 kept in
// the store. The key itself is shown once, when it is made, and never stored.
package auth

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base32"
	"encoding/hex"
	"errors"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/imaged/imaged"
)

// TokenPrefix starts every key, so that keys are easy to recognise (and to find in leaked text).
const TokenPrefix = "imk_"

const (
	prefixBytes = 5  // 8 base32 characters
	secretBytes = 32 // 52 base32 characters
)

var encoding = base32.NewEncoding("abcdefghijklmnopqrstuvwxyz234567").WithPadding(base32.NoPadding)

// Generate returns a new key and the prefix and secret hash the store keeps of it.
func Generate() (token, prefix, hash string, err error) {
	b := make([]byte, prefixBytes+secretBytes)
	if _, err := rand.Read(b); err != nil {
		return "", "", "", err
	}
	prefix = encoding.EncodeToString(b[:prefixBytes])
	secret := encoding.EncodeToString(b[prefixBytes:])
	return TokenPrefix + prefix + "_" + secret, prefix, Hash(secret), nil
}

// Parse splits a key into its prefix and secret; ok is false when it is not shaped like one.
func Parse(token string) (prefix, secret string, ok bool) {
	rest, found := strings.CutPrefix(token, TokenPrefix)
	if !found {
		return "", "", false
	}
	prefix, secret, found = strings.Cut(rest, "_")
	if !found || len(prefix) != encoding.EncodedLen(prefixBytes) || len(secret) != encoding.EncodedLen(secretBytes) {
		return "", "", false
	}
	if _, err := encoding.DecodeString(prefix); err != nil {
		return "", "", false
	}
	if _, err := encoding.DecodeString(secret); err != nil {
		return "", "", false
	}
	return prefix, secret, true
}

// Hash is what the store keeps of a secret: its hex SHA-256.
func Hash(secret string) string {
	sum := sha256.Sum256([]byte(secret))
	return hex.EncodeToString(sum[:])
}

// Options tune a Service.
type Options struct {
	// TouchEvery is how often a key's last use is written back at most; default 1 minute.
	TouchEvery time.Duration
	Log        *slog.Logger
}

// Service authenticates requests against the keys in a store.
type Service struct {
	store      imaged.APIKeyStore
	touchEvery time.Duration
	log        *slog.Logger

	mu      sync.Mutex
	touched map[string]time.Time
}

// New returns a Service over store.
func New(store imaged.APIKeyStore, opts Options) *Service {
	if opts.TouchEvery <= 0 {
		opts.TouchEvery = time.Minute
	}
	if opts.Log == nil {
		opts.Log = slog.Default()
	}
	return &Service{store: store, touchEvery: opts.TouchEvery, log: opts.Log, touched: map[string]time.Time{}}
}

// errInvalid is the one answer for a key that is malformed, unknown or wrong, so that a caller
// learns nothing about which.
var errInvalid = imaged.Errorf(imaged.EUnauthenticated, "the API key is not valid")

// Authenticate returns the record of a valid, unrevoked key. EUnauthenticated when the key is
// malformed, unknown, wrong or revoked; EUnavailable when the store does not answer.
func (s *Service) Authenticate(ctx context.Context, token string) (*imaged.APIKey, error) {
	prefix, secret, ok := Parse(token)
	if !ok {
		return nil, errInvalid
	}
	k, err := s.store.APIKeyByPrefix(ctx, prefix)
	if imaged.IsCode(err, imaged.ENotFound) {
		return nil, errInvalid
	}
	if err != nil {
		if imaged.ErrorCode(err) == imaged.EInternal {
			err = imaged.WrapError(imaged.EUnavailable, err, "API keys cannot be checked right now")
		}
		return nil, err
	}
	if subtle.ConstantTimeCompare([]byte(Hash(secret)), []byte(k.Hash)) != 1 {
		return nil, errInvalid
	}
	if k.Revoked() {
		return nil, imaged.Errorf(imaged.EUnauthenticated, "the API key has been revoked")
	}
	s.touch(ctx, k)
	return k, nil
}

// touch records the key's use, at most once per TouchEvery and off the request's path.
func (s *Service) touch(ctx context.Context, k *imaged.APIKey) {
	now := time.Now().UTC()
	s.mu.Lock()
	if last, ok := s.touched[k.ID]; ok && now.Sub(last) < s.touchEvery {
		s.mu.Unlock()
		return
	}
	s.touched[k.ID] = now
	s.mu.Unlock()
	go func() {
		tctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer cancel()
		if err := s.store.TouchAPIKey(tctx, k.ID, now); err != nil {
			s.log.WarnContext(ctx, "recording an API key's last use failed", "key_prefix", k.Prefix, "error", err.Error())
		}
	}()
}

// Create makes a key and records it; the returned token is the only copy of the key.
func Create(ctx context.Context, store imaged.APIKeyStore, k *imaged.APIKey) (string, error) {
	token, prefix, hash, err := Generate()
	if err != nil {
		return "", err
	}
	k.Prefix, k.Hash = prefix, hash
	if err := store.CreateAPIKey(ctx, k); err != nil {
		return "", err
	}
	return token, nil
}

// Bootstrap makes sure a service that requires keys can be used from its first start. With a
// configured key (given), it records that key as an admin key unless it exists; otherwise, when
// the store holds no key at all, it creates an admin key and returns it, for the caller to show
// once. It returns "" when nothing new is to be shown.
func Bootstrap(ctx context.Context, store imaged.APIKeyStore, given string) (string, error) {
	if given != "" {
		prefix, secret, ok := Parse(given)
		if !ok {
			return "", errors.New("the configured key is not an imaged API key (imk_<prefix>_<secret>; make one with `imaged apikey create`)")
		}
		k, err := store.APIKeyByPrefix(ctx, prefix)
		if err == nil {
			if subtle.ConstantTimeCompare([]byte(Hash(secret)), []byte(k.Hash)) != 1 {
				return "", errors.New("the configured key's prefix belongs to another key")
			}
			return "", nil
		}
		if !imaged.IsCode(err, imaged.ENotFound) {
			return "", err
		}
		err = store.CreateAPIKey(ctx, &imaged.APIKey{Name: "bootstrap", Prefix: prefix, Hash: Hash(secret), Admin: true})
		if err != nil && !imaged.IsCode(err, imaged.EConflict) { // another process won the race
			return "", err
		}
		return "", nil
	}
	token, prefix, hash, err := Generate()
	if err != nil {
		return "", err
	}
	created, err := store.CreateFirstAPIKey(ctx, &imaged.APIKey{Name: "admin", Prefix: prefix, Hash: hash, Admin: true})
	if err != nil || !created {
		return "", err
	}
	return token, nil
}
