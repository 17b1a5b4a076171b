package rabbitmq

import (
	"context"
	"encoding/json"
	"errors"
	"sync"
	"time"

	"github.com/cenkalti/backoff/v5"
	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/imaged/imaged"
	"github.com/imaged/imaged/inmem"
)

// EventTypes are the routing keys an event subscription binds.
var EventTypes = []string{
	imaged.EventImageUploaded, imaged.EventTaskQueued, imaged.EventTaskStarted, imaged.EventTaskCompleted,
	imaged.EventTaskFailed, imaged.EventTaskCancelled, imaged.EventBatchCompleted, imaged.EventHealth,
}

// DefaultEventBuffer is how many events may wait in memory to be sent; more go to the outbox.
const DefaultEventBuffer = 4096

// EventsOptions tune Events.
type EventsOptions struct {
	// Buffer is how many events wait in memory to be sent; later ones go to the outbox (or,
	// without one, are dropped and counted). DefaultEventBuffer when zero.
	Buffer int
	// Origin names this process in the events it sends; random when empty.
	Origin string
	// Outbox keeps the events the broker did not confirm (it is away), to be sent when it is
	// back (SendEvent); nil drops them, counted.
	Outbox imaged.Outbox
}

// Events is the event stream over RabbitMQ. Publish hands an event at once to this process's
// subscribers and sends it to the exchange with the event type as routing key and the
// correlation id as a header; events other processes sent come in through a private queue
// bound to every event type and reach this process's subscribers too. So SSE streams see every
// event, wherever it happened, and in-process readers keep working while the broker is away.
type Events struct {
	b      *Broker
	relay  *inmem.Relay
	out    chan imaged.Event
	outbox imaged.Outbox

	ctx     context.Context // ends receiving
	cancel  context.CancelFunc
	stopCtx context.Context // ends sending, after a flush
	stop    context.CancelFunc
	wg      sync.WaitGroup
	sendWG  sync.WaitGroup
	once    sync.Once
}

// flushTimeout bounds how long Close keeps sending the events still queued.
const flushTimeout = 3 * time.Second

var _ imaged.Events = (*Events)(nil)

// Events starts the event stream over b's connection. Close it before the broker.
func (b *Broker) Events(opts EventsOptions) *Events {
	if opts.Buffer <= 0 {
		opts.Buffer = DefaultEventBuffer
	}
	ctx, cancel := context.WithCancel(context.Background())
	stopCtx, stop := context.WithCancel(context.Background())
	e := &Events{b: b, relay: inmem.NewRelay(opts.Origin), out: make(chan imaged.Event, opts.Buffer), outbox: opts.Outbox,
		ctx: ctx, cancel: cancel, stopCtx: stopCtx, stop: stop}
	e.sendWG.Add(1)
	e.wg.Add(1)
	go e.send()
	go e.receive()
	return e
}

// Publish stamps e with an ID and time where they are empty, hands it to this process's
// subscribers and queues it for the broker. It never waits for the broker: when the queue is
// full (the broker away for long), the event goes to the outbox; only without one, or when
// the outbox cannot take it, is it dropped (see Dropped).
func (e *Events) Publish(ctx context.Context, ev imaged.Event) error {
	ev = e.relay.Publish(ev)
	select {
	case e.out <- ev:
	default:
		e.keep(ctx, []imaged.Event{ev})
	}
	return nil
}

// Subscribe returns the events of every process from now on.
func (e *Events) Subscribe() (<-chan imaged.Event, func()) { return e.relay.Subscribe() }

// Local is the stream of the events this process published.
func (e *Events) Local() imaged.Events { return e.relay.Local() }

// Dropped returns how many events never reached the broker nor the outbox.
func (e *Events) Dropped() uint64 { return e.relay.Dropped() }

// SendEvent publishes ev (an event that waited in the outbox) to the broker, persistent, and
// returns once the broker confirmed it. Local subscribers had it when it was published.
func (e *Events) SendEvent(ctx context.Context, ev imaged.Event) error {
	msg, err := e.message(ev)
	if err != nil {
		return err
	}
	return e.b.publish(ctx, e.b.cfg.Exchange, ev.Type, msg, nil)
}

// keep puts events that could not reach the broker in the outbox, to be sent when it is back;
// without an outbox, or when it fails, they are dropped and counted.
func (e *Events) keep(ctx context.Context, evs []imaged.Event) {
	if len(evs) == 0 {
		return
	}
	err := errors.New("no outbox")
	if e.outbox != nil {
		items := make([]*imaged.OutboxItem, 0, len(evs))
		for _, ev := range evs {
			if it, ierr := imaged.EventItem(ev); ierr == nil {
				items = append(items, it)
			}
		}
		kctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), keepTimeout)
		err = e.outbox.AddToOutbox(kctx, items...)
		cancel()
	}
	if err != nil {
		for range evs {
			e.relay.Drop()
		}
		e.b.log.Error("events could not reach RabbitMQ nor the outbox; dropped", "count", len(evs), "error", err.Error())
	}
}

// keepTimeout bounds how long keeping events in the outbox may take.
const keepTimeout = 10 * time.Second

// eventSendTimeout bounds how long a batch of events waits for the broker before it goes to
// the outbox.
const eventSendTimeout = 5 * time.Second

