// Package kafka is the Kafka queue ("kafka://"): tasks go to one topic per task type,
// <prefix>.tasks.<type>, as records keyed by task id; workers share them through a consumer
// group, each subscribing to the topics of the task types it runs, and a record's offset is
// committed only after the handler recorded the task's outcome (at-least-once). Delayed retries
// are records carrying a not-before header that the consumer honours. Tasks that failed for
// good leave their final record in <prefix>.dead; events go to <prefix>.events.
//
// The task row in the TaskStore is the truth; a record only carries a task id, and the worker
// drops a delivery whose task it cannot claim (DESIGN §7).
package kafka

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"

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
	// Group is the consumer group of the workers. Workers limited to some task types join it
	// too: each subscribes to its types' topics, and the group shares each topic's partitions
	// among the members subscribed to it.
	Group string
	// Types are the task types whose topics are created and whose lag Depth reports;
	// imaged.TaskTypes when empty.
	Types []string
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

	mu        sync.Mutex
	consumers map[*kgo.Client]func() // the running consumers' clients, each with its closing function
}

var _ imaged.Queue = (*Broker)(nil)

// Open connects, creates the topics that do not exist yet and returns the broker. Unreachable
// brokers fail Open: a bad setting shows at start-up.
func Open(ctx context.Context, cfg Config) (*Broker, error) {
	if len(cfg.Brokers) == 0 {
		return nil, errors.New("kafka: no brokers")
	}
	if cfg.ReplicationFactor == 0 {
		cfg.ReplicationFactor = -1 // the broker's default
	}
	if len(cfg.Types) == 0 {
		cfg.Types = imaged.TaskTypes
	}
	cfg = imaged.WithDefaults(cfg, Config{
		TopicPrefix:    DefaultTopicPrefix,
		Group:          DefaultGroup,
		Partitions:     DefaultPartitions,
		SessionTimeout: DefaultSessionTimeout,
		PublishTimeout: DefaultPublishTimeout,
		Logger:         slog.Default(),
	})
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

// TasksTopic is the topic of the tasks of type typ.
func (b *Broker) TasksTopic(typ string) string { return b.cfg.TopicPrefix + ".tasks." + typ }

// tasksTopics returns the topics of types (every configured type when empty).
func (b *Broker) tasksTopics(types []string) []string {
	if len(types) == 0 {
		types = b.cfg.Types
	}
	out := make([]string, len(types))
	for i, typ := range types {
		out[i] = b.TasksTopic(typ)
	}
	return out
}

// EventsTopic is the topic of events.
func (b *Broker) EventsTopic() string { return b.cfg.TopicPrefix + ".events" }

// DeadTopic is the topic of the final records of tasks that failed for good.
func (b *Broker) DeadTopic() string { return b.cfg.TopicPrefix + ".dead" }

func (b *Broker) ensureTopics(ctx context.Context) error {
	resp, err := b.adm.CreateTopics(ctx, b.cfg.Partitions, b.cfg.ReplicationFactor, nil,
		append(b.tasksTopics(nil), b.EventsTopic(), b.DeadTopic())...)
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

// Depth returns, by task type, the consumer group's lag on that type's topic: records not
// yet committed.
func (b *Broker) Depth(ctx context.Context) (map[string]int, error) {
	topics := b.tasksTopics(nil)
	ends, err := b.adm.ListEndOffsets(ctx, topics...)
	if err != nil {
		return nil, imaged.WrapError(imaged.EUnavailable, err, "listing Kafka end offsets")
	}
	starts, err := b.adm.ListStartOffsets(ctx, topics...)
	if err != nil {
		return nil, imaged.WrapError(imaged.EUnavailable, err, "listing Kafka start offsets")
	}
	commits, err := b.adm.FetchOffsetsForTopics(ctx, b.cfg.Group, topics...)
	if errors.Is(err, kerr.GroupIDNotFound) {
		commits, err = nil, nil // no worker joined yet: nothing is committed
	}
	if err != nil {
		return nil, imaged.WrapError(imaged.EUnavailable, err, "fetching the group's Kafka offsets")
	}
	out := make(map[string]int, len(b.cfg.Types))
	for _, typ := range b.cfg.Types {
		out[typ] = 0
	}
	var perr error
	ends.Each(func(end kadm.ListedOffset) {
		if end.Err != nil {
			perr = end.Err
			return
		}
		from := int64(0)
		if s, ok := starts.Lookup(end.Topic, end.Partition); ok && s.Err == nil {
			from = s.Offset
		}
		if c, ok := commits.Lookup(end.Topic, end.Partition); ok && c.Err == nil && c.At >= 0 {
			from = max(from, c.At)
		}
		out[strings.TrimPrefix(end.Topic, b.TasksTopic(""))] += int(max(end.Offset-from, 0))
	})
	if perr != nil {
		return nil, imaged.WrapError(imaged.EUnavailable, perr, "listing Kafka end offsets")
	}
	return out, nil
}

// Lag returns how many records of the tasks topics the group has not committed yet.
func (b *Broker) Lag(ctx context.Context) (int64, error) {
	d, err := b.Depth(ctx)
	var lag int64
	for _, n := range d {
		lag += int64(n)
	}
	return lag, err
}

// Ping checks a broker answers.
func (b *Broker) Ping(ctx context.Context) error {
	if err := b.prod.Ping(ctx); err != nil {
		return imaged.WrapError(imaged.EUnavailable, err, "Kafka is not reachable")
	}
	return nil
}

// Close flushes and closes the producer. Consumers stop through their contexts; the client of
// one still running is closed too, as when its process dies: it leaves the group, and what it
// had not finished goes uncommitted to the partitions' next owners.
func (b *Broker) Close() error {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_ = b.prod.Flush(ctx)
	b.prod.Close()
	b.mu.Lock()
	closers := make([]func(), 0, len(b.consumers))
	for _, closeClient := range b.consumers {
		closers = append(closers, closeClient)
	}
	b.mu.Unlock()
	for _, closeClient := range closers {
		closeClient()
	}
	return nil
}

// running registers the client of a running consumer and returns the functions that close it
// (once, whoever calls first) and that forget it.
func (b *Broker) running(cl *kgo.Client) (closeClient, forget func()) {
	closeClient = sync.OnceFunc(cl.Close)
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.consumers == nil {
		b.consumers = map[*kgo.Client]func(){}
	}
	b.consumers[cl] = closeClient
	return closeClient, func() {
		b.mu.Lock()
		defer b.mu.Unlock()
		delete(b.consumers, cl)
	}
}
