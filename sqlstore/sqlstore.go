// Package sqlstore holds what the SQL task stores (sqlite, postgres) share: the column lists
// their queries select, keyset paging written in a dialect's placeholders, and reading rows
// into a slice. It depends only on the root package and the standard library, so each store
// keeps its own driver and neither imports the other.
package sqlstore

import (
	"slices"
	"strings"
	"time"

	"github.com/imaged/imaged"
)

// Column lists every query of a kind selects or returns, in the order of the kind's row
// destinations (TaskDest and the like). Both dialects spell them alike, so a column added to a table is added
// here once.
const (
	TaskColumns = `id, type, status, image_id, ops, COALESCE(batch_id, ''), attempts, max_attempts,
	worker_id, correlation_id, callback_url, COALESCE(idempotency_key, ''), run_after, lease_until,
	created_at, started_at, finished_at, result, error_code, error_message, trace_parent, tenant,
	result_expired_at, COALESCE(result_expired_reason, '')`
	BatchColumns  = `id, tenant, total, correlation_id, callback_url, COALESCE(idempotency_key, ''), created_at`
	ImageColumns  = `id, tenant, key, format, content_type, width, height, bytes, sha256, filename, created_at`
	APIKeyColumns = `id, name, prefix, hash, admin, rate_limit, burst, concurrency, created_at, last_used_at, revoked_at, tenant`
	TenantColumns = `id, COALESCE(quota_bytes, 0), COALESCE(quota_images, 0), COALESCE(rate_limit, 0),
	COALESCE(burst, 0), COALESCE(concurrency, 0), created_at, updated_at`
	CachedOutputColumns = `key, tenant, image_sha256, blob_key, format, content_type, width, height, bytes, created_at`
)

// TaskRaw holds the destinations of the task columns each dialect reads its own way (times,
// JSON, NULLs). The *Dest functions below pair each column list with the record's fields,
// taking such destinations from the store for the rest.
type TaskRaw struct {
	Ops, RunAfter, LeaseUntil, Created, Started, Finished, Result, ErrorCode, ErrorMessage, ResultExpired any
}

// TaskDest is where a row of TaskColumns goes.
func TaskDest(t *imaged.Task, raw TaskRaw) []any {
	return []any{&t.ID, &t.Type, &t.Status, &t.ImageID, raw.Ops, &t.BatchID, &t.Attempts,
		&t.MaxAttempts, &t.WorkerID, &t.CorrelationID, &t.CallbackURL, &t.IdempotencyKey,
		raw.RunAfter, raw.LeaseUntil, raw.Created, raw.Started, raw.Finished, raw.Result,
		raw.ErrorCode, raw.ErrorMessage, &t.TraceParent, &t.Tenant, raw.ResultExpired, &t.ResultExpiredReason}
}

// BatchDest is where a row of BatchColumns goes.
func BatchDest(b *imaged.Batch, created any) []any {
	return []any{&b.ID, &b.Tenant, &b.Total, &b.CorrelationID, &b.CallbackURL, &b.IdempotencyKey, created}
}

// ImageDest is where a row of ImageColumns goes.
func ImageDest(img *imaged.Image, created any) []any {
	return []any{&img.ID, &img.Tenant, &img.Key, &img.Format, &img.ContentType, &img.Width,
		&img.Height, &img.Bytes, &img.SHA256, &img.Filename, created}
}

// APIKeyDest is where a row of APIKeyColumns goes.
func APIKeyDest(k *imaged.APIKey, created, lastUsed, revoked any) []any {
	return []any{&k.ID, &k.Name, &k.Prefix, &k.Hash, &k.Admin, &k.RateLimit, &k.Burst, &k.Concurrency,
		created, lastUsed, revoked, &k.Tenant}
}

// TenantDest is where a row of TenantColumns goes.
func TenantDest(t *imaged.Tenant, created, updated any) []any {
	return []any{&t.ID, &t.QuotaBytes, &t.QuotaImages, &t.RateLimit, &t.Burst, &t.Concurrency, created, updated}
}

// CachedOutputDest is where a row of CachedOutputColumns goes.
func CachedOutputDest(e *imaged.CachedOutput, created any) []any {
	return []any{&e.Key, &e.Tenant, &e.ImageSHA256, &e.BlobKey, &e.Format, &e.ContentType, &e.Width, &e.Height, &e.Bytes, created}
}

