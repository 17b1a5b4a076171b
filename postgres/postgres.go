// Package postgres keeps images, tasks and batches in PostgreSQL through a pgx connection pool.
// It implements imaged.TaskStore with the same behaviour as package sqlite; with the database
// queue its tasks table is also the queue, and claims use FOR UPDATE SKIP LOCKED so that several
// imaged processes share one database without a broker.
//
// The store stamps times (creation, start, finish, lease) with the database's clock, so that
// every process sharing the database agrees on them.
package postgres

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgconn/ctxwatch"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/jackc/pgx/v5/stdlib"

	"github.com/imaged/imaged"
)

// Defaults of Config.
const (
	DefaultMinConns       = 5
	DefaultMaxConns       = 20
	DefaultCommandTimeout = 60 * time.Second
)

// Config says how to reach the database and how to use it.
type Config struct {
	// URL is a postgres:// or postgresql:// URL as pgx reads it. The parameters ParseURL knows
	// (pool_min_conns, pool_max_conns, command_timeout, schema) may stay in it: Open reads them
	// for the fields left zero here.
	URL string
	// MinConns is the number of connections kept open while idle: 0 means DefaultMinConns, a
	// negative number means none.
	MinConns int32
	// MaxConns caps the pool; 0 means DefaultMaxConns.
	MaxConns int32
	// CommandTimeout bounds every call of the store (waiting for a connection included); 0
	// means DefaultCommandTimeout. A call that runs out of it returns EUnavailable.
	CommandTimeout time.Duration
	// Schema, when set, holds all of imaged's tables (and its migration table); it is created
	// if missing. It must be a lower-case SQL identifier.
	Schema string
	// NoMigrate leaves the schema as it is; `imaged migrate` uses it to report and apply
	// migrations itself.
	NoMigrate bool
	// Logger receives migration progress; slog.Default() when nil.
	Logger *slog.Logger
}

// URL parameters that belong to imaged rather than to pgx.
const (
	paramMinConns       = "pool_min_conns"
	paramMaxConns       = "pool_max_conns"
	paramCommandTimeout = "command_timeout"
	paramSchema         = "schema"
)

// ParseURL reads a database URL such as
//
//	postgres://user:password@host:5432/imaged?sslmode=disable&pool_min_conns=5&pool_max_conns=20&command_timeout=60s&schema=imaged
//
// into a Config. pool_min_conns, pool_max_conns, command_timeout (a Go duration, or a number
// of seconds) and schema are taken out of the URL; every other parameter stays for pgx.
// Absent parameters leave their field zero, which Open reads as the default; pool_min_conns=0
// becomes MinConns -1 (no idle connections). Errors are EInvalid and name the parameter; they
// never repeat the URL, which may hold a password.
func ParseURL(raw string) (Config, error) {
	u, err := url.Parse(raw)
	if err != nil {
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err // url.Error repeats the URL, password included
		}
		return Config{}, imaged.FieldErrorf("url", "the database URL cannot be parsed: %v", err)
	}
	if u.Scheme != "postgres" && u.Scheme != "postgresql" {
		return Config{}, imaged.FieldErrorf("url", "the database URL must start with postgres:// or postgresql://, not %q", u.Scheme+"://")
	}
	q, err := url.ParseQuery(u.RawQuery)
	if err != nil {
		return Config{}, imaged.FieldErrorf("url", "the query of the database URL cannot be parsed: %v", err)
	}
	var c Config
	if v, ok := take(q, paramMinConns); ok {
		n, err := strconv.ParseInt(v, 10, 32)
		if err != nil || n < 0 {
			return Config{}, imaged.FieldErrorf(paramMinConns, "%s must be a whole number of 0 or more, not %q", paramMinConns, v)
		}
		c.MinConns = int32(n)
		if n == 0 {
			c.MinConns = -1
		}
	}
	if v, ok := take(q, paramMaxConns); ok {
		n, err := strconv.ParseInt(v, 10, 32)
		if err != nil || n < 1 {
			return Config{}, imaged.FieldErrorf(paramMaxConns, "%s must be a whole number of 1 or more, not %q", paramMaxConns, v)
		}
		c.MaxConns = int32(n)
	}
	if v, ok := take(q, paramCommandTimeout); ok {
		d, err := time.ParseDuration(v)
		if err != nil {
			if secs, serr := strconv.ParseFloat(v, 64); serr == nil {
				d, err = time.Duration(secs*float64(time.Second)), nil
			}
		}
		if err != nil || d <= 0 {
			return Config{}, imaged.FieldErrorf(paramCommandTimeout, "%s must be a positive duration such as 60s, not %q", paramCommandTimeout, v)
		}
		c.CommandTimeout = d
	}
	if v, ok := take(q, paramSchema); ok {
		if err := checkSchema(v); err != nil {
			return Config{}, err
		}
		c.Schema = v
	}
	if c.MinConns > 0 && c.MaxConns > 0 && c.MinConns > c.MaxConns {
		return Config{}, imaged.FieldErrorf(paramMinConns, "%s (%d) must not exceed %s (%d)", paramMinConns, c.MinConns, paramMaxConns, c.MaxConns)
	}
	u.RawQuery = q.Encode()
	c.URL = u.String()
	return c, nil
}

