package kafka

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"sync"
	"time"

	"github.com/cenkalti/backoff/v5"
	"github.com/twmb/franz-go/pkg/kgo"
	"go.opentelemetry.io/otel"

	"github.com/imaged/imaged"
)

// Consume joins the consumer group on the topics of opts.Types (every configured type when
// empty) and calls h for the task records of its partitions, at most opts.Concurrency at a
// time; with opts.Ready set, a record waits for it before it takes a slot. A record's offset is committed once h returned nil for it
// and for every record before it in its partition; a handler error is retried with backoff in
// place (the partition's commits wait for it). Records with a not-before time wait for it
// without holding a slot. When partitions are revoked in a rebalance, the finished work is
// committed first; what was not finished is consumed again by the new owner, and the worker
// drops what it cannot claim. When ctx is cancelled it stops fetching, waits for the handlers
// in flight (as every Queue does), commits and leaves the group.
func (b *Broker) Consume(ctx context.Context, opts imaged.ConsumeOptions, h imaged.Handler) error {
	opts, err := opts.Checked(h)
	if err != nil {
		return err
	}
	c := &consumer{b: b, opts: opts, h: h, log: b.log.With("worker_id", opts.WorkerID),
		handlerCtx: context.WithoutCancel(ctx), ctx: ctx, sem: make(chan struct{}, opts.Concurrency),
		parts: map[tp]*partition{}}
	cl, err := kgo.NewClient(kgo.SeedBrokers(b.cfg.Brokers...), kgo.ClientID("imaged-"+opts.WorkerID),
		kgo.ConsumerGroup(b.cfg.Group), kgo.ConsumeTopics(b.tasksTopics(opts.Types)...),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		kgo.AutoCommitMarks(), kgo.AutoCommitInterval(time.Second),
		kgo.SessionTimeout(b.cfg.SessionTimeout), kgo.HeartbeatInterval(max(b.cfg.SessionTimeout/5, 100*time.Millisecond)),
		kgo.RebalanceTimeout(max(2*b.cfg.SessionTimeout, 10*time.Second)),
		kgo.OnPartitionsRevoked(c.revoked), kgo.OnPartitionsLost(c.lost),
		kgo.FetchMaxWait(500*time.Millisecond), kgo.DialTimeout(5*time.Second),
		kgo.RetryBackoffFn(retryBackoff))
	if err != nil {
		return fmt.Errorf("kafka consumer: %w", err)
	}
	c.cl = cl
	closeClient, forget := b.running(cl)
	defer forget()
	c.run()
	// Shutting down: let handlers finish, commit, then leave the group.
	c.inflight.Wait()
	cctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c.markAll()
	if err := cl.CommitMarkedOffsets(cctx); err != nil {
		c.log.Warn("committing offsets at shutdown failed; those records are consumed again", "error", err.Error())
	}
	closeClient()
	return nil
}

type tp struct {
	topic     string
	partition int32
}

// partition tracks the records of one assigned partition that were handed out and not yet
// finished; the committable offset is the lowest of them (or one past the last seen).
type partition struct {
	pending map[int64]bool
	next    int64
	epoch   int32
	ctx     context.Context // ends when the partition is revoked or lost
	cancel  context.CancelFunc
	wg      sync.WaitGroup
}

func (p *partition) watermark() int64 {
	wm := p.next
	for o := range p.pending {
		wm = min(wm, o)
	}
	return wm
}

type consumer struct {
	b          *Broker
	cl         *kgo.Client
	opts       imaged.ConsumeOptions
	h          imaged.Handler
	log        *slog.Logger
	ctx        context.Context
	handlerCtx context.Context
	sem        chan struct{}
	inflight   sync.WaitGroup

	mu    sync.Mutex
	parts map[tp]*partition
}

func (c *consumer) run() {
	for c.ctx.Err() == nil {
		fs := c.cl.PollRecords(c.ctx, 4*c.opts.Concurrency)
		if fs.IsClientClosed() || c.ctx.Err() != nil {
			return
		}
		fs.EachError(func(topic string, p int32, err error) {
			if !errors.Is(err, context.Canceled) {
				c.log.Warn("Kafka fetch error", "topic", topic, "partition", p, "error", err.Error())
			}
		})
		for _, r := range fs.Records() {
			if !c.dispatch(r) {
				return
			}
		}
	}
}

// track registers r as handed out and returns its partition's state.
func (c *consumer) track(r *kgo.Record) *partition {
	c.mu.Lock()
	defer c.mu.Unlock()
	k := tp{r.Topic, r.Partition}
	p := c.parts[k]
	if p == nil {
		ctx, cancel := context.WithCancel(c.ctx)
		p = &partition{pending: map[int64]bool{}, ctx: ctx, cancel: cancel}
		c.parts[k] = p
	}
	p.pending[r.Offset] = true
	p.next = max(p.next, r.Offset+1)
	p.epoch = max(p.epoch, r.LeaderEpoch)
	p.wg.Add(1)
	return p
}

