package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/imaged/imaged"
	"github.com/imaged/imaged/auth"
	"github.com/imaged/imaged/settings"
)

const apikeyUsage = `usage:
  imaged apikey create --name NAME [--rate-limit N/m] [--burst N] [--concurrency N] [--admin] [flags]
  imaged apikey list [flags]
  imaged apikey revoke [flags] ID|PREFIX|KEY

create prints the new key on stdout, once: only a hash of it is stored. Limits left out (or 0)
follow the server's IMAGED_RATE_LIMIT_KEY, IMAGED_RATE_LIMIT_KEY_BURST and IMAGED_KEY_CONCURRENCY.
The database is the one serve uses (IMAGED_DATABASE_URL or DATA_DIR/imaged.db).`

// apikeyCommand runs `imaged apikey create|list|revoke`.
func apikeyCommand(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	if len(args) == 0 || !settings.OneOf(args[0], "create", "list", "revoke") {
		fmt.Fprintln(stderr, apikeyUsage)
		return errors.New("usage: imaged apikey create|list|revoke")
	}
	verb := args[0]
	var name, rate string
	var burst, concurrency int
	var admin bool
	cfg, rest, err := parseConfigWith("apikey "+verb, args[1:], getenv, func(fs *flag.FlagSet) {
		if verb != "create" {
			return
		}
		fs.StringVar(&name, "name", "", "what the key is for (required)")
		fs.StringVar(&rate, "rate-limit", "", "requests per minute, as N/m (default: the server's)")
		fs.IntVar(&burst, "burst", 0, "most requests in any one second (default: the server's)")
		fs.IntVar(&concurrency, "concurrency", 0, "most requests at once (default: the server's)")
		fs.BoolVar(&admin, "admin", false, "mark the key as an administrator's")
	})
	if err != nil {
		return err
	}
	switch {
	case verb == "revoke" && len(rest) != 1:
		return errors.New("usage: imaged apikey revoke [flags] ID|PREFIX|KEY")
	case verb != "revoke" && len(rest) > 0:
		return fmt.Errorf("unexpected arguments: %s", strings.Join(rest, " "))
	}
	var perMinute int
	if verb == "create" {
		if strings.TrimSpace(name) == "" {
			return errors.New("apikey create: --name is required")
		}
		if perMinute, err = auth.ParseRate(rate); err != nil {
			return fmt.Errorf("apikey create: --rate-limit: %w", err)
		}
		if burst < 0 || concurrency < 0 {
			return errors.New("apikey create: --burst and --concurrency must not be negative")
		}
	}
	store, err := openKeyStore(ctx, cfg)
	if err != nil {
		return err
	}
	defer store.Close()
	keys := store.(imaged.APIKeyStore)

	switch verb {
	case "create":
		k := &imaged.APIKey{Name: strings.TrimSpace(name), RateLimit: perMinute, Burst: burst, Concurrency: concurrency, Admin: admin}
		token, err := auth.Create(ctx, keys, k)
		if err != nil {
			return err
		}
		fmt.Fprintln(stdout, token)
		fmt.Fprintf(stderr, "created API key %s (id %s, prefix %s, %s); it is shown only this once\n",
			k.Name, k.ID, k.Prefix, auth.DescribeLimits(k))
	case "list":
		list, err := keys.APIKeys(ctx)
		if err != nil {
			return err
		}
		return auth.WriteList(stdout, list)
	case "revoke":
		k, err := auth.Revoke(ctx, keys, rest[0])
		if err != nil {
			return err
		}
		fmt.Fprintf(stdout, "revoked API key %s (id %s, prefix %s) at %s\n", k.Name, k.ID, k.Prefix, k.RevokedAt.Format(time.RFC3339))
	}
	return nil
}

// openKeyStore opens the database named by the settings, which must keep API keys.
func openKeyStore(ctx context.Context, cfg *Config) (imaged.TaskStore, error) {
	store, _, err := openStore(ctx, cfg.databaseURL(), cfg.NoMigrate)
	if err != nil {
		return nil, fmt.Errorf("setting IMAGED_DATABASE_URL: %w", err)
	}
	if _, ok := store.(imaged.APIKeyStore); !ok {
		store.Close()
		return nil, errors.New("setting IMAGED_DATABASE_URL: this database keeps no API keys")
	}
	return store, nil
}
