package ocr

/*
#cgo pkg-config: lept
#include <leptonica/allheaders.h>

extern void imagedLeptonicaMessage(char *msg);

static void imaged_leptonica_handler(const char *msg) {
	imagedLeptonicaMessage((char *)msg);
}

static void imaged_route_leptonica(void) {
	leptSetStderrHandler(imaged_leptonica_handler);
}
*/
import "C"

import (
	"bufio"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"sync"

	"github.com/imaged/imaged"
)

// leptonicaLog is where Leptonica's messages go instead of stderr: the structured log, one line
// per kind per 10 s (a damaged image can make it repeat one warning for every row).
var leptonicaLog = &imaged.NativeLog{Library: "leptonica"}

// tesseractLog is where Tesseract's own messages go ("Estimating resolution as 300" and the
// like), likewise.
var tesseractLog = &imaged.NativeLog{Library: "tesseract"}

var (
	routeOnce sync.Once
	// tesseractDebugFile is the file Tesseract writes its messages to: a pipe this process
	// reads into tesseractLog; "" (stderr) when the pipe could not be made.
	tesseractDebugFile string
)

// routeNativeLogs sends Leptonica's and Tesseract's messages to the structured log, once per
// process. Tesseract opens its debug_file by name on its first message, so the name of a
// pipe's writing end (/proc/self/fd/N) takes them to a goroutine here.
func routeNativeLogs() {
	routeOnce.Do(func() {
		C.imaged_route_leptonica()
		r, w, err := os.Pipe()
		if err != nil {
			return
		}
		name := fmt.Sprintf("/proc/self/fd/%d", w.Fd())
		if _, err := os.Stat(name); err != nil {
			r.Close()
			w.Close()
			return
		}
		tesseractDebugFile = name
		go func() {
			sc := bufio.NewScanner(r)
			for sc.Scan() {
				line := sc.Text()
				level := slog.LevelDebug
				if strings.HasPrefix(line, "Warning") || strings.HasPrefix(line, "Error") {
					level = slog.LevelWarn
				}
				tesseractLog.Log(level, "", line)
			}
			// w stays open for the life of the process: Tesseract may write at any time.
			_ = w
		}()
	})
}

//export imagedLeptonicaMessage
func imagedLeptonicaMessage(msg *C.char) {
	text := C.GoString(msg)
	level := slog.LevelWarn
	switch {
	case strings.HasPrefix(text, "Error"):
		level = slog.LevelError
	case strings.HasPrefix(text, "Info"):
		level = slog.LevelDebug
	}
	// Leptonica names the function first: "Warning in pixReadMemPng: ...".
	domain := ""
	if _, rest, ok := strings.Cut(text, " in "); ok {
		domain, _, _ = strings.Cut(rest, ":")
	}
	leptonicaLog.Log(level, domain, text)
}