// maxEventBatch is how many queued events are published before their confirms are awaited.
const maxEventBatch = 256

// send publishes queued events, a batch at a time. What the broker does not confirm goes to
// the outbox; without one, the events wait in memory for the broker, as long as it takes. When
// Close begins it sends what is still queued, for at most flushTimeout.
func (e *Events) send() {
	defer e.sendWG.Done()
	normal, cancel := context.WithCancel(context.Background())
	defer cancel()
	stop := context.AfterFunc(e.stopCtx, cancel)
	defer stop()
	var pending []imaged.Event
	for normal.Err() == nil && pending == nil {
		select {
		case ev := <-e.out:
			evs := e.batch(ev)
			for len(evs) > 0 {
				evs = e.sendBatch(normal, evs)
				if e.outbox != nil {
					e.keep(normal, evs)
					break
				}
				if normal.Err() != nil {
					pending = evs
					break
				}
			}
		case <-normal.Done():
		}
	}
	ctx, cancelFlush := context.WithTimeout(context.Background(), flushTimeout)
	defer cancelFlush()
	e.keep(ctx, e.sendBatch(ctx, pending))
	for {
		select {
		case ev := <-e.out:
			e.keep(ctx, e.sendBatch(ctx, e.batch(ev)))
		default:
			return
		}
	}
}

// batch is first and the events queued behind it, up to maxEventBatch.
func (e *Events) batch(first imaged.Event) []imaged.Event {
	evs := []imaged.Event{first}
	for len(evs) < maxEventBatch {
		select {
		case ev := <-e.out:
			evs = append(evs, ev)
		default:
			return evs
		}
	}
	return evs
}

func (e *Events) message(ev imaged.Event) (amqp.Publishing, error) {
	body, err := json.Marshal(ev)
	if err != nil {
		return amqp.Publishing{}, err
	}
	return amqp.Publishing{ContentType: "application/json", DeliveryMode: amqp.Persistent, MessageId: ev.ID,
		CorrelationId: ev.CorrelationID, Timestamp: ev.Time, Type: ev.Type,
		Headers: amqp.Table{"correlation_id": ev.CorrelationID, "origin": e.relay.Origin(), "event_type": ev.Type}, Body: body}, nil
}

// sendBatch publishes evs persistent, waits for the broker's confirms and returns the events
// it did not confirm. With an outbox to keep them, a batch waits for the broker at most
// eventSendTimeout, and not at all while the connection is known to be down, so that a broker
// outage never holds up the queue behind it.
func (e *Events) sendBatch(ctx context.Context, evs []imaged.Event) []imaged.Event {
	if len(evs) == 0 {
		return nil
	}
	if e.outbox != nil {
		if !e.b.connected() {
			return evs
		}
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, eventSendTimeout)
		defer cancel()
	}
	_, pub, gen, err := e.b.current(ctx)
	if err != nil {
		return evs
	}
	confirms := make([]*amqp.DeferredConfirmation, 0, len(evs))
	for _, ev := range evs {
		msg, err := e.message(ev)
		if err != nil {
			confirms = append(confirms, nil) // unreadable: nothing to send again either
			continue
		}
		dc, err := pub.PublishWithDeferredConfirmWithContext(ctx, e.b.cfg.Exchange, ev.Type, false, false, msg)
		if err != nil {
			e.b.broken(gen)
			break
		}
		confirms = append(confirms, dc)
	}
	var lost []imaged.Event
	for i, dc := range confirms {
		if dc == nil {
			continue
		}
		if ok, err := dc.WaitContext(ctx); err != nil || !ok {
			lost = append(lost, evs[i])
		}
	}
	return append(lost, evs[len(confirms):]...)
}

// receive consumes other processes' events into the local bus, reconnecting as needed.
func (e *Events) receive() {
	defer e.wg.Done()
	_ = again(e.ctx, func() error {
		conn, _, gen, err := e.b.current(e.ctx)
		if err != nil {
			return backoff.Permanent(err)
		}
		if err := e.receiveOn(conn); err != nil && e.ctx.Err() == nil {
			e.b.broken(gen)
			return err
		}
		return nil
	}, func(err error, wait time.Duration) {
		e.b.log.Warn("receiving events stopped; starting again", "error", err.Error(), "retry_in", wait.String())
	})
}

func (e *Events) receiveOn(conn *amqp.Connection) error {
	ch, err := conn.Channel()
	if err != nil {
		return err
	}
	defer ch.Close()
	q, err := ch.QueueDeclare("", false, true, true, false, nil)
	if err != nil {
		return err
	}
	for _, key := range EventTypes {
		if err := ch.QueueBind(q.Name, key, e.b.cfg.Exchange, false, nil); err != nil {
			return err
		}
	}
	dels, err := ch.ConsumeWithContext(e.ctx, q.Name, "", true, true, false, false, nil)
	if err != nil {
		return err
	}
	for d := range dels {
		origin, _ := d.Headers["origin"].(string)
		e.relay.Receive(origin, d.Body)
	}
	if e.ctx.Err() != nil {
		return nil
	}
	return amqp.ErrClosed
}

// Close stops sending and receiving and ends every subscription.
func (e *Events) Close() error {
	e.once.Do(func() {
		e.stop()
		e.sendWG.Wait()
		e.cancel()
		e.wg.Wait()
		_ = e.relay.Close()
	})
	return nil
}
