package imaged

import (
	"crypto/rand"
	"encoding/hex"
	"time"

	"github.com/google/uuid"
)

// NewID returns a random 128-bit id in hex.
func NewID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// NewOrderedID returns a time-ordered UUID (version 7), so ids of records created in one
// instant still list roughly in creation order.
func NewOrderedID() string {
	id, err := uuid.NewV7()
	if err != nil {
		return uuid.NewString()
	}
	return id.String()
}

// ImageKey returns a blob key unique per upload: images/YYYY/MM/DD/<random hex>.<ext>. The
// content hash is metadata, never the key, so two uploads of the same bytes are two objects.
func ImageKey(format string, now time.Time) string {
	var b [8]byte
	_, _ = rand.Read(b[:])
	return "images/" + now.UTC().Format("2006/01/02") + "/" + hex.EncodeToString(b[:]) + "." + ExtensionOf(format)
}

// ResultKey returns the blob key of a task's result: results/YYYY/MM/DD/<task id>.<ext>, keyed
// by task (and the task's creation day) so a repeated execution overwrites the same object.
func ResultKey(taskID, format string, created time.Time) string {
	return "results/" + created.UTC().Format("2006/01/02") + "/" + taskID + "." + ExtensionOf(format)
}
