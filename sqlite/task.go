package sqlite

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

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

// querier is what *sql.DB and *sql.Tx share.
type querier interface {
	ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error)
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
}

func scanTask(sc sqlstore.Scanner) (*imaged.Task, error) {
	var (
		t                           imaged.Task
		ops                         string
		result, errCode, errMessage sql.NullString
	)
	err := sc.Scan(sqlstore.TaskDest(&t, sqlstore.TaskRaw{Ops: &ops, RunAfter: storedTime{&t.RunAfter},
		LeaseUntil: storedTimePtr{&t.LeaseUntil}, Created: storedTime{&t.CreatedAt}, Started: storedTimePtr{&t.StartedAt},
		Finished: storedTimePtr{&t.FinishedAt}, Result: &result, ErrorCode: &errCode, ErrorMessage: &errMessage,
		ResultExpired: storedTimePtr{&t.ResultExpiredAt}})...)
	if err != nil {
		return nil, err
	}
	if err := json.Unmarshal([]byte(ops), &t.Ops); err != nil {
		return nil, fmt.Errorf("sqlite: ops of task %s: %w", t.ID, err)
	}
	if result.Valid {
		t.Result = new(imaged.TaskResult)
		if err := json.Unmarshal([]byte(result.String), t.Result); err != nil {
			return nil, fmt.Errorf("sqlite: result of task %s: %w", t.ID, err)
		}
	}
	if errCode.Valid || errMessage.Valid {
		t.Error = &imaged.TaskFailure{Code: errCode.String, Message: errMessage.String}
	}
	return &t, nil
}

