package postgres

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/imaged/imaged"
	"github.com/imaged/imaged/sqlstore"
)

// DefaultLease is the lease ClaimTask grants when asked for none.
const DefaultLease = 5 * time.Minute

// List page sizes.
const (
	DefaultListLimit = sqlstore.DefaultListLimit
	MaxListLimit     = sqlstore.MaxListLimit
)

// querier is what *pgxpool.Pool and pgx.Tx share.
type querier interface {
	Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error)
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
}

func scanTask(row sqlstore.Scanner) (*imaged.Task, error) {
	var (
		t                        imaged.Task
		ops, result              []byte
		lease, started, finished *time.Time
		expired                  *time.Time
		errCode, errMessage      *string
	)
	err := row.Scan(sqlstore.TaskDest(&t, sqlstore.TaskRaw{Ops: &ops, RunAfter: &t.RunAfter, LeaseUntil: &lease,
		Created: &t.CreatedAt, Started: &started, Finished: &finished, Result: &result, ErrorCode: &errCode,
		ErrorMessage: &errMessage, ResultExpired: &expired})...)
	if err != nil {
		return nil, err
	}
	if err := json.Unmarshal(ops, &t.Ops); err != nil {
		return nil, fmt.Errorf("postgres: ops of task %s: %w", t.ID, err)
	}
	t.RunAfter = t.RunAfter.UTC()
	t.CreatedAt = t.CreatedAt.UTC()
	t.LeaseUntil, t.StartedAt, t.FinishedAt, t.ResultExpiredAt = utc(lease), utc(started), utc(finished), utc(expired)
	if result != nil {
		t.Result = new(imaged.TaskResult)
		if err := json.Unmarshal(result, t.Result); err != nil {
			return nil, fmt.Errorf("postgres: result of task %s: %w", t.ID, err)
		}
	}
	if errCode != nil || errMessage != nil {
		t.Error = &imaged.TaskFailure{}
		if errCode != nil {
			t.Error.Code = *errCode
		}
		if errMessage != nil {
			t.Error.Message = *errMessage
		}
	}
	return &t, nil
}

// utc converts a scanned time (pgx returns local times) to UTC.
func utc(t *time.Time) *time.Time {
	if t == nil {
		return nil
	}
	u := t.UTC()
	return &u
}

// queryAll runs a query and reads every row it yields with scan.
func queryAll[T any](ctx context.Context, q querier, scan func(sqlstore.Scanner) (T, error), query string, args ...any) ([]T, error) {
	rows, err := q.Query(ctx, query, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	return sqlstore.Collect(rows, scan)
}

// queryTask runs a query (or an UPDATE … RETURNING) that yields at most one task; nil when none.
func queryTask(ctx context.Context, q querier, query string, args ...any) (*imaged.Task, error) {
	t, err := scanTask(q.QueryRow(ctx, query, args...))
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, nil
	}
	return t, err
}

// CreateTasks records queued tasks and, when batch is not nil, their batch, in one transaction.
//
// The store fills what the caller left empty: ID (a UUIDv7), Type (from the ops), CreatedAt
// (the database's clock at the start of the transaction) and RunAfter (CreatedAt); Status
// becomes queued and Attempts 0. A batch gets ID, CreatedAt, Total, Status and Counts, and each
// task its BatchID. Times are kept in UTC at microsecond precision, and the arguments carry the
// stored values back.
//
// Idempotency: with a batch whose IdempotencyKey is already stored, the stored batch and its
// tasks are written into the arguments (in creation order) and existed is true; EConflict when
// the stored batch holds a different number of tasks than given, since the arguments cannot
// carry it back. Without a batch, one task whose IdempotencyKey is stored is treated the same
// way. Two processes creating with one key at once both get that answer: the one whose insert
// collides with the other's runs again and finds the stored record. Any other clash of ids or
// keys is EConflict and nothing is stored. Ops the database cannot store are EInvalid.
func (s *Store) CreateTasks(ctx context.Context, tasks []*imaged.Task, batch *imaged.Batch) (bool, error) {
	if len(tasks) == 0 {
		return false, imaged.Errorf(imaged.EInvalid, "there are no tasks to create")
	}
	imaged.FillTenant(tasks, batch)
	ctx, cancel := s.command(ctx)
	defer cancel()
	// The key whose clash means "created meanwhile by someone else": replaying finds it.
	replayable := ""
	switch {
	case batch != nil && batch.IdempotencyKey != "":
		replayable = "batches_idempotency_key"
	case batch == nil && len(tasks) == 1 && tasks[0].IdempotencyKey != "":
		replayable = "tasks_idempotency_key"
	}
	for try := 1; ; try++ {
		existed, err := s.createTasks(ctx, tasks, batch)
		var pgErr *pgconn.PgError
		if err == nil || !errors.As(err, &pgErr) || pgErr.Code != "23505" {
			return existed, s.wrap(ctx, "create tasks", err)
		}
		switch {
		case pgErr.ConstraintName == replayable && try < 3:
			continue
		case pgErr.ConstraintName == "batches_pkey":
			return false, imaged.WrapError(imaged.EConflict, err, "batch %s already exists", batch.ID)
		case pgErr.ConstraintName == "batches_idempotency_key":
			return false, imaged.WrapError(imaged.EConflict, err, "the idempotency key of the batch is in use")
		case pgErr.ConstraintName == "tasks_idempotency_key":
			return false, imaged.WrapError(imaged.EConflict, err, "the idempotency key of a task is in use")
		default:
			return false, imaged.WrapError(imaged.EConflict, err, "a task with one of these ids already exists")
		}
	}
}

