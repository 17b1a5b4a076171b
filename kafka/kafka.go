// Package kafka is the Kafka queue ("kafka://"): tasks go to the topic <prefix>.tasks as records
// keyed by task id, workers share them through a consumer group, and a record's offset is
// committed only after the handler recorded the task's outcome (at-least-once). Delayed retries
// are records carrying a not-before header that the consumer honours. Tasks that failed for
// good leave their final record in <prefix>.dead; events go to <prefix>.events.
//
// The task row in the TaskStore is the truth; a record only carries a task id, and the worker
// drops a delivery whose task it cannot claim (DESIGN §7).
package kafka

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"go.opentelemetry.io/otel"

	"github.com/imaged/imaged"
)

// Defaults for Config fields left zero.
const (
	DefaultTopicPrefix    = "imaged"
	DefaultGroup          = "imaged-workers"
	DefaultPartitions     = 6
	DefaultPublishTimeout = 30 * time.Second
	DefaultSessionTimeout = 10 * time.Second
)

// DepthAll is the key under which Depth reports the lag: one topic carries every task type,
// so the lag is not split by type.
const DepthAll = "all"

// Record header names.
const (
	headerCorrelationID = "correlation_id"
	headerTaskType      = "task_type"
	headerNotBefore     = "not_before" // unix milliseconds
	headerOrigin        = "origin"
	headerEventType     = "event_type"
)

// Config tunes a Broker.
type Config struct {
	Brokers     []string
	TopicPrefix string
	// Group is the consumer group of the workers. Workers limited to some task types skip the
	// records of the others, so they need a group of their own.
	Group string
	// Partitions and ReplicationFactor are used for topics Open creates (-1: the broker's
	// default replication).
	Partitions        int32
	ReplicationFactor int16
	// SessionTimeout is how long the group waits for a silent member before it hands the
	// member's partitions to others.
	SessionTimeout time.Duration
	// PublishTimeout bounds how long Publish waits for the brokers to take a record.
	PublishTimeout time.Duration
	Logger         *slog.Logger
}

// ParseURL reads an IMAGED_QUEUE_URL of the form
// kafka://host1:9092,host2:9092?topic_prefix=imaged&group=imaged-workers&partitions=6&session_timeout=10s.
func ParseURL(raw string) (Config, error) {
	u, err := url.Parse(raw)
	if err != nil {
		return Config{}, fmt.Errorf("%q is not a URL", raw)
	}
	if u.Scheme != "kafka" {
		return Config{}, fmt.Errorf("unsupported scheme %q (want kafka://)", u.Scheme)
	}
	if u.Host == "" {
		return Config{}, errors.New("the Kafka URL names no broker")
	}
	cfg := Config{Brokers: strings.Split(u.Host, ","), TopicPrefix: DefaultTopicPrefix, Group: DefaultGroup,
		ReplicationFactor: -1}
	q := u.Query()
	for k := range q {
		v := q.Get(k)
		switch k {
		case "topic_prefix":
			if v == "" {
				return Config{}, errors.New("topic_prefix= must not be empty")
			}
			cfg.TopicPrefix = v
		case "group":
			if v == "" {
				return Config{}, errors.New("group= must not be empty")
			}
			cfg.Group = v
		case "partitions":
			n, err := strconv.Atoi(v)
			if err != nil || n < 1 || n > 10000 {
				return Config{}, fmt.Errorf("partitions=%q must be between 1 and 10000", v)
			}
			cfg.Partitions = int32(n)
		case "replication":
			n, err := strconv.Atoi(v)
			if err != nil || n < -1 || n == 0 || n > 100 {
				return Config{}, fmt.Errorf("replication=%q must be -1 (broker default) or 1..100", v)
			}
			cfg.ReplicationFactor = int16(n)
		case "session_timeout", "publish_timeout":
			d, err := time.ParseDuration(v)
			if err != nil || d <= 0 {
				return Config{}, fmt.Errorf("%s=%q is not a positive duration", k, v)
			}
			if k == "session_timeout" {
				cfg.SessionTimeout = d
			} else {
				cfg.PublishTimeout = d
			}
		default:
			return Config{}, fmt.Errorf("unknown parameter %q (known: topic_prefix, group, partitions, replication, session_timeout, publish_timeout)", k)
		}
	}
	return cfg, nil
}

// Broker is an imaged.Queue over Kafka. Its Events method gives the event stream.
type Broker struct {
	cfg  Config
	log  *slog.Logger
	prod *kgo.Client
	adm  *kadm.Client
}

var _ imaged.Queue = (*Broker)(nil)

