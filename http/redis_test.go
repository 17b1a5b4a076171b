package http

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"os"
	"testing"
	"time"

	"github.com/imaged/imaged/internal/testenv"

	goredis "github.com/redis/go-redis/v9"

	"github.com/imaged/imaged/ratelimit"
)

// redisLimiter is a limiter on IMAGED_TEST_REDIS_URL (default the local Redis) under a prefix
// of its own, or skips the test when Redis does not answer.
func redisLimiter(t *testing.T) *ratelimit.Redis {
	t.Helper()
	u := testenv.RedisURL()
	o, err := goredis.ParseURL(u)
	if err != nil {
		t.Fatal(err)
	}
	o.PoolSize = 64
	c := goredis.NewClient(o)
	t.Cleanup(func() { c.Close() })
	if err := c.Ping(t.Context()).Err(); err != nil {
		if os.Getenv("IMAGED_TEST_REQUIRE_SERVICES") == "1" {
			t.Fatalf("Redis at %s does not answer: %v", u, err)
		}
		t.Skipf("SKIPPED: Redis at %s does not answer: %v; set IMAGED_TEST_REQUIRE_SERVICES=1 to make this a failure", u, err)
	}
	b := make([]byte, 6)
	rand.Read(b)
	prefix := "imaged-test-" + hex.EncodeToString(b) + ":"
	t.Cleanup(func() {
		keys, _ := c.Keys(context.Background(), prefix+"*").Result()
		if len(keys) > 0 {
			c.Del(context.Background(), keys...)
		}
	})
	return ratelimit.NewRedis(c, ratelimit.RedisOptions{Prefix: prefix, Timeout: 5 * time.Second, Log: quietLog()})
}