// take removes the parameter from q and returns its last value.
func take(q url.Values, name string) (string, bool) {
	vs, ok := q[name]
	if !ok {
		return "", false
	}
	delete(q, name)
	return vs[len(vs)-1], true
}

var schemaName = regexp.MustCompile(`^[a-z_][a-z0-9_]{0,62}$`)

// checkSchema accepts only names that need no quoting, so the name can stand in SQL, in
// search_path and in goose's table name as it is.
func checkSchema(name string) error {
	if !schemaName.MatchString(name) || strings.HasPrefix(name, "pg_") {
		return imaged.FieldErrorf(paramSchema, "%s must be a lower-case SQL identifier (a-z, 0-9, _; at most 63 characters; not starting with a digit or pg_), not %q", paramSchema, name)
	}
	return nil
}

// Store is an imaged.TaskStore on PostgreSQL.
type Store struct {
	pool      *pgxpool.Pool
	db        *sql.DB // the pool seen through database/sql, for goose
	timeout   time.Duration
	schema    string
	log       *slog.Logger
	closeOnce sync.Once
}

var _ imaged.TaskStore = (*Store)(nil)

// Open connects to the database, checks that it answers and, unless cfg says NoMigrate, applies
// pending migrations (serialised with other processes by an advisory lock). A database that
// cannot be reached is EUnavailable, a bad Config EInvalid.
func Open(ctx context.Context, cfg Config) (*Store, error) {
	cfg, err := resolve(cfg)
	if err != nil {
		return nil, err
	}
	pc, err := pgxpool.ParseConfig(cfg.URL)
	if err != nil {
		// pgx redacts the password in its parse errors.
		return nil, imaged.WrapError(imaged.EInvalid, err, "the database URL is not one PostgreSQL accepts")
	}
	pc.MinConns = max(cfg.MinConns, 0)
	pc.MaxConns = cfg.MaxConns
	rp := pc.ConnConfig.RuntimeParams
	if cfg.Schema != "" {
		rp["search_path"] = cfg.Schema
	}
	// goose records when a migration ran as a timestamp without time zone, in the session's
	// zone; in UTC it reads back right.
	rp["timezone"] = "UTC"
	if rp["application_name"] == "" {
		rp["application_name"] = "imaged"
	}
	// On a timeout or cancellation, ask the server to stop the statement (so it does not run
	// on, holding locks, after the caller gave up) and close the connection if the server does
	// not answer within a second.
	pc.ConnConfig.BuildContextWatcherHandler = func(c *pgconn.PgConn) ctxwatch.Handler {
		return &pgconn.CancelRequestContextWatcherHandler{Conn: c, DeadlineDelay: time.Second}
	}
	pool, err := pgxpool.NewWithConfig(context.WithoutCancel(ctx), pc)
	if err != nil {
		return nil, imaged.WrapError(imaged.EInvalid, err, "the database pool cannot be configured")
	}
	s := &Store{
		pool:    pool,
		db:      stdlib.OpenDBFromPool(pool),
		timeout: cfg.CommandTimeout,
		schema:  cfg.Schema,
		log:     cfg.Logger,
	}
	if err := s.Ping(ctx); err != nil {
		s.Close()
		return nil, err
	}
	if !cfg.NoMigrate {
		if err := s.MigrateUp(ctx); err != nil {
			s.Close()
			return nil, err
		}
	}
	return s, nil
}

