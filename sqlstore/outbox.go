package sqlstore

import (
	"slices"
	"strings"
	"time"

	"github.com/imaged/imaged"
)

// OutboxColumns is what every query of the outbox (the deliveries table) selects or returns,
// in the order of OutboxDest.
const OutboxColumns = `id, tenant, kind, event, COALESCE(task_id, ''), COALESCE(batch_id, ''), url, webhook_id,
	payload, correlation_id, status, attempts, next_attempt_at, claim, last_error, last_status, pending_since,
	delivered_at, created_at`

// OutboxDest is where a row of OutboxColumns goes; the times go to destinations of the
// store's own.
func OutboxDest(o *imaged.OutboxItem, payload, next, since, delivered, created any) []any {
	return []any{&o.ID, &o.Tenant, &o.Kind, &o.Event, &o.TaskID, &o.BatchID, &o.URL, &o.WebhookID, payload,
		&o.CorrelationID, &o.Status, &o.Attempts, next, &o.Claim, &o.LastError, &o.LastStatus, since, delivered, created}
}

// Statement is one SQL statement with its arguments.
type Statement struct {
	SQL  string
	Args []any
}

// args numbers arguments in a dialect's placeholders as they are added.
type args struct {
	d    Dialect
	list []any
}

func (a *args) add(v any) string {
	a.list = append(a.list, v)
	return a.d.Placeholder(len(a.list))
}

func (a *args) time(t time.Time) string {
	return a.add(a.d.CursorTime(t.UTC().Truncate(time.Microsecond))) + a.d.TimeCast
}

func nullable(s string) any {
	if s == "" {
		return nil
	}
	return s
}

// OutboxInsert is the statement adding item as pending at now (skipped when its WebhookID is
// stored already). It fills the item's ID, Status and times.
func (d Dialect) OutboxInsert(item *imaged.OutboxItem, now time.Time) Statement {
	now = now.UTC().Truncate(time.Microsecond)
	if item.ID == "" {
		item.ID = imaged.NewOrderedID()
	}
	if item.WebhookID == "" {
		item.WebhookID = "msg_" + item.ID
	}
	item.Status, item.Attempts, item.NextAttemptAt, item.PendingSince, item.CreatedAt =
		imaged.DeliveryPending, 0, now, now, now
	a := &args{d: d}
	sql := `INSERT INTO deliveries (id, tenant, kind, event, task_id, batch_id, url, webhook_id, payload,
		correlation_id, next_attempt_at, pending_since, created_at)
		VALUES (` + a.add(item.ID) + `, ` + a.add(item.Tenant) + `, ` + a.add(item.Kind) + `, ` + a.add(item.Event) + `, ` +
		a.add(nullable(item.TaskID)) + `, ` + a.add(nullable(item.BatchID)) + `, ` + a.add(item.URL) + `, ` +
		a.add(item.WebhookID) + `, ` + a.add(string(item.Payload)) + `, ` + a.add(item.CorrelationID) + `, ` +
		a.time(now) + `, ` + a.time(now) + `, ` + a.time(now) + `)
		ON CONFLICT (webhook_id) DO NOTHING`
	return Statement{SQL: sql, Args: a.list}
}

// OutboxClaim is the statement leasing up to limit due pending items of kind to claim until
// now+lease; lock is what follows the choice of rows (FOR UPDATE SKIP LOCKED where the
// database has it), so that concurrent claims pass each other's rows by.
func (d Dialect) OutboxClaim(kind string, limit int, claim string, now time.Time, lease time.Duration, lock string) Statement {
	a := &args{d: d}
	sql := `UPDATE deliveries SET claim = ` + a.add(claim) + `, attempts = attempts + 1, next_attempt_at = ` + a.time(now.Add(lease)) + `
		WHERE id IN (SELECT id FROM deliveries WHERE status = 'pending' AND kind = ` + a.add(kind) + `
			AND next_attempt_at <= ` + a.time(now) + ` ORDER BY next_attempt_at LIMIT ` + a.add(limit) + lock + `)
		RETURNING ` + OutboxColumns
	return Statement{SQL: sql, Args: a.list}
}

// OutboxForget is the statement deleting a delivered event held by claim.
func (d Dialect) OutboxForget(id, claim string) Statement {
	a := &args{d: d}
	return Statement{SQL: `DELETE FROM deliveries WHERE id = ` + a.add(id) + ` AND claim = ` + a.add(claim) +
		` AND kind = '` + imaged.OutboxEvent + `'`, Args: a.list}
}

// OutboxFinish is the statement recording the outcome o, at now, of a try of the item id held
// by claim, and releasing the claim.
func (d Dialect) OutboxFinish(id, claim string, o imaged.OutboxOutcome, now time.Time) Statement {
	a := &args{d: d}
	status, next := imaged.DeliveryPending, o.NextAttemptAt
	var delivered any
	switch {
	case o.Delivered:
		status, next = imaged.DeliveryDelivered, now
		delivered = d.CursorTime(now.UTC().Truncate(time.Microsecond))
	case o.GiveUp:
		status, next = imaged.DeliveryFailed, now
	}
	sql := `UPDATE deliveries SET status = ` + a.add(status) + `, delivered_at = ` + a.add(delivered) + d.TimeCast +
		`, next_attempt_at = ` + a.time(next) + `, last_status = ` + a.add(o.StatusCode) + `, last_error = ` + a.add(o.Error) +
		`, claim = '' WHERE id = ` + a.add(id) + ` AND claim = ` + a.add(claim)
	return Statement{SQL: sql, Args: a.list}
}

