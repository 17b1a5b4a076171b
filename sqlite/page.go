package sqlite

import (
	"time"

	"github.com/imaged/imaged/sqlstore"
)

// dialect writes every argument as ?, and a cursor's time in the text form the tables keep,
// which sorts as the time does.
var dialect = sqlstore.Dialect{
	Placeholder: func(int) string { return "?" },
	CursorTime:  func(t time.Time) any { return formatTime(t) },
}