func (s *Store) createTasks(ctx context.Context, tasks []*imaged.Task, batch *imaged.Batch) (bool, error) {
	existed := false
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		// Idempotency keys are per tenant: another tenant's key is never replayed.
		if batch != nil && batch.IdempotencyKey != "" {
			var id string
			err := tx.QueryRow(ctx, `SELECT id FROM batches WHERE tenant = $1 AND idempotency_key = $2`,
				batch.Tenant, batch.IdempotencyKey).Scan(&id)
			if err == nil {
				b, stored, err := loadBatch(ctx, tx, batch.Tenant, id)
				if err != nil {
					return err
				}
				err = imaged.ReplayBatch(batch, tasks, b, stored)
				existed = err == nil
				return err
			}
			if !errors.Is(err, pgx.ErrNoRows) {
				return err
			}
		}
		if batch == nil && len(tasks) == 1 && tasks[0].IdempotencyKey != "" {
			stored, err := queryTask(ctx, tx, `SELECT `+sqlstore.TaskColumns+` FROM tasks WHERE tenant = $1 AND idempotency_key = $2`,
				tasks[0].Tenant, tasks[0].IdempotencyKey)
			if err != nil {
				return err
			}
			if stored != nil {
				*tasks[0] = *stored
				existed = true
				return nil
			}
		}

		// One round trip for every insert. now() is the transaction's start, so tasks and
		// batch left without times share one.
		imaged.PrepareCreate(tasks, batch)
		var b pgx.Batch
		if batch != nil {
			b.Queue(`
				INSERT INTO batches (id, total, correlation_id, callback_url, idempotency_key, created_at, tenant)
				VALUES ($1, $2, $3, $4, $5, COALESCE($6::timestamptz, now()), $7)
				RETURNING created_at`,
				batch.ID, batch.Total, batch.CorrelationID, batch.CallbackURL,
				nullString(batch.IdempotencyKey), timeArg(batch.CreatedAt), batch.Tenant,
			).QueryRow(func(row pgx.Row) error {
				if err := row.Scan(&batch.CreatedAt); err != nil {
					return err
				}
				batch.CreatedAt = batch.CreatedAt.UTC()
				return nil
			})
		}
		for _, t := range tasks {
			ops, err := json.Marshal(t.Ops)
			if err != nil {
				return imaged.WrapError(imaged.EInvalid, err, "the ops of task %s cannot be stored", t.ID)
			}
			b.Queue(`
				INSERT INTO tasks (id, type, status, image_id, ops, batch_id, attempts, max_attempts,
					correlation_id, callback_url, idempotency_key, created_at, run_after, trace_parent, tenant)
				VALUES ($1, $2, $3, $4, $5, $6, 0, $7, $8, $9, $10,
					COALESCE($11::timestamptz, now()), COALESCE($12::timestamptz, $11::timestamptz, now()), $13, $14)
				RETURNING created_at, run_after`,
				t.ID, t.Type, t.Status, t.ImageID, string(ops), nullString(t.BatchID), t.MaxAttempts,
				t.CorrelationID, t.CallbackURL, nullString(t.IdempotencyKey),
				timeArg(t.CreatedAt), timeArg(t.RunAfter), t.TraceParent, t.Tenant,
			).QueryRow(func(row pgx.Row) error {
				if err := row.Scan(&t.CreatedAt, &t.RunAfter); err != nil {
					return err
				}
				t.CreatedAt, t.RunAfter = t.CreatedAt.UTC(), t.RunAfter.UTC()
				return nil
			})
		}
		return tx.SendBatch(ctx, &b).Close()
	})
	return existed, err
}

