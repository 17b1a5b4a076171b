package sqlite

import (
	"strings"
	"time"

	"github.com/imaged/imaged"
)

// ofTenant is the condition selecting the row id within tenant (any tenant's for AnyTenant),
// with its arguments; EInternal for an empty tenant.
func ofTenant(tenant, id string) (string, []any, error) {
	if err := imaged.CheckTenant(tenant); err != nil {
		return "", nil, err
	}
	if tenant == imaged.AnyTenant {
		return `id = ?`, []any{id}, nil
	}
	return `id = ? AND tenant = ?`, []any{id, tenant}, nil
}

// page is one page of a list newest first: the conditions so far, their arguments, and the
// page size.
type page struct {
	conds []string
	args  []any
	limit int
}

// newPage starts a list of tenant's rows after cursor; EInvalid for a cursor this store did
// not issue. Limit defaults to DefaultListLimit and is capped at MaxListLimit.
func newPage(tenant, cursor string, limit int) (*page, error) {
	if err := imaged.CheckTenant(tenant); err != nil {
		return nil, err
	}
	if limit <= 0 {
		limit = DefaultListLimit
	}
	p := &page{limit: min(limit, MaxListLimit)}
	if tenant != imaged.AnyTenant {
		p.add("tenant = ?", tenant)
	}
	if cursor != "" {
		created, id, err := imaged.DecodeCursor(cursor)
		if err != nil {
			return nil, err
		}
		p.add("(created_at, id) < (?, ?)", formatTime(created), id)
	}
	return p, nil
}

func (p *page) add(cond string, args ...any) {
	p.conds = append(p.conds, cond)
	p.args = append(p.args, args...)
}

func (p *page) where() string {
	if len(p.conds) == 0 {
		return ""
	}
	return ` WHERE ` + strings.Join(p.conds, " AND ")
}

// order ends the query; it reads one row past the page to tell whether another follows.
func (p *page) order() string {
	p.args = append(p.args, p.limit+1)
	return ` ORDER BY created_at DESC, id DESC LIMIT ?`
}

// cut trims the extra row order read and returns the next page's cursor ("" at the end).
func cut[T any](p *page, rows []T, key func(T) (time.Time, string)) ([]T, string) {
	if len(rows) <= p.limit {
		return rows, ""
	}
	rows = rows[:p.limit]
	created, id := key(rows[p.limit-1])
	return rows, imaged.EncodeCursor(created, id)
}
