package kafka

import (
	"context"
	"path/filepath"
	"testing"

	"github.com/imaged/imaged"
	"github.com/imaged/imaged/queuetest"
	"github.com/imaged/imaged/sqlite"
)

// Each subtest has a kfake cluster of its own; every handle it opens is another process in one
// consumer group on the same topics.
func TestQueueContract(t *testing.T) {
	queuetest.Run(t, func(t *testing.T) queuetest.Harness {
		store, err := sqlite.Open(t.Context(), filepath.Join(t.TempDir(), "imaged.db"))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { store.Close() })
		k := startKafka(t, nil)
		prefix := "t" + imaged.NewID()[:8]
		return queuetest.Harness{
			Store: store,
			Open: func(t *testing.T) imaged.Queue {
				return openBroker(t, k.addr, func(c *Config) { c.TopicPrefix = prefix })
			},
			Kill: func(q imaged.Queue) { q.(*Broker).Close() },
			DeadLetters: func(ctx context.Context, q imaged.Queue) ([]string, error) {
				return q.(*Broker).DeadLetters(ctx)
			},
			Events: func(t *testing.T, q imaged.Queue) imaged.Events {
				e, err := q.(*Broker).Events(EventsOptions{})
				if err != nil {
					t.Fatal(err)
				}
				t.Cleanup(func() { e.Close() })
				return e
			},
		}
	})
}
