//go:build unix

package fs

import (
	"os"
	"strconv"
	"syscall"
)

// fileID names the file fi describes (device and inode), which a rename keeps.
func fileID(fi os.FileInfo) string {
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return ""
	}
	return strconv.FormatUint(uint64(st.Dev), 10) + ":" + strconv.FormatUint(uint64(st.Ino), 10)
}
