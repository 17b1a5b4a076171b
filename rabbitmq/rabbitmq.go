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
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"
	"go.opentelemetry.io/otel"

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

// retryTiers are the delays of the retry queues. A delayed task waits in the queue of the
// smallest tier that is not shorter than its delay, so it never comes back early; tiers keep
// the number of queues small while messages of one queue all expire in order.
var retryTiers = []time.Duration{
	100 * time.Millisecond, 250 * time.Millisecond, 500 * time.Millisecond,
	time.Second, 2 * time.Second, 5 * time.Second, 10 * time.Second, 30 * time.Second,
	time.Minute, 2 * time.Minute, 5 * time.Minute, 10 * time.Minute, 30 * time.Minute, time.Hour,
}

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
	done      chan struct{}
	wg        sync.WaitGroup
}

var _ imaged.Queue = (*Broker)(nil)

// Open connects, declares the topology and keeps the connection up until Close. An
// unreachable broker fails Open: a bad setting shows at start-up.
func Open(ctx context.Context, cfg Config) (*Broker, error) {
	if cfg.URL == "" {
		return nil, errors.New("rabbitmq: no URL")
	}
	if cfg.Exchange == "" {
		cfg.Exchange = DefaultExchange
	}
	if len(cfg.Types) == 0 {
		cfg.Types = imaged.TaskTypes
	}
	if cfg.PublishTimeout <= 0 {
		cfg.PublishTimeout = DefaultPublishTimeout
	}
	if cfg.DialTimeout <= 0 {
		cfg.DialTimeout = DefaultDialTimeout
	}
	if cfg.Heartbeat <= 0 {
		cfg.Heartbeat = DefaultHeartbeat
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	b := &Broker{cfg: cfg, log: cfg.Logger.With("queue", "rabbitmq"), ready: make(chan struct{}),
		done: make(chan struct{})}
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
func (b *Broker) deadQueue() string           { return b.cfg.Prefix + "dead" }
func routingKey(typ string) string            { return "task." + typ }
func deadKey(typ string) string               { return "dead." + typ }
func (b *Broker) retryQueue(typ string, tier time.Duration) string {
	return b.cfg.Prefix + "retry." + typ + "." + tier.String()
}

// TaskQueue returns the name of the queue of task type typ.
func (b *Broker) TaskQueue(typ string) string { return b.taskQueue(typ) }

// DeadQueue returns the name of the dead-letter queue.
func (b *Broker) DeadQueue() string { return b.deadQueue() }

// dial opens a connection, declares the topology on it and returns it with a publishing
// channel in confirm mode.
func (b *Broker) dial() (*amqp.Connection, *amqp.Channel, error) {
	props := amqp.NewConnectionProperties()
	props.SetClientConnectionName("imaged")
	conn, err := amqp.DialConfig(b.cfg.URL, amqp.Config{
		Dial: amqp.DefaultDial(b.cfg.DialTimeout), Heartbeat: b.cfg.Heartbeat, Properties: props,
	})
	if err != nil {
		return nil, nil, fmt.Errorf("connecting to RabbitMQ at %s: %w", redact(b.cfg.URL), err)
	}
	ch, err := conn.Channel()
	if err == nil {
		err = b.declare(ch)
	}
	if err == nil {
		err = ch.Confirm(false)
	}
	if err != nil {
		conn.Close()
		return nil, nil, fmt.Errorf("declaring the RabbitMQ topology: %w", err)
	}
	return conn, ch, nil
}

// declare makes the exchange, the task queues with their bindings and the dead-letter queue.
// Every declaration is idempotent, so it runs again after each reconnect.
func (b *Broker) declare(ch *amqp.Channel) error {
	if err := ch.ExchangeDeclare(b.cfg.Exchange, amqp.ExchangeTopic, true, false, false, false, nil); err != nil {
		return fmt.Errorf("exchange %s: %w", b.cfg.Exchange, err)
	}
	for _, typ := range b.cfg.Types {
		q := b.taskQueue(typ)
		if _, err := ch.QueueDeclare(q, true, false, false, false, nil); err != nil {
			return fmt.Errorf("queue %s: %w", q, err)
		}
		if err := ch.QueueBind(q, routingKey(typ), b.cfg.Exchange, false, nil); err != nil {
			return fmt.Errorf("binding %s: %w", q, err)
		}
	}
	if _, err := ch.QueueDeclare(b.deadQueue(), true, false, false, false, nil); err != nil {
		return fmt.Errorf("queue %s: %w", b.deadQueue(), err)
	}
	return ch.QueueBind(b.deadQueue(), "dead.#", b.cfg.Exchange, false, nil)
}

func (b *Broker) setUp(conn *amqp.Connection, pub *amqp.Channel) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.conn, b.pub = conn, pub
	b.gen++
	b.up = true
	b.retries = map[string]bool{}
	close(b.ready)
}

// setDown marks connection gen as lost; a no-op when a newer one is already up.
func (b *Broker) setDown(gen uint64) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if gen != b.gen || !b.up {
		return
	}
	b.up = false
	b.ready = make(chan struct{})
}

