package redis

import (
	"context"
	"encoding/json"

	"github.com/imaged/imaged"
)

// CachedOutput reads output:{tenant}:{key}, the index of the processed-output cache, before the
// database, and caches the database's answer for MetadataTTL. The index holds the entry (which
// blob, its type and size), never the bytes, which stay on the blob store.
//
// Nothing needs removing from the index when an image is deleted: every request reads the image
// itself first (from the database, or this cache, which a deletion tombstones), so an entry is
// only looked up for content the tenant still holds, and the entry of a key describes the same
// bytes whichever image led to it. An entry whose blob the retention sweep has since deleted
// reads as a miss (imaged.ReadCachedOutput), and the output stored again replaces it.
func (s *cachedStore) CachedOutput(ctx context.Context, tenant, key string) (*imaged.CachedOutput, error) {
	if tenant == imaged.AnyTenant || tenant == "" {
		return s.TaskStore.CachedOutput(ctx, tenant, key)
	}
	rkey := s.c.outputKey(tenant, key)
	e, l := read(ctx, s, "output", rkey, "cached output entry is unreadable; reading the database",
		func(b []byte) (*imaged.CachedOutput, bool, error) {
			var e imaged.CachedOutput
			err := json.Unmarshal(b, &e)
			return &e, err == nil && e.Key == key && e.Tenant == tenant && e.BlobKey != "", err
		})
	if l == hit {
		return e, nil
	}
	e, err := s.TaskStore.CachedOutput(ctx, tenant, key)
	if err == nil && l != failed {
		s.indexOutput(ctx, e)
	}
	return e, err
}

// PutCachedOutput writes the entry to the database, then to the index.
func (s *cachedStore) PutCachedOutput(ctx context.Context, e *imaged.CachedOutput) error {
	if err := s.TaskStore.PutCachedOutput(ctx, e); err != nil {
		return err
	}
	s.indexOutput(ctx, e)
	return nil
}

func (s *cachedStore) indexOutput(ctx context.Context, e *imaged.CachedOutput) {
	b, err := json.Marshal(e)
	if err != nil {
		return
	}
	key := s.c.outputKey(e.Tenant, e.Key)
	if err := s.c.do(ctx, func(ctx context.Context) error {
		return s.c.rdb.Set(ctx, key, b, s.c.metadataTTL).Err()
	}); err != nil {
		s.warn(ctx, "indexing a cached output failed", key, err)
	}
}
