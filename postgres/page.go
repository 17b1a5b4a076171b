package postgres

import (
	"strconv"
	"time"

	"github.com/imaged/imaged/sqlstore"
)

// dialect numbers the arguments ($1, $2, …) and X// comparison uses the (created_at, id) indexes.
var dialect = sqlstore.Dialect{
	Placeholder: func(n int) string { return "$" + strconv.Itoa(n) },
	CursorTime:  func(t time.Time) any { return t },
	TimeCast:    "::timestamptz",
}
