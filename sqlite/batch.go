package sqlite

import (
	"context"
	"database/sql"
	"fmt"

	"github.com/imaged/imaged"
	"github.com/imaged/imaged/sqlstore"
)

// ListBatches returns one page of the tenant's batches, newest first, each with its status and
// counts, and the cursor of the next page, limited as ListTasks.
func (s *Store) ListBatches(ctx context.Context, f imaged.BatchFilter) ([]*imaged.Batch, string, error) {
	p, err := dialect.NewPage(f.Tenant, f.Cursor, f.Limit)
	if err != nil {
		return nil, "", err
	}
	// One read transaction, so every batch agrees with its counts.
	tx, err := s.r.BeginTx(ctx, &sql.TxOptions{ReadOnly: true})
	if err != nil {
		return nil, "", fmt.Errorf("sqlite: list batches: %w", err)
	}
	defer tx.Rollback()
	out, err := queryAll(ctx, tx, scanBatch, p.Select(sqlstore.BatchColumns, `batches`), p.Args...)
	if err != nil {
		return nil, "", fmt.Errorf("sqlite: list batches: %w", err)
	}
	out, next := sqlstore.Cut(p, out, sqlstore.BatchKey)
	for _, b := range out {
		if _, err := summarise(ctx, tx, b); err != nil {
			return nil, "", fmt.Errorf("sqlite: list batches: %w", err)
		}
	}
	return out, next, nil
}
