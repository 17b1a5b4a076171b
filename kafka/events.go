package kafka

import (
	"context"
	"encoding/json"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/imaged/imaged"
	"github.com/imaged/imaged/inmem"
)

// EventsOptions tune Events.
type EventsOptions struct {
	// Origin names this process in the events it sends; random when empty.
	Origin string
	// Outbox keeps the events Kafka did not take (it is away), to be sent when it is back
	// (SendEvent); nil drops them, counted.
	Outbox imaged.Outbox
}

// Events is the event stream over Kafka, on the topic <prefix>.events: records keyed by task
// (or batch, or image) id, with the event type and the correlation id as headers. Publish hands
// an event at once to this process's subscribers and produces it without waiting; events other
// processes produced come in through a group-less consumer that starts at the end of the topic.
// So SSE streams see every event, wherever it happened, and in-process readers keep working
// while Kafka is away.
type Events struct {
	b      *Broker
	relay  *inmem.Relay
	cl     *kgo.Client
	outbox imaged.Outbox

	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup
	once   sync.Once
}

var _ imaged.Events = (*Events)(nil)

// Events starts the event stream. Close it before the broker.
func (b *Broker) Events(opts EventsOptions) (*Events, error) {
	cl, err := kgo.NewClient(kgo.SeedBrokers(b.cfg.Brokers...), kgo.ClientID("imaged-events"),
		kgo.ConsumeTopics(b.EventsTopic()), kgo.ConsumeResetOffset(kgo.NewOffset().AtEnd()),
		kgo.FetchMaxWait(500*time.Millisecond), kgo.DialTimeout(5*time.Second), kgo.RetryBackoffFn(retryBackoff))
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithCancel(context.Background())
	e := &Events{b: b, relay: inmem.NewRelay(opts.Origin), cl: cl, outbox: opts.Outbox, ctx: ctx, cancel: cancel}
	e.wg.Add(1)
	go e.receive()
	return e, nil
}

// Publish stamps e with an ID and time where they are empty, hands it to this process's
// subscribers and produces it to Kafka (acks from every in-sync replica) without waiting. It
// never blocks: a record Kafka does not take (its buffer full, Kafka away for long) goes to the
// outbox; only without one, or when the outbox cannot take it, is it dropped (see Dropped).
func (e *Events) Publish(_ context.Context, ev imaged.Event) error {
	ev = e.relay.Publish(ev)
	r, err := e.record(ev)
	if err != nil {
		return nil
	}
	e.b.prod.TryProduce(context.Background(), r, func(_ *kgo.Record, err error) {
		if err != nil {
			e.keep(ev)
		}
	})
	return nil
}

func (e *Events) record(ev imaged.Event) (*kgo.Record, error) {
	body, err := json.Marshal(ev)
	if err != nil {
		return nil, err
	}
	key := ev.TaskID
	if key == "" {
		key = ev.BatchID
	}
	if key == "" {
		key = ev.ImageID
	}
	return &kgo.Record{Topic: e.b.EventsTopic(), Key: []byte(key), Value: body, Timestamp: ev.Time, Headers: []kgo.RecordHeader{
		{Key: headerEventType, Value: []byte(ev.Type)},
		{Key: headerCorrelationID, Value: []byte(ev.CorrelationID)},
		{Key: headerOrigin, Value: []byte(e.relay.Origin())},
	}}, nil
}

// SendEvent produces ev (an event that waited in the outbox) and returns once Kafka took it.
func (e *Events) SendEvent(ctx context.Context, ev imaged.Event) error {
	r, err := e.record(ev)
	if err != nil {
		return err
	}
	return e.b.produce(ctx, r)
}

// keep puts an event Kafka did not take in the outbox; without one, or when it fails, the event
// is dropped and counted.
func (e *Events) keep(ev imaged.Event) {
	if e.outbox != nil {
		if it, err := imaged.EventItem(ev); err == nil {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			err = e.outbox.AddToOutbox(ctx, it)
			cancel()
			if err == nil {
				return
			}
		}
	}
	e.relay.Drop()
}

// Subscribe returns the events of every process from now on.
func (e *Events) Subscribe() (<-chan imaged.Event, func()) { return e.relay.Subscribe() }

// Local is the stream of the events this process published, for work that must happen once
// per event across processes (webhook deliveries).
func (e *Events) Local() imaged.Events { return e.relay.Local() }

// Dropped returns how many events reached neither Kafka nor the outbox.
func (e *Events) Dropped() uint64 { return e.relay.Dropped() }

func (e *Events) receive() {
	defer e.wg.Done()
	for e.ctx.Err() == nil {
		fs := e.cl.PollFetches(e.ctx)
		if fs.IsClientClosed() || e.ctx.Err() != nil {
			return
		}
		fs.EachRecord(func(r *kgo.Record) { e.relay.Receive(header(r, headerOrigin), r.Value) })
	}
}

// Close flushes what is being produced (briefly), stops receiving and ends every subscription.
func (e *Events) Close() error {
	e.once.Do(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
		_ = e.b.prod.Flush(ctx)
		cancel()
		e.cancel()
		e.wg.Wait()
		e.cl.Close()
		_ = e.relay.Close()
	})
	return nil
}
