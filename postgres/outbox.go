package postgres

import (
	"context"
	"errors"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/imaged/imaged"
	"github.com/imaged/imaged/sqlstore"
)

var _ imaged.Outbox = (*Store)(nil)

// skipLocked makes concurrent claims of the outbox pass each other's rows by.
const skipLocked = ` FOR UPDATE SKIP LOCKED`

func scanOutbox(sc sqlstore.Scanner) (*imaged.OutboxItem, error) {
	var (
		o         imaged.OutboxItem
		payload   string
		delivered *time.Time
	)
	err := sc.Scan(sqlstore.OutboxDest(&o, &payload, &o.NextAttemptAt, &o.PendingSince, &delivered, &o.CreatedAt)...)
	if err != nil {
		return nil, err
	}
	o.Payload = []byte(payload)
	o.NextAttemptAt, o.PendingSince, o.CreatedAt = o.NextAttemptAt.UTC(), o.PendingSince.UTC(), o.CreatedAt.UTC()
	o.DeliveredAt = utc(delivered)
	return &o, nil
}

// writeOutcome adds, in the transaction that made t terminal, the callbacks its outcome calls
// for. The batch's row is locked before its unfinished tasks are counted (see sqlstore.Outcome).
func writeOutcome(ctx context.Context, tx pgx.Tx, t *imaged.Task) error {
	return dialect.WriteOutcome(sqlstore.Outcome{
		Row:    func(query string, args ...any) sqlstore.Scanner { return tx.QueryRow(ctx, query, args...) },
		NoRows: func(err error) bool { return errors.Is(err, pgx.ErrNoRows) },
		Lock:   ` FOR UPDATE`,
		Batch: func(id string) (*imaged.Batch, []*imaged.Task, error) {
			return loadBatch(ctx, tx, imaged.AnyTenant, id)
		},
		Exec: execIn(ctx, tx),
	}, t, time.Now())
}

// execIn runs statements in q.
func execIn(ctx context.Context, q querier) func(query string, args ...any) error {
	return func(query string, args ...any) error {
		_, err := q.Exec(ctx, query, args...)
		return err
	}
}

// AddToOutbox records pending items; one whose WebhookID is stored already is skipped.
func (s *Store) AddToOutbox(ctx context.Context, items ...*imaged.OutboxItem) error {
	ctx, cancel := s.command(ctx)
	defer cancel()
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		return dialect.AddOutbox(execIn(ctx, tx), time.Now(), items)
	})
	return s.wrap(ctx, "add to outbox", err)
}

// ClaimOutbox leases up to limit due pending items of kind, skipping rows another claim has
// locked, and returns them, oldest first.
func (s *Store) ClaimOutbox(ctx context.Context, kind string, limit int, lease time.Duration) ([]*imaged.OutboxItem, error) {
	ctx, cancel := s.command(ctx)
	defer cancel()
	st := dialect.OutboxClaim(kind, limit, imaged.NewID(), time.Now(), lease, skipLocked)
	items, err := queryAll(ctx, s.pool, scanOutbox, st.SQL, st.Args...)
	if err != nil {
		return nil, s.wrap(ctx, "claim outbox", err)
	}
	sqlstore.SortClaimed(items)
	return items, nil
}

// FinishOutbox records the outcome of a try of a claimed item (a delivered event is deleted);
// EConflict when the claim was lost, ENotFound when the item is absent.
func (s *Store) FinishOutbox(ctx context.Context, id, claim string, o imaged.OutboxOutcome) error {
	ctx, cancel := s.command(ctx)
	defer cancel()
	if o.Delivered {
		st := dialect.OutboxForget(id, claim)
		tag, err := s.pool.Exec(ctx, st.SQL, st.Args...)
		if err != nil {
			return s.wrap(ctx, "finish outbox item", err)
		}
		if tag.RowsAffected() == 1 {
			return nil
		}
	}
	st := dialect.OutboxFinish(id, claim, o, time.Now())
	tag, err := s.pool.Exec(ctx, st.SQL, st.Args...)
	if err != nil {
		return s.wrap(ctx, "finish outbox item", err)
	}
	if tag.RowsAffected() == 1 {
		return nil
	}
	var kind string
	err = s.pool.QueryRow(ctx, `SELECT kind FROM deliveries WHERE id = $1`, id).Scan(&kind)
	if errors.Is(err, pgx.ErrNoRows) {
		return imaged.Errorf(imaged.ENotFound, "delivery %s not found", id)
	}
	if err != nil {
		return s.wrap(ctx, "finish outbox item", err)
	}
	return imaged.Errorf(imaged.EConflict, "delivery %s is no longer held by this claim", id)
}

// Deliveries returns the webhook deliveries of the tenant's task, oldest first.
func (s *Store) Deliveries(ctx context.Context, tenant, taskID string) ([]*imaged.OutboxItem, error) {
	st, err := dialect.OutboxOf(tenant, taskID)
	if err != nil {
		return nil, err
	}
	ctx, cancel := s.command(ctx)
	defer cancel()
	items, err := queryAll(ctx, s.pool, scanOutbox, st.SQL, st.Args...)
	if err != nil {
		return nil, s.wrap(ctx, "deliveries", err)
	}
	return items, nil
}

// Delivery returns the tenant's webhook delivery; ENotFound when absent or another tenant's.
func (s *Store) Delivery(ctx context.Context, tenant, id string) (*imaged.OutboxItem, error) {
	st, err := dialect.OutboxOne(tenant, id)
	if err != nil {
		return nil, err
	}
	return s.oneDelivery(ctx, "delivery", id, st)
}

func (s *Store) oneDelivery(ctx context.Context, verb, id string, st sqlstore.Statement) (*imaged.OutboxItem, error) {
	ctx, cancel := s.command(ctx)
	defer cancel()
	o, err := scanOutbox(s.pool.QueryRow(ctx, st.SQL, st.Args...))
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, imaged.Errorf(imaged.ENotFound, "delivery %s not found", id)
	}
	if err != nil {
		return nil, s.wrap(ctx, verb, err)
	}
	return o, nil
}

// Redeliver makes the tenant's webhook delivery pending and due now; ENotFound as Delivery.
func (s *Store) Redeliver(ctx context.Context, tenant, id string) (*imaged.OutboxItem, error) {
	st, err := dialect.OutboxRedeliver(tenant, id, time.Now())
	if err != nil {
		return nil, err
	}
	return s.oneDelivery(ctx, "redeliver", id, st)
}

// OutboxBacklog returns, per kind with pending items, when the oldest became pending.
func (s *Store) OutboxBacklog(ctx context.Context) (map[string]time.Time, error) {
	ctx, cancel := s.command(ctx)
	defer cancel()
	rows, err := s.pool.Query(ctx, sqlstore.OutboxBacklog)
	if err != nil {
		return nil, s.wrap(ctx, "outbox backlog", err)
	}
	defer rows.Close()
	out := map[string]time.Time{}
	for rows.Next() {
		var kind string
		var since time.Time
		if err := rows.Scan(&kind, &since); err != nil {
			return nil, s.wrap(ctx, "outbox backlog", err)
		}
		out[kind] = since.UTC()
	}
	return out, s.wrap(ctx, "outbox backlog", rows.Err())
}
