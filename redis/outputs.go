package redis

import (
	"context"
	"encoding/json"

	"github.com/imaged/imaged"
	goredis "github.com/redis/go-redis/v9"
)

// CachedOutput reads output:{tenant}:{key}, the index of the processed-output cache, before the
// database, and caches the database's answer for MetadataTTL. The index holds the entry (which
// blob, its type and size), never the bytes, which stay on the blob store. Each entry's key is
// also in the set outputs:{tenant}:{content}, which DeleteImage empties.
//
// The index is never what keeps a deleted image's outputs from being served: every request
// reads the image itself first (from the database, or this cache, which a deletion
// tombstones), so an entry is only looked up for content the tenant still holds, and the entry
// of a key describes the same bytes whichever image led to it. An entry the index still holds
// after the database dropped it (the retention sweep deleted the image or the entry, or Redis
// was away during a DeleteImage) lives at most MetadataTTL, and one whose blob is gone reads as
// a miss (imaged.ReadCachedOutput): the output stored again replaces it.
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
	key, set := s.c.outputKey(e.Tenant, e.Key), s.c.outputsKey(e.Tenant, e.ImageSHA256)
	if err := s.c.do(ctx, func(ctx context.Context) error {
		_, err := s.c.rdb.TxPipelined(ctx, func(p goredis.Pipeliner) error {
			p.Set(ctx, key, b, s.c.metadataTTL)
			p.SAdd(ctx, set, e.Key)
			p.Expire(ctx, set, s.c.metadataTTL)
			return nil
		})
		return err
	}); err != nil {
		s.warn(ctx, "indexing a cached output failed", key, err)
	}
}

// dropOutputs removes the index entries of the outputs made from content of tenant. A failure
// is logged: see CachedOutput for why no request can be served wrongly for it.
func (s *cachedStore) dropOutputs(ctx context.Context, tenant, contentSHA256 string) {
	if contentSHA256 == "" {
		return
	}
	set := s.c.outputsKey(tenant, contentSHA256)
	if err := s.c.do(ctx, func(ctx context.Context) error {
		keys, err := s.c.rdb.SMembers(ctx, set).Result()
		if err != nil {
			return err
		}
		del := []string{set}
		for _, k := range keys {
			del = append(del, s.c.outputKey(tenant, k))
		}
		return s.c.rdb.Del(ctx, del...).Err()
	}); err != nil {
		s.warn(ctx, "dropping the cached outputs of a deleted image from the index failed", set, err)
	}
}