// dispatch hands r to a handler; it returns false when Consume is stopping.
func (c *consumer) dispatch(r *kgo.Record) bool {
	p := c.track(r)
	m, err := imaged.ParseTaskMessage(r.Value)
	if err != nil {
		c.log.Error("unreadable task record skipped", "topic", r.Topic, "partition", r.Partition, "offset", r.Offset)
		c.finish(r, p)
		return true
	}
	if m.CorrelationID == "" {
		m.CorrelationID = header(r, headerCorrelationID)
	}
	var notBefore time.Time
	if v := header(r, headerNotBefore); v != "" {
		if ms, err := strconv.ParseInt(v, 10, 64); err == nil {
			notBefore = time.UnixMilli(ms)
		}
	}
	if wait := time.Until(notBefore); wait > 0 {
		// Wait without a slot; the partition's commits wait behind it.
		c.inflight.Add(1)
		go func() {
			defer c.inflight.Done()
			t := time.NewTimer(wait)
			defer t.Stop()
			select {
			case <-t.C:
			case <-p.ctx.Done():
				p.wg.Done() // left uncommitted: consumed again by whoever owns the partition next
				return
			}
			if c.opts.WaitReady(p.ctx) != nil {
				p.wg.Done()
				return
			}
			select {
			case c.sem <- struct{}{}:
			case <-p.ctx.Done():
				p.wg.Done()
				return
			}
			c.handle(r, p, m)
		}()
		return true
	}
	if c.opts.WaitReady(p.ctx) != nil {
		p.wg.Done()
		return c.ctx.Err() == nil
	}
	select {
	case c.sem <- struct{}{}:
	case <-c.ctx.Done():
		p.wg.Done()
		return false
	case <-p.ctx.Done():
		p.wg.Done()
		return true
	}
	c.inflight.Add(1)
	go func() {
		defer c.inflight.Done()
		c.handle(r, p, m)
	}()
	return true
}

// handle runs the handler for r until it returns nil (retrying errors with backoff) and marks
// the record finished. It releases the slot taken for it.
func (c *consumer) handle(r *kgo.Record, p *partition, m imaged.TaskMessage) {
	defer func() { <-c.sem }()
	d := m.Delivery(false, traceContext(r))
	attempt := 0
	_, err := backoff.Retry(p.ctx, func() (struct{}, error) {
		attempt++
		d.Redelivered = attempt > 1
		return struct{}{}, c.h(c.handlerCtx, d)
	}, backoff.WithBackOff(&backoff.ExponentialBackOff{InitialInterval: time.Second, Multiplier: 2, MaxInterval: 30 * time.Second}),
		backoff.WithMaxElapsedTime(0),
		backoff.WithNotify(func(err error, wait time.Duration) {
			c.log.Error("task handler could not record an outcome; trying again", "task_id", m.TaskID,
				"error", err.Error(), "retry_in", wait.String())
		}))
	if err != nil {
		p.wg.Done() // revoked or lost: left uncommitted, consumed again by the partition's next owner
		return
	}
	c.finish(r, p)
}

// finish marks r done and moves its partition's committable offset forward.
func (c *consumer) finish(r *kgo.Record, p *partition) {
	defer p.wg.Done()
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.parts[tp{r.Topic, r.Partition}] != p {
		return // revoked or lost meanwhile: the new owner consumes it again
	}
	delete(p.pending, r.Offset)
	c.cl.MarkCommitOffsets(map[string]map[int32]kgo.EpochOffset{
		r.Topic: {r.Partition: {Epoch: p.epoch, Offset: p.watermark()}},
	})
}

// markAll marks the committable offset of every partition.
func (c *consumer) markAll() {
	c.mu.Lock()
	defer c.mu.Unlock()
	offs := map[string]map[int32]kgo.EpochOffset{}
	for k, p := range c.parts {
		if offs[k.topic] == nil {
			offs[k.topic] = map[int32]kgo.EpochOffset{}
		}
		offs[k.topic][k.partition] = kgo.EpochOffset{Epoch: p.epoch, Offset: p.watermark()}
	}
	c.cl.MarkCommitOffsets(offs)
}

// revokeWait bounds how long a revoke waits for the partition's handlers to finish, so their
// work is committed before another member takes over.
const revokeWait = 5 * time.Second

// revoked runs in a rebalance: it lets the handlers of the revoked partitions finish (briefly),
// commits what is finished and forgets the partitions.
func (c *consumer) revoked(ctx context.Context, cl *kgo.Client, revoked map[string][]int32) {
	var ps []*partition
	c.mu.Lock()
	for topic, parts := range revoked {
		for _, n := range parts {
			if p := c.parts[tp{topic, n}]; p != nil {
				ps = append(ps, p)
			}
		}
	}
	c.mu.Unlock()
	done := make(chan struct{})
	go func() {
		for _, p := range ps {
			p.wg.Wait()
		}
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(revokeWait):
		c.log.Warn("handlers still running at a rebalance; their records are consumed again by the new owner")
	}
	c.markAll()
	cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	if err := cl.CommitMarkedOffsets(cctx); err != nil {
		c.log.Warn("committing offsets at a rebalance failed; those records are consumed again", "error", err.Error())
	}
	c.forget(revoked)
}

// lost runs when the group session ended without a clean revoke: nothing can be committed.
func (c *consumer) lost(_ context.Context, _ *kgo.Client, lost map[string][]int32) {
	c.log.Warn("Kafka partitions lost; their unfinished records are consumed again", "partitions", fmt.Sprint(lost))
	c.forget(lost)
}

func (c *consumer) forget(parts map[string][]int32) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for topic, ns := range parts {
		for _, n := range ns {
			k := tp{topic, n}
			if p := c.parts[k]; p != nil {
				p.cancel()
				delete(c.parts, k)
			}
		}
	}
}

// traceContext returns the W3C trace-context headers of a record (nil when it has none).
func traceContext(r *kgo.Record) map[string]string {
	var out map[string]string
	for _, k := range otel.GetTextMapPropagator().Fields() {
		if v := header(r, k); v != "" {
			if out == nil {
				out = map[string]string{}
			}
			out[k] = v
		}
	}
	return out
}
