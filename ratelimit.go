package imaged

import (
	"context"
	"time"
)

// RateLimit is a sliding-window limit: at most PerMinute requests in any 60 seconds and at most
// Burst in any one second. A zero field sets no limit of that kind.
type RateLimit struct {
	PerMinute int
	Burst     int
}

// Enabled reports whether the limit restricts anything.
func (l RateLimit) Enabled() bool { return l.PerMinute > 0 || l.Burst > 0 }

// RateDecision is a limiter's answer for one request.
type RateDecision struct {
	Allowed bool
	// Limit is the per-minute limit; Remaining is how many more requests would pass now.
	Limit     int
	Remaining int
	// Reset is how long until the minute window has room again (0 when it has room now);
	// RetryAfter, on refusal, how long until a request can pass.
	Reset      time.Duration
	RetryAfter time.Duration
}

// RateLimiter counts requests per key (an API key, a client address) in sliding windows.
// Refused requests do not count, and concurrent calls never let more through than the limit.
type RateLimiter interface {
	// Allow counts one request for key against limit when it fits and says whether it did.
	// An error means the limiter could not decide (its backend is down).
	Allow(ctx context.Context, key string, limit RateLimit) (RateDecision, error)
}
