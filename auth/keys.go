package auth

import (
	"context"
	"fmt"
	"io"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/imaged/imaged"
)

// ParseRate reads a per-minute rate: "600", "600/m" or "600/min"; "" is 0 (the server's).
func ParseRate(s string) (int, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return 0, nil
	}
	n, unit, _ := strings.Cut(s, "/")
	if unit != "" && unit != "m" && unit != "min" {
		return 0, fmt.Errorf("%q: give requests per minute, as N/m", s)
	}
	v, err := strconv.Atoi(n)
	if err != nil || v < 0 {
		return 0, fmt.Errorf("%q: give requests per minute, as N/m", s)
	}
	return v, nil
}

// DescribeLimits reads a key's limits for people: "600/m burst 20 concurrency default".
func DescribeLimits(k *imaged.APIKey) string {
	part := func(v int, unit string) string {
		if v == 0 {
			return "default" + unit
		}
		return strconv.Itoa(v) + unit
	}
	return part(k.RateLimit, "/m") + " burst " + part(k.Burst, "") + " concurrency " + part(k.Concurrency, "")
}

// WriteKeys writes every key in store as a table, one key a line, for `imaged apikey list`.
func WriteKeys(ctx context.Context, w io.Writer, store imaged.APIKeyStore) error {
	keys, err := store.APIKeys(ctx)
	if err != nil {
		return err
	}
	timeOrDash := func(t *time.Time) string {
		if t == nil {
			return "-"
		}
		return t.Format(time.RFC3339)
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tPREFIX\tNAME\tTENANT\tLIMITS\tADMIN\tCREATED\tLAST USED\tREVOKED")
	for _, k := range keys {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%v\t%s\t%s\t%s\n", k.ID, k.Prefix, k.Name, k.Tenant, DescribeLimits(k), k.Admin,
			k.CreatedAt.Format(time.RFC3339), timeOrDash(k.LastUsedAt), timeOrDash(k.RevokedAt))
	}
	return tw.Flush()
}

// Revoke revokes the key ref names: its id, its prefix or the whole key. ENotFound when no
// key matches.
func Revoke(ctx context.Context, store imaged.APIKeyStore, ref string) (*imaged.APIKey, error) {
	if prefix, _, ok := Parse(ref); ok {
		ref = prefix
	}
	return store.RevokeAPIKey(ctx, ref)
}
