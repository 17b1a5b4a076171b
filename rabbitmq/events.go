package rabbitmq

import (
	"context"
	"encoding/json"
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

// DefaultEventBuffer is how many events may wait for the broker while it is unreachable.
const DefaultEventBuffer = 4096

// EventsOptions tune Events.
type EventsOptions struct {
	// Buffer is how many events wait for the broker while it is unreachable; later ones are
	// dropped (and counted). DefaultEventBuffer when zero.
	Buffer int
	// Origin names this process in the events it sends; random when empty.
	Origin string
}

// Events is the event stream over RabbitMQ. Publish hands an event at once to this process's
// subscribers and sends it to the exchange with the event type as routing key and the
// correlation id as a header; events other processes sent come in through a private queue
// bound to every event type and reach this process's subscribers too. So SSE streams see every
// event, wherever it happened, and in-process readers keep working while the broker is away.
type Events struct {
	b     *Broker
	relay *inmem.Relay
	out   chan imaged.Event

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
	e := &Events{b: b, relay: inmem.NewRelay(opts.Origin), out: make(chan imaged.Event, opts.Buffer),
		ctx: ctx, cancel: cancel, stopCtx: stopCtx, stop: stop}
	e.sendWG.Add(1)
	e.wg.Add(1)
	go e.send()
	go e.receive()
	return e
}

// Publish stamps e with an ID and time where they are empty, hands it to this process's
// subscribers and queues it for the broker. It never blocks: when the broker has been away for
// long enough to fill the buffer, the broker misses the event (see Dropped).
func (e *Events) Publish(_ context.Context, ev imaged.Event) error {
	select {
	case e.out <- e.relay.Publish(ev):
	default:
		e.relay.Drop()
	}
	return nil
}

// Subscribe returns the events of every process from now on.
func (e *Events) Subscribe() (<-chan imaged.Event, func()) { return e.relay.Subscribe() }

// Local is the stream of the events this process published, for work that must happen once
// per event across processes (webhook deliveries).
func (e *Events) Local() imaged.Events { return e.relay.Local() }

// Dropped returns how many events never reached the broker because the buffer was full.
func (e *Events) Dropped() uint64 { return e.relay.Dropped() }

// send publishes queued events, waiting for the connection while it is down. When Close
// begins it sends what is still queued, for at most flushTimeout.
func (e *Events) send() {
	defer e.sendWG.Done()
	normal, cancel := context.WithCancel(context.Background())
	defer cancel()
	stop := context.AfterFunc(e.stopCtx, cancel)
	defer stop()
	var pending []imaged.Event
loop:
	for {
		select {
		case ev := <-e.out:
			if !e.sendOne(normal, ev) && normal.Err() != nil {
				pending = append(pending, ev)
				break loop
			}
		case <-e.stopCtx.Done():
			break loop
		}
	}
	ctx, cancelFlush := context.WithTimeout(context.Background(), flushTimeout)
	defer cancelFlush()
	for _, ev := range pending {
		e.sendOne(ctx, ev)
	}
	for {
		select {
		case ev := <-e.out:
			e.sendOne(ctx, ev)
		default:
			return
		}
	}
}

// sendOne publishes ev, waiting for a connection until ctx is done; it reports whether the
// event went out.
func (e *Events) sendOne(ctx context.Context, ev imaged.Event) bool {
	body, err := json.Marshal(ev)
	if err != nil {
		return true
	}
	msg := amqp.Publishing{ContentType: "application/json", DeliveryMode: amqp.Transient, MessageId: ev.ID,
		CorrelationId: ev.CorrelationID, Timestamp: ev.Time, Type: ev.Type,
		Headers: amqp.Table{"correlation_id": ev.CorrelationID, "origin": e.relay.Origin(), "event_type": ev.Type}, Body: body}
	for {
		_, pub, gen, err := e.b.current(ctx)
		if err != nil {
			return false // closed, or out of time
		}
		if _, err := pub.PublishWithDeferredConfirmWithContext(ctx, e.b.cfg.Exchange, ev.Type, false, false, msg); err != nil {
			if ctx.Err() != nil {
				return false
			}
			e.b.broken(gen)
			continue
		}
		return true
	}
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
