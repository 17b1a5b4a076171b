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

var _ imaged.Outbox = (*Store)(nil)

func scanOutbox(sc sqlstore.Scanner) (*imaged.OutboxItem, error) {
	var (
		o       imaged.OutboxItem
		payload string
	)
	err := sc.Scan(sqlstore.OutboxDest(&o, &payload, storedTime{&o.NextAttemptAt}, storedTime{&o.PendingSince},
		storedTimePtr{&o.DeliveredAt}, storedTime{&o.CreatedAt})...)
	if err != nil {
		return nil, err
	}
	o.Payload = []byte(payload)
	return &o, nil
}

// writeOutcome adds, in the transaction that made t terminal, the callbacks its outcome calls
// for. Writes are serialised in SQLite, so the count of a batch's unfinished tasks sees every
// other outcome.
func writeOutcome(ctx context.Context, tx *sql.Tx, t *imaged.Task) error {
	return dialect.WriteOutcome(sqlstore.Outcome{
		Row:    func(query string, args ...any) sqlstore.Scanner { return tx.QueryRowContext(ctx, query, args...) },
		NoRows: func(err error) bool { return errors.Is(err, sql.ErrNoRows) },
		Batch: func(id string) (*imaged.Batch, []*imaged.Task, error) {
			return loadBatch(ctx, tx, imaged.AnyTenant, id)
		},
		Exec: execIn(ctx, tx),
	}, t, now())
}

// execIn runs statements in q.
func execIn(ctx context.Context, q querier) func(query string, args ...any) error {
	return func(query string, args ...any) error {
		_, err := q.ExecContext(ctx, query, args...)
		return err
	}
}

// AddToOutbox records pending items; one whose WebhookID is stored already is skipped.
func (s *Store) AddToOutbox(ctx context.Context, items ...*imaged.OutboxItem) error {
	if err := s.inTx(ctx, func(tx *sql.Tx) error {
		return dialect.AddOutbox(execIn(ctx, tx), now(), items)
	}); err != nil {
		return fmt.Errorf("sqlite: add to outbox: %w", err)
	}
	return nil
}

// ClaimOutbox leases up to limit due pending items of kind in one conditional UPDATE …
// RETURNING (SQLite runs one writer at a time, so two claims never take one row) and returns
// them, oldest due first.
func (s *Store) ClaimOutbox(ctx context.Context, kind string, limit int, lease time.Duration) ([]*imaged.OutboxItem, error) {
	st := dialect.OutboxClaim(kind, limit, imaged.NewID(), now(), lease, "")
	items, err := queryAll(ctx, s.w, scanOutbox, st.SQL, st.Args...)
	if err != nil {
		return nil, fmt.Errorf("sqlite: claim outbox: %w", err)
	}
	sqlstore.SortClaimed(items)
	return items, nil
}

// FinishOutbox records the outcome of a try of a claimed item (a delivered event is deleted);
// EConflict when the claim was lost, ENotFound when the item is absent.
func (s *Store) FinishOutbox(ctx context.Context, id, claim string, o imaged.OutboxOutcome) error {
	st := dialect.OutboxFinish(id, claim, o, now())
	if o.Delivered {
		st = dialect.OutboxForget(id, claim)
		res, err := s.w.ExecContext(ctx, st.SQL, st.Args...)
		if err != nil {
			return fmt.Errorf("sqlite: finish outbox item: %w", err)
		}
		if n, _ := res.RowsAffected(); n == 1 {
			return nil
		}
		st = dialect.OutboxFinish(id, claim, o, now())
	}
	res, err := s.w.ExecContext(ctx, st.SQL, st.Args...)
	if err != nil {
		return fmt.Errorf("sqlite: finish outbox item: %w", err)
	}
	if n, _ := res.RowsAffected(); n == 1 {
		return nil
	}
	var kind string
	err = s.r.QueryRowContext(ctx, `SELECT kind FROM deliveries WHERE id = ?`, id).Scan(&kind)
	if errors.Is(err, sql.ErrNoRows) {
		return imaged.Errorf(imaged.ENotFound, "delivery %s not found", id)
	}
	if err != nil {
		return fmt.Errorf("sqlite: finish outbox item: %w", err)
	}
	return imaged.Errorf(imaged.EConflict, "delivery %s is no longer held by this claim", id)
}

// Deliveries returns the webhook deliveries of the tenant's task, oldest first.
func (s *Store) Deliveries(ctx context.Context, tenant, taskID string) ([]*imaged.OutboxItem, error) {
	st, err := dialect.OutboxOf(tenant, taskID)
	if err != nil {
		return nil, err
	}
	items, err := queryAll(ctx, s.r, scanOutbox, st.SQL, st.Args...)
	if err != nil {
		return nil, fmt.Errorf("sqlite: deliveries: %w", err)
	}
	return items, nil
}

// Delivery returns the tenant's webhook delivery; ENotFound when absent or another tenant's.
func (s *Store) Delivery(ctx context.Context, tenant, id string) (*imaged.OutboxItem, error) {
	st, err := dialect.OutboxOne(tenant, id)
	if err != nil {
		return nil, err
	}
	return s.oneDelivery(ctx, s.r, "delivery", id, st)
}

func (s *Store) oneDelivery(ctx context.Context, q querier, verb, id string, st sqlstore.Statement) (*imaged.OutboxItem, error) {
	o, err := scanOutbox(q.QueryRowContext(ctx, st.SQL, st.Args...))
	if errors.Is(err, sql.ErrNoRows) {
		return nil, imaged.Errorf(imaged.ENotFound, "delivery %s not found", id)
	}
	if err != nil {
		return nil, fmt.Errorf("sqlite: %s: %w", verb, err)
	}
	return o, nil
}

// Redeliver makes the tenant's webhook delivery pending and due now; ENotFound as Delivery.
func (s *Store) Redeliver(ctx context.Context, tenant, id string) (*imaged.OutboxItem, error) {
	st, err := dialect.OutboxRedeliver(tenant, id, now())
	if err != nil {
		return nil, err
	}
	return s.oneDelivery(ctx, s.w, "redeliver", id, st)
}

// OutboxBacklog returns, per kind with pending items, when the oldest became pending.
func (s *Store) OutboxBacklog(ctx context.Context) (map[string]time.Time, error) {
	rows, err := s.r.QueryContext(ctx, sqlstore.OutboxBacklog)
	if err != nil {
		return nil, fmt.Errorf("sqlite: outbox backlog: %w", err)
	}
	defer rows.Close()
	out := map[string]time.Time{}
	for rows.Next() {
		var kind string
		var since time.Time
		if err := rows.Scan(&kind, storedTime{&since}); err != nil {
			return nil, fmt.Errorf("sqlite: outbox backlog: %w", err)
		}
		out[kind] = since
	}
	return out, rows.Err()
}
