// Package resilience keeps imaged answering while its dependencies fail: circuit breakers
// (sony/gobreaker) and retries with exponential backoff and jitter (cenkalti/backoff), applied
// as decorators of imaged.TaskStore and imaged.BlobStore, with their state as Prometheus
// metrics.
//
// Only transient failures (imaged.EUnavailable, timeouts, broken or refused connections) are
// retried and count against a breaker. A permanent answer such as ENotFound, EConflict or
// EInvalid is the dependency working as intended: it is returned at once and counts as a
// success. An open breaker answers at once with EUnavailable and a RetryAfter of the time left
// until it lets a probe through, so the API answers 503 with Retry-After instead of hanging.
//
// Each attempt of a retried call goes through the breaker on its own: every failed attempt is
// evidence that the dependency is down, a breaker that opens mid-way stops the remaining
// attempts at once, and the half-open probe is one attempt, not a whole retry sequence.
package resilience

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"sync/atomic"
	"time"

	"github.com/sony/gobreaker/v2"

	"github.com/imaged/imaged"
)

// Breaker defaults from the specification: 5 consecutive failures open a breaker for 60 s;
// storage uploads have their own breaker, 3 failures / 30 s.
const (
	DefaultFailures       = 5
	DefaultRecovery       = 60 * time.Second
	DefaultUploadFailures = 3
	DefaultUploadRecovery = 30 * time.Second
)

// BreakerConfig configures one circuit breaker.
type BreakerConfig struct {
	// Name labels the metrics and the error message ("database", "storage", "cache"…).
	Name string
	// Failures is the number of consecutive transient failures that opens the breaker
	// (DefaultFailures when 0).
	Failures uint32
	// Recovery is how long the breaker stays open before it lets one probe through
	// (half-open); a successful probe closes it, a failed one opens it again
	// (DefaultRecovery when 0).
	Recovery time.Duration
	// Log receives state changes (open at warn, the rest at info); none when nil.
	Log *slog.Logger
}

func (c BreakerConfig) withDefaults(name string, failures uint32, recovery time.Duration) BreakerConfig {
	return imaged.WithDefaults(c, BreakerConfig{Name: name, Failures: failures, Recovery: recovery})
}

// Breaker states as the circuit_breaker_state gauge reports them.
const (
	StateClosed   = 0
	StateHalfOpen = 1
	StateOpen     = 2
)

// Breaker is a circuit breaker over calls that return an error.
type Breaker struct {
	cfg       BreakerConfig
	cb        *gobreaker.CircuitBreaker[struct{}]
	openUntil atomic.Int64 // unix nanoseconds; when the breaker last opened plus Recovery
	m         *Metrics
}

// NewBreaker returns a closed breaker. Zero fields of cfg take the defaults (name "breaker").
// m may be nil (no metrics); a breaker registered on m under a name already there replaces
// the earlier one in circuit_breaker_state.
func NewBreaker(cfg BreakerConfig, m *Metrics) *Breaker {
	cfg = cfg.withDefaults("breaker", DefaultFailures, DefaultRecovery)
	b := &Breaker{cfg: cfg, m: m}
	b.cb = gobreaker.NewCircuitBreaker[struct{}](gobreaker.Settings{
		Name:        cfg.Name,
		MaxRequests: 1, // one probe in half-open; its success closes the breaker
		Timeout:     cfg.Recovery,
		ReadyToTrip: func(c gobreaker.Counts) bool { return c.ConsecutiveFailures >= cfg.Failures },
		// Called with the breaker's lock held: it must not call back into b.cb.
		OnStateChange: b.onStateChange,
		IsSuccessful:  func(err error) bool { return err == nil || !imaged.Transient(err) },
		IsExcluded: func(err error) bool {
			var x *excludedError
			return errors.As(err, &x)
		},
	})
	m.add(b)
	return b
}

// Name returns the breaker's name.
func (b *Breaker) Name() string { return b.cfg.Name }

