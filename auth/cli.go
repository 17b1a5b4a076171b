package auth

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"strconv"
	"strings"
	"text/tabwriter"

	"github.com/imaged/imaged"
)

// KeyFlags registers the flags of `imaged apikey create` on fs and returns the function that
// reads them, once fs is parsed, into a key to Issue.
func KeyFlags(fs *flag.FlagSet) func() (*imaged.APIKey, error) {
	k := &imaged.APIKey{}
	var rate string
	fs.StringVar(&k.Name, "name", "", "what the key is for (required)")
	fs.StringVar(&k.Tenant, "tenant", "", "the tenant the key acts for (default: a new tenant of its own, named after the key's id)")
	fs.StringVar(&rate, "rate-limit", "", "requests per minute, as N/m (default: the server's)")
	fs.IntVar(&k.Burst, "burst", 0, "most requests in any one second (default: the server's)")
	fs.IntVar(&k.Concurrency, "concurrency", 0, "most requests at once (default: the server's)")
	fs.BoolVar(&k.Admin, "admin", false, "mark the key as an administrator's: it manages keys and tenants, and may act in any tenant with ?tenant=")
	return func() (*imaged.APIKey, error) {
		if k.Name = strings.TrimSpace(k.Name); k.Name == "" {
			return nil, errors.New("--name is required")
		}
		var err error
		if k.RateLimit, err = ParseRate(rate); err != nil {
			return nil, fmt.Errorf("--rate-limit: %w", err)
		}
		if k.Burst < 0 || k.Concurrency < 0 {
			return nil, errors.New("--burst and --concurrency must not be negative")
		}
		return k, nil
	}
}

// TenantFlags registers the flags of `imaged tenant set` on fs and returns the function that
// reads them, once fs is parsed: a limit changes only when its flag is given (0: unlimited).
func TenantFlags(fs *flag.FlagSet) func() (imaged.TenantChange, error) {
	var c imaged.TenantChange
	var rate string
	var quotaBytes, quotaImages int64
	var burst, concurrency int
	fs.Int64Var(&quotaBytes, "quota-bytes", 0, "most bytes of stored originals (0: unlimited)")
	fs.Int64Var(&quotaImages, "quota-images", 0, "most stored originals (0: unlimited)")
	fs.StringVar(&rate, "rate-limit", "", "requests per minute over all the tenant's keys, as N/m (0: unlimited)")
	fs.IntVar(&burst, "burst", 0, "most requests in any one second over all the tenant's keys (0: unlimited)")
	fs.IntVar(&concurrency, "concurrency", 0, "most requests at once over all the tenant's keys, per process (0: unlimited)")
	return func() (imaged.TenantChange, error) {
		var err error
		fs.Visit(func(f *flag.Flag) {
			switch f.Name {
			case "quota-bytes":
				c.QuotaBytes = &quotaBytes
			case "quota-images":
				c.QuotaImages = &quotaImages
			case "rate-limit":
				perMinute, perr := ParseRate(rate)
				c.RateLimit, err = &perMinute, perr
			case "burst":
				c.Burst = &burst
			case "concurrency":
				c.Concurrency = &concurrency
			}
		})
		return c, err
	}
}

// WriteTenants writes every tenant, its limits and its usage as a table, for `imaged tenant
// list`.
func WriteTenants(ctx context.Context, w io.Writer, store imaged.TenantStore) error {
	tenants, err := store.ListTenants(ctx)
	if err != nil {
		return err
	}
	limit := func(v int64) string {
		if v == 0 {
			return "unlimited"
		}
		return strconv.FormatInt(v, 10)
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "TENANT\tIMAGES\tQUOTA IMAGES\tBYTES\tQUOTA BYTES\tRATE/M\tBURST\tCONCURRENCY")
	for _, t := range tenants {
		u, err := store.Usage(ctx, t.ID)
		if err != nil {
			return err
		}
		fmt.Fprintf(tw, "%s\t%d\t%s\t%d\t%s\t%s\t%s\t%s\n", t.ID, u.Images, limit(t.QuotaImages), u.Bytes, limit(t.QuotaBytes),
			limit(int64(t.RateLimit)), limit(int64(t.Burst)), limit(int64(t.Concurrency)))
	}
	return tw.Flush()
}
