package soak

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"
)

// finish judges the run and writes report.md and soak.png under the topology's Out.
func (r *run) finish() (*Result, error) {
	top := r.top
	res := &Result{ReportPath: filepath.Join(top.Out, "report.md"), PlotPath: filepath.Join(top.Out, "soak.png")}
	for _, p := range []string{"api", "worker-1"} {
		res.Checks = append(res.Checks, RSSFlat(r.samples, p, top.Warmup, 0.10))
	}
	res.Checks = append(res.Checks, No5xxOutsideKills(r.rec.problems, r.kills), AnswersAsDeserved(r.rec.problems))
	t := r.tasks
	res.Checks = append(res.Checks,
		Check{Name: "no lost task (each submitted task reached a terminal state)", Pass: len(t.Lost) == 0,
			Detail: fmt.Sprintf("%d submitted, %d not terminal; by status %v", t.Submitted, len(t.Lost), t.ByStatus)},
		Check{Name: "every task completed (none had a bad input)", Pass: len(t.Failed) == 0 && t.ByStatus["completed"] == t.Submitted,
			Detail: fmt.Sprintf("%d completed of %d; attempts used by the completed: %v", t.ByStatus["completed"], t.Submitted, t.Attempts)})
	for _, p := range []string{"api", "worker-1"} {
		a, ok0 := r.atRest[0][p]
		b, ok1 := r.atRest[1][p]
		if !ok0 || !ok1 {
			res.Checks = append(res.Checks, Check{Name: "goroutines and descriptors at rest: " + p, Detail: "its /metrics did not answer"})
			continue
		}
		res.Checks = append(res.Checks, NotMore("goroutines at rest, not more than at the end of warm-up: "+p, a[0], b[0]),
			NotMore("open file descriptors at rest, not more than at the end of warm-up: "+p, a[1], b[1]))
	}
	res.Pass = true
	for _, c := range res.Checks {
		res.Pass = res.Pass && c.Pass
	}
	if err := Plot(res.PlotPath, "imaged soak: "+top.Name, r.samples, r.kills, top.Warmup, []string{"api", "worker-1", "worker-2"}); err != nil {
		return nil, err
	}
	return res, os.WriteFile(res.ReportPath, []byte(r.markdown(res)), 0o644)
}

