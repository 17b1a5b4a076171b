// Package migrate holds what the database stores share of their schema migrations, which they
// run with pressly/goose: reading a goose provider's status as the domain's MigrationState.
package migrate

import (
	"context"
	"path/filepath"

	"github.com/pressly/goose/v3"

	"github.com/imaged/imaged"
)

// Status lists every migration the provider knows, oldest first, with whether it is applied
// and when.
func Status(ctx context.Context, p *goose.Provider) ([]imaged.MigrationState, error) {
	st, err := p.Status(ctx)
	if err != nil {
		return nil, err
	}
	out := make([]imaged.MigrationState, 0, len(st))
	for _, m := range st {
		ms := imaged.MigrationState{
			Version: m.Source.Version,
			Name:    filepath.Base(m.Source.Path),
			Applied: m.State == goose.StateApplied,
		}
		if ms.Applied {
			ms.AppliedAt = m.AppliedAt.UTC()
		}
		out = append(out, ms)
	}
	return out, nil
}
