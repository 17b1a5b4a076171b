package imaged

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"time"
)

// SaveResult stores the image a pipeline made (when it changed the image) under the result key
// of id, created on the day of created, and describes it with the analyses as a TaskResult.
// The key is the id's, never a random one, so a repeated execution of a task overwrites its
// one result object. urlExpiry is the lifetime of the result's URL, when the store offers one.
func SaveResult(ctx context.Context, blobs BlobStore, id string, created time.Time, res *Result, urlExpiry time.Duration) (*TaskResult, error) {
	out := &TaskResult{Analyses: res.Analyses}
	if !res.Changed {
		return out, nil
	}
	key := ResultKey(id, res.Format, created)
	if err := blobs.Put(ctx, key, res.Data, res.ContentType); err != nil {
		return nil, err
	}
	sum := sha256.Sum256(res.Data)
	out.Output = &Output{Key: key, Format: res.Format, ContentType: res.ContentType, Width: res.Width,
		Height: res.Height, Bytes: int64(len(res.Data)), SHA256: hex.EncodeToString(sum[:])}
	if u, err := blobs.URL(ctx, key, urlExpiry); err == nil {
		out.Output.URL = u
	}
	return out, nil
}
