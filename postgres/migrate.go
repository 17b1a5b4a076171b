package postgres

import (
	"context"
	"database/sql"
	"embed"
	"fmt"
	"hash/fnv"
	"io/fs"
	"path/filepath"

	"github.com/imaged/imaged"
	"github.com/imaged/imaged/migrate"

	"github.com/jackc/pgx/v5"
	"github.com/pressly/goose/v3"
	"github.com/pressly/goose/v3/lock"
)

//go:embed migrations/*.sql
var migrations embed.FS

// versionTable is goose's record of applied migrations. It is imaged's own name rather than
// goose's default, so that another application using goose in the same schema cannot mistake
// imaged's versions for its own.
const versionTable = "imaged_migrations"

// MigrationState is one migration and whether it is applied.
type MigrationState = imaged.MigrationState

// lockID is the advisory lock that serialises migrations of one schema across processes.
// Stores of different schemas (tests run each in its own) do not wait for each other.
func (s *Store) lockID() int64 {
	h := fnv.New64a()
	h.Write([]byte("imaged migrations " + s.schema))
	return int64(h.Sum64())
}

// advisoryLock is a goose session locker that waits on pg_advisory_lock, bounded by the
// context, instead of polling as goose's own does (every 5 s, at least 1 s): processes opening
// together then wait only as long as the first takes to migrate.
type advisoryLock struct{ id int64 }

var _ lock.SessionLocker = advisoryLock{}

func (l advisoryLock) SessionLock(ctx context.Context, conn *sql.Conn) error {
	_, err := conn.ExecContext(ctx, `SELECT pg_advisory_lock($1)`, l.id)
	return err
}

func (l advisoryLock) SessionUnlock(ctx context.Context, conn *sql.Conn) error {
	_, err := conn.ExecContext(ctx, `SELECT pg_advisory_unlock($1)`, l.id)
	return err
}

func (s *Store) migrator() (*goose.Provider, error) {
	sub, err := fs.Sub(migrations, "migrations")
	if err != nil {
		return nil, err
	}
	table := versionTable
	if s.schema != "" {
		// Qualified, because goose looks for an unqualified table in current_schema(), which
		// is NULL while the schema does not exist and then matches any schema.
		table = s.schema + "." + versionTable
	}
	p, err := goose.NewProvider(goose.DialectPostgres, s.db, sub,
		goose.WithDisableGlobalRegistry(true),
		goose.WithTableName(table),
		goose.WithSessionLocker(advisoryLock{id: s.lockID()}))
	if err != nil {
		return nil, fmt.Errorf("postgres: migrations: %w", err)
	}
	return p, nil
}

// MigrateUp creates the schema when missing and applies every pending migration. Processes
// migrating at once take turns on an advisory lock; those that come second find nothing left
// to do. Migrations run under ctx alone, not the command timeout: building an index on a large
// table may take longer than any one command should.
func (s *Store) MigrateUp(ctx context.Context) error {
	if err := s.ensureSchema(ctx); err != nil {
		return err
	}
	p, err := s.migrator()
	if err != nil {
		return err
	}
	// Up first asks whether anything is pending without taking the lock, creating goose's
	// version table if missing; processes doing that at once collide and retry after a second.
	// Reading the version first, under the lock, makes the table exist before that.
	if _, err := p.GetDBVersion(ctx); err != nil {
		return s.wrap(ctx, "migrate up", err)
	}
	results, err := p.Up(ctx)
	for _, r := range results {
		if r.Error == nil {
			s.log.InfoContext(ctx, "migration applied", "database", "postgres", "schema", s.schema,
				"version", r.Source.Version, "name", filepath.Base(r.Source.Path),
				"duration_seconds", r.Duration.Seconds())
		}
	}
	if err != nil {
		return s.wrap(ctx, "migrate up", err)
	}
	return nil
}

// ensureSchema creates the configured schema when it does not exist. It asks first, so a
// role without CREATE on the database can use a schema made for it, and holds the migration
// lock, so two processes cannot race to create it.
func (s *Store) ensureSchema(ctx context.Context) error {
	if s.schema == "" {
		return nil
	}
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock($1)`, s.lockID()); err != nil {
			return err
		}
		var exists bool
		if err := tx.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM pg_namespace WHERE nspname = $1)`,
			s.schema).Scan(&exists); err != nil {
			return err
		}
		if exists {
			return nil
		}
		// checkSchema admitted only names that need no quoting.
		_, err := tx.Exec(ctx, `CREATE SCHEMA `+s.schema)
		return err
	})
	return s.wrap(ctx, "create schema "+s.schema, err)
}

// MigrationStatus lists every known migration, oldest first, with whether it is applied. It
// creates nothing where the schema does not exist yet (goose creates its version table in an
// existing one).
func (s *Store) MigrationStatus(ctx context.Context) ([]MigrationState, error) {
	ctx, cancel := s.command(ctx)
	defer cancel()
	p, err := s.migrator()
	if err != nil {
		return nil, err
	}
	if s.schema != "" {
		var exists bool
		err := s.pool.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM pg_namespace WHERE nspname = $1)`,
			s.schema).Scan(&exists)
		if err != nil {
			return nil, s.wrap(ctx, "migration status", err)
		}
		if !exists {
			var out []MigrationState
			for _, src := range p.ListSources() {
				out = append(out, MigrationState{Version: src.Version, Name: filepath.Base(src.Path)})
			}
			return out, nil
		}
	}
	out, err := migrate.Status(ctx, p)
	if err != nil {
		return nil, s.wrap(ctx, "migration status", err)
	}
	return out, nil
}