// broken closes connection gen after an error on it, so that maintain reconnects.
func (b *Broker) broken(gen uint64) {
	b.mu.Lock()
	conn := b.conn
	cur := b.gen
	b.mu.Unlock()
	if gen == cur && conn != nil {
		_ = conn.Close()
	}
}

// maintain waits for the connection to drop and connects again with backoff, until Close.
func (b *Broker) maintain() {
	defer b.wg.Done()
	for {
		b.mu.Lock()
		conn, pub, gen := b.conn, b.pub, b.gen
		b.mu.Unlock()
		connClosed := conn.NotifyClose(make(chan *amqp.Error, 1))
		pubClosed := pub.NotifyClose(make(chan *amqp.Error, 1))
		select {
		case <-b.done:
			return
		case err := <-connClosed:
			b.log.Warn("RabbitMQ connection lost; reconnecting", "error", errString(err))
		case err := <-pubClosed:
			b.log.Warn("RabbitMQ publishing channel closed; reconnecting", "error", errString(err))
			_ = conn.Close()
		}
		b.setDown(gen)
		wait := 100 * time.Millisecond
		for {
			select {
			case <-b.done:
				return
			default:
			}
			conn, pub, err := b.dial()
			if err == nil {
				b.mu.Lock()
				closed := b.closed
				b.mu.Unlock()
				if closed {
					conn.Close()
					return
				}
				b.setUp(conn, pub)
				b.log.Info("RabbitMQ connection restored")
				break
			}
			b.log.Warn("RabbitMQ reconnect failed", "error", err.Error(), "retry_in", wait.String())
			select {
			case <-b.done:
				return
			case <-time.After(wait):
			}
			wait = min(wait*2, 5*time.Second)
		}
	}
}

func errString(err *amqp.Error) string {
	if err == nil {
		return "closed"
	}
	return err.Error()
}

var errClosed = imaged.Errorf(imaged.EUnavailable, "the queue is closed")

// current waits until a connection is up and returns it with its publishing channel.
func (b *Broker) current(ctx context.Context) (*amqp.Connection, *amqp.Channel, uint64, error) {
	for {
		b.mu.Lock()
		if b.closed {
			b.mu.Unlock()
			return nil, nil, 0, errClosed
		}
		if b.up {
			conn, pub, gen := b.conn, b.pub, b.gen
			b.mu.Unlock()
			return conn, pub, gen, nil
		}
		ready := b.ready
		b.mu.Unlock()
		select {
		case <-ready:
		case <-b.done:
			return nil, nil, 0, errClosed
		case <-ctx.Done():
			return nil, nil, 0, imaged.WrapError(imaged.EUnavailable, ctx.Err(), "RabbitMQ is not reachable")
		}
	}
}

// taskMessage is the body of a task message.
type taskMessage struct {
	TaskID        string `json:"task_id"`
	Type          string `json:"type"`
	CorrelationID string `json:"correlation_id,omitempty"`
	Attempts      int    `json:"attempts,omitempty"`
	ErrorCode     string `json:"error_code,omitempty"`
	ErrorMessage  string `json:"error_message,omitempty"`
}

func tierFor(delay time.Duration) time.Duration {
	for _, t := range retryTiers {
		if t >= delay {
			return t
		}
	}
	return retryTiers[len(retryTiers)-1]
}

