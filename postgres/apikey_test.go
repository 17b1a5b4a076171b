package postgres_test

import (
	"testing"

	"github.com/imaged/imaged"
	"github.com/imaged/imaged/postgres"
	"github.com/imaged/imaged/storetest"
)

func TestAPIKeyStoreContract(t *testing.T) {
	requireServer(t)
	storetest.RunAPIKeys(t, func(t *testing.T) imaged.APIKeyStore {
		return openStore(t, postgres.Config{})
	})
}
