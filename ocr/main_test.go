package ocr

import (
	"os"
	"syscall"
	"testing"
)

// TestMain restarts the test binary with OMP_THREAD_LIMIT=1 when it is missing: OpenMP reads it
// only at process start, and the service runs with it set.
func TestMain(m *testing.M) {
	if os.Getenv("OMP_THREAD_LIMIT") == "" {
		exe, err := os.Executable()
		if err == nil {
			os.Setenv("OMP_THREAD_LIMIT", "1")
			err = syscall.Exec(exe, os.Args, os.Environ())
		}
		os.Stderr.WriteString("could not restart with OMP_THREAD_LIMIT=1: " + err.Error() + "\n")
	}
	os.Exit(m.Run())
}
