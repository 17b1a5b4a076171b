// Command testsummary reads `go test -json` on its standard input, prints what `go test` would
// without -v (each package's result line, and the whole output of each failed test), and ends with how many tests ran, passed, failed and were skipped, naming
// each skipped and failed test. It exits 1 when a test or a package failed (or nothing ran), so
// that `go test -json ./... | go run ./internal/testsummary` fails as `go test ./...` would.
// With TESTSUMMARY_NO_SKIPS=1 a skipped test fails the run too.
package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"sort"
	"strings"
)

// event is one line of `go test -json` (cmd/test2json's TestEvent).
type event struct {
	Action  string
	Package string
	Test    string
	Output  string
}

// tally is what one run's events add up to.
type tally struct {
	ran, passed                 int
	failed, skipped, failedPkgs []string
	skipReason                  map[string]string
	output                      map[string]*strings.Builder
}

func main() {
	t := read(os.Stdin, os.Stdout)
	fmt.Print(t.report())
	if len(t.failed) > 0 || len(t.failedPkgs) > 0 || t.ran == 0 ||
		(os.Getenv("TESTSUMMARY_NO_SKIPS") == "1" && len(t.skipped) > 0) {
		os.Exit(1)
	}
}

// read counts the events of r and copies their output to w.
func read(r io.Reader, w io.Writer) *tally {
	t := &tally{skipReason: map[string]string{}, output: map[string]*strings.Builder{}}
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 1<<20), 16<<20)
	for sc.Scan() {
		var e event
		if err := json.Unmarshal(sc.Bytes(), &e); err != nil || e.Action == "" {
			// Build errors and other non-JSON lines pass through as they are.
			fmt.Fprintln(w, sc.Text())
			continue
		}
		name := e.Package + "." + e.Test
		switch e.Action {
		case "output":
			if e.Test == "" {
				if !strings.HasPrefix(e.Output, "=== ") && !strings.HasPrefix(e.Output, "PASS\n") {
					fmt.Fprint(w, e.Output)
				}
				continue
			}
			b := t.output[name]
			if b == nil {
				b = &strings.Builder{}
				t.output[name] = b
			}
			b.WriteString(e.Output)
		case "pass", "fail", "skip":
			if e.Test == "" {
				if e.Action == "fail" {
					t.failedPkgs = append(t.failedPkgs, e.Package)
				}
				continue
			}
			t.ran++
			out := ""
			if b := t.output[name]; b != nil {
				out = b.String()
				delete(t.output, name)
			}
			switch e.Action {
			case "pass":
				t.passed++
			case "fail":
				t.failed = append(t.failed, name)
				fmt.Fprint(w, out)
			case "skip":
				t.skipped = append(t.skipped, name)
				t.skipReason[name] = reason(out)
			}
		}
	}
	return t
}

// reason is the last line of a skipped test's output that is not go test's own marker.
func reason(out string) string {
	lines := strings.Split(strings.TrimSpace(out), "\n")
	for i := len(lines) - 1; i >= 0; i-- {
		if l := strings.TrimSpace(lines[i]); l != "" && !strings.HasPrefix(l, "--- ") && !strings.HasPrefix(l, "=== ") {
			return l
		}
	}
	return ""
}

// report is the summary printed after the tests' own output.
func (t *tally) report() string {
	var b strings.Builder
	fmt.Fprintf(&b, "\n==== tests: %d run, %d passed, %d failed, %d skipped", t.ran, t.passed, len(t.failed), len(t.skipped))
	if len(t.failedPkgs) > 0 {
		fmt.Fprintf(&b, "; %d packages failed", len(t.failedPkgs))
	}
	b.WriteString("\n")
	sort.Strings(t.skipped)
	for _, n := range t.skipped {
		fmt.Fprintf(&b, "SKIPPED %s: %s\n", n, t.skipReason[n])
	}
	for _, n := range t.failed {
		fmt.Fprintf(&b, "FAILED  %s\n", n)
	}
	for _, p := range t.failedPkgs {
		fmt.Fprintf(&b, "FAILED  package %s\n", p)
	}
	return b.String()
}
