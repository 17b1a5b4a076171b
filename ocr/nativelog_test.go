package ocr

import (
	"bytes"
	"log/slog"
	"strings"
	"sync"
	"testing"

	"github.com/otiai10/gosseract/v2"
)

type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// Leptonica's messages (here about bytes that are no image) reach the structured log, one
// line per kind, instead of stderr.
func TestLeptonicaMessagesGoToTheLog(t *testing.T) {
	var buf lockedBuffer
	prev := slog.Default()
	slog.SetDefault(slog.New(slog.NewJSONHandler(&buf, &slog.HandlerOptions{Level: slog.LevelDebug})))
	defer slog.SetDefault(prev)
	routeNativeLogs()
	c := gosseract.NewClient()
	defer c.Close()
	for i := 0; i < 50; i++ {
		_ = c.SetImageFromBytes([]byte("these bytes are no image at all"))
	}
	out := buf.String()
	if n := strings.Count(out, `"library":"leptonica"`); n < 1 || n > 3 {
		t.Fatalf("%d Leptonica lines for 50 failed reads (want one per kind):\n%s", n, out)
	}
	t.Logf("%s", out)
}
