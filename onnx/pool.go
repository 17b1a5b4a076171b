package onnx

import (
	"context"
	"errors"
	"sync"
)

// Pool holds up to a fixed number of sessions of one model, created on first use and reused:
// loading a model takes 70–450 ms, so each is loaded once.
type Pool struct {
	create func() (*Session, error)
	slots  chan struct{} // a token per session that may exist; taking one is the right to use a session
	mu     sync.Mutex
	idle   []*Session
	closed bool
}

func newPool(size int, create func() (*Session, error)) *Pool {
	if size <= 0 {
		size = DefaultPoolSize
	}
	return &Pool{create: create, slots: make(chan struct{}, size)}
}

// NewPool returns a pool of at most size sessions made by create; a Runtime makes pools this way
// too. Sessions are created on first use.
func NewPool(size int, create func() (*Session, error)) *Pool { return newPool(size, create) }

// Get waits for a free session, creating one when fewer than the pool's size exist. It returns
// ctx's error when ctx ends first and the creation error (EUnavailable when the library or model
// is missing) otherwise. Every session from Get goes back with Put.
func (p *Pool) Get(ctx context.Context) (*Session, error) {
	select {
	case p.slots <- struct{}{}:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		<-p.slots
		return nil, errPoolClosed
	}
	if n := len(p.idle); n > 0 {
		s := p.idle[n-1]
		p.idle = p.idle[:n-1]
		p.mu.Unlock()
		return s, nil
	}
	p.mu.Unlock()
	s, err := p.create()
	if err != nil {
		<-p.slots
		return nil, err
	}
	return s, nil
}

// Put returns a session taken with Get. A nil session (one that broke) frees its slot only.
func (p *Pool) Put(s *Session) {
	p.mu.Lock()
	if s != nil {
		if p.closed {
			s.Close()
		} else {
			p.idle = append(p.idle, s)
		}
	}
	p.mu.Unlock()
	<-p.slots
}

// Run takes a session, runs it and puts it back.
func (p *Pool) Run(ctx context.Context, inputs ...Tensor) ([]Tensor, error) {
	s, err := p.Get(ctx)
	if err != nil {
		return nil, err
	}
	defer p.Put(s)
	return s.Run(ctx, inputs...)
}

// Close destroys the idle sessions; sessions in use are destroyed when they come back.
func (p *Pool) Close() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.closed = true
	var errs []error
	for _, s := range p.idle {
		errs = append(errs, s.Close())
	}
	p.idle = nil
	return errors.Join(errs...)
}
