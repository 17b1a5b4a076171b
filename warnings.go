package imaged

import (
	"context"
	"log/slog"
	"strings"
	"sync"
	"time"
)

// NativeLog routes the messages of a C library (libvips, Leptonica) into the structured log,
// one line per kind of message per Interval: a damaged image can make a decoder say the same
// thing ten thousand times in one run, and only the first, with the count of those held back
// since, is worth a line. A kind is the library, the level and the message with its numbers
// blanked. The libraries call it from their own threads, without a request to attribute the
// message to, so the limit is per process.
type NativeLog struct {
	Library  string
	Interval time.Duration // one line per kind per Interval; 10 s where zero
	Logger   func() *slog.Logger

	mu    sync.Mutex
	kinds map[string]*nativeKind
}

type nativeKind struct {
	last       time.Time
	suppressed int
}

// maxNativeKinds bounds the kinds remembered; past it the oldest are forgotten.
const maxNativeKinds = 1000

// Log writes msg at level unless a message of its kind was written within the interval.
func (n *NativeLog) Log(level slog.Level, domain, msg string) {
	msg = strings.TrimSpace(msg)
	if msg == "" {
		return
	}
	kind := level.String() + "\x00" + domain + "\x00" + blankNumbers(msg)
	now := time.Now()
	interval := n.Interval
	if interval <= 0 {
		interval = 10 * time.Second
	}
	n.mu.Lock()
	if n.kinds == nil {
		n.kinds = map[string]*nativeKind{}
	}
	k := n.kinds[kind]
	if k != nil && now.Sub(k.last) < interval {
		k.suppressed++
		n.mu.Unlock()
		return
	}
	suppressed := 0
	if k == nil {
		if len(n.kinds) >= maxNativeKinds {
			n.forget(now.Add(-interval))
		}
		k = &nativeKind{}
		n.kinds[kind] = k
	}
	suppressed, k.suppressed, k.last = k.suppressed, 0, now
	n.mu.Unlock()
	logger := slog.Default()
	if n.Logger != nil {
		logger = n.Logger()
	}
	attrs := []any{"library", n.Library, "message", msg}
	if domain != "" {
		attrs = append(attrs, "domain", domain)
	}
	if suppressed > 0 {
		attrs = append(attrs, "repeated", suppressed)
	}
	logger.Log(context.Background(), level, n.Library+" says", attrs...)
}

// forget drops the kinds last written before cutoff, or all of them when none is that old.
func (n *NativeLog) forget(cutoff time.Time) {
	for kind, k := range n.kinds {
		if k.last.Before(cutoff) {
			delete(n.kinds, kind)
		}
	}
	if len(n.kinds) >= maxNativeKinds {
		clear(n.kinds)
	}
}

// blankNumbers replaces each run of digits in s with one '#', so that messages differing only
// in a row number or an offset are one kind.
func blankNumbers(s string) string {
	var b strings.Builder
	digit := false
	for _, r := range s {
		if r >= '0' && r <= '9' {
			if !digit {
				b.WriteByte('#')
			}
			digit = true
			continue
		}
		digit = false
		b.WriteRune(r)
	}
	return b.String()
}
