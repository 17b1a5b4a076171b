package settings

import (
	"flag"
	"strings"
	"testing"
	"time"
)

func TestFlagsWinOverTheEnvironment(t *testing.T) {
	var n int
	var d time.Duration
	list := []Setting{
		New("workers", "IMAGED_WORKERS", "tasks at once", Int(&n, 4)),
		New("grace", "IMAGED_GRACE", "shutdown grace", Duration(&d, time.Second)),
	}
	env := map[string]string{"IMAGED_WORKERS": "7", "IMAGED_GRACE": "3s"}
	fs := flag.NewFlagSet("t", flag.ContinueOnError)
	Bind(fs, list)
	if err := FromEnv(fs, list, func(k string) string { return env[k] }); err != nil {
		t.Fatal(err)
	}
	if err := fs.Parse([]string{"--workers=2"}); err != nil {
		t.Fatal(err)
	}
	if n != 2 || d != 3*time.Second {
		t.Fatalf("workers %d (want the flag's 2), grace %v (want the environment's 3s)", n, d)
	}
	if h := fs.Lookup("workers").Usage; !strings.Contains(h, "[IMAGED_WORKERS]") {
		t.Fatalf("help %q does not name the variable", h)
	}
}

func TestBadValuesNameTheVariable(t *testing.T) {
	var n int
	list := []Setting{New("workers", "IMAGED_WORKERS", "", Int(&n, 4))}
	fs := flag.NewFlagSet("t", flag.ContinueOnError)
	Bind(fs, list)
	err := FromEnv(fs, list, func(string) string { return "many" })
	if err == nil || !strings.Contains(err.Error(), "IMAGED_WORKERS") {
		t.Fatalf("got %v, want an error naming IMAGED_WORKERS", err)
	}
	err = FirstFailure([]Check{Rule(true, "A", "fine"), Rule(false, "IMAGED_B", "must be positive"), Rule(false, "C", "")})
	if err == nil || err.Error() != "setting IMAGED_B: must be positive" {
		t.Fatalf("got %v, want the first failing rule", err)
	}
}

func TestListsAndPrefixes(t *testing.T) {
	if got := List(" a, ,b ,"); len(got) != 2 || got[0] != "a" || got[1] != "b" {
		t.Fatalf("List = %q", got)
	}
	ps, err := Prefixes("10.0.0.0/8, 192.168.1.7, ::1, 172.16.5.4/12")
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"10.0.0.0/8", "192.168.1.7/32", "::1/128", "172.16.0.0/12"}
	for i, p := range ps {
		if p.String() != want[i] {
			t.Fatalf("prefix %d = %s, want %s", i, p, want[i])
		}
	}
	if _, err := Prefixes("10.0.0.0/33"); err == nil {
		t.Fatal("a bad CIDR was accepted")
	}
	if _, err := Prefixes("nohost"); err == nil {
		t.Fatal("a bad address was accepted")
	}
}

func TestRedactURLHidesCredentials(t *testing.T) {
	got := RedactURL("amqp://user:hunter2@mq:5672/v?secret_key=abc&region=x")
	if strings.Contains(got, "hunter2") || strings.Contains(got, "abc") || !strings.Contains(got, "user@mq") || !strings.Contains(got, "region=x") {
		t.Fatalf("RedactURL = %q", got)
	}
}
