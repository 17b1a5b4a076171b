package auth_test

import (
	"testing"

	"github.com/imaged/imaged"
	"github.com/imaged/imaged/auth"
)

func TestParseRate(t *testing.T) {
	for in, want := range map[string]int{"": 0, "600": 600, "600/m": 600, " 60/min ": 60} {
		if got, err := auth.ParseRate(in); err != nil || got != want {
			t.Errorf("ParseRate(%q) = %d, %v; want %d", in, got, err, want)
		}
	}
	for _, in := range []string{"600/s", "-1", "many", "10/h"} {
		if _, err := auth.ParseRate(in); err == nil {
			t.Errorf("ParseRate(%q) accepted", in)
		}
	}
}

func TestDescribeLimits(t *testing.T) {
	got := auth.DescribeLimits(&imaged.APIKey{RateLimit: 600, Concurrency: 4})
	if want := "600/m burst default concurrency 4"; got != want {
		t.Errorf("DescribeLimits = %q, want %q", got, want)
	}
}