func nullString(s string) any {
	if s == "" {
		return nil
	}
	return s
}

// Task returns the tenant's task; ENotFound when absent or another tenant's.
func (s *Store) Task(ctx context.Context, tenant, id string) (*imaged.Task, error) {
	ctx, cancel := s.command(ctx)
	defer cancel()
	return s.task(ctx, tenant, id)
}

func (s *Store) task(ctx context.Context, tenant, id string) (*imaged.Task, error) {
	cond, args, err := dialect.OfTenant(tenant, id)
	if err != nil {
		return nil, err
	}
	t, err := queryTask(ctx, s.pool, `SELECT `+sqlstore.TaskColumns+` FROM tasks WHERE `+cond, args...)
	if err != nil {
		return nil, s.wrap(ctx, "task", err)
	}
	if t == nil {
		return nil, imaged.Errorf(imaged.ENotFound, "task %s not found", imaged.EchoID(id))
	}
	return t, nil
}

// ListTasks returns one page of the tenant's tasks, newest first (ties broken by id,
// descending), and the cursor of the next page. Limit defaults to DefaultListLimit and is capped
// at MaxListLimit. An unknown status or a cursor this store did not issue is EInvalid.
func (s *Store) ListTasks(ctx context.Context, f imaged.TaskFilter) ([]*imaged.Task, string, error) {
	p, err := dialect.TaskPage(f)
	if err != nil {
		return nil, "", err
	}
	ctx, cancel := s.command(ctx)
	defer cancel()
	tasks, err := queryAll(ctx, s.pool, scanTask, p.Select(sqlstore.TaskColumns, `tasks`), p.Args...)
	if err != nil {
		return nil, "", s.wrap(ctx, "list tasks", err)
	}
	tasks, next := sqlstore.Cut(p, tasks, sqlstore.TaskKey)
	return tasks, next, nil
}

// CancelTask moves the tenant's queued task to cancelled; EConflict when it is no longer
// queued, ENotFound when absent or another tenant's.
func (s *Store) CancelTask(ctx context.Context, tenant, id string) (*imaged.Task, error) {
	cond, args, err := dialect.OfTenant(tenant, id)
	if err != nil {
		return nil, err
	}
	ctx, cancel := s.command(ctx)
	defer cancel()
	var t *imaged.Task
	err = pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		var err error
		t, err = queryTask(ctx, tx, `
			UPDATE tasks SET status = 'cancelled', finished_at = now(), lease_until = NULL
			WHERE `+cond+` AND status = 'queued'
			RETURNING `+sqlstore.TaskColumns, args...)
		if err != nil || t == nil {
			return err
		}
		return writeOutcome(ctx, tx, t)
	})
	if err != nil {
		return nil, s.wrap(ctx, "cancel task", err)
	}
	if t != nil {
		return t, nil
	}
	cur, err := s.task(ctx, tenant, id)
	if err != nil {
		return nil, err
	}
	return nil, sqlstore.NotQueued(cur)
}

// Batch returns the tenant's batch with counts per status and its tasks in creation order;
// ENotFound when absent or another tenant's. The batch's status is derived: completed (with FinishedAt, the last task's) once
// every task is terminal, queued while no task has left the queue, processing otherwise.
func (s *Store) Batch(ctx context.Context, tenant, id string) (*imaged.Batch, []*imaged.Task, error) {
	ctx, cancel := s.command(ctx)
	defer cancel()
	b, tasks, err := loadBatch(ctx, s.pool, tenant, id)
	if err != nil {
		return nil, nil, s.wrap(ctx, "batch", err)
	}
	return b, tasks, nil
}

// loadBatch reads the batch and its tasks. Counts and status come from the one query that
// reads the tasks, so they agree with the tasks returned.
func loadBatch(ctx context.Context, q querier, tenant, id string) (*imaged.Batch, []*imaged.Task, error) {
	cond, args, err := dialect.OfTenant(tenant, id)
	if err != nil {
		return nil, nil, err
	}
	b, err := scanBatch(q.QueryRow(ctx, `SELECT `+sqlstore.BatchColumns+` FROM batches WHERE `+cond, args...))
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, nil, imaged.Errorf(imaged.ENotFound, "batch %s not found", imaged.EchoID(id))
	}
	if err != nil {
		return nil, nil, err
	}
	tasks, err := summarise(ctx, q, b)
	if err != nil {
		return nil, nil, err
	}
	return b, tasks, nil
}