// Publish sends a persistent message for t and waits for the broker's confirm: to the task
// queue of its type, or, with a delay, to the retry queue of the smallest tier not shorter than
// delay, from which it dead-letters back to the exchange when its time is up. While the broker
// is unreachable Publish waits for the reconnect, up to PublishTimeout.
func (b *Broker) Publish(ctx context.Context, t *imaged.Task, delay time.Duration) error {
	if t == nil {
		return errors.New("rabbitmq: Publish of a nil task")
	}
	if t.Type == "" {
		return imaged.Errorf(imaged.EInvalid, "task %s has no type", t.ID)
	}
	body, _ := json.Marshal(taskMessage{TaskID: t.ID, Type: t.Type, CorrelationID: t.CorrelationID, Attempts: t.Attempts})
	msg := amqp.Publishing{
		ContentType: "application/json", DeliveryMode: amqp.Persistent, MessageId: t.ID,
		CorrelationId: t.CorrelationID, Timestamp: time.Now(), Type: "task",
		Headers: amqp.Table{"correlation_id": t.CorrelationID, "task_type": t.Type}, Body: body,
	}
	// The trace context travels in the headers (and through the retry queues with them).
	otel.GetTextMapPropagator().Inject(ctx, tableCarrier(msg.Headers))
	exchange, key := b.cfg.Exchange, routingKey(t.Type)
	var tier time.Duration
	if delay > 0 {
		tier = tierFor(delay)
		exchange, key = "", b.retryQueue(t.Type, tier)
	}
	return b.publish(ctx, exchange, key, msg, func(pub *amqp.Channel) error {
		if tier == 0 {
			return nil
		}
		return b.declareRetry(pub, t.Type, tier)
	})
}

