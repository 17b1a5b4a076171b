// Package redis caches what imaged reads most in Redis: the results of finished tasks
// (result:{task_id}), image metadata (image:{id}) and the entries of the processed-output
// cache (output:{key}, its index), in front of the task store.
//
// The cache is an optimisation and never the reason a request fails: every Redis call has a
// short timeout, any Redis error is logged, counted and answered from the database, and an
// optional circuit breaker skips Redis altogether while it is down.
package redis

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/imaged/imaged"
	"github.com/imaged/imaged/resilience"
	"github.com/prometheus/client_golang/prometheus"
	goredis "github.com/redis/go-redis/v9"
	"github.com/redis/go-redis/v9/maintnotifications"
)

// Defaults from the specification, and the time limits that keep an unreachable Redis from
// holding requests.
const (
	DefaultResultTTL   = 5 * time.Minute
	DefaultMetadataTTL = time.Hour
	DefaultKeyPrefix   = "imaged:"
	DefaultPoolSize    = 20
	// DefaultTimeout bounds every cache call, connecting included.
	DefaultTimeout = 200 * time.Millisecond
)

// Options configures the cache. Zero fields take the defaults.
type Options struct {
	// ResultTTL is how long a finished task stays cached (DefaultResultTTL).
	ResultTTL time.Duration
	// MetadataTTL is how long image metadata stays cached (DefaultMetadataTTL).
	MetadataTTL time.Duration
	// KeyPrefix is put before every key; when empty, the URL's key_prefix parameter, else
	// DefaultKeyPrefix.
	KeyPrefix string
	// Timeout bounds each cache call (DefaultTimeout).
	Timeout time.Duration
	// Breaker, when set, guards every Redis call: while it is open the cache is skipped
	// without calling Redis. Use a breaker of its own, e.g.
	// resilience.NewBreaker(resilience.BreakerConfig{Name: "cache"}, m).
	Breaker *resilience.Breaker
	// Metrics receives cache_requests_total; none when nil.
	Metrics *Metrics
}

// Metrics holds cache_requests_total{cache,result}: cache is "result", "image" or "output" (the
// index of the processed-output cache), result is "hit", "miss" or "error" (Redis failed or
// its breaker is open; the read went to the database).
type Metrics struct {
	requests *prometheus.CounterVec
}

// NewMetrics creates the cache collectors and registers them on reg (not registered when reg
// is nil).
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{requests: prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "cache_requests_total",
		Help: "Cache lookups by cache (result, image, output: the processed-output cache's index) and result (hit, miss, error).",
	}, []string{"cache", "result"})}
	if reg != nil {
		reg.MustRegister(m.requests)
	}
	return m
}

func (m *Metrics) count(cache, result string) {
	if m != nil {
		m.requests.WithLabelValues(cache, result).Inc()
	}
}

// Client is a connection pool to Redis with imaged's cache settings.
type Client struct {
	rdb         *goredis.Client
	prefix      string
	resultTTL   time.Duration
	metadataTTL time.Duration
	timeout     time.Duration
	breaker     *resilience.Breaker
	metrics     *Metrics

	mu        sync.Mutex
	pending   map[string]bool // image keys whose invalidation has not reached Redis yet
	lastFlush time.Time
}

