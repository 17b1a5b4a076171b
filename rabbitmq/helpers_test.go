package rabbitmq

import (
	"context"
	"fmt"
	"net"
	"net/url"
	"os"
	"os/exec"
	"testing"
	"time"

	"github.com/imaged/imaged/internal/testenv"

	"github.com/imaged/imaged"
)

// The tests run against the RabbitMQ on 127.0.0.1 (IMAGED_TEST_AMQP_URL overrides it), in a
// vhost of their own that TestMain creates with rabbitmqctl and deletes at the end; each test
// also uses its own exchange and queue prefix.

var testVhost string

func TestMain(m *testing.M) {
	code := func() int {
		if reachable(baseURL()) && os.Getenv("IMAGED_TEST_AMQP_URL") == "" {
			if _, err := exec.LookPath("rabbitmqctl"); err == nil {
				v := "imaged-test-" + imaged.NewID()[:8]
				if exec.Command("rabbitmqctl", "-q", "add_vhost", v).Run() == nil {
					defer exec.Command("rabbitmqctl", "-q", "delete_vhost", v).Run()
					if exec.Command("rabbitmqctl", "-q", "set_permissions", "-p", v, "guest", ".*", ".*", ".*").Run() == nil {
						testVhost = v
					}
				}
			}
		}
		return m.Run()
	}()
	os.Exit(code)
}

func baseURL() string {
	return testenv.AMQPURL()
}

func reachable(raw string) bool {
	u, err := url.Parse(raw)
	if err != nil {
		return false
	}
	host := u.Host
	if u.Port() == "" {
		host += ":5672"
	}
	c, err := net.DialTimeout("tcp", host, 2*time.Second)
	if err != nil {
		return false
	}
	c.Close()
	return true
}

// brokerURL returns the URL of the test vhost, or skips (fails with
// IMAGED_TEST_REQUIRE_SERVICES=1) when RabbitMQ is not reachable.
func brokerURL(t testing.TB) string {
	t.Helper()
	if !reachable(baseURL()) {
		if os.Getenv("IMAGED_TEST_REQUIRE_SERVICES") == "1" {
			t.Fatalf("RabbitMQ is not reachable at %s and IMAGED_TEST_REQUIRE_SERVICES=1", redact(baseURL()))
		}
		t.Skipf("SKIPPED: RabbitMQ is not reachable at %s (start rabbitmq-server, or set IMAGED_TEST_AMQP_URL)", redact(baseURL()))
	}
	u, _ := url.Parse(baseURL())
	if testVhost != "" {
		u.Path = "/" + testVhost
	}
	return u.String()
}

// openBroker opens a broker on a fresh exchange and queue prefix; mod adjusts the config.
func openBroker(t testing.TB, mod func(*Config)) *Broker {
	t.Helper()
	id := imaged.NewID()[:10]
	cfg := Config{URL: brokerURL(t), Exchange: "imaged-test-" + id, Prefix: "t" + id + ".", PublishTimeout: 10 * time.Second}
	if mod != nil {
		mod(&cfg)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	b, err := Open(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		deleteTopology(b)
		b.Close()
	})
	return b
}

// deleteTopology removes what a test declared, so the shared broker keeps nothing of it.
func deleteTopology(b *Broker) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	conn, _, _, err := b.current(ctx)
	if err != nil {
		return
	}
	ch, err := conn.Channel()
	if err != nil {
		return
	}
	defer ch.Close()
	for _, typ := range b.cfg.Types {
		_, _ = ch.QueueDelete(b.taskQueue(typ), false, false, false)
		for _, tier := range retryTiers {
			_, _ = ch.QueueDelete(b.retryQueue(typ, tier), false, false, false)
		}
	}
	_, _ = ch.QueueDelete(b.deadQueue(), false, false, false)
	_ = ch.ExchangeDelete(b.cfg.Exchange, false, false)
}

// viaProxy returns raw with its host replaced by addr.
func viaProxy(raw, addr string) string {
	u, _ := url.Parse(raw)
	u.Host = addr
	return u.String()
}

func hostOf(raw string) string {
	u, _ := url.Parse(raw)
	if u.Port() == "" {
		return u.Host + ":5672"
	}
	return u.Host
}

// waitFor polls cond every 20 ms until it holds or timeout passes.
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

func fmtDepth(d map[string]int) string { return fmt.Sprint(d) }
