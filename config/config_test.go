package config

import (
	"errors"
	"flag"
	"strings"
	"testing"
	"time"
)

func envOf(kv ...string) func(string) string {
	m := map[string]string{}
	for i := 0; i+1 < len(kv); i += 2 {
		m[kv[i]] = kv[i+1]
	}
	return func(k string) string { return m[k] }
}

func TestConfigDefaultsAndOverrides(t *testing.T) {
	c, err := Parse("serve", nil, envOf())
	if err != nil {
		t.Fatal(err)
	}
	if c.Addr != ":8000" || c.DataDir != "./data" || c.MaxUploadBytes != 50<<20 || c.MaxWidth != 10000 || c.MaxAttempts != 3 ||
		c.ResultCache != "on" {
		t.Fatalf("defaults: %+v", c)
	}
	c, err = Parse("serve", []string{"--workers=0", "--addr=127.0.0.1:9999"},
		envOf("IMAGED_WORKERS", "7", "IMAGED_TASK_DEADLINE", "90s", "IMAGED_ADDR", ":1"))
	if err != nil {
		t.Fatal(err)
	}
	if c.Workers != 0 || c.Addr != "127.0.0.1:9999" || c.TaskDeadline != 90*time.Second {
		t.Fatalf("flags must win over the environment: %+v", c)
	}
}

func TestBadSettingsNameTheSetting(t *testing.T) {
	cases := map[string][]string{
		"IMAGED_WORKERS":          {"IMAGED_WORKERS", "many"},
		"IMAGED_TASK_DEADLINE":    {"IMAGED_TASK_DEADLINE", "soon"},
		"IMAGED_MAX_ATTEMPTS":     {"IMAGED_MAX_ATTEMPTS", "0"},
		"IMAGED_MAX_UPLOAD_BYTES": {"IMAGED_MAX_UPLOAD_BYTES", "-1"},
		"IMAGED_LOG_LEVEL":        {"IMAGED_LOG_LEVEL", "loud"},
		"IMAGED_RESULT_CACHE":     {"IMAGED_RESULT_CACHE", "sometimes"},
	}
	for want, env := range cases {
		_, err := Parse("serve", nil, envOf(env...))
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%s=%s: error %v does not name %s", env[0], env[1], err, want)
		}
	}
}

// -h answers the help as a *Help (no failure): every flag with its type, variable and default,
// and a back-quoted word in a help text left in the text, not taken for the argument's name.
func TestHelp(t *testing.T) {
	_, err := Parse("serve", []string{"-h"}, envOf())
	var h *Help
	if !errors.As(err, &h) || !errors.Is(err, flag.ErrHelp) {
		t.Fatalf("-h: %v", err)
	}
	for _, want := range []string{"usage: imaged serve [flags]\n", "  -no-migrate\n", "(run 'imaged migrate up' instead) [IMAGED_NO_MIGRATE]",
		"  -addr string\n", `[IMAGED_ADDR] (default ":8000")`, "  -task-deadline duration\n", "(default 5m0s)"} {
		if !strings.Contains(h.Text, want) {
			t.Errorf("the help lacks %q", want)
		}
	}
	if strings.Contains(h.Text, "`") {
		t.Error("the help shows back quotes")
	}
	if _, err := Parse("serve", []string{"--nope"}, envOf()); err == nil || errors.As(err, &h) || !strings.Contains(err.Error(), "imaged serve -h") {
		t.Fatalf("an unknown flag: %v", err)
	}
}
