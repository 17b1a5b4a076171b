// Package ratelimit implements imaged.RateLimiter: sliding windows of one minute and one second
// per key, in memory for one process (Memory) or in Redis for every process sharing it (Redis).
// Only allowed requests are counted, so a client that keeps knocking while refused does not
// push its own window further out.
package ratelimit

import (
	"context"
	"sync"
	"time"

	"github.com/imaged/imaged"
)

// The windows: PerMinute counts the last minute, Burst the last second.
const (
	minute = time.Minute
	second = time.Second
)

// Memory is a limiter held in this process.
type Memory struct {
	now func() time.Time

	mu        sync.Mutex
	windows   map[string][]time.Time // allowed requests of the last minute, oldest first
	lastSweep time.Time
}

var _ imaged.RateLimiter = (*Memory)(nil)

// NewMemory returns an empty in-memory limiter.
func NewMemory() *Memory { return &Memory{now: time.Now, windows: map[string][]time.Time{}} }

// Allow counts one request for key when it fits in limit. It never fails.
func (m *Memory) Allow(_ context.Context, key string, limit imaged.RateLimit) (imaged.RateDecision, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	now := m.now()
	m.sweep(now)
	times := m.windows[key]
	cut := 0
	for cut < len(times) && !times[cut].After(now.Add(-minute)) {
		cut++
	}
	times = times[cut:]
	recent := 0
	for i := len(times) - 1; i >= 0 && times[i].After(now.Add(-second)); i-- {
		recent++
	}
	d := decide(limit, len(times), recent)
	if d.Allowed {
		times = append(times, now)
	} else {
		d.RetryAfter = retryAfter(limit, len(times), recent, func(i int) time.Time { return times[i] }, now)
	}
	if len(times) > 0 {
		d.Reset = times[0].Add(minute).Sub(now)
		m.windows[key] = times
	} else {
		delete(m.windows, key)
	}
	return d, nil
}

// sweep drops the windows of keys with no request in the last minute, once a minute.
func (m *Memory) sweep(now time.Time) {
	if now.Sub(m.lastSweep) < minute {
		return
	}
	m.lastSweep = now
	for k, times := range m.windows {
		if len(times) == 0 || !times[len(times)-1].After(now.Add(-minute)) {
			delete(m.windows, k)
		}
	}
}

// decide says whether a request fits, given the counts of the windows before it, and fills the
// decision's limit and remaining as they are once it is counted.
func decide(limit imaged.RateLimit, inMinute, inSecond int) imaged.RateDecision {
	allowed := (limit.PerMinute <= 0 || inMinute < limit.PerMinute) && (limit.Burst <= 0 || inSecond < limit.Burst)
	if allowed {
		inMinute++
		inSecond++
	}
	d := imaged.RateDecision{Allowed: allowed, Limit: limit.PerMinute, Remaining: -1}
	if limit.PerMinute > 0 {
		d.Remaining = max(0, limit.PerMinute-inMinute)
	} else {
		d.Limit = limit.Burst
	}
	if limit.Burst > 0 {
		r := max(0, limit.Burst-inSecond)
		if d.Remaining < 0 || r < d.Remaining {
			d.Remaining = r
		}
	}
	return d
}

// retryAfter is how long until a refused request would fit: until enough of the counted
// requests (at(i), oldest first, n of them, the last inSecond within the second) leave their
// windows.
func retryAfter(limit imaged.RateLimit, n, inSecond int, at func(i int) time.Time, now time.Time) time.Duration {
	var wait time.Duration
	if limit.PerMinute > 0 && n >= limit.PerMinute {
		wait = max(wait, at(n-limit.PerMinute).Add(minute).Sub(now))
	}
	if limit.Burst > 0 && inSecond >= limit.Burst {
		wait = max(wait, at(n-limit.Burst).Add(second).Sub(now))
	}
	return max(wait, time.Millisecond)
}