// ClaimTask moves one queued, runnable task to processing in one conditional UPDATE …
// RETURNING, so two claims can never return the same task. With id it claims that task (when
// types is not empty, only if it is of one of them); otherwise the oldest runnable task of the
// given types (all types when empty), skipping rows another claim has locked, so that workers of
// several processes take different tasks without waiting for each other. Runnable means
// run_after has passed by the database's clock, which also stamps StartedAt and LeaseUntil. A
// lease of zero or less is DefaultLease. (nil, nil) when there is nothing to claim, including
// an unknown id.
func (s *Store) ClaimTask(ctx context.Context, id string, types []string, workerID string, lease time.Duration) (*imaged.Task, error) {
	if lease <= 0 {
		lease = DefaultLease
	}
	args := []any{workerID, lease.Microseconds()}
	cond := `status = 'queued' AND run_after <= now()`
	if len(types) > 0 {
		args = append(args, types)
		cond += ` AND type = ANY($3)`
	}
	var where string
	if id != "" {
		args = append(args, id)
		where = `id = $` + strconv.Itoa(len(args)) + ` AND ` + cond
	} else {
		where = `id = (SELECT id FROM tasks WHERE ` + cond + `
			ORDER BY created_at, seq LIMIT 1 FOR UPDATE SKIP LOCKED) AND status = 'queued'`
	}
	ctx, cancel := s.command(ctx)
	defer cancel()
	t, err := queryTask(ctx, s.pool, `
		UPDATE tasks SET status = 'processing', attempts = attempts + 1, worker_id = $1,
			started_at = now(), lease_until = now() + $2 * interval '1 microsecond'
		WHERE `+where+`
		RETURNING `+sqlstore.TaskColumns, args...)
	if err != nil {
		return nil, s.wrap(ctx, "claim task", err)
	}
	return t, nil
}

// finish applies set to the given attempt of a processing task; EConflict when the task is not
// processing at that attempt, ENotFound when absent. set's parameters start at $3.
func (s *Store) finish(ctx context.Context, verb, id string, attempt int, set string, args ...any) (*imaged.Task, error) {
	ctx, cancel := s.command(ctx)
	defer cancel()
	var t *imaged.Task
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		var err error
		t, err = queryTask(ctx, tx, `
			UPDATE tasks SET `+set+`
			WHERE id = $1 AND status = 'processing' AND attempts = $2
			RETURNING `+sqlstore.TaskColumns, append([]any{id, attempt}, args...)...)
		if err != nil || t == nil || !imaged.IsTerminal(t.Status) {
			return err
		}
		// The callbacks of the outcome are written with it, so none is lost to a crash.
		return writeOutcome(ctx, tx, t)
	})
	if err != nil {
		return nil, s.wrap(ctx, verb+" task", err)
	}
	if t != nil {
		return t, nil
	}
	cur, err := s.task(ctx, imaged.AnyTenant, id)
	if err != nil {
		return nil, err
	}
	return nil, sqlstore.NotProcessing(cur, attempt, verb)
}

// CompleteTask records the result of the given attempt of a processing task and clears the
// error of earlier attempts. EConflict when the task is not processing at that attempt,
// ENotFound when absent. A NUL character in the result's strings, which PostgreSQL's jsonb
// cannot hold, is stored as U+FFFD.
func (s *Store) CompleteTask(ctx context.Context, id string, attempt int, res *imaged.TaskResult) (*imaged.Task, error) {
	var result any
	if res != nil {
		b, err := json.Marshal(res)
		if err != nil {
			return nil, imaged.WrapError(imaged.EInvalid, err, "the result of task %s cannot be stored", id)
		}
		result = string(replaceJSONNul(b))
	}
	return s.finish(ctx, "complete", id, attempt, `status = 'completed', result = $3::jsonb,
		finished_at = now(), lease_until = NULL, error_code = NULL, error_message = NULL`, result)
}

// FailTask records the final failure of the given attempt; EConflict and ENotFound as
// CompleteTask.
func (s *Store) FailTask(ctx context.Context, id string, attempt int, f *imaged.TaskFailure) (*imaged.Task, error) {
	code, msg := failure(f)
	return s.finish(ctx, "fail", id, attempt, `status = 'failed', error_code = $3, error_message = $4,
		finished_at = now(), lease_until = NULL`, code, msg)
}

