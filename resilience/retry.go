package resilience

import (
	"context"
	"time"

	"github.com/cenkalti/backoff/v5"

	"github.com/imaged/imaged"
)

// Retry defaults from the specification: 3 attempts, waiting 2^attempt seconds (1 s, 2 s…)
// with jitter in between.
const (
	DefaultMaxAttempts = 3
	DefaultInitial     = time.Second
	DefaultMaxWait     = 30 * time.Second
	// Jitter spreads each wait uniformly over ±50 % so that callers failing together do not
	// retry together.
	Jitter = 0.5
)

// RetryConfig configures retries of transient failures.
type RetryConfig struct {
	// MaxAttempts counts every attempt, the first included (DefaultMaxAttempts when 0; 1
	// disables retries).
	MaxAttempts int
	// Initial is the wait before the second attempt; each later wait doubles, with jitter
	// (DefaultInitial when 0).
	Initial time.Duration
	// Max caps one wait (DefaultMaxWait when 0).
	Max time.Duration
}

func (c RetryConfig) withDefaults() RetryConfig {
	if c.MaxAttempts == 0 { // below zero disables retries, as 1 does
		c.MaxAttempts = DefaultMaxAttempts
	}
	return imaged.WithDefaults(c, RetryConfig{Initial: DefaultInitial, Max: DefaultMaxWait})
}

// retrier runs calls through one breaker, retrying transient failures.
type retrier struct {
	b   *Breaker
	cfg RetryConfig
	m   *Metrics
}

// once runs fn through the breaker without retrying.
func once[T any](ctx context.Context, r *retrier, fn func(ctx context.Context) (T, error)) (T, error) {
	return call(ctx, r.b, fn)
}

// do is once for a call that returns only an error.
func (r *retrier) do(ctx context.Context, fn func(ctx context.Context) error) error {
	return r.b.Do(ctx, fn)
}

// retryErr is retry for a call that returns only an error.
func (r *retrier) retryErr(ctx context.Context, op string, fn func(ctx context.Context) error) error {
	_, err := retry(ctx, r, op, func(ctx context.Context) (struct{}, error) { return struct{}{}, fn(ctx) })
	return err
}

// retry runs fn through the breaker and repeats it while it fails transiently, up to
// MaxAttempts, waiting with exponential backoff and jitter. It stops at once on a permanent
// error, an open breaker or a finished ctx, and returns the last error fn returned.
func retry[T any](ctx context.Context, r *retrier, op string, fn func(ctx context.Context) (T, error)) (T, error) {
	if r.cfg.MaxAttempts <= 1 {
		return once(ctx, r, fn)
	}
	var last error
	v, err := backoff.Retry(ctx, func() (T, error) {
		v, err := call(ctx, r.b, fn)
		if err == nil {
			return v, nil
		}
		last = err
		if IsCircuitOpen(err) || !imaged.Transient(err) || ctx.Err() != nil {
			return v, backoff.Permanent(err)
		}
		return v, err
	},
		backoff.WithBackOff(&backoff.ExponentialBackOff{
			InitialInterval:     r.cfg.Initial,
			RandomizationFactor: Jitter,
			Multiplier:          2,
			MaxInterval:         r.cfg.Max,
		}),
		backoff.WithMaxTries(uint(r.cfg.MaxAttempts)),
		backoff.WithMaxElapsedTime(0),
		backoff.WithNotify(func(error, time.Duration) { r.m.retried(r.b.Name(), op) }),
	)
	if err != nil && last != nil && ctx.Err() != nil {
		// ctx ended while waiting to retry: the dependency's own error says more than
		// "context canceled".
		err = last
	}
	return v, err
}
