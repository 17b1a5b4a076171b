//go:build !unix

package fs

import "os"

// fileID has no portable inode here: sidecars then match any data file.
func fileID(os.FileInfo) string { return "" }
