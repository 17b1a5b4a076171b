package ocr

/*
#cgo LDFLAGS: -lgomp
#include <omp.h>
*/
import "C"

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/otiai10/gosseract/v2"

	"github.com/imaged/imaged"
)

// TesseractConfig tunes the Tesseract engine.
type TesseractConfig struct {
	// PoolSize is the number of initialised clients kept per language set; 2 where zero.
	PoolSize int
	// TessdataPrefix is the directory of the *.traineddata files; Tesseract's own default
	// (/usr/share/tesseract-ocr/5/tessdata on Debian) where empty.
	TessdataPrefix string
}

// Tesseract reads text with the Tesseract library. A client is not safe for two goroutines and
// loading a language costs ≈150 ms, so initialised clients are pooled per language set.
type Tesseract struct {
	cfg   TesseractConfig
	mu    sync.Mutex
	pools map[string]*clientPool
}

type clientPool struct {
	langs []string
	slots chan struct{}
	mu    sync.Mutex
	idle  []*gosseract.Client
}

var threadLimitOnce sync.Once

// limitThreads keeps Tesseract's OpenMP to one thread: on small machines parallelising across
// requests is 5–7× faster than letting each recognition spread. OpenMP reads OMP_THREAD_LIMIT
// when the process starts, so setting it here only helps processes that load it later; the
// service's environment must carry OMP_THREAD_LIMIT=1, and a warning says when it does not.
func limitThreads() {
	threadLimitOnce.Do(func() {
		if os.Getenv("OMP_THREAD_LIMIT") == "" {
			os.Setenv("OMP_THREAD_LIMIT", "1")
		}
		if n := ThreadLimit(); n > 1 {
			slog.Warn("Tesseract may use several threads per recognition; start the service with OMP_THREAD_LIMIT=1", "omp_thread_limit", n)
		}
	})
}

// ThreadLimit is the thread limit OpenMP took from the environment at start-up.
func ThreadLimit() int { return int(C.omp_get_thread_limit()) }

// NewTesseract returns the engine; clients are created on first use.
func NewTesseract(cfg TesseractConfig) *Tesseract {
	if cfg.PoolSize <= 0 {
		cfg.PoolSize = 2
	}
	return &Tesseract{cfg: cfg, pools: map[string]*clientPool{}}
}

// defaultLanguages lists the languages in Tesseract's compiled-in tessdata directory (or
// $TESSDATA_PREFIX). Finding that directory creates and frees a Tesseract instance, which is not
// safe from two goroutines at once, so it is done once per process: a language pack installed
// later needs a restart.
var defaultLanguages = sync.OnceValues(gosseract.GetAvailableLanguages)

// Languages lists the installed language codes, read from the tessdata directory.
func (t *Tesseract) Languages() ([]string, error) {
	dir := t.cfg.TessdataPrefix
	if dir == "" {
		return defaultLanguages()
	}
	paths, err := filepath.Glob(filepath.Join(dir, "*.traineddata"))
	if err != nil {
		return nil, err
	}
	langs := make([]string, 0, len(paths))
	for _, p := range paths {
		langs = append(langs, strings.TrimSuffix(filepath.Base(p), ".traineddata"))
	}
	return langs, nil
}

// CheckLanguages returns EInvalid listing the installed languages when one of langs is not
// installed (osd, the orientation model, is not a language to read).
func (t *Tesseract) CheckLanguages(langs []string) error {
	installed, err := t.Languages()
	if err != nil {
		return imaged.WrapError(imaged.EUnavailable, err, "the Tesseract languages cannot be listed")
	}
	have := map[string]bool{}
	var readable []string
	for _, l := range installed {
		if l != "osd" {
			have[l] = true
			readable = append(readable, l)
		}
	}
	sort.Strings(readable)
	for _, l := range langs {
		if !have[l] {
			return &imaged.Error{Code: imaged.EInvalid, Field: "languages",
				Message: fmt.Sprintf("ocr language %q is not installed; installed: %s", l, strings.Join(readable, ", "))}
		}
	}
	return nil
}

func (t *Tesseract) pool(langs []string) *clientPool {
	key := strings.Join(langs, "+")
	t.mu.Lock()
	defer t.mu.Unlock()
	p, ok := t.pools[key]
	if !ok {
		p = &clientPool{langs: langs, slots: make(chan struct{}, t.cfg.PoolSize)}
		t.pools[key] = p
	}
	return p
}

