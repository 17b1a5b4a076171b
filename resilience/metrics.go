package resilience

import (
	"sync"

	"github.com/prometheus/client_golang/prometheus"
)

// Metrics holds the resilience collectors:
//
//	circuit_breaker_state{name}                    gauge: 0 closed, 1 half-open, 2 open
//	circuit_breaker_transitions_total{name,from,to} counter; states closed, half-open, open
//	retries_total{name,operation}                   counter of attempts after the first
//
// The state is read from each breaker when scraped, so an open breaker whose recovery time has
// passed shows as half-open without waiting for the next call. A nil *Metrics records nothing.
type Metrics struct {
	transitions *prometheus.CounterVec
	retries     *prometheus.CounterVec
	stateDesc   *prometheus.Desc

	mu       sync.Mutex
	breakers map[string]*Breaker
}

// NewMetrics creates the collectors and registers them on reg (not registered when reg is nil).
// Create one per registry and pass it to every decorator and breaker.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		transitions: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "circuit_breaker_transitions_total",
			Help: "Circuit breaker state changes, by breaker name and the states left and entered.",
		}, []string{"name", "from", "to"}),
		retries: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "retries_total",
			Help: "Calls to a dependency repeated after a transient failure, by dependency and operation.",
		}, []string{"name", "operation"}),
		stateDesc: prometheus.NewDesc("circuit_breaker_state",
			"Circuit breaker state by name: 0 closed, 1 half-open, 2 open.", []string{"name"}, nil),
		breakers: map[string]*Breaker{},
	}
	if reg != nil {
		reg.MustRegister(m.transitions, m.retries, stateCollector{m})
	}
	return m
}

func (m *Metrics) add(b *Breaker) {
	if m == nil {
		return
	}
	m.mu.Lock()
	m.breakers[b.Name()] = b
	m.mu.Unlock()
}

func (m *Metrics) transition(name, from, to string) {
	if m == nil {
		return
	}
	m.transitions.WithLabelValues(name, from, to).Inc()
}

func (m *Metrics) retried(name, op string) {
	if m == nil {
		return
	}
	m.retries.WithLabelValues(name, op).Inc()
}

// stateCollector reports circuit_breaker_state from the breakers at scrape time.
type stateCollector struct{ m *Metrics }

func (c stateCollector) Describe(ch chan<- *prometheus.Desc) { ch <- c.m.stateDesc }

func (c stateCollector) Collect(ch chan<- prometheus.Metric) {
	c.m.mu.Lock()
	bs := make([]*Breaker, 0, len(c.m.breakers))
	for _, b := range c.m.breakers {
		bs = append(bs, b)
	}
	c.m.mu.Unlock()
	// State() may move an open breaker to half-open, which records a transition: done
	// outside c.m.mu.
	for _, b := range bs {
		ch <- prometheus.MustNewConstMetric(c.m.stateDesc, prometheus.GaugeValue, float64(b.State()), b.Name())
	}
}
