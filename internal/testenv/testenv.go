// Package testenv names the services the tests talk to, in one place: the variables
// IMAGED_TEST_POSTGRES_URL, IMAGED_TEST_REDIS_URL and IMAGED_TEST_AMQP_URL (set by
// scripts/test-services.sh when it starts private instances, or by hand), else the machine's
// own services on their standard ports of 127.0.0.1. Tests only.
package testenv

import (
	"fmt"
	"net"
	"net/url"
	"os"
	"testing"
	"time"
)

// PostgresURL is the PostgreSQL database the tests use (each test takes a schema of its own).
func PostgresURL() string {
	return env("IMAGED_TEST_POSTGRES_URL", "postgres://postgres@127.0.0.1:5432/test?sslmode=disable")
}

// RedisURL is the Redis the tests use (each test takes a key prefix of its own).
func RedisURL() string { return env("IMAGED_TEST_REDIS_URL", "redis://127.0.0.1:6379/0") }

// AMQPURL is the RabbitMQ the tests use, its default vhost (tests make vhosts of their own with
// rabbitmqctl, which RABBITMQ_NODENAME points at a private node).
func AMQPURL() string { return env("IMAGED_TEST_AMQP_URL", "amqp://guest:guest@127.0.0.1:5672/") }

// PostgresAddr, RedisAddr and AMQPAddr are the host:port of those URLs.
func PostgresAddr() string { return hostPort(PostgresURL(), "5432") }

// RedisAddr is the host:port of RedisURL.
func RedisAddr() string { return hostPort(RedisURL(), "6379") }

// AMQPAddr is the host:port of AMQPURL.
func AMQPAddr() string { return hostPort(AMQPURL(), "5672") }

// AMQPVhostURL is AMQPURL with the path set to vhost and the query added ("" or "?…").
func AMQPVhostURL(vhost, query string) string {
	u, err := url.Parse(AMQPURL())
	if err != nil {
		panic("IMAGED_TEST_AMQP_URL: " + err.Error())
	}
	u.Path, u.RawPath, u.RawQuery = "/"+vhost, "", ""
	return u.String() + query
}

// Required reports whether a missing service must fail the test (IMAGED_TEST_REQUIRE_SERVICES=1)
// rather than skip it.
func Required() bool { return os.Getenv("IMAGED_TEST_REQUIRE_SERVICES") == "1" }

// Require skips tb (or fails it, when Required) unless addr accepts a TCP connection.
func Require(tb testing.TB, what, addr string) {
	tb.Helper()
	c, err := net.DialTimeout("tcp", addr, 2*time.Second)
	if err == nil {
		c.Close()
		return
	}
	msg := fmt.Sprintf("%s is not reachable at %s: %v", what, addr, err)
	if Required() {
		tb.Fatal(msg + " (IMAGED_TEST_REQUIRE_SERVICES=1)")
	}
	tb.Skip("SKIPPED, NOT PASSED: " + msg + "; make test starts private instances (scripts/test-services.sh)")
}

func env(name, def string) string {
	if v := os.Getenv(name); v != "" {
		return v
	}
	return def
}

func hostPort(raw, port string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return raw
	}
	if u.Port() == "" {
		return net.JoinHostPort(u.Hostname(), port)
	}
	return u.Host
}