// CachedOutputArgs are the values of CachedOutputColumns for an insert, created as the store
// writes times.
func CachedOutputArgs(e *imaged.CachedOutput, created any) []any {
	return []any{e.Key, e.Tenant, e.ImageSHA256, e.BlobKey, e.Format, e.ContentType, e.Width, e.Height, e.Bytes, created}
}

// List page sizes.
const (
	DefaultListLimit = 50
	MaxListLimit     = 1000
)

// Dialect is how one database spells query parameters.
type Dialect struct {
	// Placeholder is the marker of the nth argument of a statement, counting from 1.
	Placeholder func(n int) string
	// CursorTime is a cursor's time as the store passes it, and TimeCast what follows its
	// placeholder so that the database compares it as the column's type.
	CursorTime func(time.Time) any
	TimeCast   string
}

// OfTenant is the condition selecting the row id (the first argument) within tenant (the
// second; any tenant's for AnyTenant), with its arguments; EInternal for an empty tenant.
func (d Dialect) OfTenant(tenant, id string) (string, []any, error) {
	if err := imaged.CheckTenant(tenant); err != nil {
		return "", nil, err
	}
	if tenant == imaged.AnyTenant {
		return `id = ` + d.Placeholder(1), []any{id}, nil
	}
	return `id = ` + d.Placeholder(1) + ` AND tenant = ` + d.Placeholder(2), []any{id, tenant}, nil
}

// Page is one page of a list newest first (ties broken by id, descending): the conditions so
// far, their arguments, and the page size.
type Page struct {
	d     Dialect
	conds []string
	Args  []any
	limit int
}

// NewPage starts a list of tenant's rows after cursor; EInvalid for a cursor the store did not
// issue. Limit defaults to DefaultListLimit and is capped at MaxListLimit.
func (d Dialect) NewPage(tenant, cursor string, limit int) (*Page, error) {
	if err := imaged.CheckTenant(tenant); err != nil {
		return nil, err
	}
	if limit <= 0 {
		limit = DefaultListLimit
	}
	p := &Page{d: d, limit: min(limit, MaxListLimit)}
	if tenant != imaged.AnyTenant {
		p.Where("tenant = " + p.Arg(tenant))
	}
	if cursor != "" {
		created, id, err := imaged.DecodeCursor(cursor)
		if err != nil {
			return nil, err
		}
		p.Where("(created_at, id) < (" + p.Arg(d.CursorTime(created)) + d.TimeCast + ", " + p.Arg(id) + ")")
	}
	return p, nil
}

// TaskPage starts a page of the tasks f selects; EInvalid for an unknown status or a cursor
// the store did not issue.
func (d Dialect) TaskPage(f imaged.TaskFilter) (*Page, error) {
	p, err := d.NewPage(f.Tenant, f.Cursor, f.Limit)
	if err != nil {
		return nil, err
	}
	if f.Status != "" {
		if !slices.Contains(imaged.Statuses, f.Status) {
			return nil, imaged.FieldErrorf("status", "status must be one of %s", strings.Join(imaged.Statuses, ", "))
		}
		p.Where("status = " + p.Arg(f.Status))
	}
	if f.BatchID != "" {
		p.Where("batch_id = " + p.Arg(f.BatchID))
	}
	return p, nil
}

// Arg adds an argument and returns its placeholder.
func (p *Page) Arg(v any) string {
	p.Args = append(p.Args, v)
	return p.d.Placeholder(len(p.Args))
}

// Where adds a condition; its arguments are added with Arg.
func (p *Page) Where(cond string) { p.conds = append(p.conds, cond) }

// filter is the WHERE clause of the conditions so far ("" for none), then the page's order and
// limit. It reads one row past the page, so that Cut can tell whether another follows.
func (p *Page) filter() string {
	var where string
	if len(p.conds) > 0 {
		where = ` WHERE ` + strings.Join(p.conds, " AND ")
	}
	return where + ` ORDER BY created_at DESC, id DESC LIMIT ` + p.Arg(p.limit+1)
}

// Select is the query reading the page's rows of table.
func (p *Page) Select(columns, table string) string {
	return `SELECT ` + columns + ` FROM ` + table + p.filter()
}

