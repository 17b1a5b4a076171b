package fs

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/imaged/imaged"
)

// List returns up to limit objects whose key starts with prefix and sorts after after, in key
// order. It walks the tree depth first with each directory's entries in the order of the keys
// they hold (a directory "a" holds keys "a/…", so it sorts as "a/"), which is key order itself,
// and skips the subtrees that lie wholly before after or outside prefix. The store's own files
// (names starting with ".") are never listed. ContentType is left empty.
func (s *Store) List(ctx context.Context, prefix, after string, limit int) ([]imaged.BlobInfo, error) {
	var out []imaged.BlobInfo
	if limit <= 0 {
		return out, nil
	}
	if err := s.list(ctx, "", prefix, after, limit, &out); err != nil {
		return nil, err
	}
	return out, nil
}

type listEntry struct {
	key string // the entry's key; a directory's ends with "/"
	dir bool
	de  os.DirEntry
}

func (s *Store) list(ctx context.Context, dirKey, prefix, after string, limit int, out *[]imaged.BlobInfo) error {
	if err := ctx.Err(); err != nil {
		return imaged.WrapError(imaged.EUnavailable, err, "listing %s", prefix)
	}
	des, err := os.ReadDir(filepath.Join(s.root, filepath.FromSlash(dirKey)))
	if isNotFound(err) {
		return nil
	}
	if err != nil {
		return fileError(err, "listing %s", prefix)
	}
	entries := make([]listEntry, 0, len(des))
	for _, de := range des {
		if strings.HasPrefix(de.Name(), ".") {
			continue
		}
		e := listEntry{key: dirKey + de.Name(), dir: de.IsDir(), de: de}
		if e.dir {
			e.key += "/"
		} else if !de.Type().IsRegular() {
			continue
		}
		entries = append(entries, e)
	}
	slices.SortFunc(entries, func(a, b listEntry) int { return strings.Compare(a.key, b.key) })
	for _, e := range entries {
		if e.dir {
			inPrefix := strings.HasPrefix(prefix, e.key) || strings.HasPrefix(e.key, prefix)
			pastAfter := strings.HasPrefix(after, e.key) || e.key > after
			if inPrefix && pastAfter {
				if err := s.list(ctx, e.key, prefix, after, limit, out); err != nil {
					return err
				}
			}
		} else if strings.HasPrefix(e.key, prefix) && e.key > after {
			fi, err := e.de.Info()
			if isNotFound(err) {
				continue // deleted since the directory was read
			}
			if err != nil {
				return fileError(err, "listing %s", prefix)
			}
			*out = append(*out, imaged.BlobInfo{Key: e.key, Size: fi.Size(), ModTime: fi.ModTime()})
		}
		if len(*out) >= limit {
			return nil
		}
	}
	return nil
}