// publish sends msg with confirms, retrying over reconnects until PublishTimeout. prepare runs
// on the publishing channel before each try (to declare a retry queue).
func (b *Broker) publish(ctx context.Context, exchange, key string, msg amqp.Publishing, prepare func(*amqp.Channel) error) error {
	ctx, cancel := context.WithTimeout(ctx, b.cfg.PublishTimeout)
	defer cancel()
	var last error
	for {
		_, pub, gen, err := b.current(ctx)
		if err != nil {
			if last != nil {
				return imaged.WrapError(imaged.EUnavailable, last, "publishing to RabbitMQ failed")
			}
			return err
		}
		if prepare != nil {
			if err := prepare(pub); err != nil {
				last = err
				b.broken(gen)
				continue
			}
		}
		dc, err := pub.PublishWithDeferredConfirmWithContext(ctx, exchange, key, false, false, msg)
		if err != nil {
			last = err
			if ctx.Err() == nil {
				b.broken(gen)
			}
			continue
		}
		ok, err := dc.WaitContext(ctx)
		if err != nil {
			return imaged.WrapError(imaged.EUnavailable, err, "RabbitMQ did not confirm the message in time")
		}
		if ok {
			return nil
		}
		// Nacked, or the channel closed before the confirm: send it again on the next
		// connection. A duplicate is harmless; the worker drops what it cannot claim.
		last = errors.New("the broker did not confirm the message")
		select {
		case <-ctx.Done():
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// declareRetry declares the retry queue of typ and tier once per connection: messages wait
// there for tier and then dead-letter to the exchange under the task type's routing key.
func (b *Broker) declareRetry(pub *amqp.Channel, typ string, tier time.Duration) error {
	name := b.retryQueue(typ, tier)
	b.declareMu.Lock()
	defer b.declareMu.Unlock()
	b.mu.Lock()
	done := b.retries[name]
	b.mu.Unlock()
	if done {
		return nil
	}
	_, err := pub.QueueDeclare(name, true, false, false, false, amqp.Table{
		"x-message-ttl":             tier.Milliseconds(),
		"x-dead-letter-exchange":    b.cfg.Exchange,
		"x-dead-letter-routing-key": routingKey(typ),
	})
	if err != nil {
		return fmt.Errorf("declaring retry queue %s: %w", name, err)
	}
	b.mu.Lock()
	b.retries[name] = true
	b.mu.Unlock()
	return nil
}

// DeadLetter puts the final message of a task that failed for good into the dead-letter queue,
// with the failure in its headers. The worker calls it after it recorded the failure.
func (b *Broker) DeadLetter(ctx context.Context, t *imaged.Task, f *imaged.TaskFailure) error {
	m := taskMessage{TaskID: t.ID, Type: t.Type, CorrelationID: t.CorrelationID, Attempts: t.Attempts}
	h := amqp.Table{"correlation_id": t.CorrelationID, "task_type": t.Type, "attempts": int64(t.Attempts)}
	if f != nil {
		m.ErrorCode, m.ErrorMessage = f.Code, f.Message
		h["error_code"], h["error_message"] = f.Code, f.Message
	}
	body, _ := json.Marshal(m)
	return b.publish(ctx, b.cfg.Exchange, deadKey(t.Type), amqp.Publishing{
		ContentType: "application/json", DeliveryMode: amqp.Persistent, MessageId: t.ID,
		CorrelationId: t.CorrelationID, Timestamp: time.Now(), Type: "task.dead", Headers: h, Body: body,
	}, nil)
}

// DeadLetters returns the task ids waiting in the dead-letter queue without removing them
// (they are read and put back); for tests and operators.
func (b *Broker) DeadLetters(ctx context.Context) ([]string, error) {
	conn, _, _, err := b.current(ctx)
	if err != nil {
		return nil, err
	}
	ch, err := conn.Channel()
	if err != nil {
		return nil, err
	}
	defer ch.Close()
	var ids []string
	var last uint64
	for {
		d, ok, err := ch.Get(b.deadQueue(), false)
		if err != nil {
			return nil, err
		}
		if !ok {
			break
		}
		var m taskMessage
		_ = json.Unmarshal(d.Body, &m)
		ids = append(ids, m.TaskID)
		last = d.DeliveryTag
	}
	if last > 0 {
		if err := ch.Nack(last, true, true); err != nil {
			return nil, err
		}
	}
	return ids, nil
}

// Consume calls h for the messages of opts.Types (every declared type when empty), with at most
// opts.Concurrency unacknowledged at once (the prefetch). A message is acknowledged after h
// returned nil, and requeued after an error. After a connection loss it consumes again on the
// new connection; messages in flight on the old one are redelivered by the broker, and the
// worker drops those whose outcome is already recorded.
//
// Handlers run on a context that carries ctx's values but is not cancelled with it; when ctx
// is cancelled Consume stops taking messages, waits for the handlers in flight, acknowledges
// what they finished and returns nil.
func (b *Broker) Consume(ctx context.Context, opts imaged.ConsumeOptions, h imaged.Handler) error {
	if h == nil {
		return errors.New("rabbitmq: Consume needs a handler")
	}
	if opts.Concurrency <= 0 {
		opts.Concurrency = 1
	}
	types := opts.Types
	if len(types) == 0 {
		types = b.cfg.Types
	}
	log := b.log.With("worker_id", opts.WorkerID)
	handlerCtx := context.WithoutCancel(ctx)
	var inflight sync.WaitGroup
	defer inflight.Wait()
	sem := make(chan struct{}, opts.Concurrency)
	wait := 100 * time.Millisecond
	for ctx.Err() == nil {
		conn, _, gen, err := b.current(ctx)
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return err
		}
		err = b.consumeOn(ctx, conn, opts, types, sem, &inflight, handlerCtx, h, log)
		if ctx.Err() != nil {
			return nil
		}
		log.Warn("consuming stopped; starting again", "error", err)
		b.broken(gen)
		select {
		case <-ctx.Done():
		case <-time.After(wait):
		}
		wait = min(wait*2, 5*time.Second)
	}
	return nil
}

// consumeOn consumes on one channel of conn until ctx is done (nil) or the channel closes.
func (b *Broker) consumeOn(ctx context.Context, conn *amqp.Connection, opts imaged.ConsumeOptions, types []string,
	sem chan struct{}, inflight *sync.WaitGroup, handlerCtx context.Context, h imaged.Handler, log *slog.Logger) error {
	ch, err := conn.Channel()
	if err != nil {
		return err
	}
	closed := ch.NotifyClose(make(chan *amqp.Error, 1))
	// global: the limit is shared by the consumers of every type on this channel.
	if err := ch.Qos(opts.Concurrency, 0, true); err != nil {
		return err
	}
	stop := make(chan struct{})
	var readers, handlers sync.WaitGroup
	var tags []string
	for _, typ := range types {
		tag := fmt.Sprintf("%s.%s.%s", opts.WorkerID, typ, imaged.NewID()[:8])
		dels, err := ch.Consume(b.taskQueue(typ), tag, false, false, false, false, nil)
		if err != nil {
			close(stop)
			readers.Wait()
			_ = ch.Close()
			return fmt.Errorf("consuming %s: %w", b.taskQueue(typ), err)
		}
		tags = append(tags, tag)
		readers.Add(1)
		go func() {
			defer readers.Done()
			for d := range dels {
				select {
				case sem <- struct{}{}:
				case <-stop:
					return // left unacknowledged: requeued when the channel closes
				}
				handlers.Add(1)
				inflight.Add(1)
				go func() {
					defer inflight.Done()
					defer handlers.Done()
					defer func() { <-sem }()
					b.handle(handlerCtx, ctx, d, h, log)
				}()
			}
		}()
	}
	select {
	case <-ctx.Done():
		for _, tag := range tags {
			_ = ch.Cancel(tag, false)
		}
		close(stop)
		readers.Wait()
		handlers.Wait() // their acks go out on this channel before it closes
		_ = ch.Close()
		return nil
	case err := <-closed:
		close(stop)
		if err == nil {
			return errors.New("channel closed")
		}
		return err
	}
}

func (b *Broker) handle(ctx, consumeCtx context.Context, d amqp.Delivery, h imaged.Handler, log *slog.Logger) {
	var m taskMessage
	if err := json.Unmarshal(d.Body, &m); err != nil || m.TaskID == "" {
		log.Error("unreadable task message moved to the dead-letter queue", "message_id", d.MessageId)
		err := b.publish(ctx, b.cfg.Exchange, deadKey("unreadable"), amqp.Publishing{
			ContentType: d.ContentType, DeliveryMode: amqp.Persistent, MessageId: d.MessageId,
			Headers: amqp.Table{"error_code": imaged.EInvalid, "error_message": "unreadable task message"}, Body: d.Body,
		}, nil)
		if err != nil {
			_ = d.Nack(false, true)
			return
		}
		_ = d.Ack(false)
		return
	}
	if m.Type == "" {
		m.Type = strings.TrimPrefix(d.RoutingKey, "task.")
	}
	del := &imaged.Delivery{TaskID: m.TaskID, Type: m.Type, CorrelationID: m.CorrelationID, Redelivered: d.Redelivered,
		Trace: traceContext(d.Headers)}
	err := h(ctx, del)
	if err != nil {
		log.Error("task handler could not record an outcome; the message goes back to the queue",
			"task_id", m.TaskID, "error", err.Error())
		// Not at once: whatever failed (the database, most likely) gets a moment.
		select {
		case <-consumeCtx.Done():
		case <-time.After(time.Second):
		}
		if nerr := d.Nack(false, true); nerr != nil {
			log.Warn("requeueing a message failed; the broker redelivers it after the reconnect",
				"task_id", m.TaskID, "error", nerr.Error())
		}
		return
	}
	if aerr := d.Ack(false); aerr != nil {
		log.Warn("acknowledging a message failed; the broker redelivers it and the worker drops it",
			"task_id", m.TaskID, "error", aerr.Error())
	}
}

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
	close(b.done)
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

// tableCarrier lets the OpenTelemetry propagator write message headers.
type tableCarrier amqp.Table

func (c tableCarrier) Get(key string) string {
	v, _ := c[key].(string)
	return v
}

func (c tableCarrier) Set(key, value string) { c[key] = value }

func (c tableCarrier) Keys() []string {
	keys := make([]string, 0, len(c))
	for k := range c {
		keys = append(keys, k)
	}
	return keys
}

// traceContext returns the W3C trace-context headers of a message (nil when it has none).
func traceContext(h amqp.Table) map[string]string {
	var out map[string]string
	for _, k := range otel.GetTextMapPropagator().Fields() {
		if v, ok := h[k].(string); ok && v != "" {
			if out == nil {
				out = map[string]string{}
			}
			out[k] = v
		}
	}
	return out
}