// State returns StateClosed, StateHalfOpen or StateOpen.
func (b *Breaker) State() int { return stateValue(b.cb.State()) }

func stateValue(s gobreaker.State) int {
	switch s {
	case gobreaker.StateHalfOpen:
		return StateHalfOpen
	case gobreaker.StateOpen:
		return StateOpen
	}
	return StateClosed
}

func (b *Breaker) onStateChange(name string, from, to gobreaker.State) {
	if to == gobreaker.StateOpen {
		b.openUntil.Store(time.Now().Add(b.cfg.Recovery).UnixNano())
	}
	b.m.transition(name, from.String(), to.String())
	if b.cfg.Log != nil {
		level := slog.LevelInfo
		if to == gobreaker.StateOpen {
			level = slog.LevelWarn
		}
		b.cfg.Log.Log(context.Background(), level, "circuit breaker changed state",
			"breaker", name, "from", from.String(), "to", to.String())
	}
}

// excludedError marks a failure that says nothing about the dependency (the caller gave up),
// so the breaker counts it neither way.
type excludedError struct{ err error }

func (e *excludedError) Error() string { return e.err.Error() }
func (e *excludedError) Unwrap() error { return e.err }

// Do runs fn through the breaker. When the breaker is open (or half-open with its probe in
// flight) fn is not run and Do returns an EUnavailable *imaged.Error with RetryAfter set;
// IsCircuitOpen reports such errors. Otherwise Do returns what fn returned. A transient error
// from fn counts as a failure, anything else as a success, and a failure after ctx was
// cancelled is not counted at all.
func (b *Breaker) Do(ctx context.Context, fn func(ctx context.Context) error) error {
	_, err := call(ctx, b, func(ctx context.Context) (struct{}, error) { return struct{}{}, fn(ctx) })
	return err
}

// call runs fn through b (b may be nil: fn runs directly).
func call[T any](ctx context.Context, b *Breaker, fn func(ctx context.Context) (T, error)) (T, error) {
	if b == nil {
		return fn(ctx)
	}
	var v T
	ran := false
	_, err := b.cb.Execute(func() (struct{}, error) {
		ran = true
		var err error
		v, err = fn(ctx)
		if err != nil && errors.Is(ctx.Err(), context.Canceled) {
			return struct{}{}, &excludedError{err}
		}
		return struct{}{}, err
	})
	if !ran {
		return v, b.rejection(err)
	}
	var x *excludedError
	if errors.As(err, &x) && x == err {
		err = x.err
	}
	return v, err
}

// rejection turns gobreaker's refusal into the error the API answers 503 with.
func (b *Breaker) rejection(err error) error {
	e := &imaged.Error{Code: imaged.EUnavailable, Err: &circuitOpenError{name: b.cfg.Name, err: err}}
	if errors.Is(err, gobreaker.ErrTooManyRequests) {
		// Half-open: one probe is in flight and decides within the call's own timeout.
		e.Message = b.cfg.Name + " is unavailable (circuit half-open, probing)"
		e.RetryAfter = time.Second
		return e
	}
	e.Message = b.cfg.Name + " is unavailable (circuit open)"
	wait := time.Until(time.Unix(0, b.openUntil.Load()))
	// Retry-After is given in whole seconds: round up, never below one.
	e.RetryAfter = max(time.Second, time.Duration(math.Ceil(wait.Seconds()))*time.Second)
	return e
}

// circuitOpenError is the cause kept in the EUnavailable error of an open breaker.
type circuitOpenError struct {
	name string
	err  error
}

func (e *circuitOpenError) Error() string {
	return fmt.Sprintf("circuit breaker %s: %v", e.name, e.err)
}
func (e *circuitOpenError) Unwrap() error { return e.err }

// IsCircuitOpen reports whether err is the answer of an open (or probing half-open) breaker,
// given without calling the dependency.
func IsCircuitOpen(err error) bool {
	var e *circuitOpenError
	return errors.As(err, &e)
}