// Open connects, creates the topics that do not exist yet and returns the broker. Unreachable
// brokers fail Open: a bad setting shows at start-up.
func Open(ctx context.Context, cfg Config) (*Broker, error) {
	if len(cfg.Brokers) == 0 {
		return nil, errors.New("kafka: no brokers")
	}
	if cfg.TopicPrefix == "" {
		cfg.TopicPrefix = DefaultTopicPrefix
	}
	if cfg.Group == "" {
		cfg.Group = DefaultGroup
	}
	if cfg.Partitions <= 0 {
		cfg.Partitions = DefaultPartitions
	}
	if cfg.ReplicationFactor == 0 {
		cfg.ReplicationFactor = -1
	}
	if cfg.SessionTimeout <= 0 {
		cfg.SessionTimeout = DefaultSessionTimeout
	}
	if cfg.PublishTimeout <= 0 {
		cfg.PublishTimeout = DefaultPublishTimeout
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	prod, err := kgo.NewClient(kgo.SeedBrokers(cfg.Brokers...), kgo.ClientID("imaged"),
		kgo.ProducerLinger(0), kgo.RequiredAcks(kgo.AllISRAcks()), kgo.DialTimeout(5*time.Second),
		kgo.RetryBackoffFn(retryBackoff))
	if err != nil {
		return nil, fmt.Errorf("kafka client: %w", err)
	}
	b := &Broker{cfg: cfg, log: cfg.Logger.With("queue", "kafka"), prod: prod, adm: kadm.NewClient(prod)}
	pctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if err := prod.Ping(pctx); err != nil {
		prod.Close()
		return nil, fmt.Errorf("connecting to Kafka at %s: %w", strings.Join(cfg.Brokers, ","), err)
	}
	if err := b.ensureTopics(pctx); err != nil {
		prod.Close()
		return nil, err
	}
	return b, nil
}

func retryBackoff(tries int) time.Duration {
	return min(time.Duration(tries)*100*time.Millisecond, 2*time.Second)
}

// Topic names.
func (b *Broker) TasksTopic() string  { return b.cfg.TopicPrefix + ".tasks" }
func (b *Broker) EventsTopic() string { return b.cfg.TopicPrefix + ".events" }
func (b *Broker) DeadTopic() string   { return b.cfg.TopicPrefix + ".dead" }

func (b *Broker) ensureTopics(ctx context.Context) error {
	resp, err := b.adm.CreateTopics(ctx, b.cfg.Partitions, b.cfg.ReplicationFactor, nil,
		b.TasksTopic(), b.EventsTopic(), b.DeadTopic())
	if err != nil {
		return fmt.Errorf("creating Kafka topics: %w", err)
	}
	for _, r := range resp {
		if r.Err != nil && !errors.Is(r.Err, kerr.TopicAlreadyExists) {
			return fmt.Errorf("creating Kafka topic %s: %w", r.Topic, r.Err)
		}
	}
	return nil
}

// taskMessage is the value of a task record.
type taskMessage struct {
	TaskID        string `json:"task_id"`
	Type          string `json:"type"`
	CorrelationID string `json:"correlation_id,omitempty"`
	Attempts      int    `json:"attempts,omitempty"`
	ErrorCode     string `json:"error_code,omitempty"`
	ErrorMessage  string `json:"error_message,omitempty"`
}

func taskRecord(topic string, t *imaged.Task, m taskMessage) *kgo.Record {
	body, _ := json.Marshal(m)
	return &kgo.Record{Topic: topic, Key: []byte(t.ID), Value: body, Headers: []kgo.RecordHeader{
		{Key: headerCorrelationID, Value: []byte(t.CorrelationID)},
		{Key: headerTaskType, Value: []byte(t.Type)},
	}}
}

func header(r *kgo.Record, key string) string {
	for _, h := range r.Headers {
		if h.Key == key {
			return string(h.Value)
		}
	}
	return ""
}

// Publish produces a record for t keyed by its id and waits until the brokers took it. With a
// delay the record carries a not-before time that consumers wait for. While the brokers are
// unreachable it keeps trying, up to PublishTimeout.
func (b *Broker) Publish(ctx context.Context, t *imaged.Task, delay time.Duration) error {
	if t == nil {
		return errors.New("kafka: Publish of a nil task")
	}
	if t.Type == "" {
		return imaged.Errorf(imaged.EInvalid, "task %s has no type", t.ID)
	}
	r := taskRecord(b.TasksTopic(), t, taskMessage{TaskID: t.ID, Type: t.Type, CorrelationID: t.CorrelationID, Attempts: t.Attempts})
	if delay > 0 {
		// Rounded up to the millisecond, so that the task never runs before its delay is over.
		nb := time.Now().Add(delay)
		ms := nb.UnixMilli()
		if nb.UnixNano()%int64(time.Millisecond) != 0 {
			ms++
		}
		r.Headers = append(r.Headers, kgo.RecordHeader{Key: headerNotBefore, Value: []byte(strconv.FormatInt(ms, 10))})
	}
	// The trace context travels in the record headers.
	otel.GetTextMapPropagator().Inject(ctx, (*recordCarrier)(r))
	return b.produce(ctx, r)
}

func (b *Broker) produce(ctx context.Context, r *kgo.Record) error {
	ctx, cancel := context.WithTimeout(ctx, b.cfg.PublishTimeout)
	defer cancel()
	if err := b.prod.ProduceSync(ctx, r).FirstErr(); err != nil {
		return imaged.WrapError(imaged.EUnavailable, err, "publishing to Kafka failed")
	}
	return nil
}

// DeadLetter produces the final record of a task that failed for good to the dead-letter
// topic, with the failure. The worker calls it after it recorded the failure.
func (b *Broker) DeadLetter(ctx context.Context, t *imaged.Task, f *imaged.TaskFailure) error {
	m := taskMessage{TaskID: t.ID, Type: t.Type, CorrelationID: t.CorrelationID, Attempts: t.Attempts}
	if f != nil {
		m.ErrorCode, m.ErrorMessage = f.Code, f.Message
	}
	r := taskRecord(b.DeadTopic(), t, m)
	if f != nil {
		r.Headers = append(r.Headers, kgo.RecordHeader{Key: "error_code", Value: []byte(f.Code)},
			kgo.RecordHeader{Key: "error_message", Value: []byte(f.Message)})
	}
	return b.produce(ctx, r)
}

// DeadLetters reads the task ids in the dead-letter topic, for tests and operators.
func (b *Broker) DeadLetters(ctx context.Context) ([]string, error) {
	ends, err := b.adm.ListEndOffsets(ctx, b.DeadTopic())
	if err != nil {
		return nil, err
	}
	want := map[int32]int64{}
	ends.Each(func(o kadm.ListedOffset) {
		if o.Err == nil && o.Offset > 0 {
			want[o.Partition] = o.Offset
		}
	})
	if len(want) == 0 {
		return nil, nil
	}
	cl, err := kgo.NewClient(kgo.SeedBrokers(b.cfg.Brokers...), kgo.ConsumeTopics(b.DeadTopic()),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	if err != nil {
		return nil, err
	}
	defer cl.Close()
	var ids []string
	for len(want) > 0 {
		fs := cl.PollFetches(ctx)
		if err := ctx.Err(); err != nil {
			return ids, err
		}
		fs.EachRecord(func(r *kgo.Record) {
			var m taskMessage
			_ = json.Unmarshal(r.Value, &m)
			ids = append(ids, m.TaskID)
			if end, ok := want[r.Partition]; ok && r.Offset+1 >= end {
				delete(want, r.Partition)
			}
		})
	}
	return ids, nil
}

// Depth returns the consumer group's lag on the tasks topic (records not yet committed) under
// DepthAll: one topic carries every task type.
func (b *Broker) Depth(ctx context.Context) (map[string]int, error) {
	lag, err := b.Lag(ctx)
	if err != nil {
		return nil, err
	}
	return map[string]int{DepthAll: int(lag)}, nil
}

// Lag returns how many records of the tasks topic the group has not committed yet.
func (b *Broker) Lag(ctx context.Context) (int64, error) {
	topic := b.TasksTopic()
	ends, err := b.adm.ListEndOffsets(ctx, topic)
	if err != nil {
		return 0, imaged.WrapError(imaged.EUnavailable, err, "listing Kafka end offsets")
	}
	starts, err := b.adm.ListStartOffsets(ctx, topic)
	if err != nil {
		return 0, imaged.WrapError(imaged.EUnavailable, err, "listing Kafka start offsets")
	}
	commits, err := b.adm.FetchOffsetsForTopics(ctx, b.cfg.Group, topic)
	if errors.Is(err, kerr.GroupIDNotFound) {
		commits, err = nil, nil // no worker joined yet: nothing is committed
	}
	if err != nil {
		return 0, imaged.WrapError(imaged.EUnavailable, err, "fetching the group's Kafka offsets")
	}
	var lag int64
	var perr error
	ends.Each(func(end kadm.ListedOffset) {
		if end.Err != nil {
			perr = end.Err
			return
		}
		from := int64(0)
		if s, ok := starts.Lookup(topic, end.Partition); ok && s.Err == nil {
			from = s.Offset
		}
		if c, ok := commits.Lookup(topic, end.Partition); ok && c.Err == nil && c.At >= 0 {
			from = max(from, c.At)
		}
		lag += max(end.Offset-from, 0)
	})
	if perr != nil {
		return 0, imaged.WrapError(imaged.EUnavailable, perr, "listing Kafka end offsets")
	}
	return lag, nil
}

// Ping checks a broker answers.
func (b *Broker) Ping(ctx context.Context) error {
	if err := b.prod.Ping(ctx); err != nil {
		return imaged.WrapError(imaged.EUnavailable, err, "Kafka is not reachable")
	}
	return nil
}

// Close flushes and closes the producer; consumers stop through their contexts.
func (b *Broker) Close() error {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_ = b.prod.Flush(ctx)
	b.prod.Close()
	return nil
}

// Consume joins the consumer group and calls h for the task records of its partitions, at
// most opts.Concurrency at a time. A record's offset is committed once h returned nil for it
// and for every record before it in its partition; a handler error is retried with backoff in
// place (the partition's commits wait for it). Records with a not-before time wait for it
// without holding a slot. When partitions are revoked in a rebalance, the finished work is
// committed first; what was not finished is consumed again by the new owner, and the worker
// drops what it cannot claim.
//
// Handlers run on a context that carries ctx's values but is not cancelled with it; when ctx
// is cancelled Consume stops fetching, waits for the handlers in flight, commits and leaves the
// group.
func (b *Broker) Consume(ctx context.Context, opts imaged.ConsumeOptions, h imaged.Handler) error {
	if h == nil {
		return errors.New("kafka: Consume needs a handler")
	}
	if opts.Concurrency <= 0 {
		opts.Concurrency = 1
	}
	c := &consumer{b: b, opts: opts, h: h, log: b.log.With("worker_id", opts.WorkerID),
		handlerCtx: context.WithoutCancel(ctx), ctx: ctx, sem: make(chan struct{}, opts.Concurrency),
		parts: map[tp]*partition{}}
	cl, err := kgo.NewClient(kgo.SeedBrokers(b.cfg.Brokers...), kgo.ClientID("imaged-"+opts.WorkerID),
		kgo.ConsumerGroup(b.cfg.Group), kgo.ConsumeTopics(b.TasksTopic()),
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
	c.run()
	// Shutting down: let handlers finish, commit, then leave the group.
	c.inflight.Wait()
	cctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c.markAll()
	if err := cl.CommitMarkedOffsets(cctx); err != nil {
		c.log.Warn("committing offsets at shutdown failed; those records are consumed again", "error", err.Error())
	}
	cl.Close()
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
	var m taskMessage
	if err := json.Unmarshal(r.Value, &m); err != nil || m.TaskID == "" {
		c.log.Error("unreadable task record skipped", "topic", r.Topic, "partition", r.Partition, "offset", r.Offset)
		c.finish(r, p)
		return true
	}
	if len(c.opts.Types) > 0 && !slices.Contains(c.opts.Types, m.Type) {
		c.finish(r, p) // another pool's type: that pool's group consumes it
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
func (c *consumer) handle(r *kgo.Record, p *partition, m taskMessage) {
	defer func() { <-c.sem }()
	d := &imaged.Delivery{TaskID: m.TaskID, Type: m.Type, CorrelationID: m.CorrelationID, Trace: traceContext(r)}
	wait := time.Second
	for attempt := 1; ; attempt++ {
		d.Redelivered = attempt > 1
		err := c.h(c.handlerCtx, d)
		if err == nil {
			c.finish(r, p)
			return
		}
		c.log.Error("task handler could not record an outcome; trying again", "task_id", m.TaskID,
			"error", err.Error(), "retry_in", wait.String())
		select {
		case <-time.After(wait):
		case <-p.ctx.Done():
			p.wg.Done() // left uncommitted: consumed again by the partition's next owner
			return
		}
		wait = min(wait*2, 30*time.Second)
	}
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

// recordCarrier lets the OpenTelemetry propagator write record headers.
type recordCarrier kgo.Record

func (c *recordCarrier) Get(key string) string { return header((*kgo.Record)(c), key) }

func (c *recordCarrier) Set(key, value string) {
	for i, h := range c.Headers {
		if h.Key == key {
			c.Headers[i].Value = []byte(value)
			return
		}
	}
	c.Headers = append(c.Headers, kgo.RecordHeader{Key: key, Value: []byte(value)})
}

func (c *recordCarrier) Keys() []string {
	keys := make([]string, 0, len(c.Headers))
	for _, h := range c.Headers {
		keys = append(keys, h.Key)
	}
	return keys
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
