package cli

import (
	"fmt"
	"sync"

	"github.com/schollz/progressbar/v3"
)

// progress is a bar on stderr when stderr is a terminal (and --json is off), nothing elsewhere:
// scripts and logs get no control characters.
type progress struct {
	mu  sync.Mutex
	bar *progressbar.ProgressBar
}

func (e *Env) progress(o *options, total int, what string) *progress {
	p := &progress{}
	if o.json || total == 0 || !e.terminal(e.Stderr) {
		return p
	}
	p.bar = progressbar.NewOptions(total,
		progressbar.OptionSetWriter(e.Stderr),
		progressbar.OptionSetDescription(what),
		progressbar.OptionShowCount(),
		progressbar.OptionSetWidth(30),
		progressbar.OptionShowElapsedTimeOnFinish(),
		progressbar.OptionOnCompletion(func() { fmt.Fprintln(e.Stderr) }),
	)
	return p
}

// set moves the bar to n done.
func (p *progress) set(n int) {
	if p.bar == nil {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	_ = p.bar.Set(n)
}

// add moves the bar on by one.
func (p *progress) add() {
	if p.bar == nil {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	_ = p.bar.Add(1)
}

// finish completes the bar.
func (p *progress) finish() {
	if p.bar == nil {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	_ = p.bar.Finish()
}