// Open creates a client for rawURL: redis://[user:password@]host:port/db or rediss://… with
// the parameters of go-redis (pool_size, dial_timeout, read_timeout…) and key_prefix. The pool
// holds DefaultPoolSize connections unless pool_size says otherwise; connect, read and write
// time-outs default to Timeout and go-redis's own retries are off (a failed cache call falls
// through to the database at once).
//
// Open does not wait for Redis: a cache that is down at start-up is the same as one that goes
// down later, reads go to the database until it answers. Call Ping to report it.
func Open(ctx context.Context, rawURL string, opts Options) (*Client, error) {
	u, err := url.Parse(rawURL)
	if err != nil {
		// Not %w: url.Error repeats the URL, password included.
		return nil, errors.New("the Redis URL cannot be parsed")
	}
	q := u.Query()
	prefix := opts.KeyPrefix
	if prefix == "" {
		prefix = q.Get("key_prefix")
	}
	if prefix == "" {
		prefix = DefaultKeyPrefix
	}
	q.Del("key_prefix")
	u.RawQuery = q.Encode()
	o, err := goredis.ParseURL(u.String())
	if err != nil {
		return nil, fmt.Errorf("the Redis URL is not valid: %s", redactedError(err, u))
	}
	opts = imaged.WithDefaults(opts, Options{
		Timeout:     DefaultTimeout,
		ResultTTL:   DefaultResultTTL,
		MetadataTTL: DefaultMetadataTTL,
	})
	if !q.Has("pool_size") {
		o.PoolSize = DefaultPoolSize
	}
	if !q.Has("dial_timeout") {
		o.DialTimeout = opts.Timeout
	}
	if !q.Has("read_timeout") {
		o.ReadTimeout = opts.Timeout
	}
	if !q.Has("write_timeout") {
		o.WriteTimeout = opts.Timeout
	}
	if !q.Has("pool_timeout") {
		o.PoolTimeout = opts.Timeout
	}
	if !q.Has("max_retries") {
		o.MaxRetries = -1
	}
	o.DialerRetries = 1
	o.ContextTimeoutEnabled = true
	// Plain Redis servers know nothing of maintenance notifications; skip the handshake.
	o.MaintNotificationsConfig = &maintnotifications.Config{Mode: maintnotifications.ModeDisabled}
	return &Client{
		rdb:         goredis.NewClient(o),
		prefix:      prefix,
		resultTTL:   opts.ResultTTL,
		metadataTTL: opts.MetadataTTL,
		timeout:     opts.Timeout,
		breaker:     opts.Breaker,
		metrics:     opts.Metrics,
		pending:     map[string]bool{},
	}, nil
}

// redactedError returns err's text with the URL's password removed.
func redactedError(err error, u *url.URL) string {
	msg := err.Error()
	if p, ok := u.User.Password(); ok && p != "" {
		msg = strings.ReplaceAll(msg, p, "xxxxx")
	}
	return msg
}

// KeyPrefix returns the prefix of every key this client writes.
func (c *Client) KeyPrefix() string { return c.prefix }

// Redis returns the underlying go-redis client, for features that share the pool.
func (c *Client) Redis() *goredis.Client { return c.rdb }

// Ping checks Redis answers within the cache's timeout (through the breaker when there is one).
func (c *Client) Ping(ctx context.Context) error {
	return c.do(ctx, func(ctx context.Context) error { return c.rdb.Ping(ctx).Err() })
}

// Close closes the pool.
func (c *Client) Close() error { return c.rdb.Close() }

// do runs one Redis call with the cache's timeout, through the breaker when there is one.
// Failures other than Redis error replies come back as EUnavailable, so that the breaker
// counts them (a pool time-out is as much an outage as a refused connection).
func (c *Client) do(ctx context.Context, fn func(ctx context.Context) error) error {
	call := func(ctx context.Context) error {
		ctx, cancel := context.WithTimeout(ctx, c.timeout)
		defer cancel()
		err := fn(ctx)
		var reply goredis.Error
		if err != nil && !errors.Is(err, goredis.Nil) && !errors.As(err, &reply) && !errors.Is(err, context.Canceled) {
			return imaged.WrapError(imaged.EUnavailable, err, "the cache is unavailable")
		}
		return err
	}
	if c.breaker == nil {
		return call(ctx)
	}
	return c.breaker.Do(ctx, call)
}

// Keys name the row's tenant, so an entry can only ever answer a read within that tenant.
func (c *Client) resultKey(tenant, taskID string) string {
	return c.prefix + "result:" + tenant + ":" + taskID
}

func (c *Client) imageKey(tenant, imageID string) string {
	return c.prefix + "image:" + tenant + ":" + imageID
}

func (c *Client) outputKey(tenant, key string) string {
	return c.prefix + "output:" + tenant + ":" + key
}

// outputsKey is the set of the output keys indexed for one content of tenant.
func (c *Client) outputsKey(tenant, contentSHA256 string) string {
	return c.prefix + "outputs:" + tenant + ":" + contentSHA256
}

// RouteLibraryLogs sends go-redis's own messages (one per failed dial, among others), which
// it otherwise prints to stderr, to log at debug level: the cache reports its failures itself
// at warn. It changes a process-wide setting of go-redis; call it once at start-up.
func RouteLibraryLogs(log *slog.Logger) {
	goredis.SetLogger(libraryLogger{log})
}

type libraryLogger struct{ log *slog.Logger }

func (l libraryLogger) Printf(ctx context.Context, format string, v ...any) {
	l.log.DebugContext(ctx, fmt.Sprintf(format, v...), "component", "go-redis")
}
