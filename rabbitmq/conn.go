package rabbitmq

import (
	"context"
	"fmt"
	"time"

	"github.com/cenkalti/backoff/v5"
	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/imaged/imaged"
)

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
		case <-b.ctx.Done():
			return
		case err := <-connClosed:
			b.log.Warn("RabbitMQ connection lost; reconnecting", "error", errString(err))
		case err := <-pubClosed:
			b.log.Warn("RabbitMQ publishing channel closed; reconnecting", "error", errString(err))
			_ = conn.Close()
		}
		b.setDown(gen)
		err := again(b.ctx, func() error {
			if b.ctx.Err() != nil {
				return backoff.Permanent(errClosed)
			}
			conn, pub, err := b.dial()
			if err != nil {
				return err
			}
			b.mu.Lock()
			closed := b.closed
			b.mu.Unlock()
			if closed {
				conn.Close()
				return backoff.Permanent(errClosed)
			}
			b.setUp(conn, pub)
			return nil
		}, func(err error, wait time.Duration) {
			b.log.Warn("RabbitMQ reconnect failed", "error", err.Error(), "retry_in", wait.String())
		})
		if err != nil {
			return // closed
		}
		b.log.Info("RabbitMQ connection restored")
	}
}

// again runs try until it succeeds, fails for good (backoff.Permanent) or ctx is done, waiting
// 100 ms after the first failure and twice as long after each next one, up to 5 s: how long
// RabbitMQ takes to come back is unknown, and a broker that is starting up again should not be
// hammered. notify hears of each failure before the wait.
func again(ctx context.Context, try func() error, notify func(err error, wait time.Duration)) error {
	_, err := backoff.Retry(ctx, func() (struct{}, error) { return struct{}{}, try() },
		backoff.WithBackOff(&backoff.ExponentialBackOff{InitialInterval: 100 * time.Millisecond, Multiplier: 2,
			MaxInterval: 5 * time.Second}),
		backoff.WithMaxElapsedTime(0), backoff.WithNotify(notify))
	return err
}

func errString(err *amqp.Error) string {
	if err == nil {
		return "closed"
	}
	return err.Error()
}

var errClosed = imaged.Errorf(imaged.EUnavailable, "the queue is closed")

// connected reports whether the connection is up now.
func (b *Broker) connected() bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.up && !b.closed
}

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
		case <-b.ctx.Done():
			return nil, nil, 0, errClosed
		case <-ctx.Done():
			return nil, nil, 0, imaged.WrapError(imaged.EUnavailable, ctx.Err(), "RabbitMQ is not reachable")
		}
	}
}