// resolve fills cfg's zero fields from the parameters in its URL, then from the defaults, and
// checks the result.
func resolve(cfg Config) (Config, error) {
	if cfg.URL == "" {
		return cfg, imaged.FieldErrorf("url", "the database URL is empty")
	}
	fromURL, err := ParseURL(cfg.URL)
	if err != nil {
		return cfg, err
	}
	cfg.URL = fromURL.URL
	if cfg.MinConns == 0 {
		cfg.MinConns = fromURL.MinConns
	}
	if cfg.MaxConns == 0 {
		cfg.MaxConns = fromURL.MaxConns
	}
	if cfg.CommandTimeout == 0 {
		cfg.CommandTimeout = fromURL.CommandTimeout
	}
	if cfg.Schema == "" {
		cfg.Schema = fromURL.Schema
	}
	if cfg.MinConns == 0 {
		cfg.MinConns = DefaultMinConns
	}
	if cfg.MaxConns == 0 {
		cfg.MaxConns = DefaultMaxConns
	}
	if cfg.CommandTimeout == 0 {
		cfg.CommandTimeout = DefaultCommandTimeout
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	switch {
	case cfg.MaxConns < 1:
		return cfg, imaged.FieldErrorf(paramMaxConns, "%s must be 1 or more, not %d", paramMaxConns, cfg.MaxConns)
	case cfg.MinConns > cfg.MaxConns:
		return cfg, imaged.FieldErrorf(paramMinConns, "%s (%d) must not exceed %s (%d)", paramMinConns, cfg.MinConns, paramMaxConns, cfg.MaxConns)
	case cfg.CommandTimeout < 0:
		return cfg, imaged.FieldErrorf(paramCommandTimeout, "%s must be positive, not %s", paramCommandTimeout, cfg.CommandTimeout)
	}
	if cfg.Schema != "" {
		if err := checkSchema(cfg.Schema); err != nil {
			return cfg, err
		}
	}
	return cfg, nil
}

// Pool returns the connection pool, e.g. for health checks and pool metrics.
func (s *Store) Pool() *pgxpool.Pool { return s.pool }

// Schema returns the schema holding the tables; "" when it is the connection's default.
func (s *Store) Schema() string { return s.schema }

// Ping checks the database answers; EUnavailable when it does not.
func (s *Store) Ping(ctx context.Context) error {
	ctx, cancel := s.command(ctx)
	defer cancel()
	if err := s.pool.Ping(ctx); err != nil {
		if err := s.wrap(ctx, "ping", err); imaged.IsCode(err, imaged.EUnavailable) {
			return err
		}
		return imaged.WrapError(imaged.EUnavailable, err, "the database does not answer")
	}
	return nil
}

// Close closes the pool. Calling it again does nothing.
func (s *Store) Close() error {
	var err error
	s.closeOnce.Do(func() {
		err = s.db.Close()
		s.pool.Close()
	})
	return err
}

// errCommandTimeout is the cause of a context that ran out of the command timeout, which tells
// it apart from a caller that cancelled or had a deadline of its own.
var errCommandTimeout = errors.New("postgres: command timeout")

// command derives the context one call of the store runs under.
func (s *Store) command(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeoutCause(ctx, s.timeout, errCommandTimeout)
}

// wrap turns an error of a call made under ctx (from command) into the error the store
// returns: domain errors pass through; a timeout, a lost or refused connection and a server
// that is shutting down or out of resources are EUnavailable (breakers and retries count them);
// values the database cannot store are EInvalid; the rest is internal.
func (s *Store) wrap(ctx context.Context, what string, err error) error {
	if err == nil {
		return nil
	}
	var de *imaged.Error
	if errors.As(err, &de) {
		return err
	}
	cause := fmt.Errorf("postgres: %s: %w", what, err)
	if ctx.Err() != nil {
		if context.Cause(ctx) == errCommandTimeout {
			return &imaged.Error{Code: imaged.EUnavailable, Err: cause,
				Message: fmt.Sprintf("the database did not answer within %s", s.timeout)}
		}
		if !errors.Is(err, ctx.Err()) {
			return fmt.Errorf("postgres: %s: %w: %w", what, ctx.Err(), err)
		}
		return cause
	}
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		switch code := pgErr.Code; {
		case strings.HasPrefix(code, "08"), code == "57P01", code == "57P02":
			// Connection failure, or the server is shutting down: the other connections of
			// the pool are as likely gone.
			s.pool.Reset()
			return imaged.WrapError(imaged.EUnavailable, cause, "the database is unavailable")
		case strings.HasPrefix(code, "53"), code == "57P03":
			// Too many connections, out of memory or disk, or still starting up.
			return imaged.WrapError(imaged.EUnavailable, cause, "the database is unavailable")
		case code == "22021", code == "22P05":
			return imaged.WrapError(imaged.EInvalid, cause, "a value holds characters the database cannot store")
		case code == "54000":
			return imaged.WrapError(imaged.EInvalid, cause, "a value is too large for the database to store")
		}
		return cause
	}
	if connectionLost(err) {
		// A broken connection usually means the server restarted or the network failed:
		// drop the idle connections too, so the first call after recovery gets a fresh one.
		s.pool.Reset()
		return imaged.WrapError(imaged.EUnavailable, cause, "the database is unavailable")
	}
	return cause
}

// connectionLost reports whether err comes from failing to reach the server or losing the
// connection to it.
func connectionLost(err error) bool {
	var connErr *pgconn.ConnectError
	var netErr net.Error
	return errors.As(err, &connErr) || errors.As(err, &netErr) ||
		errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, net.ErrClosed) ||
		errors.Is(err, syscall.ECONNREFUSED) || errors.Is(err, syscall.ECONNRESET) ||
		errors.Is(err, syscall.EPIPE) || pgconn.Timeout(err) || pgconn.SafeToRetry(err)
}
