package kafka

import (
	"context"
	"strconv"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
	"go.opentelemetry.io/otel"

	"github.com/imaged/imaged"
)

// taskRecord returns the record of t for topic, with the failure f of a dead letter when f is
// not nil.
func taskRecord(topic string, t *imaged.Task, f *imaged.TaskFailure) (*kgo.Record, error) {
	_, body, err := imaged.NewTaskMessage(t, f)
	if err != nil {
		return nil, err
	}
	r := &kgo.Record{Topic: topic, Key: []byte(t.ID), Value: body, Headers: []kgo.RecordHeader{
		{Key: headerCorrelationID, Value: []byte(t.CorrelationID)},
		{Key: headerTaskType, Value: []byte(t.Type)},
	}}
	if f != nil {
		r.Headers = append(r.Headers, kgo.RecordHeader{Key: "error_code", Value: []byte(f.Code)},
			kgo.RecordHeader{Key: "error_message", Value: []byte(f.Message)})
	}
	return r, nil
}

func header(r *kgo.Record, key string) string {
	for _, h := range r.Headers {
		if h.Key == key {
			return string(h.Value)
		}
	}
	return ""
}

// Publish produces a record for t keyed by its id to its type's topic and waits until the
// brokers took it. With a
// delay the record carries a not-before time that consumers wait for. While the brokers are
// unreachable it keeps trying, up to PublishTimeout.
func (b *Broker) Publish(ctx context.Context, t *imaged.Task, delay time.Duration) error {
	if t == nil {
		return imaged.Errorf(imaged.EInvalid, "no task to publish")
	}
	r, err := taskRecord(b.TasksTopic(t.Type), t, nil)
	if err != nil {
		return err
	}
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
	r, err := taskRecord(b.DeadTopic(), t, f)
	if err != nil {
		return err
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
			m, _ := imaged.ParseTaskMessage(r.Value)
			ids = append(ids, m.TaskID)
			if end, ok := want[r.Partition]; ok && r.Offset+1 >= end {
				delete(want, r.Partition)
			}
		})
	}
	return ids, nil
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
