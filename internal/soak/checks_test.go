package soak

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestRSSFlat(t *testing.T) {
	mk := func(at time.Duration, phase string, mib int64) Sample {
		return Sample{At: at, Phase: phase, RSS: map[string]int64{"api": mib << 20}}
	}
	base := []Sample{mk(100*time.Second, "warmup", 100), mk(110*time.Second, "warmup", 102), mk(115*time.Second, "warmup", 98)}
	flat := append(append([]Sample{}, base...), mk(150*time.Second, "pause", 60), mk(160*time.Second, "load", 108), mk(170*time.Second, "load", 91))
	if c := RSSFlat(flat, "api", 2*time.Minute, 0.10); !c.Pass {
		t.Fatalf("within ±10 %% of 100 MiB judged not flat: %s", c.Detail)
	}
	grown := append(append([]Sample{}, base...), mk(160*time.Second, "load", 105), mk(170*time.Second, "load", 111))
	if c := RSSFlat(grown, "api", 2*time.Minute, 0.10); c.Pass {
		t.Fatalf("+11 %% judged flat: %s", c.Detail)
	}
	if c := RSSFlat(base, "api", 2*time.Minute, 0.10); c.Pass {
		t.Fatalf("no sample after the warm-up judged flat: %s", c.Detail)
	}
}

func TestKillWindowsExcuseOnly5xxInside(t *testing.T) {
	kills := []Window{{From: 150 * time.Second, Ready: 152 * time.Second, To: 162 * time.Second}}
	inside := []Problem{{At: 155 * time.Second, Status: 503}, {At: 160 * time.Second, Status: 0}, {At: 30 * time.Second, Status: 404}}
	if c := No5xxOutsideKills(inside, kills); !c.Pass {
		t.Fatalf("5xx inside the window counted: %s", c.Detail)
	}
	if c := No5xxOutsideKills(append(inside, Problem{At: 163 * time.Second, Status: 500}), kills); c.Pass {
		t.Fatalf("a 500 after the window passed: %s", c.Detail)
	}
	if c := AnswersAsDeserved(inside); c.Pass || !strings.Contains(c.Detail, "1 unexpected") {
		t.Fatalf("a 404 to a good request not reported: %s", c.Detail)
	}
	if c := NotMore("g", 40, 41); c.Pass {
		t.Fatal("growth judged equal")
	}
	if c := NotMore("g", 40, 40); !c.Pass {
		t.Fatal("equal judged growth")
	}
}

func TestPercentileAndMetrics(t *testing.T) {
	xs := []float64{5, 1, 4, 2, 3, 6, 7, 8, 9, 100}
	if p := Percentile(xs, 50); p != 5 {
		t.Fatalf("p50 = %v, want 5", p)
	}
	if p := Percentile(xs, 99); p != 100 {
		t.Fatalf("p99 = %v, want 100", p)
	}
	m, err := parseMetrics(strings.NewReader("# HELP go_goroutines x\ngo_goroutines 42\nprocess_open_fds 17\n" +
		"tasks_queued{type=\"transform\"} 3\ntasks_queued{type=\"ocr\"} 2\nweird{a=\"b c\"} 1e3\n"))
	if err != nil {
		t.Fatal(err)
	}
	if m["go_goroutines"] != 42 || m["process_open_fds"] != 17 || m["tasks_queued"] != 5 || m["weird"] != 1000 {
		t.Fatalf("parsed %v", m)
	}
}

func TestPlotWritesPNG(t *testing.T) {
	var samples []Sample
	for i := 0; i < 40; i++ {
		samples = append(samples, Sample{At: time.Duration(i) * 5 * time.Second, Phase: "load",
			RSS: map[string]int64{"api": int64(100+i%3) << 20, "worker-1": 200 << 20}, P50: 20, P99: 80 + float64(i), Queued: float64(i % 4), Requests: 10})
	}
	path := filepath.Join(t.TempDir(), "soak.png")
	if err := Plot(path, "test", samples, []Window{{From: time.Minute, To: 80 * time.Second}}, 2*time.Minute, []string{"api", "worker-1"}); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.HasPrefix(b, []byte("\x89PNG\r\n\x1a\n")) || len(b) < 10000 {
		t.Fatalf("not a PNG of a plot: %d bytes", len(b))
	}
}
