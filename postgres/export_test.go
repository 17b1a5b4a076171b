package postgres

import "context"

// MigrateTo moves the schema up or down to version, for tests of one migration over rows
// written under the one before.
func MigrateTo(ctx context.Context, s *Store, version int64) error {
	if err := s.ensureSchema(ctx); err != nil {
		return err
	}
	p, err := s.migrator()
	if err != nil {
		return err
	}
	cur, err := p.GetDBVersion(ctx)
	if err != nil {
		return err
	}
	if cur > version {
		_, err = p.DownTo(ctx, version)
	} else {
		_, err = p.UpTo(ctx, version)
	}
	return err
}
