package imaged

import (
	"bytes"
	"log/slog"
	"strconv"
	"strings"
	"testing"
	"time"
)

// A flood of one kind of native message is one line, and the next line after the interval
// counts what was held back; other kinds get their own line.
func TestNativeLogDeduplicates(t *testing.T) {
	var buf bytes.Buffer
	logger := slog.New(slog.NewJSONHandler(&buf, nil))
	n := &NativeLog{Library: "libvips", Interval: 200 * time.Millisecond, Logger: func() *slog.Logger { return logger }}
	for row := 0; row < 10000; row++ {
		n.Log(slog.LevelWarn, "VipsPng", "libpng read error at row "+strconv.Itoa(row))
	}
	n.Log(slog.LevelWarn, "VipsJpeg", "premature end of JPEG file")
	if lines := strings.Count(buf.String(), "\n"); lines != 2 {
		t.Fatalf("%d lines for 10000 messages of one kind and one of another:\n%s", lines, buf.String())
	}
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) && strings.Count(buf.String(), "\n") < 3 {
		n.Log(slog.LevelWarn, "VipsPng", "libpng read error at row 7")
		time.Sleep(20 * time.Millisecond)
	}
	out := buf.String()
	if !strings.Contains(out, `"repeated":`) || !strings.Contains(out, `"library":"libvips"`) {
		t.Fatalf("the line after the interval does not count the held-back messages:\n%s", out)
	}
}