// OutboxOf is the query of the tenant's webhook deliveries of a task, oldest first.
func (d Dialect) OutboxOf(tenant, taskID string) (Statement, error) {
	if err := imaged.CheckTenant(tenant); err != nil {
		return Statement{}, err
	}
	a := &args{d: d}
	sql := `SELECT ` + OutboxColumns + ` FROM deliveries WHERE task_id = ` + a.add(taskID) + ` AND kind = '` + imaged.OutboxWebhook + `'`
	if tenant != imaged.AnyTenant {
		sql += ` AND tenant = ` + a.add(tenant)
	}
	return Statement{SQL: sql + ` ORDER BY created_at, id`, Args: a.list}, nil
}

// OutboxOne is the query of the tenant's webhook delivery id.
func (d Dialect) OutboxOne(tenant, id string) (Statement, error) {
	cond, list, err := d.OfTenant(tenant, id)
	if err != nil {
		return Statement{}, err
	}
	return Statement{SQL: `SELECT ` + OutboxColumns + ` FROM deliveries WHERE ` + cond +
		` AND kind = '` + imaged.OutboxWebhook + `'`, Args: list}, nil
}

// OutboxRedeliver is the statement making the tenant's webhook delivery id pending and due at
// now, with a fresh maximum age; a sender holding it loses its claim.
func (d Dialect) OutboxRedeliver(tenant, id string, now time.Time) (Statement, error) {
	if err := imaged.CheckTenant(tenant); err != nil {
		return Statement{}, err
	}
	// The arguments are numbered in the order they appear, as SQLite's ? wants.
	a := &args{d: d}
	set := `next_attempt_at = ` + a.time(now) + `, pending_since = ` + a.time(now)
	cond := `id = ` + a.add(id)
	if tenant != imaged.AnyTenant {
		cond += ` AND tenant = ` + a.add(tenant)
	}
	return Statement{SQL: `UPDATE deliveries SET status = 'pending', delivered_at = NULL, claim = '', ` + set +
		` WHERE ` + cond + ` AND kind = '` + imaged.OutboxWebhook + `' RETURNING ` + OutboxColumns, Args: a.list}, nil
}

// OutboxBacklog is the query of when the oldest pending item of each kind became pending.
const OutboxBacklog = `SELECT kind, MIN(pending_since) FROM deliveries WHERE status = 'pending' GROUP BY kind`

// SortClaimed orders claimed items oldest first (RETURNING keeps no order).
func SortClaimed(items []*imaged.OutboxItem) {
	slices.SortFunc(items, func(a, b *imaged.OutboxItem) int {
		if c := a.PendingSince.Compare(b.PendingSince); c != 0 {
			return c
		}
		return strings.Compare(a.ID, b.ID)
	})
}

// Outcome is what writing the callbacks of a task's terminal transition needs of the store's
// transaction.
type Outcome struct {
	// Row runs a query yielding one row; NoRows tells its error when there was none.
	Row    func(query string, args ...any) Scanner
	NoRows func(error) bool
	// Lock follows the query of the task's batch (FOR UPDATE where the database has it), so
	// that of two transactions finishing a batch's last two tasks at once the second waits for
	// the first and then counts its outcome: one of them writes the batch's callback.
	Lock string
	// Batch reads the batch and its tasks.
	Batch func(id string) (*imaged.Batch, []*imaged.Task, error)
	// Exec runs a statement.
	Exec func(query string, args ...any) error
}

// AddOutbox adds items as pending at now through exec (see OutboxInsert).
func (d Dialect) AddOutbox(exec func(query string, args ...any) error, now time.Time, items []*imaged.OutboxItem) error {
	for _, item := range items {
		st := d.OutboxInsert(item, now)
		if err := exec(st.SQL, st.Args...); err != nil {
			return err
		}
	}
	return nil
}

// WriteOutcome adds, in the transaction that made t terminal at now, the callbacks its outcome
// calls for: t's own, and its batch's when t was the batch's last task to finish.
func (d Dialect) WriteOutcome(o Outcome, t *imaged.Task, now time.Time) error {
	items, err := d.outcomeItems(o, t, now)
	if err != nil {
		return err
	}
	return d.AddOutbox(o.Exec, now, items)
}

func (d Dialect) outcomeItems(o Outcome, t *imaged.Task, now time.Time) ([]*imaged.OutboxItem, error) {
	var items []*imaged.OutboxItem
	hook, err := imaged.TaskWebhook(t, now)
	if err != nil {
		return nil, err
	}
	if hook != nil {
		items = append(items, hook)
	}
	if t.BatchID == "" {
		return items, nil
	}
	var one int
	err = o.Row(`SELECT 1 FROM batches WHERE id = `+d.Placeholder(1)+` AND callback_url <> ''`+o.Lock, t.BatchID).Scan(&one)
	if o.NoRows(err) {
		return items, nil
	}
	if err != nil {
		return nil, err
	}
	var left int
	if err := o.Row(`SELECT count(*) FROM tasks WHERE batch_id = `+d.Placeholder(1)+
		` AND status IN ('queued', 'processing')`, t.BatchID).Scan(&left); err != nil || left > 0 {
		return items, err
	}
	b, tasks, err := o.Batch(t.BatchID)
	if err != nil {
		return nil, err
	}
	hook, err = imaged.BatchWebhook(b, tasks, now)
	if hook != nil {
		items = append(items, hook)
	}
	return items, err
}
