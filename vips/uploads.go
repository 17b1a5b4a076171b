package vips

import (
	"context"
	"sync"
	"time"

	"github.com/imaged/imaged"
)

// uploadCache keeps the bytes of the uploaded images that image watermarks read lately, by id:
// a logo laid on every image of a batch is then read from the store once a minute rather than
// once per image. An upload's bytes never change under its id; a deleted one stays usable until
// its entry expires.
type uploadCache struct {
	mu      sync.Mutex
	entries map[string]upload
	bytes   int
}

type upload struct {
	data []byte
	at   time.Time
}

const (
	uploadTTL     = time.Minute
	uploadEntries = 16
	uploadBytes   = 16 << 20 // over all entries
	uploadLargest = 4 << 20  // larger images are read every time
)

func newUploadCache() *uploadCache { return &uploadCache{entries: map[string]upload{}} }

// read returns the bytes of upload id, from the cache or from src. Entries are kept per tenant
// (the one ctx carries, within which src reads): another tenant's pipeline naming the same id
// must reach src, which answers not found, never this tenant's cached bytes.
func (c *uploadCache) read(ctx context.Context, src ImageSource, id string) ([]byte, error) {
	now := time.Now()
	key := imaged.TenantOf(ctx) + "\x00" + id
	c.mu.Lock()
	if u, ok := c.entries[key]; ok && now.Sub(u.at) < uploadTTL {
		c.mu.Unlock()
		return u.data, nil
	}
	c.mu.Unlock()
	data, err := src(ctx, id)
	if err != nil {
		return nil, err
	}
	if len(data) <= uploadLargest {
		c.put(key, data, now)
	}
	return data, nil
}

func (c *uploadCache) put(id string, data []byte, now time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.drop(id)
	for len(c.entries) >= uploadEntries || c.bytes+len(data) > uploadBytes {
		oldest := ""
		for k, u := range c.entries {
			if oldest == "" || u.at.Before(c.entries[oldest].at) {
				oldest = k
			}
		}
		if oldest == "" {
			break
		}
		c.drop(oldest)
	}
	c.entries[id] = upload{data: data, at: now}
	c.bytes += len(data)
}

func (c *uploadCache) drop(id string) {
	if u, ok := c.entries[id]; ok {
		c.bytes -= len(u.data)
		delete(c.entries, id)
	}
}

// clear forgets every entry, when the source changes.
func (c *uploadCache) clear() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.entries, c.bytes = map[string]upload{}, 0
}
