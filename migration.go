package imaged

import (
	"fmt"
	"time"
)

// MigrationState is one schema migration of a database store, for `imaged migrate status`.
type MigrationState struct {
	Version   int64
	Name      string
	Applied   bool
	AppliedAt time.Time // zero when not applied
}

// String reads as a line of `imaged migrate status`.
func (m MigrationState) String() string {
	if !m.Applied {
		return fmt.Sprintf("%-28s pending", m.Name)
	}
	return fmt.Sprintf("%-28s applied %s", m.Name, m.AppliedAt.Format(time.RFC3339))
}
