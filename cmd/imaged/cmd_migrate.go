package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/imaged/imaged"
	"github.com/imaged/imaged/postgres"
	"github.com/imaged/imaged/sqlite"
)

// migratable is what both database stores offer for `imaged migrate`.
type migratable interface {
	MigrateUp(ctx context.Context) error
	MigrationStatus(ctx context.Context) ([]imaged.MigrationState, error)
	Close() error
}

// migrate applies or lists database migrations.
func migrate(ctx context.Context, cfg *Config, verb string, out io.Writer) error {
	raw := cfg.Database()
	scheme, rest, _ := strings.Cut(raw, "://")
	var s migratable
	var err error
	switch scheme {
	case "sqlite":
		if err := os.MkdirAll(filepath.Dir(rest), 0o755); err != nil {
			return err
		}
		s, err = sqlite.Open(ctx, rest, sqlite.OpenOptions{NoMigrate: true})
	case "postgres", "postgresql":
		var pcfg postgres.Config
		if pcfg, err = postgres.ParseURL(raw); err == nil {
			pcfg.NoMigrate = true
			s, err = postgres.Open(ctx, pcfg)
		}
	default:
		err = fmt.Errorf("unsupported scheme %q", scheme)
	}
	if err != nil {
		return fmt.Errorf("setting IMAGED_DATABASE_URL: %w", err)
	}
	defer s.Close()
	if verb == "up" {
		if err := s.MigrateUp(ctx); err != nil {
			return err
		}
	}
	states, err := s.MigrationStatus(ctx)
	if err != nil {
		return err
	}
	for _, m := range states {
		fmt.Fprintln(out, m)
	}
	return nil
}
