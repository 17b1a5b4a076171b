package config

import (
	"errors"
	"flag"
	"runtime"
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

// Workers run the task types of IMAGED_WORKER_TYPES or `--types` (all when empty), and CPU-derived
// defaults follow GOMAXPROCS, the CPUs a container's quota gives the process.
func TestWorkerTypesAndCPUDefaults(t *testing.T) {
	c, err := Parse("worker", nil, envOf())
	if err != nil {
		t.Fatal(err)
	}
	if c.Types() != nil || c.OutageDeadline != time.Hour {
		t.Fatalf("defaults: types %v, outage deadline %s; want all types and 1h", c.Types(), c.OutageDeadline)
	}
	if cpus := runtime.GOMAXPROCS(0); c.Workers != cpus || c.MaxInflight != 2*cpus || c.MaxWaiting != 8*cpus {
		t.Fatalf("workers %d, max inflight %d, max waiting %d; want %d, %d, %d from GOMAXPROCS", c.Workers, c.MaxInflight,
			c.MaxWaiting, cpus, 2*cpus, 8*cpus)
	}
	c, err = Parse("worker", []string{"--types", "ocr, detect"}, envOf("IMAGED_WORKER_TYPES", "transform", "IMAGED_TASK_OUTAGE_DEADLINE", "10m"))
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(c.Types(), ","); got != "ocr,detect" || c.OutageDeadline != 10*time.Minute {
		t.Fatalf("--types ocr,detect over IMAGED_WORKER_TYPES=transform: %q, outage deadline %s", got, c.OutageDeadline)
	}
}

func TestBadSettingsNameTheSetting(t *testing.T) {
	cases := map[string][]string{
		"IMAGED_WORKERS":              {"IMAGED_WORKERS", "many"},
		"IMAGED_TASK_DEADLINE":        {"IMAGED_TASK_DEADLINE", "soon"},
		"IMAGED_MAX_ATTEMPTS":         {"IMAGED_MAX_ATTEMPTS", "0"},
		"IMAGED_MAX_UPLOAD_BYTES":     {"IMAGED_MAX_UPLOAD_BYTES", "-1"},
		"IMAGED_LOG_LEVEL":            {"IMAGED_LOG_LEVEL", "loud"},
		"IMAGED_WORKER_TYPES":         {"IMAGED_WORKER_TYPES", "ocr,video"},
		"IMAGED_TASK_OUTAGE_DEADLINE": {"IMAGED_TASK_OUTAGE_DEADLINE", "0s"},
		"IMAGED_RESULT_CACHE":         {"IMAGED_RESULT_CACHE", "sometimes"},
		"IMAGED_MAX_PIXELS":           {"IMAGED_MAX_PIXELS", "0"},
		"IMAGED_MAX_COST":             {"IMAGED_MAX_COST", "-5"},
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
