package imaged

import (
	"context"
	"path"
	"strings"
	"time"
)

// Why a task's result is gone (Task.ResultExpiredReason).
const (
	// ResultExpiredAge: the result outlived the results retention (IMAGED_RETENTION_RESULTS).
	ResultExpiredAge = "age"
	// ResultExpiredImageDeleted: the image the result was made from was deleted.
	ResultExpiredImageDeleted = "image_deleted"
)

// Kinds of blobs, as the retention sweep counts them.
const (
	BlobImage  = "image"
	BlobResult = "result"
	BlobCache  = "cache" // an output of the processed-output cache
	BlobOrphan = "orphan"
)

// BlobPrefixes are the key prefixes imaged writes under; the orphan sweep looks nowhere else,
// so objects of others sharing a bucket are never touched.
var BlobPrefixes = []string{"images/", "results/", BlobCachePrefix}

// TrashedBlob is a blob that no row references any more, waiting to be deleted.
type TrashedBlob struct {
	Key  string
	Kind string // BlobImage or BlobResult
}

// RetentionStore is what the retention sweeper needs of the task store: batches of old rows
// taken out by conditional updates and deletes, so that two processes sweeping at once never
// take the same row, and the blobs those rows referenced, kept in a trash (written in the same
// transaction as the change that dereferenced them) until a sweeper takes them out to delete.
// Every method works on at most limit rows and returns what it did.
type RetentionStore interface {
	// AcquireLease takes the lease called name for holder for ttl, or renews it when holder
	// already holds it; it reports whether holder holds it now. Another holder's lease that has
	// not run out is left alone (false, nil).
	AcquireLease(ctx context.Context, name, holder string, ttl time.Duration) (bool, error)
	// ReleaseLease gives up holder's lease called name; nothing when holder does not hold it.
	ReleaseLease(ctx context.Context, name, holder string) error

	// ExpireResults marks the results of completed tasks finished before cutoff as expired at
	// at (ResultExpiredAge) when they have an output image, trashes those images, and returns
	// how many it marked.
	ExpireResults(ctx context.Context, cutoff, at time.Time, limit int) (int, error)
	// DeleteTasks deletes terminal tasks finished before cutoff (trashing their result images
	// not yet expired), then batches created before cutoff that have no task left, and
	// returns how many of each it deleted.
	DeleteTasks(ctx context.Context, cutoff time.Time, limit int) (tasks, batches int, err error)
	// DeleteImages deletes images created before cutoff, trashes their blobs and expires the
	// results made from them at at (ResultExpiredImageDeleted), removes the processed-output
	// cache entries of content no image of their tenant holds any more (as DeleteImage does),
	// and returns how many images it deleted.
	DeleteImages(ctx context.Context, cutoff, at time.Time, limit int) (int, error)
	// ExpireCachedOutputs deletes processed-output cache entries created before cutoff, trashes
	// their blobs, and returns how many it deleted.
	ExpireCachedOutputs(ctx context.Context, cutoff time.Time, limit int) (int, error)
	// TakeTrash removes blobs from the trash, oldest first, and returns them for the caller to
	// delete: each one is handed out once.
	TakeTrash(ctx context.Context, limit int) ([]TrashedBlob, error)
	// Referenced returns those of keys that a row references: an image, a result not expired,
	// a processed-output cache entry, or the trash. Any other blob a store comes to record must
	// be counted here too, or the orphan sweep deletes it.
	Referenced(ctx context.Context, keys []string) (map[string]bool, error)
}

// syncResultPrefix starts the id a synchronous pipeline's stored output is keyed by.
const syncResultPrefix = "sync-"

// SyncResultID returns a new id for a synchronous pipeline's stored output: no task's, so that
// it never overwrites another, and recognisable by IsSyncResultKey.
func SyncResultID() string { return syncResultPrefix + NewID() }

// IsSyncResultKey reports whether key is a synchronous pipeline's output. No row references
// one: the retention sweep ages it as a result (IMAGED_RETENTION_RESULTS) rather than as an
// orphan.
func IsSyncResultKey(key string) bool {
	return strings.HasPrefix(key, "results/") && strings.HasPrefix(path.Base(key), syncResultPrefix)
}

// ResultGone is the ENotFound of a task whose result expired or whose image was deleted; nil
// when its result is still there.
func ResultGone(t *Task) error {
	if t.ResultExpiredAt == nil {
		return nil
	}
	at := t.ResultExpiredAt.UTC().Format(time.RFC3339)
	if t.ResultExpiredReason == ResultExpiredImageDeleted {
		return Errorf(ENotFound, "the result of task %s was deleted at %s with its image %s", t.ID, at, t.ImageID)
	}
	return Errorf(ENotFound, "the result of task %s expired at %s: results are kept for a limited time", t.ID, at)
}
