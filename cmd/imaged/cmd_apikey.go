package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"slices"
	"strings"
	"time"

	"github.com/imaged/imaged"
	"github.com/imaged/imaged/auth"
	"github.com/imaged/imaged/config"
)

const adminUsage = `usage:
  imaged apikey create --name NAME [--tenant T] [--rate-limit N/m] [--burst N] [--concurrency N] [--admin] [flags]
  imaged apikey list [flags]
  imaged apikey revoke [flags] ID|PREFIX|KEY
  imaged tenant set T [--quota-bytes N] [--quota-images N] [--rate-limit N/m] [--burst N] [--concurrency N] [flags]
  imaged tenant list [flags]

apikey create prints the new key on stdout, once: only a hash of it is stored. Without --tenant the key
gets a tenant of its own, named after its id. Key limits left out (or 0) follow IMAGED_RATE_LIMIT_KEY,
IMAGED_RATE_LIMIT_KEY_BURST and IMAGED_KEY_CONCURRENCY. tenant set changes only the limits given (0:
unlimited); a request passes both its key's and its tenant's. The database is serve's.`

// adminCommand runs `imaged apikey create|list|revoke` and `imaged tenant set|list`.
func adminCommand(ctx context.Context, noun string, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	verbs := map[string][]string{"apikey": {"create", "list", "revoke"}, "tenant": {"set", "list"}}[noun]
	if len(args) == 0 || !slices.Contains(verbs, args[0]) {
		fmt.Fprintln(stderr, adminUsage)
		return fmt.Errorf("usage: imaged %s %s", noun, strings.Join(verbs, "|"))
	}
	verb, nargs := args[0], map[string]int{"revoke": 1, "set": 1}[args[0]]
	var readKey func() (*imaged.APIKey, error)
	var readChange func() (imaged.TenantChange, error)
	flagArgs := args[1:]
	if verb == "set" && len(flagArgs) > 0 && !strings.HasPrefix(flagArgs[0], "-") {
		flagArgs = slices.Concat(flagArgs[1:], flagArgs[:1]) // the tenant may come before its flags
	}
	cfg, rest, err := config.ParseWith(noun+" "+verb, flagArgs, getenv, func(fs *flag.FlagSet) {
		if verb == "create" {
			readKey = auth.KeyFlags(fs)
		} else if verb == "set" {
			readChange = auth.TenantFlags(fs)
		}
	})
	if err != nil {
		return withUsage(err, adminUsage)
	}
	if len(rest) != nargs {
		return fmt.Errorf("usage: imaged %s %s takes %d arguments, got %q (see imaged %s)", noun, verb, nargs, rest, noun)
	}
	store, _, err := openStore(ctx, cfg.Database(), cfg.NoMigrate)
	if err != nil {
		return fmt.Errorf("setting IMAGED_DATABASE_URL: %w", err)
	}
	defer store.Close()
	keys, ok := store.(imaged.APIKeyStore)
	if !ok {
		return errors.New("setting IMAGED_DATABASE_URL: this database keeps no API keys")
	}
	switch verb {
	case "create":
		k, err := readKey()
		token := ""
		if err == nil {
			token, err = auth.Issue(ctx, keys, k)
		}
		if err != nil {
			return fmt.Errorf("apikey create: %w", err)
		}
		fmt.Fprintln(stdout, token)
		fmt.Fprintf(stderr, "created API key %s (id %s, prefix %s, tenant %s, %s); it is shown only this once\n",
			k.Name, k.ID, k.Prefix, k.Tenant, auth.DescribeLimits(k))
		return nil
	case "list":
		if noun == "tenant" {
			return auth.WriteTenants(ctx, stdout, store)
		}
		return auth.WriteKeys(ctx, stdout, keys)
	case "revoke":
		k, err := auth.Revoke(ctx, keys, rest[0])
		if err == nil {
			fmt.Fprintf(stdout, "revoked API key %s (id %s, prefix %s) at %s\n", k.Name, k.ID, k.Prefix, k.RevokedAt.Format(time.RFC3339))
		}
		return err
	}
	c, err := readChange() // tenant set
	if err == nil {
		_, err = imaged.SetTenantLimits(ctx, store, rest[0], c)
	}
	if err != nil {
		return fmt.Errorf("tenant set: %w", err)
	}
	return auth.WriteTenants(ctx, stdout, store)
}
