// Package vips runs imaged pipelines on libvips. A pipeline is a list of small steps over one
// image held in libvips: the source is decoded once (shrinking on load when the first step
// downscales), every op works on that in-memory image in order, and the result is encoded once
// at the end. Analysis ops (info, and any registered Analyzer such as ocr or detect) read the
// current image and add JSON to the result without changing it. An animation is reduced to its
// first frame unless the pipeline starts with frames; then its frames are held stacked in one
// image and each op runs on every frame (frames.go). An op is its file and one register call
// that declares all its traits (opSpec); an engine's op comes through Config.
package vips

import (
	"context"
	"log/slog"
	"sync"
	"time"

	govips "github.com/davidbyttow/govips/v2/vips"

	"github.com/imaged/imaged"
)

// Config tunes the processor.
type Config struct {
	// Concurrency is the number of libvips worker threads per image. It defaults to 1: on small
	// machines, parallelising across requests beats parallelising inside one image. libvips holds
	// this setting process-wide, so the first Startup decides it.
	Concurrency int
	// Limits bound the input and output dimensions, the largest image a pipeline holds and
	// its cost, all checked before decoding; imaged.DefaultLimits where zero, except that
	// MaxPixels defaults to MaxWidth×MaxHeight, and a negative MaxCost sets no cost limit.
	Limits imaged.Limits
	// Analyzers add analysis ops (ocr, detect) under the names and traits their Spec declares,
	// without this package knowing them.
	Analyzers []imaged.Analyzer
	// Painters add transform ops drawn in Go (annotate) likewise.
	Painters []imaged.Painter
	// Locator finds objects for crop gravity=object:<class>; that gravity is refused without it.
	Locator imaged.Locator
	// MemoryBudget bounds, in MiB, the memory the pipelines running at once are estimated to
	// make libvips hold; a pipeline waits for its share (see budget). 0 means 64 MiB per CPU,
	// a negative value no bound.
	MemoryBudget int
	// MaxFrames bounds the frames the frames op loads from an animated GIF or WebP; 100 where
	// zero or less. frames.max may only lower it.
	MaxFrames int
	// MaxOutputBytes bounds the size of an encoded result: a larger one is refused (ETooLarge)
	// before anyone stores or sends it. 100 MB where zero or less.
	MaxOutputBytes int
	// Images reads uploaded images for watermark image=<id>; without it (and until
	// Processor.SetImages gives one) image watermarks are refused.
	Images ImageSource
}

// ImageSource returns the stored bytes of the uploaded image with that id: an *imaged.Error
// with ENotFound when there is none, another *imaged.Error (EUnavailable) when the store cannot
// answer now.
type ImageSource func(ctx context.Context, id string) ([]byte, error)

// defaultMaxFrames is the frame limit of animations when Config.MaxFrames is not set.
const defaultMaxFrames = 100

func (c Config) maxFrames() int {
	if c.MaxFrames <= 0 {
		return defaultMaxFrames
	}
	return c.MaxFrames
}

// DefaultMaxOutputBytes is the size limit of an encoded result when Config.MaxOutputBytes is
// not set.
const DefaultMaxOutputBytes = 100 << 20

func (c Config) maxOutputBytes() int {
	if c.MaxOutputBytes <= 0 {
		return DefaultMaxOutputBytes
	}
	return c.MaxOutputBytes
}

func (c Config) budget() *budget {
	switch {
	case c.MemoryBudget < 0:
		return nil
	case c.MemoryBudget == 0:
		return newBudget(defaultBudget())
	}
	return newBudget(c.MemoryBudget)
}

func (c Config) concurrency() int {
	if c.Concurrency <= 0 {
		return 1
	}
	return c.Concurrency
}

func (c Config) limits() imaged.Limits {
	l := c.Limits
	if l.MaxBytes <= 0 {
		l.MaxBytes = imaged.DefaultLimits.MaxBytes
	}
	if l.MaxWidth <= 0 {
		l.MaxWidth = imaged.DefaultLimits.MaxWidth
	}
	if l.MaxHeight <= 0 {
		l.MaxHeight = imaged.DefaultLimits.MaxHeight
	}
	if l.MaxPixels <= 0 {
		l.MaxPixels = int64(l.MaxWidth) * int64(l.MaxHeight)
	}
	switch {
	case l.MaxCost == 0:
		l.MaxCost = imaged.DefaultLimits.MaxCost
	case l.MaxCost < 0:
		l.MaxCost = 0
	}
	return l
}

var (
	lifeMu   sync.Mutex
	running  bool
	stopped  bool
	stopTrim chan struct{}
)

// trimInterval is how often memory malloc holds free goes back to the system while pipelines
// run.
const trimInterval = 5 * time.Second

// Startup starts libvips once per process: glibc malloc held to 2 arenas and trimmed while
// pipelines run (see limitArenas and trimEvery), the operation cache off (every request is a new
// image, and the cache only holds memory), the thread count from cfg, loaders that libvips marks
// untrusted (ImageMagick, PDF and the like) blocked, and libvips warnings routed to slog. Later
// calls do nothing. New calls it too, so an explicit call is only needed to choose the settings
// before the first processor exists.
func Startup(cfg Config) {
	lifeMu.Lock()
	defer lifeMu.Unlock()
	if running || stopped {
		return
	}
	limitArenas()
	govips.LoggingSettings(logToSlog, govips.LogLevelWarning)
	govips.Startup(&govips.Config{
		ConcurrencyLevel: cfg.concurrency(),
		MaxCacheFiles:    0,
		MaxCacheMem:      0,
		MaxCacheSize:     0,
	})
	blockUntrusted()
	findSavers()
	stopTrim = make(chan struct{})
	go trimEvery(trimInterval, stopTrim)
	running = true
}

// Shutdown stops libvips. libvips cannot be started again in the same process: after Shutdown,
// Process answers EUnavailable.
func Shutdown() {
	lifeMu.Lock()
	defer lifeMu.Unlock()
	if !running {
		stopped = true
		return
	}
	close(stopTrim)
	govips.Shutdown()
	running = false
	stopped = true
}

// ready reports whether libvips is running, starting it with cfg when it never was.
func ready(cfg Config) bool {
	lifeMu.Lock()
	r, s := running, stopped
	lifeMu.Unlock()
	if r {
		return true
	}
	if s {
		return false
	}
	Startup(cfg)
	return true
}

// vipsLog is where libvips' messages go: the structured log, one line per kind per 10 s.
var vipsLog = &imaged.NativeLog{Library: "libvips"}

func logToSlog(domain string, level govips.LogLevel, message string) {
	switch level {
	case govips.LogLevelError, govips.LogLevelCritical:
		vipsLog.Log(slog.LevelError, domain, message)
	case govips.LogLevelWarning:
		vipsLog.Log(slog.LevelWarn, domain, message)
	default:
		vipsLog.Log(slog.LevelDebug, domain, message)
	}
}
