package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/imaged/imaged/postgres"
	"github.com/imaged/imaged/sqlite"
)

// migrator is what both database stores offer for `imaged migrate`.
type migrator interface {
	MigrateUp(ctx context.Context) error
}

// migrate applies or lists database migrations.
func migrate(ctx context.Context, cfg *Config, verb string, out io.Writer) error {
	raw := cfg.DatabaseURL
	if raw == "" {
		raw = "sqlite://" + filepath.Join(cfg.DataDir, "imaged.db")
	}
	scheme, rest, _ := strings.Cut(raw, "://")
	var m migrator
	var status func() ([]string, error)
	switch scheme {
	case "sqlite":
		if err := os.MkdirAll(filepath.Dir(rest), 0o755); err != nil {
			return err
		}
		s, err := sqlite.Open(ctx, rest, sqlite.OpenOptions{NoMigrate: true})
		if err != nil {
			return fmt.Errorf("setting IMAGED_DATABASE_URL: %w", err)
		}
		defer s.Close()
		m = s
		status = func() ([]string, error) { return describe(s.MigrationStatus(ctx)) }
	case "postgres", "postgresql":
		pcfg, err := postgres.ParseURL(raw)
		if err != nil {
			return fmt.Errorf("setting IMAGED_DATABASE_URL: %w", err)
		}
		pcfg.NoMigrate = true
		s, err := postgres.Open(ctx, pcfg)
		if err != nil {
			return fmt.Errorf("setting IMAGED_DATABASE_URL: %w", err)
		}
		defer s.Close()
		m = s
		status = func() ([]string, error) { return describe(s.MigrationStatus(ctx)) }
	default:
		return fmt.Errorf("setting IMAGED_DATABASE_URL: unsupported scheme %q", scheme)
	}
	if verb == "up" {
		if err := m.MigrateUp(ctx); err != nil {
			return err
		}
	}
	lines, err := status()
	if err != nil {
		return err
	}
	for _, l := range lines {
		fmt.Fprintln(out, l)
	}
	return nil
}

func describe[T fmt.Stringer](states []T, err error) ([]string, error) {
	if err != nil {
		return nil, err
	}
	out := make([]string, len(states))
	for i, s := range states {
		out[i] = s.String()
	}
	return out, nil
}