// queryAll runs a query and reads every row it yields with scan.
func queryAll[T any](ctx context.Context, q querier, scan func(sqlstore.Scanner) (T, error), query string, args ...any) ([]T, error) {
	rows, err := q.QueryContext(ctx, query, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	return sqlstore.Collect(rows, scan)
}

// queryTask runs a query (or an UPDATE … RETURNING) that yields at most one task; nil when none.
func queryTask(ctx context.Context, q querier, query string, args ...any) (*imaged.Task, error) {
	t, err := scanTask(q.QueryRowContext(ctx, query, args...))
	if errors.Is(err, sql.ErrNoRows) {
		return nil, nil
	}
	return t, err
}

// inTx runs fn in a write transaction (BEGIN IMMEDIATE) on the writer connection.
func (s *Store) inTx(ctx context.Context, fn func(tx *sql.Tx) error) error {
	tx, err := s.w.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	if err := fn(tx); err != nil {
		tx.Rollback()
		return err
	}
	return tx.Commit()
}

// CreateTasks records queued tasks and, when batch is not nil, their batch, in one transaction.
//
// The store fills what the caller left empty: ID (a UUIDv7), Type (from the ops), CreatedAt
// (now) and RunAfter (CreatedAt); Status becomes queued and Attempts 0. A batch gets ID,
// CreatedAt, Total, Status and Counts, and each task its BatchID. Times are kept in UTC at
// microsecond precision, and the arguments carry the stored values back.
//
// Idempotency: with a batch whose IdempotencyKey is already stored, the stored batch and its
// tasks are written into the arguments (in creation order) and existed is true; EConflict when
// the stored batch holds a different number of tasks than given, since the arguments cannot
// carry it back. Without a batch, one task whose IdempotencyKey is stored is treated the same
// way. Any other clash of ids or keys is EConflict and nothing is stored.
func (s *Store) CreateTasks(ctx context.Context, tasks []*imaged.Task, batch *imaged.Batch) (bool, error) {
	if len(tasks) == 0 {
		return false, imaged.Errorf(imaged.EInvalid, "there are no tasks to create")
	}
	existed := false
	imaged.FillTenant(tasks, batch)
	err := s.inTx(ctx, func(tx *sql.Tx) error {
		// Idempotency keys are per tenant: another tenant's key is never replayed.
		if batch != nil && batch.IdempotencyKey != "" {
			var id string
			err := tx.QueryRowContext(ctx, `SELECT id FROM batches WHERE tenant = ? AND idempotency_key = ?`,
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
			if !errors.Is(err, sql.ErrNoRows) {
				return err
			}
		}
		if batch == nil && len(tasks) == 1 && tasks[0].IdempotencyKey != "" {
			stored, err := queryTask(ctx, tx, `SELECT `+sqlstore.TaskColumns+` FROM tasks WHERE tenant = ? AND idempotency_key = ?`,
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

		at := now()
		imaged.PrepareCreate(tasks, batch)
		if batch != nil {
			if batch.CreatedAt.IsZero() {
				batch.CreatedAt = at
			}
			batch.CreatedAt = batch.CreatedAt.UTC().Truncate(time.Microsecond)
			_, err := tx.ExecContext(ctx, `
				INSERT INTO batches (id, tenant, total, correlation_id, callback_url, idempotency_key, created_at)
				VALUES (?, ?, ?, ?, ?, ?, ?)`,
				batch.ID, batch.Tenant, batch.Total, batch.CorrelationID, batch.CallbackURL,
				nullString(batch.IdempotencyKey), formatTime(batch.CreatedAt))
			if isConstraint(err) {
				return imaged.WrapError(imaged.EConflict, err, "batch %s already exists", batch.ID)
			}
			if err != nil {
				return err
			}
		}
		for _, t := range tasks {
			if t.CreatedAt.IsZero() {
				t.CreatedAt = at
			}
			t.CreatedAt = t.CreatedAt.UTC().Truncate(time.Microsecond)
			if t.RunAfter.IsZero() {
				t.RunAfter = t.CreatedAt
			}
			t.RunAfter = t.RunAfter.UTC().Truncate(time.Microsecond)
			ops, err := json.Marshal(t.Ops)
			if err != nil {
				return imaged.WrapError(imaged.EInvalid, err, "the ops of task %s cannot be stored", t.ID)
			}
			_, err = tx.ExecContext(ctx, `
				INSERT INTO tasks (id, type, status, image_id, ops, batch_id, attempts, max_attempts,
					correlation_id, callback_url, idempotency_key, run_after, created_at, trace_parent, tenant)
				VALUES (?, ?, ?, ?, ?, ?, 0, ?, ?, ?, ?, ?, ?, ?, ?)`,
				t.ID, t.Type, t.Status, t.ImageID, string(ops), nullString(t.BatchID), t.MaxAttempts,
				t.CorrelationID, t.CallbackURL, nullString(t.IdempotencyKey),
				formatTime(t.RunAfter), formatTime(t.CreatedAt), t.TraceParent, t.Tenant)
			if isConstraint(err) {
				return imaged.WrapError(imaged.EConflict, err, "task %s or its idempotency key already exists", t.ID)
			}
			if err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		if imaged.ErrorCode(err) != imaged.EInternal {
			return false, err
		}
		return false, fmt.Errorf("sqlite: create tasks: %w", err)
	}
	return existed, nil
}

// Task returns the tenant's task; ENotFound when absent or another tenant's.
func (s *Store) Task(ctx context.Context, tenant, id string) (*imaged.Task, error) {
	cond, args, err := dialect.OfTenant(tenant, id)
	if err != nil {
		return nil, err
	}
	t, err := queryTask(ctx, s.r, `SELECT `+sqlstore.TaskColumns+` FROM tasks WHERE `+cond, args...)
	if err != nil {
		return nil, fmt.Errorf("sqlite: task: %w", err)
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
	tasks, err := queryAll(ctx, s.r, scanTask, p.Select(sqlstore.TaskColumns, `tasks`), p.Args...)
	if err != nil {
		return nil, "", fmt.Errorf("sqlite: list tasks: %w", err)
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
	var t *imaged.Task
	err = s.inTx(ctx, func(tx *sql.Tx) error {
		var err error
		t, err = queryTask(ctx, tx, `
			UPDATE tasks SET status = 'cancelled', finished_at = ?, lease_until = NULL
			WHERE `+cond+` AND status = 'queued'
			RETURNING `+sqlstore.TaskColumns, append([]any{formatTime(now())}, args...)...)
		if err != nil || t == nil {
			return err
		}
		return writeOutcome(ctx, tx, t)
	})
	if err != nil {
		return nil, fmt.Errorf("sqlite: cancel task: %w", err)
	}
	if t != nil {
		return t, nil
	}
	cur, err := s.Task(ctx, tenant, id)
	if err != nil {
		return nil, err
	}
	return nil, sqlstore.NotQueued(cur)
}

// Batch returns the tenant's batch with counts per status and its tasks in creation order;
// ENotFound when absent or another tenant's. The batch's status is derived: completed (with FinishedAt, the last task's) once
// every task is terminal, queued while no task has left the queue, processing otherwise.
func (s *Store) Batch(ctx context.Context, tenant, id string) (*imaged.Batch, []*imaged.Task, error) {
	if err := imaged.CheckTenant(tenant); err != nil {
		return nil, nil, err
	}
	// One read transaction, so the batch, its counts and its tasks agree.
	tx, err := s.r.BeginTx(ctx, &sql.TxOptions{ReadOnly: true})
	if err != nil {
		return nil, nil, fmt.Errorf("sqlite: batch: %w", err)
	}
	defer tx.Rollback()
	b, tasks, err := loadBatch(ctx, tx, tenant, id)
	if err != nil && imaged.ErrorCode(err) == imaged.EInternal {
		err = fmt.Errorf("sqlite: batch: %w", err)
	}
	return b, tasks, err
}

func scanBatch(sc sqlstore.Scanner) (*imaged.Batch, error) {
	var b imaged.Batch
	if err := sc.Scan(sqlstore.BatchDest(&b, storedTime{&b.CreatedAt})...); err != nil {
		return nil, err
	}
	return &b, nil
}

func loadBatch(ctx context.Context, q querier, tenant, id string) (*imaged.Batch, []*imaged.Task, error) {
	cond, args, err := dialect.OfTenant(tenant, id)
	if err != nil {
		return nil, nil, err
	}
	b, err := scanBatch(q.QueryRowContext(ctx, `SELECT `+sqlstore.BatchColumns+` FROM batches WHERE `+cond, args...))
	if errors.Is(err, sql.ErrNoRows) {
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

// summarise reads the batch's tasks in creation order and sets its status and counts from them.
func summarise(ctx context.Context, q querier, b *imaged.Batch) ([]*imaged.Task, error) {
	tasks, err := queryAll(ctx, q, scanTask, `SELECT `+sqlstore.TaskColumns+` FROM tasks WHERE batch_id = ? ORDER BY seq`, b.ID)
	if err != nil {
		return nil, err
	}
	imaged.SummariseBatch(b, tasks)
	return tasks, nil
}

// ClaimTask moves one queued, runnable task to processing in one conditional UPDATE …
// RETURNING, so two claims can never return the same task. With id it claims that task (when
// types is not empty, only if it is of one of them); otherwise the oldest runnable task of the
// given types (all types when empty). A lease of zero or less is DefaultLease. (nil, nil) when
// there is nothing to claim, including an unknown id.
func (s *Store) ClaimTask(ctx context.Context, id string, types []string, workerID string, lease time.Duration) (*imaged.Task, error) {
	if lease <= 0 {
		lease = DefaultLease
	}
	at := now()
	args := []any{workerID, formatTime(at.Add(lease)), formatTime(at)}
	cond := `status = 'queued' AND run_after <= ?`
	condArgs := []any{formatTime(at)}
	if len(types) > 0 {
		cond += ` AND type IN (` + strings.TrimSuffix(strings.Repeat("?, ", len(types)), ", ") + `)`
		for _, typ := range types {
			condArgs = append(condArgs, typ)
		}
	}
	var where string
	if id != "" {
		where = `id = ? AND ` + cond
		args = append(append(args, id), condArgs...)
	} else {
		where = `seq = (SELECT seq FROM tasks WHERE ` + cond + ` ORDER BY created_at, seq LIMIT 1)`
		args = append(args, condArgs...)
	}
	t, err := queryTask(ctx, s.w, `
		UPDATE tasks SET status = 'processing', attempts = attempts + 1, worker_id = ?,
			lease_until = ?, started_at = ?
		WHERE `+where+`
		RETURNING `+sqlstore.TaskColumns, args...)
	if err != nil {
		return nil, fmt.Errorf("sqlite: claim task: %w", err)
	}
	return t, nil
}

// finish applies set to the given attempt of a processing task; EConflict when the task is not
// processing at that attempt, ENotFound when absent.
func (s *Store) finish(ctx context.Context, verb, id string, attempt int, set string, args ...any) (*imaged.Task, error) {
	args = append(args, id, attempt)
	var t *imaged.Task
	err := s.inTx(ctx, func(tx *sql.Tx) error {
		var err error
		t, err = queryTask(ctx, tx, `
			UPDATE tasks SET `+set+`
			WHERE id = ? AND status = 'processing' AND attempts = ?
			RETURNING `+sqlstore.TaskColumns, args...)
		if err != nil || t == nil || !imaged.IsTerminal(t.Status) {
			return err
		}
		// The callbacks of the outcome are written with it, so none is lost to a crash.
		return writeOutcome(ctx, tx, t)
	})
	if err != nil {
		return nil, fmt.Errorf("sqlite: %s task: %w", verb, err)
	}
	if t != nil {
		return t, nil
	}
	cur, err := s.Task(ctx, imaged.AnyTenant, id)
	if err != nil {
		return nil, err
	}
	return nil, sqlstore.NotProcessing(cur, attempt, verb)
}

// CompleteTask records the result of the given attempt of a processing task and clears the
// error of earlier attempts. EConflict when the task is not processing at that attempt,
// ENotFound when absent.
func (s *Store) CompleteTask(ctx context.Context, id string, attempt int, res *imaged.TaskResult) (*imaged.Task, error) {
	var result any
	if res != nil {
		b, err := json.Marshal(res)
		if err != nil {
			return nil, imaged.WrapError(imaged.EInvalid, err, "the result of task %s cannot be stored", id)
		}
		result = string(b)
	}
	return s.finish(ctx, "complete", id, attempt, `status = 'completed', result = ?, finished_at = ?,
		lease_until = NULL, error_code = NULL, error_message = NULL`, result, formatTime(now()))
}

// FailTask records the final failure of the given attempt; EConflict and ENotFound as
// CompleteTask.
func (s *Store) FailTask(ctx context.Context, id string, attempt int, f *imaged.TaskFailure) (*imaged.Task, error) {
	code, msg := failure(f)
	return s.finish(ctx, "fail", id, attempt, `status = 'failed', error_code = ?, error_message = ?,
		finished_at = ?, lease_until = NULL`, code, msg, formatTime(now()))
}

// RetryTask puts the given attempt of a processing task back to queued, runnable after
// runAfter, keeping f as the last error; EConflict and ENotFound as CompleteTask.
func (s *Store) RetryTask(ctx context.Context, id string, attempt int, runAfter time.Time, f *imaged.TaskFailure) (*imaged.Task, error) {
	code, msg := failure(f)
	return s.finish(ctx, "retry", id, attempt, `status = 'queued', run_after = ?, error_code = ?,
		error_message = ?, lease_until = NULL`, formatTime(runAfter), code, msg)
}

// DeferTask puts the given attempt of a processing task back to queued, runnable after
// runAfter, keeping f as the last error, and takes the attempt back (attempts goes down by one):
// a dependency's outage, not the task, cut it short. EConflict and ENotFound as CompleteTask.
func (s *Store) DeferTask(ctx context.Context, id string, attempt int, runAfter time.Time, f *imaged.TaskFailure) (*imaged.Task, error) {
	code, msg := failure(f)
	return s.finish(ctx, "defer", id, attempt, `status = 'queued', attempts = attempts - 1, run_after = ?,
		error_code = ?, error_message = ?, lease_until = NULL`, formatTime(runAfter), code, msg)
}

// ExtendLease moves the lease of the given attempt of a processing task to until; EConflict
// and ENotFound as CompleteTask.
func (s *Store) ExtendLease(ctx context.Context, id string, attempt int, until time.Time) error {
	_, err := s.finish(ctx, "extend the lease of", id, attempt, `lease_until = ?`, formatTime(until))
	return err
}

func failure(f *imaged.TaskFailure) (code, msg any) {
	if f == nil {
		return nil, nil
	}
	return f.Code, f.Message
}

// RequeueExpired puts processing tasks whose lease ended at or before now back to queued (all
// processing tasks when all is true) and returns their ids. Their attempts stay counted.
func (s *Store) RequeueExpired(ctx context.Context, at time.Time, all bool) ([]string, error) {
	query := `UPDATE tasks SET status = 'queued', lease_until = NULL WHERE status = 'processing'`
	var args []any
	if !all {
		query += ` AND lease_until <= ?`
		args = append(args, formatTime(at))
	}
	ids, err := queryAll(ctx, s.w, sqlstore.ScanString,
		query+` RETURNING id`, args...)
	if err != nil {
		return nil, fmt.Errorf("sqlite: requeue expired: %w", err)
	}
	return ids, nil
}

// CountQueued returns the number of queued tasks per task type, every known type present.
// Tasks waiting for a retry's RunAfter count as queued.
func (s *Store) CountQueued(ctx context.Context) (map[string]int, error) {
	rows, err := s.r.QueryContext(ctx, sqlstore.CountQueued)
	if err != nil {
		return nil, fmt.Errorf("sqlite: count queued: %w", err)
	}
	defer rows.Close()
	out, err := sqlstore.QueuedCounts(rows)
	if err != nil {
		return nil, fmt.Errorf("sqlite: count queued: %w", err)
	}
	return out, nil
}
