package rabbitmq

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/cenkalti/backoff/v5"
	amqp "github.com/rabbitmq/amqp091-go"
	"go.opentelemetry.io/otel"

	"github.com/imaged/imaged"
)

// Consume calls h for the messages of opts.Types (every declared type when empty: each type has
// a queue of its own), with at most opts.Concurrency unacknowledged at once (the prefetch);
// with opts.Ready set, a message waits for it before it is handed to h. A message is acknowledged after h
// returned nil, and requeued after an error. After a connection loss it consumes again on the
// new connection; messages in flight on the old one are redelivered by the broker, and the
// worker drops those whose outcome is already recorded. When ctx is cancelled it stops taking
// messages, waits for the handlers in flight (as every Queue does) and acknowledges what they
// finished.
func (b *Broker) Consume(ctx context.Context, opts imaged.ConsumeOptions, h imaged.Handler) error {
	opts, err := opts.Checked(h)
	if err != nil {
		return err
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
	err = again(ctx, func() error {
		conn, _, gen, err := b.current(ctx)
		if err != nil {
			return backoff.Permanent(err)
		}
		err = b.consumeOn(ctx, conn, opts, types, sem, &inflight, handlerCtx, h, log)
		if ctx.Err() != nil {
			return nil
		}
		b.broken(gen)
		return err
	}, func(err error, wait time.Duration) {
		log.Warn("consuming stopped; starting again", "error", err, "retry_in", wait.String())
	})
	if ctx.Err() != nil {
		return nil
	}
	return err
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
	// A reader waiting for opts.Ready lets go when the consumer stops.
	readyCtx, cancelReady := context.WithCancel(ctx)
	defer cancelReady()
	halt := func() {
		close(stop)
		cancelReady()
	}
	var readers, handlers sync.WaitGroup
	var tags []string
	for _, typ := range types {
		tag := fmt.Sprintf("%s.%s.%s", opts.WorkerID, typ, imaged.NewID()[:8])
		dels, err := ch.Consume(b.taskQueue(typ), tag, false, false, false, false, nil)
		if err != nil {
			halt()
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
				if opts.WaitReady(readyCtx) != nil {
					<-sem
					return // as above
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
		halt()
		readers.Wait()
		handlers.Wait() // their acks go out on this channel before it closes
		_ = ch.Close()
		return nil
	case err := <-closed:
		halt()
		if err == nil {
			return errors.New("channel closed")
		}
		return err
	}
}

func (b *Broker) handle(ctx, consumeCtx context.Context, d amqp.Delivery, h imaged.Handler, log *slog.Logger) {
	m, err := imaged.ParseTaskMessage(d.Body)
	if err != nil {
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
	if err := h(ctx, m.Delivery(d.Redelivered, traceContext(d.Headers))); err != nil {
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
