// Package rabbitmq is the RabbitMQ queue ("amqp://"): a durable topic exchange, one durable
// queue per task type bound by routing key task.<type>, persistent messages published with
// confirms, manual acknowledgement after the handler recorded the outcome, delayed retries
// through TTL queues that dead-letter back to the exchange, and a dead-letter queue holding the
// final message of every task that failed. The connection comes back by itself after a broker
// restart or a network cut, and the topology is declared again each time.
//
// The task row in the TaskStore is the truth; a message only carries a task id. Delivery is
// at-least-once, and the worker drops a delivery whose task it cannot claim (DESIGN §7).
package rabbitmq

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"strconv"
	"sync"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/imaged/imaged"
)

// Defaults for Config fields left zero.
const (
	DefaultExchange       = "image_processing"
	DefaultPrefix         = "imaged."
	DefaultPublishTimeout = 30 * time.Second
	DefaultDialTimeout    = 5 * time.Second
	DefaultHeartbeat      = 5 * time.Second
)

// Config tunes a Broker.
type Config struct {
	// URL is the AMQP URL without imaged's own parameters: amqp://user:pass@host:5672/vhost.
	URL string
	// Exchange is the durable topic exchange tasks and events go through.
	Exchange string
	// Prefix starts every queue name: <prefix>tasks.<type>, <prefix>retry.<type>.<delay>,
	// <prefix>dead.
	Prefix string
	// Types are the task types whose queues are declared; imaged.TaskTypes when empty.
	Types []string
	// PublishTimeout bounds how long Publish waits for a connection and the broker's confirm.
	PublishTimeout time.Duration
	// DialTimeout bounds one connection attempt.
	DialTimeout time.Duration
	// Heartbeat is the AMQP heartbeat interval, which also bounds how long a silently dead
	// connection goes unnoticed.
	Heartbeat time.Duration
	// Logger; slog.Default() when nil.
	Logger *slog.Logger
}

// ParseURL reads an IMAGED_QUEUE_URL of the form
// amqp://user:pass@host:5672/vhost?exchange=image_processing&prefix=imaged. — exchange and
// prefix are imaged's own parameters; everything else goes to the AMQP client as it is.
func ParseURL(raw string) (Config, error) {
	u, err := url.Parse(raw)
	if err != nil {
		return Config{}, fmt.Errorf("%q is not a URL", redact(raw))
	}
	if u.Scheme != "amqp" && u.Scheme != "amqps" {
		return Config{}, fmt.Errorf("unsupported scheme %q (want amqp:// or amqps://)", u.Scheme)
	}
	if u.Host == "" {
		return Config{}, errors.New("the AMQP URL names no host")
	}
	q := u.Query()
	cfg := Config{Exchange: DefaultExchange, Prefix: DefaultPrefix}
	if q.Has("exchange") {
		cfg.Exchange = q.Get("exchange")
		if cfg.Exchange == "" {
			return Config{}, errors.New("exchange= must not be empty")
		}
		q.Del("exchange")
	}
	if q.Has("prefix") {
		cfg.Prefix = q.Get("prefix")
		q.Del("prefix")
	}
	if v := q.Get("publish_timeout"); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil || d <= 0 {
			return Config{}, fmt.Errorf("publish_timeout=%q is not a positive duration", v)
		}
		cfg.PublishTimeout = d
		q.Del("publish_timeout")
	}
	u.RawQuery = q.Encode()
	cfg.URL = u.String()
	if _, err := amqp.ParseURI(cfg.URL); err != nil {
		return Config{}, fmt.Errorf("bad AMQP URL: %v", err)
	}
	return cfg, nil
}

// redact hides a password in a URL for error messages.
func redact(raw string) string {
	u, err := url.Parse(raw)
	if err != nil || u.User == nil {
		return raw
	}
	u.User = url.User(u.User.Username())
	return u.String()
}

// Broker is an imaged.Queue over RabbitMQ. Its Events method gives the event stream over the
// same connection.
type Broker struct {
	cfg Config
	log *slog.Logger

	mu      sync.Mutex
	conn    *amqp.Connection
	pub     *amqp.Channel // confirm mode; safe for concurrent publishing
	gen     uint64        // counts connections, so a stale failure does not close a new one
	up      bool
	ready   chan struct{} // closed while up
	retries map[string]bool
	closed  bool

	declareMu sync.Mutex
	ctx       context.Context // done at Close
	cancel    context.CancelFunc
	wg        sync.WaitGroup
}