// Cut trims the extra row Filter read and returns the next page's cursor ("" at the end).
func Cut[T any](p *Page, rows []T, key func(T) (time.Time, string)) ([]T, string) {
	if len(rows) <= p.limit {
		return rows, ""
	}
	rows = rows[:p.limit]
	created, id := key(rows[p.limit-1])
	return rows, imaged.EncodeCursor(created, id)
}

// TaskKey is the key Cut pages tasks by: the columns filter orders by.
func TaskKey(t *imaged.Task) (time.Time, string) { return t.CreatedAt, t.ID }

// BatchKey is TaskKey for batches.
func BatchKey(b *imaged.Batch) (time.Time, string) { return b.CreatedAt, b.ID }

// ImageKey is TaskKey for images.
func ImageKey(img *imaged.Image) (time.Time, string) { return img.CreatedAt, img.ID }

// Scanner reads one row; *sql.Row, *sql.Rows, pgx.Row and pgx.Rows are all one.
type Scanner interface {
	Scan(dest ...any) error
}

// Rows is a result set being read: what *sql.Rows and pgx.Rows share. The caller closes it.
type Rows interface {
	Scanner
	Next() bool
	Err() error
}

// Collect reads every row of rows with scan.
func Collect[T any](rows Rows, scan func(Scanner) (T, error)) ([]T, error) {
	var out []T
	for rows.Next() {
		v, err := scan(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, v)
	}
	return out, rows.Err()
}

// CountQueued is the query counting queued tasks per type, for QueuedCounts to read.
const CountQueued = `SELECT type, count(*) FROM tasks WHERE status = 'queued' GROUP BY type`

// QueuedCounts reads the rows of CountQueued into counts per task type, every known type
// present.
func QueuedCounts(rows Rows) (map[string]int, error) {
	out := make(map[string]int, len(imaged.TaskTypes))
	for _, typ := range imaged.TaskTypes {
		out[typ] = 0
	}
	for rows.Next() {
		var typ string
		var n int
		if err := rows.Scan(&typ, &n); err != nil {
			return nil, err
		}
		out[typ] = n
	}
	if err := rows.Err(); err != nil {
		return nil, err
	}
	return out, nil
}

// NotQueued is the EConflict of a cancel that found the task, as stored now, out of the queue.
func NotQueued(cur *imaged.Task) error {
	return imaged.Errorf(imaged.EConflict, "task %s is %s; only a queued task can be cancelled", cur.ID, cur.Status)
}

// NotProcessing is the EConflict of an update of a task's attempt (verb says what it would
// have done) that found the task, as stored now, not processing at that attempt.
func NotProcessing(cur *imaged.Task, attempt int, verb string) error {
	return imaged.Errorf(imaged.EConflict,
		"task %s is %s at attempt %d; attempt %d cannot %s it", cur.ID, cur.Status, cur.Attempts, attempt, verb)
}

// ScanTrashed reads a row of key, kind from the blob trash.
func ScanTrashed(sc Scanner) (imaged.TrashedBlob, error) {
	var b imaged.TrashedBlob
	err := sc.Scan(&b.Key, &b.Kind)
	return b, err
}

// ScanString reads a row of one text column (an id, a key).
func ScanString(sc Scanner) (string, error) {
	var v string
	err := sc.Scan(&v)
	return v, err
}

// DeletedImage is what a deletion of images returns of each: its id and blob key, and its
// tenant and content hash, whose processed-output cache entries may go with it.
type DeletedImage struct{ ID, Key, Tenant, SHA256 string }

// DeletedImageColumns are the columns ScanDeletedImage reads, for a RETURNING clause.
const DeletedImageColumns = `id, key, tenant, sha256`

// ScanDeletedImage reads a row of DeletedImageColumns.
func ScanDeletedImage(sc Scanner) (DeletedImage, error) {
	var d DeletedImage
	err := sc.Scan(&d.ID, &d.Key, &d.Tenant, &d.SHA256)
	return d, err
}

// DeletedIDsAndKeys splits deleted images into their ids and blob keys.
func DeletedIDsAndKeys(deleted []DeletedImage) (ids, keys []string) {
	for _, d := range deleted {
		ids, keys = append(ids, d.ID), append(keys, d.Key)
	}
	return ids, keys
}

// NonEmpty returns the strings of ss that are not "".
func NonEmpty(ss []string) []string {
	var out []string
	for _, s := range ss {
		if s != "" {
			out = append(out, s)
		}
	}
	return out
}
