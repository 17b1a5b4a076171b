package imaged

import (
	"context"
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