var _ imaged.Queue = (*Broker)(nil)

// Open connects, declares the topology and keeps the connection up until Close. An
// unreachable broker fails Open: a bad setting shows at start-up.
func Open(ctx context.Context, cfg Config) (*Broker, error) {
	if cfg.URL == "" {
		return nil, errors.New("rabbitmq: no URL")
	}
	if len(cfg.Types) == 0 {
		cfg.Types = imaged.TaskTypes
	}
	cfg = imaged.WithDefaults(cfg, Config{
		Exchange:       DefaultExchange,
		PublishTimeout: DefaultPublishTimeout,
		DialTimeout:    DefaultDialTimeout,
		Heartbeat:      DefaultHeartbeat,
		Logger:         slog.Default(),
	})
	b := &Broker{cfg: cfg, log: cfg.Logger.With("queue", "rabbitmq"), ready: make(chan struct{})}
	b.ctx, b.cancel = context.WithCancel(context.Background())
	type result struct {
		conn *amqp.Connection
		pub  *amqp.Channel
		err  error
	}
	rc := make(chan result, 1)
	go func() {
		conn, pub, err := b.dial()
		rc <- result{conn, pub, err}
	}()
	select {
	case r := <-rc:
		if r.err != nil {
			return nil, r.err
		}
		b.setUp(r.conn, r.pub)
	case <-ctx.Done():
		go func() {
			if r := <-rc; r.err == nil {
				r.conn.Close()
			}
		}()
		return nil, ctx.Err()
	}
	b.wg.Add(1)
	go b.maintain()
	return b, nil
}

// Queue names and routing keys.
func (b *Broker) taskQueue(typ string) string { return b.cfg.Prefix + "tasks." + typ }

func (b *Broker) deadQueue() string { return b.cfg.Prefix + "dead" }

func routingKey(typ string) string { return "task." + typ }

func deadKey(typ string) string { return "dead." + typ }

func (b *Broker) retryQueue(typ string, tier time.Duration) string {
	return b.cfg.Prefix + "retry." + typ + "." + tier.String()
}

// TaskQueue returns the name of the queue of task type typ.
func (b *Broker) TaskQueue(typ string) string { return b.taskQueue(typ) }

// DeadQueue returns the name of the dead-letter queue.
func (b *Broker) DeadQueue() string { return b.deadQueue() }

// Depth returns the number of messages ready in each task type's queue.
func (b *Broker) Depth(ctx context.Context) (map[string]int, error) {
	conn, _, _, err := b.current(ctx)
	if err != nil {
		return nil, err
	}
	ch, err := conn.Channel()
	if err != nil {
		return nil, imaged.WrapError(imaged.EUnavailable, err, "RabbitMQ channel")
	}
	defer ch.Close()
	out := make(map[string]int, len(b.cfg.Types))
	for _, typ := range b.cfg.Types {
		q, err := ch.QueueDeclarePassive(b.taskQueue(typ), true, false, false, false, nil)
		if err != nil {
			return nil, imaged.WrapError(imaged.EUnavailable, err, "RabbitMQ queue %s", b.taskQueue(typ))
		}
		out[typ] = q.Messages
	}
	return out, nil
}

// Ping reports whether the connection is up.
func (b *Broker) Ping(ctx context.Context) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		return errClosed
	}
	if !b.up || b.conn.IsClosed() {
		return imaged.Errorf(imaged.EUnavailable, "RabbitMQ is not connected (reconnecting)")
	}
	return nil
}

// Close stops reconnecting and closes the connection; consumers stop through their contexts.
func (b *Broker) Close() error {
	b.mu.Lock()
	if b.closed {
		b.mu.Unlock()
		return nil
	}
	b.closed = true
	conn := b.conn
	b.mu.Unlock()
	b.cancel()
	var err error
	if conn != nil {
		err = conn.Close()
	}
	b.wg.Wait()
	if errors.Is(err, amqp.ErrClosed) {
		err = nil
	}
	return err
}

// String describes the broker for logs.
func (b *Broker) String() string {
	return "rabbitmq " + redact(b.cfg.URL) + " exchange=" + b.cfg.Exchange + " prefix=" + strconv.Quote(b.cfg.Prefix)
}
