package dbqueue_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"os"
	"testing"
	"time"

	"github.com/imaged/imaged/internal/testenv"

	"github.com/jackc/pgx/v5"

	"github.com/imaged/imaged"
	"github.com/imaged/imaged/dbqueue"
	"github.com/imaged/imaged/postgres"
	"github.com/imaged/imaged/queuetest"
)

// harness is the database queue over store. Polling is off in practice, so deliveries come
// from claims on start-up and from Publish's wake-ups, as the contract needs them to.
func harness(store imaged.TaskStore) queuetest.Harness {
	return queuetest.Harness{
		Store: store,
		Open: func(t *testing.T) imaged.Queue {
			q := dbqueue.New(store, dbqueue.Options{PollInterval: time.Hour, Logger: quiet})
			t.Cleanup(func() { q.Close() })
			return q
		},
	}
}

func TestQueueContractSQLite(t *testing.T) {
	queuetest.Run(t, func(t *testing.T) queuetest.Harness { return harness(newStore(t)) })
}

// The tests on PostgreSQL run in a schema of their own, dropped afterwards, in the database
// IMAGED_TEST_POSTGRES_URL names (the local test database by default).
func TestQueueContractPostgres(t *testing.T) {
	raw := testenv.PostgresURL()
	base, err := postgres.ParseURL(raw)
	if err != nil {
		t.Fatalf("IMAGED_TEST_POSTGRES_URL: %v", err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, base.URL)
	if err != nil {
		if os.Getenv("IMAGED_TEST_REQUIRE_SERVICES") == "1" {
			t.Fatalf("PostgreSQL is unreachable: %v", err)
		}
		t.Skipf("SKIPPED, NOT PASSED: PostgreSQL is unreachable: %v", err)
	}
	conn.Close(ctx)
	queuetest.Run(t, func(t *testing.T) queuetest.Harness {
		b := make([]byte, 6)
		rand.Read(b)
		schema := "imaged_test_" + hex.EncodeToString(b)
		t.Cleanup(func() {
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			conn, err := pgx.Connect(ctx, base.URL)
			if err != nil {
				t.Errorf("drop schema %s: %v", schema, err)
				return
			}
			defer conn.Close(ctx)
			if _, err := conn.Exec(ctx, `DROP SCHEMA IF EXISTS `+schema+` CASCADE`); err != nil {
				t.Errorf("drop schema %s: %v", schema, err)
			}
		})
		s, err := postgres.Open(t.Context(), postgres.Config{URL: base.URL, Schema: schema, MinConns: 1, MaxConns: 4,
			Logger: quiet})
		if err != nil {
			t.Fatalf("postgres.Open: %v", err)
		}
		t.Cleanup(func() { s.Close() })
		return harness(s)
	})
}
