package postgres

import (
	"context"
	"errors"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/imaged/imaged"
	"github.com/imaged/imaged/sqlstore"
)

var _ imaged.APIKeyStore = (*Store)(nil)

// firstKeyLock serialises CreateFirstAPIKey across processes (a transaction-scoped advisory
// lock; the number is arbitrary but fixed).
const firstKeyLock = 0x696d6b5f6b6579

func prepareKey(k *imaged.APIKey) {
	if k.ID == "" {
		k.ID = imaged.NewOrderedID()
	}
	if k.Tenant == "" {
		k.Tenant = imaged.DefaultTenant
	}
}

func keyArgs(k *imaged.APIKey) []any {
	return []any{k.ID, k.Name, k.Prefix, k.Hash, k.Admin, k.RateLimit, k.Burst, k.Concurrency,
		timeArg(k.CreatedAt), timePtrArg(k.LastUsedAt), timePtrArg(k.RevokedAt), k.Tenant}
}

func timePtrArg(t *time.Time) any {
	if t == nil {
		return nil
	}
	return timeArg(*t)
}

const insertKey = `INSERT INTO api_keys (` + sqlstore.APIKeyColumns + `)
	VALUES ($1, $2, $3, $4, $5, $6, $7, $8, COALESCE($9::timestamptz, now()), $10, $11, $12)
	RETURNING created_at`

// CreateAPIKey records a key; EConflict when a key with that prefix exists.
func (s *Store) CreateAPIKey(ctx context.Context, k *imaged.APIKey) error {
	ctx, cancel := s.command(ctx)
	defer cancel()
	prepareKey(k)
	var created time.Time
	err := s.pool.QueryRow(ctx, insertKey, keyArgs(k)...).Scan(&created)
	if isUniqueViolation(err, "api_keys_prefix") || isUniqueViolation(err, "api_keys_pkey") {
		return imaged.WrapError(imaged.EConflict, err, "an API key with prefix %s already exists", k.Prefix)
	}
	if err != nil {
		return s.wrap(ctx, "create api key", err)
	}
	k.CreatedAt = created.UTC()
	return nil
}

// CreateFirstAPIKey records k only when no key exists. An advisory lock makes the check and the
// insert one step for every process sharing the database.
func (s *Store) CreateFirstAPIKey(ctx context.Context, k *imaged.APIKey) (bool, error) {
	ctx, cancel := s.command(ctx)
	defer cancel()
	prepareKey(k)
	created := false
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock($1)`, int64(firstKeyLock)); err != nil {
			return err
		}
		var exists bool
		if err := tx.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM api_keys)`).Scan(&exists); err != nil {
			return err
		}
		if exists {
			return nil
		}
		var at time.Time
		if err := tx.QueryRow(ctx, insertKey, keyArgs(k)...).Scan(&at); err != nil {
			return err
		}
		k.CreatedAt, created = at.UTC(), true
		return nil
	})
	if err != nil {
		return false, s.wrap(ctx, "create first api key", err)
	}
	return created, nil
}

func scanAPIKey(row sqlstore.Scanner) (*imaged.APIKey, error) {
	var k imaged.APIKey
	if err := row.Scan(sqlstore.APIKeyDest(&k, &k.CreatedAt, &k.LastUsedAt, &k.RevokedAt)...); err != nil {
		return nil, err
	}
	k.CreatedAt = k.CreatedAt.UTC()
	for _, p := range []*time.Time{k.LastUsedAt, k.RevokedAt} {
		if p != nil {
			*p = p.UTC()
		}
	}
	return &k, nil
}

// APIKeyByPrefix returns the key with that prefix; ENotFound when absent.
func (s *Store) APIKeyByPrefix(ctx context.Context, prefix string) (*imaged.APIKey, error) {
	ctx, cancel := s.command(ctx)
	defer cancel()
	k, err := scanAPIKey(s.pool.QueryRow(ctx, `SELECT `+sqlstore.APIKeyColumns+` FROM api_keys WHERE prefix = $1`, prefix))
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, imaged.Errorf(imaged.ENotFound, "no API key with prefix %s", imaged.EchoID(prefix))
	}
	if err != nil {
		return nil, s.wrap(ctx, "api key", err)
	}
	return k, nil
}

// APIKeys returns every key, oldest first.
func (s *Store) APIKeys(ctx context.Context) ([]*imaged.APIKey, error) {
	ctx, cancel := s.command(ctx)
	defer cancel()
	out, err := queryAll(ctx, s.pool, scanAPIKey, `SELECT `+sqlstore.APIKeyColumns+` FROM api_keys ORDER BY created_at, id`)
	if err != nil {
		return nil, s.wrap(ctx, "api keys", err)
	}
	return out, nil
}

// RevokeAPIKey revokes the key with that id or prefix; ENotFound when absent.
func (s *Store) RevokeAPIKey(ctx context.Context, idOrPrefix string) (*imaged.APIKey, error) {
	ctx, cancel := s.command(ctx)
	defer cancel()
	k, err := scanAPIKey(s.pool.QueryRow(ctx, `UPDATE api_keys SET revoked_at = COALESCE(revoked_at, now())
		WHERE id = $1 OR prefix = $1 RETURNING `+sqlstore.APIKeyColumns, idOrPrefix))
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, imaged.Errorf(imaged.ENotFound, "no API key with id or prefix %s", imaged.EchoID(idOrPrefix))
	}
	if err != nil {
		return nil, s.wrap(ctx, "revoke api key", err)
	}
	return k, nil
}

// TouchAPIKey records that the key was used at t.
func (s *Store) TouchAPIKey(ctx context.Context, id string, t time.Time) error {
	ctx, cancel := s.command(ctx)
	defer cancel()
	if _, err := s.pool.Exec(ctx, `UPDATE api_keys SET last_used_at = $2 WHERE id = $1`, id, timeArg(t)); err != nil {
		return s.wrap(ctx, "touch api key", err)
	}
	return nil
}