func (r *run) markdown(res *Result) string {
	top := r.top
	var b strings.Builder
	p := func(format string, args ...any) { fmt.Fprintf(&b, format, args...) }
	verdict := "PASS"
	if !res.Pass {
		verdict = "FAIL"
	}
	p("# Soak: %s — %s\n\n", top.Name, verdict)
	p("%s of load (warm-up %s) from %d clients, think time %s; `imaged serve` (IMAGED_WORKERS=0) and two `imaged worker` (IMAGED_WORKERS=2); "+
		"worker-2 killed with SIGKILL every %s and started again; IMAGED_TASK_LEASE=%s. Written %s.\n\n",
		top.Load, top.Warmup, top.Clients, top.Think, top.KillEvery, top.Lease, time.Now().UTC().Format(time.RFC3339))
	p("![soak](soak.png)\n\n## Checks\n\n| check | verdict | figures |\n|---|---|---|\n")
	for _, c := range res.Checks {
		v := "pass"
		if !c.Pass {
			v = "**FAIL**"
		}
		p("| %s | %s | %s |\n", c.Name, v, c.Detail)
	}

	p("\n## Kill windows\n\n| worker | killed at | ready again at | window ends |\n|---|---|---|---|\n")
	for _, k := range r.kills {
		p("| %s | %s | %s (+%s) | %s |\n", k.Worker, mmss(k.From), mmss(k.Ready), (k.Ready - k.From).Round(10*time.Millisecond), mmss(k.To))
	}

	p("\n## Requests\n\n| kind | answers by status | p50 ms | p99 ms |\n|---|---|---|---|\n")
	kinds := make([]string, 0, len(r.rec.kinds))
	total := 0
	for k, m := range r.rec.kinds {
		kinds = append(kinds, k)
		for _, n := range m {
			total += n
		}
	}
	slices.Sort(kinds)
	for _, k := range kinds {
		var parts []string
		codes := make([]int, 0)
		for c := range r.rec.kinds[k] {
			codes = append(codes, c)
		}
		slices.Sort(codes)
		for _, c := range codes {
			parts = append(parts, fmt.Sprintf("%d×%d", r.rec.kinds[k][c], c))
		}
		p50, p99 := "", ""
		if lat := r.rec.syncLat[k]; len(lat) > 0 {
			p50, p99 = fmt.Sprintf("%.0f", Percentile(lat, 50)), fmt.Sprintf("%.0f", Percentile(lat, 99))
		}
		p("| %s | %s | %s | %s |\n", k, strings.Join(parts, ", "), p50, p99)
	}
	var all []float64
	for _, l := range r.rec.syncLat {
		all = append(all, l...)
	}
	p("\n%d answers in all (status 0: no answer); synchronous requests p50 %.0f ms, p99 %.0f ms.\n",
		total, Percentile(all, 50), Percentile(all, 99))

	p("\n## Tasks\n\n%d submitted (tasks and batch items): %v; attempts of the completed: %v.\n", r.tasks.Submitted, r.tasks.ByStatus, r.tasks.Attempts)
	listSome(&b, "Not terminal", r.tasks.Lost)
	listSome(&b, "Failed", r.tasks.Failed)

	p("\n## Processes\n\n| process | RSS min / max MiB | goroutines at rest (warm-up → end) | open fds at rest (warm-up → end) |\n|---|---|---|---|\n")
	for _, name := range []string{"api", "worker-1", "worker-2"} {
		lo, hi := int64(-1), int64(0)
		for _, s := range r.samples {
			if v, ok := s.RSS[name]; ok {
				if lo < 0 || v < lo {
					lo = v
				}
				hi = max(hi, v)
			}
		}
		a, b2 := r.atRest[0][name], r.atRest[1][name]
		p("| %s | %.1f / %.1f | %.0f → %.0f | %.0f → %.0f |\n", name, float64(lo)/(1<<20), float64(hi)/(1<<20), a[0], b2[0], a[1], b2[1])
	}
	p("\nworker-2 is the one killed: its figures restart with each life and are not judged.\n")
	for _, name := range r.dumped {
		p("\n%s held more goroutines at rest than after the warm-up: its goroutines are dumped at the end of %s.log.\n", name, name)
	}

	var probs []string
	for _, pr := range r.rec.problems {
		where := ""
		if (pr.Status == 0 || pr.Status >= 500) && inWindows(pr.At, r.kills) {
			where = " (in a kill window)"
		}
		probs = append(probs, fmt.Sprintf("%s %s: %d%s — %s", mmss(pr.At), pr.Kind, pr.Status, where, pr.Detail))
	}
	listSome(&b, "Answers that were not what the request deserved", probs)

	p("\n## Samples\n\nEvery %s: phase, RSS MiB per process, tasks queued, answers, p50/p99 ms of the synchronous requests, 5xx, unexpected.\n\n```\n", top.SampleEvery)
	for _, s := range r.samples {
		p("%s %-6s api %6.1f w1 %6.1f w2 %6.1f  queued %4.0f  n %4d  p50 %6.0f p99 %6.0f  5xx %d  unexp %d\n",
			mmss(s.At), s.Phase, mib(s.RSS["api"]), mib(s.RSS["worker-1"]), mib(s.RSS["worker-2"]), s.Queued, s.Requests, s.P50, s.P99, s.Errors5xx, s.Unexpected)
	}
	p("```\n")
	return b.String()
}

func listSome(b *strings.Builder, title string, items []string) {
	if len(items) == 0 {
		return
	}
	fmt.Fprintf(b, "\n### %s (%d)\n\n", title, len(items))
	for i, it := range items {
		if i == 30 {
			fmt.Fprintf(b, "- … and %d more\n", len(items)-30)
			break
		}
		fmt.Fprintf(b, "- %s\n", strings.ReplaceAll(it, "\n", " "))
	}
}

func mib(v int64) float64 { return float64(v) / (1 << 20) }

func mmss(d time.Duration) string {
	d = d.Round(time.Second)
	return fmt.Sprintf("%02d:%02d", int(d.Minutes()), int(d.Seconds())%60)
}
