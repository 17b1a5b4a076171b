// Command kfake runs an in-memory Kafka-protocol server (franz-go's kfake) for tests and local
// development of the Kafka queue: `kfake -addr 127.0.0.1:9092`. It prints "kfake listening on
// ADDR" once it accepts connections and runs until SIGINT or SIGTERM. Nothing is kept on disk.
package main

import (
	"flag"
	"fmt"
	"net"
	"os"
	"os/signal"
	"strconv"
	"syscall"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"
)

func main() {
	if err := run(os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, "kfake:", err)
		os.Exit(1)
	}
}

func run(args []string) error {
	fs := flag.NewFlagSet("kfake", flag.ContinueOnError)
	addr := fs.String("addr", "127.0.0.1:9092", "listen address (port 0 picks a free one)")
	advertise := fs.String("advertise", "", "host:port announced to clients instead of the listen address (e.g. a proxy in front)")
	partitions := fs.Int("partitions", 6, "partitions of topics created without a count")
	minSession := fs.Duration("min-session-timeout", 100*time.Millisecond, "shortest consumer-group session timeout accepted")
	if err := fs.Parse(args); err != nil {
		return err
	}
	host, port, err := net.SplitHostPort(*addr)
	if err != nil {
		return fmt.Errorf("-addr: %w", err)
	}
	p, err := strconv.Atoi(port)
	if err != nil {
		return fmt.Errorf("-addr: bad port %q", port)
	}
	opts := []kfake.Opt{
		kfake.NumBrokers(1), kfake.Ports(p), kfake.DefaultNumPartitions(*partitions),
		kfake.GroupMinSessionTimeout(*minSession), kfake.AllowAutoTopicCreation(),
		kfake.ListenFn(func(network, _ string) (net.Listener, error) {
			ln, err := net.Listen(network, net.JoinHostPort(host, port))
			if err != nil || *advertise == "" {
				return ln, err
			}
			a, err := net.ResolveTCPAddr("tcp", *advertise)
			if err != nil {
				ln.Close()
				return nil, fmt.Errorf("-advertise: %w", err)
			}
			return advertised{ln, a}, nil
		}),
	}
	c, err := kfake.NewCluster(opts...)
	if err != nil {
		return err
	}
	defer c.Close()
	fmt.Println("kfake listening on", c.ListenAddrs()[0])
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGINT, syscall.SIGTERM)
	<-sig
	return nil
}

// advertised is a listener that reports another address, which kfake announces to clients in
// metadata, so that they keep connecting through a proxy.
type advertised struct {
	net.Listener
	addr net.Addr
}

func (a advertised) Addr() net.Addr { return a.addr }