// RetryTask puts the given attempt of a processing task back to queued, runnable after
// runAfter, keeping f as the last error; EConflict and ENotFound as CompleteTask.
func (s *Store) RetryTask(ctx context.Context, id string, attempt int, runAfter time.Time, f *imaged.TaskFailure) (*imaged.Task, error) {
	code, msg := failure(f)
	return s.finish(ctx, "retry", id, attempt, `status = 'queued', run_after = $3, error_code = $4,
		error_message = $5, lease_until = NULL`, runAfter.UTC().Truncate(time.Microsecond), code, msg)
}

// DeferTask puts the given attempt of a processing task back to queued, runnable after
// runAfter, keeping f as the last error, and takes the attempt back (attempts goes down by one):
// a dependency's outage, not the task, cut it short. EConflict and ENotFound as CompleteTask.
func (s *Store) DeferTask(ctx context.Context, id string, attempt int, runAfter time.Time, f *imaged.TaskFailure) (*imaged.Task, error) {
	code, msg := failure(f)
	return s.finish(ctx, "defer", id, attempt, `status = 'queued', attempts = attempts - 1, run_after = $3,
		error_code = $4, error_message = $5, lease_until = NULL`, runAfter.UTC().Truncate(time.Microsecond), code, msg)
}

// ExtendLease moves the lease of the given attempt of a processing task to until; EConflict
// and ENotFound as CompleteTask.
func (s *Store) ExtendLease(ctx context.Context, id string, attempt int, until time.Time) error {
	_, err := s.finish(ctx, "extend the lease of", id, attempt, `lease_until = $3`, until.UTC().Truncate(time.Microsecond))
	return err
}

// failure returns the columns of f. Failure messages carry text from decoders and engines, so
// what PostgreSQL cannot store (NUL, invalid UTF-8) is replaced rather than lose the failure.
func failure(f *imaged.TaskFailure) (code, msg any) {
	if f == nil {
		return nil, nil
	}
	return storableText(f.Code), storableText(f.Message)
}

func storableText(s string) string {
	return strings.ToValidUTF8(strings.ReplaceAll(s, "\x00", "\uFFFD"), "\uFFFD")
}

// replaceJSONNul replaces the escape \u0000, which jsonb rejects, by \ufffd in encoded JSON.
// Backslashes occur in JSON only inside strings, each starting an escape, so walking the
// escapes finds every NUL and nothing else.
func replaceJSONNul(b []byte) []byte {
	if !bytes.Contains(b, []byte(`\u0000`)) {
		return b
	}
	out := make([]byte, 0, len(b))
	for i := 0; i < len(b); i++ {
		if b[i] != '\\' || i+1 >= len(b) {
			out = append(out, b[i])
			continue
		}
		if bytes.HasPrefix(b[i:], []byte(`\u0000`)) {
			out = append(out, `\ufffd`...)
			i += len(`\u0000`) - 1
			continue
		}
		out = append(out, b[i], b[i+1]) // any other escape, kept whole
		i++
	}
	return out
}

// RequeueExpired puts processing tasks whose lease ended at or before now back to queued (all
// processing tasks when all is true) and returns their ids. Their attempts stay counted.
func (s *Store) RequeueExpired(ctx context.Context, at time.Time, all bool) ([]string, error) {
	query := `UPDATE tasks SET status = 'queued', lease_until = NULL WHERE status = 'processing'`
	var args []any
	if !all {
		query += ` AND lease_until <= $1`
		args = append(args, at.UTC())
	}
	ctx, cancel := s.command(ctx)
	defer cancel()
	rows, err := s.pool.Query(ctx, query+` RETURNING id`, args...)
	if err != nil {
		return nil, s.wrap(ctx, "requeue expired", err)
	}
	ids, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return nil, s.wrap(ctx, "requeue expired", err)
	}
	return ids, nil
}

// CountQueued returns the number of queued tasks per task type, every known type present.
// Tasks waiting for a retry's RunAfter count as queued.
func (s *Store) CountQueued(ctx context.Context) (map[string]int, error) {
	ctx, cancel := s.command(ctx)
	defer cancel()
	rows, err := s.pool.Query(ctx, sqlstore.CountQueued)
	if err != nil {
		return nil, s.wrap(ctx, "count queued", err)
	}
	defer rows.Close()
	out, err := sqlstore.QueuedCounts(rows)
	if err != nil {
		return nil, s.wrap(ctx, "count queued", err)
	}
	return out, nil
}
