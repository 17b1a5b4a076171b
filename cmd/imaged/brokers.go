package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"

	"github.com/imaged/imaged"
	"github.com/imaged/imaged/kafka"
	"github.com/imaged/imaged/rabbitmq"
)

// brokerEvents is the event stream of a broker: every process's events, and Local, those of
// this process alone.
type brokerEvents interface {
	imaged.Events
	Local() imaged.Events
	Dropped() uint64
	io.Closer
}

// openBroker opens the queue and event stream of an amqp://, amqps:// or kafka:// queue URL.
// The closers are in opening order (closed in reverse: events before the connection).
func openBroker(ctx context.Context, scheme, raw string, outbox imaged.Outbox, log *slog.Logger) (
	imaged.Queue, brokerEvents, []io.Closer, error) {
	switch scheme {
	case "amqp", "amqps":
		rcfg, err := rabbitmq.ParseURL(raw)
		if err != nil {
			return nil, nil, nil, err
		}
		rcfg.Logger = log
		b, err := rabbitmq.Open(ctx, rcfg)
		if err != nil {
			return nil, nil, nil, err
		}
		ev := b.Events(rabbitmq.EventsOptions{Outbox: outbox})
		return b, ev, []io.Closer{b, ev}, nil
	case "kafka":
		kcfg, err := kafka.ParseURL(raw)
		if err != nil {
			return nil, nil, nil, err
		}
		kcfg.Logger = log
		b, err := kafka.Open(ctx, kcfg)
		if err != nil {
			return nil, nil, nil, err
		}
		ev, err := b.Events(kafka.EventsOptions{Outbox: outbox})
		if err != nil {
			b.Close()
			return nil, nil, nil, err
		}
		return b, ev, []io.Closer{b, ev}, nil
	}
	return nil, nil, nil, fmt.Errorf("unsupported scheme %q (use db://, amqp://, amqps:// or kafka://)", scheme)
}
