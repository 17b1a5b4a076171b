package sqlstore_test

import (
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/imaged/imaged"
	"github.com/imaged/imaged/sqlstore"
)

var (
	question = sqlstore.Dialect{
		Placeholder: func(int) string { return "?" },
		CursorTime:  func(t time.Time) any { return t.Format(time.RFC3339Nano) },
	}
	numbered = sqlstore.Dialect{
		Placeholder: func(n int) string { return "$" + strconv.Itoa(n) },
		CursorTime:  func(t time.Time) any { return t },
		TimeCast:    "::timestamptz",
	}
)

func TestPageSQL(t *testing.T) {
	at := time.Date(2026, 1, 2, 3, 4, 5, 6000, time.UTC)
	cursor := imaged.EncodeCursor(at, "b")
	for _, tc := range []struct {
		name string
		d    sqlstore.Dialect
		want string
		args []any
	}{
		{"question", question,
			`SELECT id FROM tasks WHERE tenant = ? AND (created_at, id) < (?, ?) AND status = ? ORDER BY created_at DESC, id DESC LIMIT ?`,
			[]any{"t1", at.Format(time.RFC3339Nano), "b", imaged.StatusQueued, 11}},
		{"numbered", numbered,
			`SELECT id FROM tasks WHERE tenant = $1 AND (created_at, id) < ($2::timestamptz, $3) AND status = $4 ORDER BY created_at DESC, id DESC LIMIT $5`,
			[]any{"t1", at, "b", imaged.StatusQueued, 11}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p, err := tc.d.TaskPage(imaged.TaskFilter{Tenant: "t1", Cursor: cursor, Limit: 10, Status: imaged.StatusQueued})
			if err != nil {
				t.Fatal(err)
			}
			if got := p.Select("id", "tasks"); got != tc.want {
				t.Errorf("Select =\n%s\nwant\n%s", got, tc.want)
			}
			if !slices.Equal(p.Args, tc.args) {
				t.Errorf("Args = %v, want %v", p.Args, tc.args)
			}
		})
	}
}

func TestPageAnyTenantAndLimits(t *testing.T) {
	p, err := numbered.NewPage(imaged.AnyTenant, "", 5000)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := p.Select("id", "images"), `SELECT id FROM images ORDER BY created_at DESC, id DESC LIMIT $1`; got != want {
		t.Errorf("Select = %s, want %s", got, want)
	}
	if !slices.Equal(p.Args, []any{sqlstore.MaxListLimit + 1}) {
		t.Errorf("Args = %v", p.Args)
	}
	if _, err := numbered.NewPage("", "", 0); err == nil {
		t.Error("NewPage accepted an empty tenant")
	}
	if _, err := numbered.NewPage("t1", "not a cursor", 0); imaged.ErrorCode(err) != imaged.EInvalid {
		t.Errorf("NewPage with a foreign cursor = %v, want EInvalid", err)
	}
	if _, err := question.TaskPage(imaged.TaskFilter{Tenant: "t1", Status: "sleeping"}); imaged.ErrorCode(err) != imaged.EInvalid {
		t.Errorf("TaskPage with an unknown status = %v, want EInvalid", err)
	}
}

func TestCut(t *testing.T) {
	p, err := question.NewPage("t1", "", 2)
	if err != nil {
		t.Fatal(err)
	}
	at := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	key := func(id string) (time.Time, string) { return at, id }
	rows, next := sqlstore.Cut(p, []string{"c", "b", "a"}, key)
	if !slices.Equal(rows, []string{"c", "b"}) || next != imaged.EncodeCursor(at, "b") {
		t.Errorf("Cut = %v, %q", rows, next)
	}
	if rows, next := sqlstore.Cut(p, []string{"c", "b"}, key); len(rows) != 2 || next != "" {
		t.Errorf("Cut of a last page = %v, %q", rows, next)
	}
}

func TestOfTenant(t *testing.T) {
	cond, args, err := numbered.OfTenant("t1", "x")
	if err != nil || cond != `id = $1 AND tenant = $2` || !slices.Equal(args, []any{"x", "t1"}) {
		t.Errorf("OfTenant = %q, %v, %v", cond, args, err)
	}
	cond, args, err = question.OfTenant(imaged.AnyTenant, "x")
	if err != nil || cond != `id = ?` || !slices.Equal(args, []any{"x"}) {
		t.Errorf("OfTenant(AnyTenant) = %q, %v, %v", cond, args, err)
	}
}
