package imaged

import (
	"context"
	"time"
)

// APIKey is a client's credential. The key itself (imk_<prefix>_<secret>) is shown once when it
// is created; the store keeps only its prefix, to find the record, and a hash of its secret.
type APIKey struct {
	ID   string `json:"id"`
	Name string `json:"name"`
	// Tenant owns everything the key makes; "" when created is DefaultTenant.
	Tenant string `json:"tenant"`
	Prefix string `json:"prefix"`
	// Hash is the hex SHA-256 of the key's secret part. The secret is 256 random bits, so a
	// plain hash resists guessing as well as a slow one would.
	Hash  string `json:"-"`
	Admin bool   `json:"admin"`
	// RateLimit is the most requests per minute, Burst the most in any one second and
	// Concurrency the most at once; 0 means the server's default.
	RateLimit   int        `json:"rate_limit"`
	Burst       int        `json:"burst"`
	Concurrency int        `json:"concurrency"`
	CreatedAt   time.Time  `json:"created_at"`
	LastUsedAt  *time.Time `json:"last_used_at,omitempty"`
	RevokedAt   *time.Time `json:"revoked_at,omitempty"`
}

// Revoked reports whether the key has been revoked.
func (k *APIKey) Revoked() bool { return k.RevokedAt != nil }

// APIKeyStore keeps API keys.
type APIKeyStore interface {
	// CreateAPIKey records a key. It sets ID (when empty) and CreatedAt (when zero); EConflict
	// when a key with that prefix exists.
	CreateAPIKey(ctx context.Context, k *APIKey) error
	// CreateFirstAPIKey records k only when the store holds no key at all (revoked ones
	// included) and reports whether it did; several processes starting at once create one.
	CreateFirstAPIKey(ctx context.Context, k *APIKey) (bool, error)
	// APIKeyByPrefix returns the key with that prefix, revoked or not; ENotFound when absent.
	APIKeyByPrefix(ctx context.Context, prefix string) (*APIKey, error)
	// APIKeys returns every key, oldest first.
	APIKeys(ctx context.Context) ([]*APIKey, error)
	// RevokeAPIKey revokes the key with that id or prefix and returns it; revoking a revoked
	// key keeps its first revocation time. ENotFound when absent.
	RevokeAPIKey(ctx context.Context, idOrPrefix string) (*APIKey, error)
	// TouchAPIKey records that the key was used at t.
	TouchAPIKey(ctx context.Context, id string, t time.Time) error
}
