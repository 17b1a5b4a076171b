package kafka

import (
	"context"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"

	"github.com/imaged/imaged"
)

// The tests run against kfake, franz-go's Kafka-protocol server, started in the test process on
// a free 127.0.0.1 port: there is no Kafka broker on these machines.

type cluster struct {
	c    *kfake.Cluster
	addr string // what clients are told to connect to
	real string // where it listens
}

// startKafka starts a one-broker cluster. With advertise set, the cluster announces that
// address (a proxy in front of it) to clients instead of its own.
func startKafka(t testing.TB, advertise func() string) *cluster {
	t.Helper()
	opts := []kfake.Opt{kfake.NumBrokers(1), kfake.Ports(0), kfake.GroupMinSessionTimeout(100 * time.Millisecond),
		kfake.DefaultNumPartitions(4)}
	var real string
	if advertise != nil {
		opts = append(opts, kfake.ListenFn(func(network, address string) (net.Listener, error) {
			ln, err := net.Listen(network, address)
			if err != nil {
				return nil, err
			}
			real = ln.Addr().String()
			a, err := net.ResolveTCPAddr("tcp", advertise())
			if err != nil {
				ln.Close()
				return nil, err
			}
			return advertised{ln, a}, nil
		}))
	}
	c, err := kfake.NewCluster(opts...)
	if err != nil {
		t.Fatalf("starting kfake: %v", err)
	}
	t.Cleanup(c.Close)
	if real == "" {
		real = c.ListenAddrs()[0]
	}
	return &cluster{c: c, addr: c.ListenAddrs()[0], real: real}
}

type advertised struct {
	net.Listener
	addr net.Addr
}

func (a advertised) Addr() net.Addr { return a.addr }

func openBroker(t testing.TB, addr string, mod func(*Config)) *Broker {
	t.Helper()
	cfg := Config{Brokers: []string{addr}, TopicPrefix: "t" + imaged.NewID()[:8], Group: "g", Partitions: 4,
		SessionTimeout: time.Second, PublishTimeout: 15 * time.Second}
	if mod != nil {
		mod(&cfg)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	b, err := Open(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	return b
}

// proxy is a TCP proxy the test controls: Cut drops every live connection and refuses new
// ones until Restore.
func waitFor(t testing.TB, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", timeout, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func task(typ string) *imaged.Task {
	return &imaged.Task{ID: imaged.NewID(), Type: typ, Status: imaged.StatusQueued, CorrelationID: "corr-" + imaged.NewID()[:6]}
}

// consume runs Consume in the background and returns a function that stops it and waits.
func consume(t *testing.T, b *Broker, opts imaged.ConsumeOptions, h imaged.Handler) func() {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- b.Consume(ctx, opts, h) }()
	var once sync.Once
	stop := func() {
		once.Do(func() {
			cancel()
			select {
			case err := <-done:
				if err != nil {
					t.Errorf("Consume returned %v", err)
				}
			case <-time.After(30 * time.Second):
				t.Error("Consume did not return within 30s of cancel")
			}
		})
	}
	t.Cleanup(stop)
	return stop
}

func lag(t *testing.T, b *Broker) int64 {
	t.Helper()
	n, err := b.Lag(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return n
}
