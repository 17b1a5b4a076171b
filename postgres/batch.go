package postgres

import (
	"context"

	"github.com/jackc/pgx/v5"

	"github.com/imaged/imaged"
	"github.com/imaged/imaged/sqlstore"
)

func scanBatch(row sqlstore.Scanner) (*imaged.Batch, error) {
	var b imaged.Batch
	err := row.Scan(sqlstore.BatchDest(&b, &b.CreatedAt)...)
	if err != nil {
		return nil, err
	}
	b.CreatedAt = b.CreatedAt.UTC()
	return &b, nil
}

// summarise reads the batch's tasks in creation order and sets its status and counts from
// them; counts and status come from the one query that reads the tasks, so they agree.
func summarise(ctx context.Context, q querier, b *imaged.Batch) ([]*imaged.Task, error) {
	tasks, err := queryAll(ctx, q, scanTask, `SELECT `+sqlstore.TaskColumns+` FROM tasks WHERE batch_id = $1 ORDER BY seq`, b.ID)
	if err != nil {
		return nil, err
	}
	imaged.SummariseBatch(b, tasks)
	return tasks, nil
}

// ListBatches returns one page of the tenant's batches, newest first, each with its status and
// counts, and the cursor of the next page, limited as ListTasks.
func (s *Store) ListBatches(ctx context.Context, f imaged.BatchFilter) ([]*imaged.Batch, string, error) {
	p, err := dialect.NewPage(f.Tenant, f.Cursor, f.Limit)
	if err != nil {
		return nil, "", err
	}
	ctx, cancel := s.command(ctx)
	defer cancel()
	var out []*imaged.Batch
	var next string
	// One repeatable-read transaction, so every batch agrees with its counts.
	err = pgx.BeginTxFunc(ctx, s.pool, pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly}, func(tx pgx.Tx) error {
		var err error
		out, err = queryAll(ctx, tx, scanBatch, p.Select(sqlstore.BatchColumns, `batches`), p.Args...)
		if err != nil {
			return err
		}
		out, next = sqlstore.Cut(p, out, sqlstore.BatchKey)
		for _, b := range out {
			if _, err := summarise(ctx, tx, b); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return nil, "", s.wrap(ctx, "list batches", err)
	}
	return out, next, nil
}
