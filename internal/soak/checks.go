package soak

import (
	"fmt"
	"slices"
	"time"
)

// Check is one verdict of the report.
type Check struct {
	Name   string
	Pass   bool
	Detail string
}

// RSSFlat checks that every sample of proc taken under load after the warm-up stays within
// ±tol (0.10 = 10 %) of its resident memory at the end of the warm-up (the median of the
// samples in the warm-up's last 30 s).
func RSSFlat(samples []Sample, proc string, warmup time.Duration, tol float64) Check {
	var ref []float64
	var lo, hi float64
	n := 0
	for _, s := range samples {
		v, ok := s.RSS[proc]
		if !ok {
			continue
		}
		if s.Phase == "warmup" && s.At >= warmup-30*time.Second {
			ref = append(ref, float64(v))
		}
	}
	c := Check{Name: "RSS flat after warm-up (±" + fmt.Sprint(tol*100) + " %): " + proc}
	if len(ref) == 0 {
		c.Detail = "no sample at the end of the warm-up"
		return c
	}
	base := Percentile(ref, 50)
	for _, s := range samples {
		v, ok := s.RSS[proc]
		if !ok || s.Phase != "load" {
			continue
		}
		d := float64(v)/base - 1
		if n == 0 || d < lo {
			lo = d
		}
		if n == 0 || d > hi {
			hi = d
		}
		n++
	}
	if n == 0 {
		c.Detail = "no sample under load after the warm-up"
		return c
	}
	c.Pass = lo >= -tol && hi <= tol
	last := lastRSS(samples, proc)
	c.Detail = fmt.Sprintf("end of warm-up %.1f MiB; after it %+.1f %% … %+.1f %% over %d samples; last %.1f MiB",
		base/(1<<20), lo*100, hi*100, n, float64(last)/(1<<20))
	return c
}

func lastRSS(samples []Sample, proc string) int64 {
	for i := len(samples) - 1; i >= 0; i-- {
		if v, ok := samples[i].RSS[proc]; ok {
			return v
		}
	}
	return 0
}

// NotMore checks that a count (goroutines, open file descriptors) 30 s after the load stopped
// is not above the same count 30 s after the load paused at the end of the warm-up: what a
// process holds at rest must not grow with the work it did.
func NotMore(name string, atWarmup, atEnd float64) Check {
	c := Check{Name: name, Pass: atEnd <= atWarmup}
	rel := "equal"
	switch {
	case atEnd > atWarmup:
		rel = fmt.Sprintf("%+.0f", atEnd-atWarmup)
	case atEnd < atWarmup:
		rel = fmt.Sprintf("%+.0f (fewer)", atEnd-atWarmup)
	}
	c.Detail = fmt.Sprintf("end of warm-up %.0f, 30 s after the load %.0f: %s", atWarmup, atEnd, rel)
	return c
}

// No5xxOutsideKills checks that every 5xx answer and transport error fell inside a kill window.
func No5xxOutsideKills(problems []Problem, kills []Window) Check {
	in, out := 0, 0
	for _, p := range problems {
		if p.Status != 0 && p.Status < 500 {
			continue
		}
		if inWindows(p.At, kills) {
			in++
		} else {
			out++
		}
	}
	return Check{Name: "no 5xx outside kill windows", Pass: out == 0,
		Detail: fmt.Sprintf("%d outside, %d inside kill windows", out, in)}
}

// AnswersAsDeserved checks that no good request got a 4xx and no bad input got a 2xx.
func AnswersAsDeserved(problems []Problem) Check {
	n := 0
	kinds := map[string]int{}
	for _, p := range problems {
		if p.Status != 0 && p.Status < 500 {
			n++
			kinds[p.Kind]++
		}
	}
	keys := make([]string, 0, len(kinds))
	for k := range kinds {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	d := fmt.Sprintf("%d unexpected answers", n)
	for _, k := range keys {
		d += fmt.Sprintf("; %s: %d", k, kinds[k])
	}
	return Check{Name: "every answer of the class the request deserves (4xx for bad input, 2xx otherwise)", Pass: n == 0, Detail: d}
}
