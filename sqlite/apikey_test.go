package sqlite_test

import (
	"path/filepath"
	"testing"

	"github.com/imaged/imaged"
	"github.com/imaged/imaged/storetest"
)

func TestAPIKeyStoreContract(t *testing.T) {
	storetest.RunAPIKeys(t, func(t *testing.T) imaged.APIKeyStore {
		s := open(t, filepath.Join(t.TempDir(), "imaged.db"))
		t.Cleanup(func() { s.Close() })
		return s
	})
}
