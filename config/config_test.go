package config

import (
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
	if c.Addr != ":8000" || c.DataDir != "./data" || c.MaxUploadBytes != 50<<20 || c.MaxWidth != 10000 || c.MaxAttempts != 3 {
		t.Fatalf("defaults: %+v", c)
	}
	if l := c.Limits(); l.MaxPixels != 100_000_000 || l.MaxCost != 60000 {
		t.Fatalf("pipeline limits: %+v", l)
	}
	c, err = Parse("serve", nil, envOf("IMAGED_MAX_COST", "0", "IMAGED_MAX_PIXELS", "4000000"))
	if err != nil {
		t.Fatal(err)
	}
	if l := c.Limits(); l.MaxPixels != 4_000_000 || l.MaxCost >= 0 {
		t.Fatalf("IMAGED_MAX_COST=0 sets no cost limit (a negative one for the processor): %+v", l)
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
		"IMAGED_MAX_PIXELS":       {"IMAGED_MAX_PIXELS", "0"},
		"IMAGED_MAX_COST":         {"IMAGED_MAX_COST", "-5"},
	}
	for want, env := range cases {
		_, err := Parse("serve", nil, envOf(env...))
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%s=%s: error %v does not name %s", env[0], env[1], err, want)
		}
	}
}
