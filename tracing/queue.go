package tracing

import (
	"context"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/trace"

	"github.com/imaged/imaged"
)

// Queue gives Publish a producer span ("publish <type>") whose context the adapter sends in the
// message headers, and every delivery a consumer span ("process <type>") that continues the
// trace found in them. system names the broker (rabbitmq, kafka, db).
func Queue(next imaged.Queue, system string) imaged.Queue {
	q := &queue{next: next, system: attribute.String("messaging.system", system)}
	if _, ok := next.(deadLetterer); ok {
		return deadLetterQueue{q}
	}
	return q
}

type queue struct {
	next   imaged.Queue
	system attribute.KeyValue
}

// Unwrap returns the decorated queue.
func (q *queue) Unwrap() imaged.Queue { return q.next }

func (q *queue) Publish(ctx context.Context, t *imaged.Task, delay time.Duration) (err error) {
	ctx, span := tracer().Start(ctx, "publish "+t.Type, trace.WithSpanKind(trace.SpanKindProducer),
		trace.WithAttributes(q.system, attribute.String("messaging.operation.type", "send"),
			attribute.String("messaging.message.id", t.ID), attribute.String("imaged.task_id", t.ID),
			attribute.Int64("imaged.delay_ms", delay.Milliseconds())))
	defer func() { End(span, err) }()
	return q.next.Publish(ctx, t, delay)
}

func (q *queue) Consume(ctx context.Context, opts imaged.ConsumeOptions, h imaged.Handler) error {
	return q.next.Consume(ctx, opts, func(ctx context.Context, d *imaged.Delivery) (err error) {
		ctx, span := tracer().Start(Extract(ctx, d.Trace), "process "+d.Type, trace.WithSpanKind(trace.SpanKindConsumer),
			trace.WithAttributes(q.system, attribute.String("messaging.operation.type", "process"),
				attribute.String("messaging.message.id", d.TaskID), attribute.String("imaged.task_id", d.TaskID),
				attribute.Bool("imaged.redelivered", d.Redelivered), attribute.String("imaged.worker_id", opts.WorkerID)))
		defer func() { End(span, err) }()
		return h(ctx, d)
	})
}

func (q *queue) Depth(ctx context.Context) (map[string]int, error) { return q.next.Depth(ctx) }
func (q *queue) Ping(ctx context.Context) error                    { return q.next.Ping(ctx) }
func (q *queue) Close() error                                      { return q.next.Close() }

// deadLetterer is a queue with a dead-letter queue (worker.DeadLetterer).
type deadLetterer interface {
	DeadLetter(ctx context.Context, t *imaged.Task, f *imaged.TaskFailure) error
}

// deadLetterQueue is queue over a queue that dead-letters: the decorator must not hide it.
type deadLetterQueue struct{ *queue }

func (q deadLetterQueue) DeadLetter(ctx context.Context, t *imaged.Task, f *imaged.TaskFailure) (err error) {
	ctx, span := tracer().Start(ctx, "dead-letter "+t.Type, trace.WithSpanKind(trace.SpanKindProducer),
		trace.WithAttributes(q.system, attribute.String("imaged.task_id", t.ID)))
	defer func() { End(span, err) }()
	return q.next.(deadLetterer).DeadLetter(ctx, t, f)
}
