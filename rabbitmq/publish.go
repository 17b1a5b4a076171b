package rabbitmq

import (
	"context"
	"errors"
	"fmt"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"
	"go.opentelemetry.io/otel"

	"github.com/imaged/imaged"
)

// retryTiers are the delays of the retry queues. A delayed task waits in the queue of the
// smallest tier that is not shorter than its delay, so it never comes back early; tiers keep
// the number of queues small while messages of one queue all expire in order.
var retryTiers = []time.Duration{
	100 * time.Millisecond, 250 * time.Millisecond, 500 * time.Millisecond,
	time.Second, 2 * time.Second, 5 * time.Second, 10 * time.Second, 30 * time.Second,
	time.Minute, 2 * time.Minute, 5 * time.Minute, 10 * time.Minute, 30 * time.Minute, time.Hour,
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
	_, body, err := imaged.NewTaskMessage(t, nil)
	if err != nil {
		return err
	}
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
	_, body, err := imaged.NewTaskMessage(t, f)
	if err != nil {
		return err
	}
	h := amqp.Table{"correlation_id": t.CorrelationID, "task_type": t.Type, "attempts": int64(t.Attempts)}
	if f != nil {
		h["error_code"], h["error_message"] = f.Code, f.Message
	}
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
		m, _ := imaged.ParseTaskMessage(d.Body)
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
