// Package sqlite keeps images, tasks and batches in an SQLite database file through the pure Go
// driver modernc.org/sqlite. It implements imaged.TaskStore; with the database queue (package
// dbqueue) its tasks table is also the queue of the embedded mode.
package sqlite

import (
	"context"
	"database/sql"
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net/url"
	"os"
	"path/filepath"
	"time"

	"github.com/pressly/goose/v3"
	"modernc.org/sqlite"
	sqlite3 "modernc.org/sqlite/lib"

	"github.com/imaged/imaged"
	"github.com/imaged/imaged/migrate"
)

//go:embed migrations/*.sql
var migrations embed.FS

// busyTimeout bounds how long a statement waits for a lock held by another process sharing the
// file (e.g. `imaged serve` and `imaged worker` on one host). Inside one process writes never
// wait on SQLite: they queue for the single writer connection instead.
const busyTimeout = 10 * time.Second

// readers is the size of the read pool. WAL lets readers run beside the writer.
const readers = 4

// Store is an imaged.TaskStore on one SQLite database file.
type Store struct {
	// w is the only connection that writes. Serialising writes in database/sql's pool, rather
	// than in SQLite's locks, means concurrent claims and updates in this process never see
	// SQLITE_BUSY, and its transactions begin IMMEDIATE so that a transaction never has to
	// upgrade a read lock that another process could hold.
	w *sql.DB
	// r serves reads that need no write lock.
	r    *sql.DB
	path string
	log  *slog.Logger
}

var _ imaged.TaskStore = (*Store)(nil)

// OpenOptions tune Open.
type OpenOptions struct {
	// NoMigrate leaves the schema as it is; `imaged migrate` uses it to report and apply
	// migrations itself.
	NoMigrate bool
	// Logger receives migration progress; slog.Default() when nil.
	Logger *slog.Logger
}

// Open opens (creating it and its parent directory when absent) the database file at path and,
// unless opts says NoMigrate, applies pending migrations. Only the first opts is read. path is
// a file path, not a URL; ":memory:" is not supported because the read and write pools must
// share one database.
func Open(ctx context.Context, path string, opts ...OpenOptions) (*Store, error) {
	var o OpenOptions
	if len(opts) > 0 {
		o = opts[0]
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	if path == "" || path == ":memory:" {
		return nil, imaged.Errorf(imaged.EInvalid, "the SQLite database needs a file path")
	}
	if dir := filepath.Dir(path); dir != "" {
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return nil, fmt.Errorf("sqlite: create directory of %s: %w", path, err)
		}
	}

	common := url.Values{}
	common.Add("_pragma", fmt.Sprintf("busy_timeout(%d)", busyTimeout.Milliseconds()))
	common.Add("_pragma", "foreign_keys(1)")

	wq := cloneValues(common)
	wq.Add("_pragma", "journal_mode(WAL)")
	wq.Set("_txlock", "immediate")
	w, err := sql.Open("sqlite", "file:"+path+"?"+wq.Encode())
	if err != nil {
		return nil, fmt.Errorf("sqlite: open %s: %w", path, err)
	}
	w.SetMaxOpenConns(1)
	w.SetMaxIdleConns(1)
	w.SetConnMaxLifetime(0)
	w.SetConnMaxIdleTime(0)
	// The writer connects first: it switches the file to WAL before any reader opens it.
	if err := connect(ctx, w); err != nil {
		w.Close()
		return nil, fmt.Errorf("sqlite: open %s: %w", path, err)
	}

	rq := cloneValues(common)
	rq.Add("_pragma", "query_only(1)")
	r, err := sql.Open("sqlite", "file:"+path+"?"+rq.Encode())
	if err != nil {
		w.Close()
		return nil, fmt.Errorf("sqlite: open %s: %w", path, err)
	}
	r.SetMaxOpenConns(readers)
	r.SetMaxIdleConns(readers)

	s := &Store{w: w, r: r, path: path, log: o.Logger}
	if !o.NoMigrate {
		if err := s.MigrateUp(ctx); err != nil {
			s.Close()
			return nil, err
		}
	}
	return s, nil
}

// connect opens the writer connection. Switching a new file to WAL needs an exclusive lock,
// and SQLite answers SQLITE_BUSY at once, without waiting out busy_timeout, when another process
// is doing the same; so connect retries for up to busyTimeout.
func connect(ctx context.Context, db *sql.DB) error {
	deadline := time.Now().Add(busyTimeout)
	for wait := 5 * time.Millisecond; ; wait = min(2*wait, 200*time.Millisecond) {
		err := db.PingContext(ctx)
		if err == nil || !isBusy(err) || time.Now().After(deadline) {
			return err
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(wait):
		}
	}
}

func cloneValues(v url.Values) url.Values {
	c := url.Values{}
	for k, vs := range v {
		c[k] = append([]string(nil), vs...)
	}
	return c
}

// Path returns the database file's path.
func (s *Store) Path() string { return s.path }

