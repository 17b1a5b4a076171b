package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/imaged/imaged"
	"github.com/imaged/imaged/sqlstore"
)

var _ imaged.APIKeyStore = (*Store)(nil)

func keyArgs(k *imaged.APIKey) []any {
	return []any{k.ID, k.Name, k.Prefix, k.Hash, k.Admin, k.RateLimit, k.Burst, k.Concurrency,
		formatTime(k.CreatedAt), formatTimePtr(k.LastUsedAt), formatTimePtr(k.RevokedAt), k.Tenant}
}

// CreateAPIKey records a key; EConflict when a key with that prefix exists.
func (s *Store) CreateAPIKey(ctx context.Context, k *imaged.APIKey) error {
	stamp(&k.ID, &k.Tenant, &k.CreatedAt)
	_, err := s.w.ExecContext(ctx, `INSERT INTO api_keys (`+sqlstore.APIKeyColumns+`) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
		keyArgs(k)...)
	if isConstraint(err) {
		return imaged.WrapError(imaged.EConflict, err, "an API key with prefix %s already exists", k.Prefix)
	}
	if err != nil {
		return fmt.Errorf("sqlite: create api key: %w", err)
	}
	return nil
}

// CreateFirstAPIKey records k only when no key exists. The single writer connection makes the
// check and the insert one step.
func (s *Store) CreateFirstAPIKey(ctx context.Context, k *imaged.APIKey) (bool, error) {
	stamp(&k.ID, &k.Tenant, &k.CreatedAt)
	res, err := s.w.ExecContext(ctx, `INSERT INTO api_keys (`+sqlstore.APIKeyColumns+`)
		SELECT ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ? WHERE NOT EXISTS (SELECT 1 FROM api_keys)`, keyArgs(k)...)
	if err != nil {
		return false, fmt.Errorf("sqlite: create first api key: %w", err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return false, fmt.Errorf("sqlite: create first api key: %w", err)
	}
	return n == 1, nil
}

func scanAPIKey(row sqlstore.Scanner) (*imaged.APIKey, error) {
	var k imaged.APIKey
	err := row.Scan(sqlstore.APIKeyDest(&k, storedTime{&k.CreatedAt}, storedTimePtr{&k.LastUsedAt}, storedTimePtr{&k.RevokedAt})...)
	if err != nil {
		return nil, err
	}
	return &k, nil
}

// APIKeyByPrefix returns the key with that prefix; ENotFound when absent.
func (s *Store) APIKeyByPrefix(ctx context.Context, prefix string) (*imaged.APIKey, error) {
	k, err := scanAPIKey(s.r.QueryRowContext(ctx, `SELECT `+sqlstore.APIKeyColumns+` FROM api_keys WHERE prefix = ?`, prefix))
	if errors.Is(err, sql.ErrNoRows) {
		return nil, imaged.Errorf(imaged.ENotFound, "no API key with prefix %s", imaged.EchoID(prefix))
	}
	if err != nil {
		return nil, fmt.Errorf("sqlite: api key: %w", err)
	}
	return k, nil
}

// APIKeys returns every key, oldest first.
func (s *Store) APIKeys(ctx context.Context) ([]*imaged.APIKey, error) {
	out, err := queryAll(ctx, s.r, scanAPIKey, `SELECT `+sqlstore.APIKeyColumns+` FROM api_keys ORDER BY created_at, id`)
	if err != nil {
		return nil, fmt.Errorf("sqlite: api keys: %w", err)
	}
	return out, nil
}

// RevokeAPIKey revokes the key with that id or prefix; ENotFound when absent.
func (s *Store) RevokeAPIKey(ctx context.Context, idOrPrefix string) (*imaged.APIKey, error) {
	k, err := scanAPIKey(s.w.QueryRowContext(ctx, `UPDATE api_keys SET revoked_at = COALESCE(revoked_at, ?)
		WHERE id = ? OR prefix = ? RETURNING `+sqlstore.APIKeyColumns, formatTime(now()), idOrPrefix, idOrPrefix))
	if errors.Is(err, sql.ErrNoRows) {
		return nil, imaged.Errorf(imaged.ENotFound, "no API key with id or prefix %s", imaged.EchoID(idOrPrefix))
	}
	if err != nil {
		return nil, fmt.Errorf("sqlite: revoke api key: %w", err)
	}
	return k, nil
}

// TouchAPIKey records that the key was used at t.
func (s *Store) TouchAPIKey(ctx context.Context, id string, t time.Time) error {
	if _, err := s.w.ExecContext(ctx, `UPDATE api_keys SET last_used_at = ? WHERE id = ?`, formatTime(t), id); err != nil {
		return fmt.Errorf("sqlite: touch api key: %w", err)
	}
	return nil
}
