package postgres

import (
	"strconv"
	"strings"
	"time"

	"github.com/imaged/imaged"
)

// ofTenant is the condition selecting the row id ($1) within tenant ($2; any tenant's for
// AnyTenant), with its arguments; EInternal for an empty tenant.
func ofTenant(tenant, id string) (string, []any, error) {
	if err := imaged.CheckTenant(tenant); err != nil {
		return "", nil, err
	}
	if tenant == imaged.AnyTenant {
		return `id = $1`, []any{id}, nil
	}
	return `id = $1 AND tenant = $2`, []any{id, tenant}, nil
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
		p.conds = append(p.conds, "tenant = "+p.arg(tenant))
	}
	if cursor != "" {
		created, id, err := imaged.DecodeCursor(cursor)
		if err != nil {
			return nil, err
		}
		p.conds = append(p.conds, "(created_at, id) < ("+p.arg(created)+"::timestamptz, "+p.arg(id)+")")
	}
	return p, nil
}

// arg adds an argument and returns its placeholder.
func (p *page) arg(v any) string {
	p.args = append(p.args, v)
	return "$" + strconv.Itoa(len(p.args))
}

func (p *page) where() string {
	if len(p.conds) == 0 {
		return ""
	}
	return ` WHERE ` + strings.Join(p.conds, " AND ")
}

// order ends the query; it reads one row past the page to tell whether another follows.
func (p *page) order() string {
	return ` ORDER BY created_at DESC, id DESC LIMIT ` + p.arg(p.limit+1)
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
