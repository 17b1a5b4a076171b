package imaged

import (
	"context"
	"math"
	"math/rand/v2"
	"time"
)

// Every calls fn every interval, the first time one interval from now, until ctx is done. It is
// the one loop behind the process's periodic chores (health events, lease sweeps, lease
// renewals), so that each says only what it does and how often. A call that runs longer than
// interval delays the next one rather than piling up behind it.
func Every(ctx context.Context, interval time.Duration, fn func()) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		if ctx.Err() != nil {
			return // a tick and the end arrived together: the end wins
		}
		fn()
	}
}

// Backoff is the wait before try attempt+1 of something that failed attempt times: base·2^(attempt-1),
// capped at maxWait, with ±25 % jitter so that retries of many things that failed together do not
// arrive together.
func Backoff(base, maxWait time.Duration, attempt int) time.Duration {
	d := float64(base) * math.Pow(2, float64(min(max(attempt-1, 0), 62)))
	d = math.Min(d, float64(maxWait))
	d *= 0.75 + rand.Float64()*0.5
	return time.Duration(d)
}