// Ping checks the database answers.
func (s *Store) Ping(ctx context.Context) error {
	var one int
	if err := s.r.QueryRowContext(ctx, "SELECT 1").Scan(&one); err != nil {
		return imaged.WrapError(imaged.EUnavailable, err, "the database does not answer")
	}
	return nil
}

// Close closes both pools.
func (s *Store) Close() error {
	return errors.Join(s.r.Close(), s.w.Close())
}

// MigrationState is one migration and whether it is applied.
type MigrationState = imaged.MigrationState

func (s *Store) migrator() (*goose.Provider, error) {
	sub, err := fs.Sub(migrations, "migrations")
	if err != nil {
		return nil, err
	}
	// Goose runs on the writer connection, so migrations are serialised with every other write.
	p, err := goose.NewProvider(goose.DialectSQLite3, s.w, sub, goose.WithDisableGlobalRegistry(true))
	if err != nil {
		return nil, fmt.Errorf("sqlite: migrations: %w", err)
	}
	return p, nil
}

// MigrateUp applies every pending migration.
func (s *Store) MigrateUp(ctx context.Context) error {
	p, err := s.migrator()
	if err != nil {
		return err
	}
	// Two processes opening a new file at once (serve and worker) race to migrate it: each
	// migration is a transaction, so the loser fails on a table the winner has just created
	// while the winner goes on with the next ones. The loser tries again, for a few seconds,
	// until nothing is pending.
	for try := 0; ; try++ {
		var results []*goose.MigrationResult
		results, err = p.Up(ctx)
		for _, r := range results {
			if r.Error == nil {
				s.log.InfoContext(ctx, "migration applied", "database", "sqlite",
					"version", r.Source.Version, "name", filepath.Base(r.Source.Path),
					"duration_seconds", r.Duration.Seconds())
			}
		}
		if err == nil {
			return nil
		}
		if pending, perr := p.HasPending(ctx); perr == nil && !pending {
			return nil
		}
		if try == 50 || ctx.Err() != nil {
			return fmt.Errorf("sqlite: migrate up: %w", err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// MigrationStatus lists every known migration, oldest first, with whether it is applied.
func (s *Store) MigrationStatus(ctx context.Context) ([]MigrationState, error) {
	p, err := s.migrator()
	if err != nil {
		return nil, err
	}
	out, err := migrate.Status(ctx, p)
	if err != nil {
		return nil, fmt.Errorf("sqlite: migration status: %w", err)
	}
	return out, nil
}

// timeLayout is fixed width, so stored times order and compare correctly as text.
const timeLayout = "2006-01-02T15:04:05.000000Z"

func formatTime(t time.Time) string { return t.UTC().Format(timeLayout) }

func formatTimePtr(t *time.Time) any {
	if t == nil {
		return nil
	}
	return formatTime(*t)
}

func parseTime(s string) (time.Time, error) {
	t, err := time.Parse(timeLayout, s)
	if err != nil {
		return time.Time{}, fmt.Errorf("sqlite: stored time %q: %w", s, err)
	}
	return t.UTC(), nil
}

// storedTime is where a row's stored time goes: as a database/sql Scanner it parses the text,
// so that the rows' destinations can be the ones sqlstore shares with postgres.
type storedTime struct{ t *time.Time }

func (d storedTime) Scan(src any) error {
	var err error
	switch v := src.(type) {
	case string:
		*d.t, err = parseTime(v)
	case []byte:
		*d.t, err = parseTime(string(v))
	default:
		err = fmt.Errorf("sqlite: stored time %v is %T, not text", src, src)
	}
	return err
}

// storedTimePtr is storedTime for a column that may be NULL, which leaves *t nil.
type storedTimePtr struct{ t **time.Time }

func (d storedTimePtr) Scan(src any) error {
	if src == nil {
		*d.t = nil
		return nil
	}
	t := new(time.Time)
	if err := (storedTime{t}).Scan(src); err != nil {
		return err
	}
	*d.t = t
	return nil
}

// stamp fills what a new record's caller left empty: its id (ordered, so that rows sort by
// creation), the default tenant and the creation time, kept at the precision the store reads
// back.
func stamp(id, tenant *string, created *time.Time) {
	if *id == "" {
		*id = imaged.NewOrderedID()
	}
	if *tenant == "" {
		*tenant = imaged.DefaultTenant
	}
	if created.IsZero() {
		*created = now()
	}
	*created = created.UTC().Truncate(time.Microsecond)
}

// now is the store's clock, at the precision it stores.
func now() time.Time { return time.Now().UTC().Truncate(time.Microsecond) }

func nullString(s string) any {
	if s == "" {
		return nil
	}
	return s
}

// isBusy reports whether err is SQLite's "database is locked".
func isBusy(err error) bool {
	var e *sqlite.Error
	if errors.As(err, &e) {
		return e.Code()&0xff == sqlite3.SQLITE_BUSY
	}
	return false
}

// isConstraint reports whether err is a unique or primary key violation.
func isConstraint(err error) bool {
	var e *sqlite.Error
	if errors.As(err, &e) {
		return e.Code()&0xff == sqlite3.SQLITE_CONSTRAINT
	}
	return false
}
