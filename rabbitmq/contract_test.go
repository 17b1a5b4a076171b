package rabbitmq

import (
	"context"
	"path/filepath"
	"testing"

	"github.com/imaged/imaged"
	"github.com/imaged/imaged/queuetest"
	"github.com/imaged/imaged/sqlite"
)

// Each subtest has an exchange and queue prefix of its own, in the test vhost; every handle it
// opens is another process on them.
func TestQueueContract(t *testing.T) {
	brokerURL(t)
	queuetest.Run(t, func(t *testing.T) queuetest.Harness {
		store, err := sqlite.Open(t.Context(), filepath.Join(t.TempDir(), "imaged.db"))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { store.Close() })
		id := imaged.NewID()[:10]
		return queuetest.Harness{
			Store: store,
			Open: func(t *testing.T) imaged.Queue {
				return openBroker(t, func(c *Config) { c.Exchange = "imaged-test-" + id; c.Prefix = "t" + id + "." })
			},
			Kill: func(q imaged.Queue) { q.(*Broker).Close() },
			DeadLetters: func(ctx context.Context, q imaged.Queue) ([]string, error) {
				return q.(*Broker).DeadLetters(ctx)
			},
			Events: func(t *testing.T, q imaged.Queue) imaged.Events {
				e := q.(*Broker).Events(EventsOptions{})
				t.Cleanup(func() { e.Close() })
				return e
			},
		}
	})
}
