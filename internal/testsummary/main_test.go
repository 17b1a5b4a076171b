package main

import (
	"strings"
	"testing"
)

func TestTallyCountsEveryOutcome(t *testing.T) {
	in := strings.Join([]string{
		`{"Action":"run","Package":"p","Test":"TestA"}`,
		`{"Action":"output","Package":"p","Test":"TestA","Output":"=== RUN   TestA\n"}`,
		`{"Action":"pass","Package":"p","Test":"TestA"}`,
		`{"Action":"output","Package":"p","Test":"TestB","Output":"    b_test.go:9: SKIPPED: Redis is not reachable\n"}`,
		`{"Action":"output","Package":"p","Test":"TestB","Output":"--- SKIP: TestB (0.00s)\n"}`,
		`{"Action":"skip","Package":"p","Test":"TestB"}`,
		`{"Action":"output","Package":"p","Test":"TestC/sub","Output":"    c_test.go:3: got 2, want 3\n"}`,
		`{"Action":"fail","Package":"p","Test":"TestC/sub"}`,
		`{"Action":"output","Package":"p","Output":"FAIL\tp\t0.1s\n"}`,
		`{"Action":"fail","Package":"p"}`,
		`# p [build failed]`,
	}, "\n")
	var out strings.Builder
	tl := read(strings.NewReader(in), &out)
	if tl.ran != 3 || tl.passed != 1 || len(tl.failed) != 1 || len(tl.skipped) != 1 || len(tl.failedPkgs) != 1 {
		t.Fatalf("ran %d passed %d failed %v skipped %v packages %v", tl.ran, tl.passed, tl.failed, tl.skipped, tl.failedPkgs)
	}
	for _, want := range []string{"c_test.go:3: got 2, want 3", "FAIL\tp\t0.1s", "# p [build failed]"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("output lacks %q:\n%s", want, out.String())
		}
	}
	if strings.Contains(out.String(), "=== RUN   TestA") {
		t.Errorf("a passing test's output was printed:\n%s", out.String())
	}
	r := tl.report()
	for _, want := range []string{"3 run, 1 passed, 1 failed, 1 skipped", "SKIPPED p.TestB: b_test.go:9: SKIPPED: Redis is not reachable", "FAILED  p.TestC/sub", "FAILED  package p"} {
		if !strings.Contains(r, want) {
			t.Errorf("report lacks %q:\n%s", want, r)
		}
	}
}