func (t *Tesseract) get(ctx context.Context, p *clientPool) (*gosseract.Client, error) {
	select {
	case p.slots <- struct{}{}:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if n := len(p.idle); n > 0 {
		c := p.idle[n-1]
		p.idle = p.idle[:n-1]
		return c, nil
	}
	// The client loads its languages on its first recognition and keeps them.
	c := gosseract.NewClient()
	if t.cfg.TessdataPrefix != "" {
		c.SetTessdataPrefix(t.cfg.TessdataPrefix)
	}
	c.SetLanguage(p.langs...)
	if tesseractDebugFile != "" {
		_ = c.SetVariable("debug_file", tesseractDebugFile)
	}
	return c, nil
}

func (p *clientPool) put(c *gosseract.Client, broken bool) {
	p.mu.Lock()
	if broken {
		c.Close()
	} else {
		p.idle = append(p.idle, c)
	}
	p.mu.Unlock()
	<-p.slots
}

// Close frees the idle clients.
func (t *Tesseract) Close() {
	t.mu.Lock()
	defer t.mu.Unlock()
	for _, p := range t.pools {
		p.mu.Lock()
		for _, c := range p.idle {
			c.Close()
		}
		p.idle = nil
		p.mu.Unlock()
	}
}

// Recognize implements Engine.
func (t *Tesseract) Recognize(ctx context.Context, img Image, opts Options) (*Result, error) {
	if err := img.check(); err != nil {
		return nil, imaged.WrapError(imaged.EInvalid, err, "the image cannot be read as text")
	}
	langs := opts.languages()
	if err := t.CheckLanguages(langs); err != nil {
		return nil, err
	}
	limitThreads()
	routeNativeLogs()
	res := &Result{Engine: EngineTesseract, Timings: map[string]float64{}, Lines: []Line{}}

	start := time.Now()
	p := t.pool(langs)
	c, err := t.get(ctx, p)
	if err != nil {
		return nil, err
	}
	res.Timings["wait"] = ms(time.Since(start))

	broken := true
	defer func() { p.put(c, broken) }()
	start = time.Now()
	var enc []byte
	if img.Bands == 1 || img.Bands == 3 {
		enc = img.pnm()
	} else {
		enc = img.rgb().pnm()
	}
	if err := c.SetImageFromBytes(enc); err != nil {
		return nil, fmt.Errorf("ocr: tesseract image: %w", err)
	}
	// One recognition pass gives every word with its block, paragraph and line numbers; asking
	// for lines separately would recognise the page again.
	words, err := c.GetBoundingBoxesVerbose()
	if err != nil {
		return nil, fmt.Errorf("ocr: tesseract: %w", err)
	}
	res.Timings["recognition"] = ms(time.Since(start))
	if opts.HOCR {
		start = time.Now()
		if res.HOCR, err = c.HOCRText(); err != nil {
			return nil, fmt.Errorf("ocr: tesseract hOCR: %w", err)
		}
		res.Timings["hocr"] = ms(time.Since(start))
	}
	broken = false
	res.Lines = linesFromWords(words)
	res.Text = joinLines(res.Lines)
	return res, nil
}

// linesFromWords groups Tesseract's words by line; a line's box encloses its words and its
// confidence is the mean of theirs.
func linesFromWords(words []gosseract.BoundingBox) []Line {
	var lines []Line
	type key struct{ b, p, l int }
	var cur key
	for _, w := range words {
		text := strings.TrimSpace(w.Word)
		if text == "" {
			continue
		}
		k := key{w.BlockNum, w.ParNum, w.LineNum}
		box := Box{w.Box.Min.X, w.Box.Min.Y, w.Box.Max.X, w.Box.Max.Y}
		if len(lines) == 0 || k != cur {
			lines = append(lines, Line{Box: box})
			cur = k
		}
		l := &lines[len(lines)-1]
		l.Words = append(l.Words, Word{Text: text, Confidence: clampConf(w.Confidence), Box: box})
		l.Box = Box{min(l.Box.X1, box.X1), min(l.Box.Y1, box.Y1), max(l.Box.X2, box.X2), max(l.Box.Y2, box.Y2)}
	}
	for i := range lines {
		l := &lines[i]
		texts := make([]string, len(l.Words))
		var sum float64
		for j, w := range l.Words {
			texts[j] = w.Text
			sum += w.Confidence
		}
		l.Text = strings.Join(texts, " ")
		l.Confidence = sum / float64(len(l.Words))
		l.Points = rectPoints(l.Box)
	}
	return lines
}

func clampConf(c float64) float64 { return max(0, min(100, c)) }
