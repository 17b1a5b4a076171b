package prom

import (
	"sync/atomic"

	"github.com/prometheus/client_golang/prometheus"
)

// Outcomes of a try of an outbox item, the outcome label of outbox_attempts_total.
const (
	OutboxDelivered = "delivered" // the receiver or broker took it
	OutboxRetrying  = "retrying"  // it failed and will be tried again
	OutboxFailed    = "failed"    // it failed and will not be tried again
)

// droppedEvents reads the count of events that never reached the broker from whoever keeps it.
type droppedEvents struct{ count atomic.Pointer[func() uint64] }

func (d *droppedEvents) value() float64 {
	if f := d.count.Load(); f != nil {
		return float64((*f)())
	}
	return 0
}

func (m *Metrics) registerOutbox() {
	m.OutboxAttempts = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "outbox_attempts_total", Help: "Tries of outbox items (kind webhook: callbacks; event: events that waited for the broker), by kind and outcome (delivered, retrying, failed).",
	}, []string{"kind", "outcome"})
	m.OutboxOldestPending = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "outbox_oldest_pending_seconds", Help: "Age of the oldest outbox item not delivered yet, by kind (0 when none).",
	}, []string{"kind"})
	dropped := prometheus.NewCounterFunc(prometheus.CounterOpts{
		Name: "events_dropped_total", Help: "Events that never reached the broker: neither sent nor kept in the outbox. Should stay 0.",
	}, m.dropped.value)
	m.Registry.MustRegister(m.OutboxAttempts, m.OutboxOldestPending, dropped)
}

// CountDroppedEvents makes events_dropped_total read count (the event stream's own tally).
func (m *Metrics) CountDroppedEvents(count func() uint64) { m.dropped.count.Store(&count) }
