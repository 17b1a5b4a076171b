package auth_test

import (
	"flag"
	"io"
	"strings"
	"testing"

	"github.com/imaged/imaged"
	"github.com/imaged/imaged/auth"
)

func TestIssueGivesAKeyATenantOfItsOwn(t *testing.T) {
	s := openStore(t)
	own := &imaged.APIKey{Name: "ci"}
	if _, err := auth.Issue(t.Context(), s, own); err != nil {
		t.Fatal(err)
	}
	if own.Tenant != own.ID {
		t.Fatalf("a key issued without a tenant: tenant %q, id %q", own.Tenant, own.ID)
	}
	named := &imaged.APIKey{Name: "team", Tenant: "acme"}
	if _, err := auth.Issue(t.Context(), s, named); err != nil {
		t.Fatal(err)
	}
	for _, id := range []string{own.Tenant, "acme"} {
		if _, err := s.Tenant(t.Context(), id); err != nil {
			t.Fatalf("tenant %s was not recorded: %v", id, err)
		}
	}
	if _, err := auth.Issue(t.Context(), s, &imaged.APIKey{Name: "x", Tenant: imaged.AnyTenant}); !imaged.IsCode(err, imaged.EInvalid) {
		t.Fatalf("a key for every tenant: %v", err)
	}
	svc := auth.New(s, auth.Options{})
	if keys, err := svc.ListKeys(t.Context(), "acme"); err != nil || len(keys) != 1 || keys[0].ID != named.ID {
		t.Fatalf("ListKeys(acme) = %v, %v", keys, err)
	}
	if keys, _ := svc.ListKeys(t.Context(), ""); len(keys) != 2 {
		t.Fatalf("ListKeys() = %d keys, want 2", len(keys))
	}
}

func TestTenantFlagsChangeOnlyWhatIsGiven(t *testing.T) {
	fs := flag.NewFlagSet("tenant set", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	read := auth.TenantFlags(fs)
	if err := fs.Parse([]string{"--quota-bytes", "1000", "--rate-limit", "60/m", "--concurrency", "0"}); err != nil {
		t.Fatal(err)
	}
	c, err := read()
	if err != nil {
		t.Fatal(err)
	}
	tn := imaged.Tenant{ID: "acme", QuotaImages: 5, Burst: 7, Concurrency: 3}
	if err := c.Apply(&tn); err != nil {
		t.Fatal(err)
	}
	want := imaged.Tenant{ID: "acme", QuotaBytes: 1000, QuotaImages: 5, RateLimit: 60, Burst: 7}
	if tn != want {
		t.Fatalf("after tenant set: %+v, want %+v", tn, want)
	}
	fs = flag.NewFlagSet("tenant set", flag.ContinueOnError)
	read = auth.TenantFlags(fs)
	fs.Parse([]string{"--rate-limit", "fast"})
	if _, err := read(); err == nil || !strings.Contains(err.Error(), "N/m") {
		t.Fatalf("a rate that is not N/m: %v", err)
	}
}
