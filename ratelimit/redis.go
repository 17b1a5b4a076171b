package ratelimit

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"log/slog"
	"sync"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/imaged/imaged"
)

// window is the whole decision in one script, so that concurrent requests from any number of
// processes are counted one at a time: it drops what left the minute, counts the minute and the
// last second, and adds the request only when both have room. Redis's own clock (TIME) stamps
// requests, so processes with skewed clocks still share one window. Scores are microseconds.
//
// Returns {allowed, in_minute, in_second, retry_after_us, reset_us}.
var window = goredis.NewScript(`
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local minute, second = 60000000, 1000000
local per_minute, burst = tonumber(ARGV[1]), tonumber(ARGV[2])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - minute)
local n = redis.call('ZCARD', KEYS[1])
local recent = redis.call('ZCOUNT', KEYS[1], '(' .. string.format('%d', now - second), '+inf')
local allowed = (per_minute <= 0 or n < per_minute) and (burst <= 0 or recent < burst)
local retry = 0
if allowed then
  redis.call('ZADD', KEYS[1], now, t[1] .. '.' .. t[2] .. '.' .. ARGV[3])
  redis.call('PEXPIRE', KEYS[1], 61000)
  n = n + 1
  recent = recent + 1
else
  if per_minute > 0 and n >= per_minute then
    local e = redis.call('ZRANGE', KEYS[1], n - per_minute, n - per_minute, 'WITHSCORES')
    retry = math.max(retry, tonumber(e[2]) + minute - now)
  end
  if burst > 0 and recent >= burst then
    local e = redis.call('ZRANGE', KEYS[1], n - burst, n - burst, 'WITHSCORES')
    retry = math.max(retry, tonumber(e[2]) + second - now)
  end
end
local reset = 0
local first = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')
if first[2] then reset = tonumber(first[2]) + minute - now end
return {allowed and 1 or 0, n, recent, retry, reset}
`)

// Redis is a limiter shared by every process using one Redis. While Redis does not answer it
// limits in memory instead, so limits still hold per process and no request waits on it.
type Redis struct {
	rdb      goredis.Scripter
	prefix   string
	timeout  time.Duration
	fallback *Memory
	log      *slog.Logger

	mu         sync.Mutex
	lastWarned time.Time
	downUntil  time.Time // after a failure Redis is skipped for a moment, so requests do not each wait out the timeout
}

var _ imaged.RateLimiter = (*Redis)(nil)

// RedisOptions tune NewRedis.
type RedisOptions struct {
	// Prefix comes before every key; default "imaged:ratelimit:".
	Prefix string
	// Timeout bounds one decision; default 200 ms.
	Timeout time.Duration
	Log     *slog.Logger
}

// NewRedis returns a limiter on rdb (e.g. redis.Client.Redis()).
func NewRedis(rdb goredis.Scripter, opts RedisOptions) *Redis {
	if opts.Prefix == "" {
		opts.Prefix = "imaged:ratelimit:"
	}
	if opts.Timeout <= 0 {
		opts.Timeout = 200 * time.Millisecond
	}
	if opts.Log == nil {
		opts.Log = slog.Default()
	}
	return &Redis{rdb: rdb, prefix: opts.Prefix, timeout: opts.Timeout, fallback: NewMemory(), log: opts.Log}
}

// Allow counts one request for key when it fits in limit.
func (r *Redis) Allow(ctx context.Context, key string, limit imaged.RateLimit) (imaged.RateDecision, error) {
	r.mu.Lock()
	down := time.Now().Before(r.downUntil)
	r.mu.Unlock()
	if down {
		return r.fallback.Allow(ctx, key, limit)
	}
	var nonce [8]byte
	_, _ = rand.Read(nonce[:])
	cctx, cancel := context.WithTimeout(ctx, r.timeout)
	defer cancel()
	res, err := window.Run(cctx, r.rdb, []string{r.prefix + key}, limit.PerMinute, limit.Burst,
		hex.EncodeToString(nonce[:])).Int64Slice()
	if err != nil || len(res) != 5 {
		if ctx.Err() != nil {
			return imaged.RateDecision{}, ctx.Err()
		}
		r.warn(ctx, err)
		return r.fallback.Allow(ctx, key, limit)
	}
	allowed := res[0] == 1
	inMinute, inSecond := int(res[1]), int(res[2])
	if allowed {
		inMinute, inSecond = inMinute-1, inSecond-1
	}
	d := decide(limit, inMinute, inSecond)
	if d.Allowed != allowed { // the script is the truth
		d.Allowed = allowed
	}
	if !allowed {
		d.RetryAfter = max(time.Duration(res[3])*time.Microsecond, time.Millisecond)
	}
	d.Reset = time.Duration(max(res[4], 0)) * time.Microsecond
	return d, nil
}

// warn notes that Redis failed and logs it, at most once every 10 seconds.
func (r *Redis) warn(ctx context.Context, err error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.downUntil = time.Now().Add(time.Second)
	if time.Since(r.lastWarned) < 10*time.Second {
		return
	}
	r.lastWarned = time.Now()
	msg := "unexpected answer"
	if err != nil {
		msg = err.Error()
	}
	r.log.WarnContext(ctx, "the shared rate limiter is unavailable; limiting in this process only", "error", msg)
}
