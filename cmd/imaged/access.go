package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/imaged/imaged"
	"github.com/imaged/imaged/auth"
	imagedhttp "github.com/imaged/imaged/http"
	"github.com/imaged/imaged/outbound"
	"github.com/imaged/imaged/ratelimit"
	"github.com/imaged/imaged/redis"
	"github.com/imaged/imaged/signedurl"
)

// accessConfig is the settings of who may call imaged, how often, what it may reach and how
// its HTTP server protects itself. It is part of Config.
type accessConfig struct {
	Auth            string
	BootstrapAPIKey string
	MetricsAddr     string
	KeyRateLimit    int
	KeyBurst        int
	IPRateLimit     int
	IPBurst         int
	KeyConcurrency  int
	PipelineShare   int
	TrustedProxies  string

	SourceURLs             string
	OutboundAllow          string
	OutboundAllowHosts     string
	OutboundMaxRedirects   int
	OutboundConnectTimeout time.Duration
	OutboundTimeout        time.Duration
	OutboundMaxBytes       int64

	SigningKey   string
	SigningSalt  string
	SignedMaxAge time.Duration

	ReadHeaderTimeout time.Duration
	ReadTimeout       time.Duration
	WriteTimeout      time.Duration
	IdleTimeout       time.Duration
	MaxHeaderBytes    int

	// Parsed by validateAccess.
	trustedProxies []netip.Prefix
	outboundAllow  []netip.Prefix
}

func accessSettings(c *Config) []setting {
	str := func(p *string, def string) func(*flag.FlagSet, string, string) {
		return func(fs *flag.FlagSet, n, h string) { fs.StringVar(p, n, def, h) }
	}
	integer := func(p *int, def int) func(*flag.FlagSet, string, string) {
		return func(fs *flag.FlagSet, n, h string) { fs.IntVar(p, n, def, h) }
	}
	dur := func(p *time.Duration, def time.Duration) func(*flag.FlagSet, string, string) {
		return func(fs *flag.FlagSet, n, h string) { fs.DurationVar(p, n, def, h) }
	}
	return []setting{
		{"auth", "IMAGED_AUTH", "on: every API request needs an API key; off: none does (only where nobody else can reach the port)", str(&c.Auth, "on")},
		{"bootstrap-api-key", "IMAGED_BOOTSTRAP_API_KEY", "an API key (imk_…) recorded as an admin key at start-up when absent; unset: the first start creates one and logs it once", str(&c.BootstrapAPIKey, "")},
		{"metrics-addr", "IMAGED_METRICS_ADDR", "serve /metrics on this address (e.g. :9090) instead of the API's", str(&c.MetricsAddr, "")},
		{"rate-limit-key", "IMAGED_RATE_LIMIT_KEY", "requests per minute of an API key whose record sets none; 0 = no limit", integer(&c.KeyRateLimit, 1000)},
		{"rate-limit-key-burst", "IMAGED_RATE_LIMIT_KEY_BURST", "most requests in any one second of such a key; 0 = no limit", integer(&c.KeyBurst, 50)},
		{"rate-limit-ip", "IMAGED_RATE_LIMIT_IP", "requests per minute per client address without a key (signed URLs, failed authentication); 0 = no limit", integer(&c.IPRateLimit, 60)},
		{"rate-limit-ip-burst", "IMAGED_RATE_LIMIT_IP_BURST", "most such requests in any one second; 0 = no limit", integer(&c.IPBurst, 10)},
		{"key-concurrency", "IMAGED_KEY_CONCURRENCY", "requests at once per API key (or client address) in one process; 0 = no limit", integer(&c.KeyConcurrency, 32)},
		{"pipeline-share", "IMAGED_PIPELINE_SHARE", "synchronous pipelines one key (or client address) runs at once; 0 = half of IMAGED_MAX_INFLIGHT", integer(&c.PipelineShare, 0)},
		{"trusted-proxies", "IMAGED_TRUSTED_PROXIES", "CIDRs of proxies whose X-Forwarded-For names the client, comma-separated", str(&c.TrustedProxies, "")},
		{"source-urls", "IMAGED_SOURCE_URLS", "on: /v1/process and /v1/tasks take source_url; off: they refuse it", str(&c.SourceURLs, "on")},
		{"outbound-allow", "IMAGED_OUTBOUND_ALLOW", "CIDRs that URL sources and webhooks may reach although private or special, comma-separated", str(&c.OutboundAllow, "")},
		{"outbound-allow-hosts", "IMAGED_OUTBOUND_ALLOW_HOSTS", "when set, the only hosts URL sources and webhooks may reach (names or *.suffix, comma-separated)", str(&c.OutboundAllowHosts, "")},
		{"outbound-max-redirects", "IMAGED_OUTBOUND_MAX_REDIRECTS", "redirects an outbound request follows", integer(&c.OutboundMaxRedirects, outbound.DefaultMaxRedirects)},
		{"outbound-connect-timeout", "IMAGED_OUTBOUND_CONNECT_TIMEOUT", "longest wait for an outbound connection", dur(&c.OutboundConnectTimeout, outbound.DefaultConnectTimeout)},
		{"outbound-timeout", "IMAGED_OUTBOUND_TIMEOUT", "longest outbound request, body included", dur(&c.OutboundTimeout, outbound.DefaultTimeout)},
		{"outbound-max-bytes", "IMAGED_OUTBOUND_MAX_BYTES", "largest body fetched from a source_url; 0 = IMAGED_MAX_UPLOAD_BYTES", func(fs *flag.FlagSet, n, h string) {
			fs.Int64Var(&c.OutboundMaxBytes, n, 0, h)
		}},
		{"signing-key", "IMAGED_SIGNING_KEY", "hex keys (32 bytes or more) of signed image URLs, comma-separated, the first signs; default: generated once into DATA_DIR", str(&c.SigningKey, "")},
		{"signing-salt", "IMAGED_SIGNING_SALT", "hex salts of signed image URLs, one per key", str(&c.SigningSalt, "")},
		{"signed-max-age", "IMAGED_SIGNED_MAX_AGE", "Cache-Control max-age of signed image URLs", dur(&c.SignedMaxAge, 365*24*time.Hour)},
		{"read-header-timeout", "IMAGED_READ_HEADER_TIMEOUT", "longest wait for a request's headers", dur(&c.ReadHeaderTimeout, 10*time.Second)},
		{"read-timeout", "IMAGED_READ_TIMEOUT", "longest read of a whole request, body included", dur(&c.ReadTimeout, 5*time.Minute)},
		{"write-timeout", "IMAGED_WRITE_TIMEOUT", "longest time from the end of a request's headers to the end of its answer", dur(&c.WriteTimeout, 5*time.Minute)},
		{"idle-timeout", "IMAGED_IDLE_TIMEOUT", "how long an idle keep-alive connection stays open", dur(&c.IdleTimeout, 2*time.Minute)},
		{"max-header-bytes", "IMAGED_MAX_HEADER_BYTES", "largest request header block", integer(&c.MaxHeaderBytes, 64<<10)},
	}
}

func (c *Config) validateAccess() error {
	checks := []struct {
		ok      bool
		setting string
		msg     string
	}{
		{oneOf(c.Auth, "on", "off"), "IMAGED_AUTH", "must be on or off"},
		{oneOf(c.SourceURLs, "on", "off"), "IMAGED_SOURCE_URLS", "must be on or off"},
		{c.KeyRateLimit >= 0, "IMAGED_RATE_LIMIT_KEY", "must not be negative"},
		{c.KeyBurst >= 0, "IMAGED_RATE_LIMIT_KEY_BURST", "must not be negative"},
		{c.IPRateLimit >= 0, "IMAGED_RATE_LIMIT_IP", "must not be negative"},
		{c.IPBurst >= 0, "IMAGED_RATE_LIMIT_IP_BURST", "must not be negative"},
		{c.KeyConcurrency >= 0, "IMAGED_KEY_CONCURRENCY", "must not be negative"},
		{c.PipelineShare >= 0, "IMAGED_PIPELINE_SHARE", "must not be negative"},
		{c.OutboundMaxRedirects >= 0 && c.OutboundMaxRedirects <= 20, "IMAGED_OUTBOUND_MAX_REDIRECTS", "must be between 0 and 20"},
		{c.OutboundConnectTimeout > 0, "IMAGED_OUTBOUND_CONNECT_TIMEOUT", "must be positive"},
		{c.OutboundTimeout > 0, "IMAGED_OUTBOUND_TIMEOUT", "must be positive"},
		{c.OutboundMaxBytes >= 0, "IMAGED_OUTBOUND_MAX_BYTES", "must not be negative"},
		{c.SignedMaxAge >= 0, "IMAGED_SIGNED_MAX_AGE", "must not be negative"},
		{c.ReadHeaderTimeout > 0, "IMAGED_READ_HEADER_TIMEOUT", "must be positive"},
		{c.ReadTimeout > 0, "IMAGED_READ_TIMEOUT", "must be positive"},
		{c.WriteTimeout > 0, "IMAGED_WRITE_TIMEOUT", "must be positive"},
		{c.IdleTimeout > 0, "IMAGED_IDLE_TIMEOUT", "must be positive"},
		{c.MaxHeaderBytes >= 4096 && c.MaxHeaderBytes <= 1<<20, "IMAGED_MAX_HEADER_BYTES", "must be between 4096 and 1048576"},
	}
	for _, ch := range checks {
		if !ch.ok {
			return fmt.Errorf("setting %s: %s", ch.setting, ch.msg)
		}
	}
	var err error
	if c.trustedProxies, err = parsePrefixes(c.TrustedProxies); err != nil {
		return fmt.Errorf("setting IMAGED_TRUSTED_PROXIES: %w", err)
	}
	if c.outboundAllow, err = parsePrefixes(c.OutboundAllow); err != nil {
		return fmt.Errorf("setting IMAGED_OUTBOUND_ALLOW: %w", err)
	}
	if c.BootstrapAPIKey != "" {
		if _, _, ok := auth.Parse(c.BootstrapAPIKey); !ok {
			return errors.New("setting IMAGED_BOOTSTRAP_API_KEY: not an imaged API key (imk_<prefix>_<secret>; `imaged apikey create` makes one)")
		}
	}
	if c.SigningKey != "" {
		keys, err := signedurl.ParseKeys(c.SigningKey, c.SigningSalt)
		if err == nil {
			_, err = signedurl.New(keys)
		}
		if err != nil {
			return fmt.Errorf("setting IMAGED_SIGNING_KEY: %w", err)
		}
	} else if c.SigningSalt != "" {
		return errors.New("setting IMAGED_SIGNING_SALT: needs IMAGED_SIGNING_KEY")
	}
	return nil
}

// parsePrefixes reads comma-separated CIDRs; a bare address is a /32 or /128.
func parsePrefixes(s string) ([]netip.Prefix, error) {
	var out []netip.Prefix
	for _, f := range strings.Split(s, ",") {
		f = strings.TrimSpace(f)
		if f == "" {
			continue
		}
		if !strings.Contains(f, "/") {
			a, err := netip.ParseAddr(f)
			if err != nil {
				return nil, fmt.Errorf("%q is not an address or CIDR", f)
			}
			out = append(out, netip.PrefixFrom(a, a.BitLen()))
			continue
		}
		p, err := netip.ParsePrefix(f)
		if err != nil {
			return nil, fmt.Errorf("%q is not a CIDR", f)
		}
		out = append(out, p.Masked())
	}
	return out, nil
}

func splitComma(s string) []string {
	var out []string
	for _, f := range strings.Split(s, ",") {
		if f = strings.TrimSpace(f); f != "" {
			out = append(out, f)
		}
	}
	return out
}

// access is what the API needs to decide who may do what.
type access struct {
	auth    imagedhttp.Authenticator
	limiter imaged.RateLimiter
	fetcher *outbound.Client
	signer  *signedurl.Signer
}

// openAccess builds the authenticator (making the first key when there is none), the rate
// limiter (shared through Redis when there is one), the outbound client and the URL signer.
func openAccess(ctx context.Context, cfg *Config, a *adapters, log *slog.Logger) (*access, error) {
	acc := &access{fetcher: newOutbound(cfg)}
	if cfg.Auth == "off" {
		log.Warn("AUTHENTICATION IS OFF (IMAGED_AUTH=off): anyone who reaches this port can use the API; never run this way where others can reach it")
	} else {
		if a.keys == nil {
			return nil, errors.New("setting IMAGED_DATABASE_URL: this database keeps no API keys; set IMAGED_AUTH=off to run without them")
		}
		token, err := auth.Bootstrap(ctx, a.keys, cfg.BootstrapAPIKey)
		if err != nil {
			return nil, fmt.Errorf("setting IMAGED_BOOTSTRAP_API_KEY: %w", err)
		}
		if token != "" {
			log.Warn("no API key existed, so an admin key was created; it is shown this once, store it now "+
				"(send it as X-API-Key or Authorization: Bearer; manage keys with `imaged apikey`)", "api_key", token)
		}
		acc.auth = auth.New(a.keys, auth.Options{Log: log})
	}
	if cfg.RedisURL != "" {
		// A pool of its own, with a longer timeout than the cache's: under load, a limiter that
		// gives up on Redis falls back to per-process counting, which is less exact.
		c, err := redis.Open(ctx, cfg.RedisURL, redis.Options{Timeout: time.Second})
		if err != nil {
			return nil, fmt.Errorf("setting IMAGED_REDIS_URL: %w", err)
		}
		a.closers = append(a.closers, c)
		acc.limiter = ratelimit.NewRedis(c.Redis(), ratelimit.RedisOptions{Prefix: c.KeyPrefix() + "ratelimit:",
			Timeout: time.Second, Log: log})
	} else {
		acc.limiter = ratelimit.NewMemory()
	}
	signer, err := newSigner(cfg)
	if err != nil {
		return nil, err
	}
	acc.signer = signer
	return acc, nil
}

// apply puts the access settings into the API's configuration and dependencies.
func (acc *access) apply(cfg *Config, hc *imagedhttp.Config, deps *imagedhttp.Deps) {
	hc.KeyLimit = imaged.RateLimit{PerMinute: cfg.KeyRateLimit, Burst: cfg.KeyBurst}
	hc.IPLimit = imaged.RateLimit{PerMinute: cfg.IPRateLimit, Burst: cfg.IPBurst}
	hc.Concurrency = cfg.KeyConcurrency
	hc.PipelineShare = cfg.PipelineShare
	hc.TrustedProxies = cfg.trustedProxies
	hc.MetricsApart = cfg.MetricsAddr != ""
	hc.SignedMaxAge = cfg.SignedMaxAge
	if acc.auth != nil {
		deps.Auth = acc.auth
	}
	deps.Limiter = acc.limiter
	if cfg.SourceURLs == "on" {
		deps.Fetcher = acc.fetcher
	}
	deps.Signer = acc.signer
}

// newOutbound is the one client for URL sources and webhooks.
func newOutbound(cfg *Config) *outbound.Client {
	maxBytes := cfg.OutboundMaxBytes
	if maxBytes == 0 {
		maxBytes = cfg.MaxUploadBytes
	}
	redirects := cfg.OutboundMaxRedirects
	if redirects == 0 {
		redirects = -1 // none
	}
	return outbound.New(outbound.Config{
		Allow: cfg.outboundAllow, AllowHosts: splitComma(cfg.OutboundAllowHosts), MaxRedirects: redirects,
		ConnectTimeout: cfg.OutboundConnectTimeout, Timeout: cfg.OutboundTimeout, MaxBytes: maxBytes,
		UserAgent: "imaged/" + versionString(),
	})
}

// newSigner returns the signer of /i/ URLs: the configured keys, or a key and salt generated
// once and kept in the data directory.
func newSigner(cfg *Config) (*signedurl.Signer, error) {
	if cfg.SigningKey != "" {
		keys, err := signedurl.ParseKeys(cfg.SigningKey, cfg.SigningSalt)
		if err != nil {
			return nil, fmt.Errorf("setting IMAGED_SIGNING_KEY: %w", err)
		}
		return signedurl.New(keys)
	}
	path := filepath.Join(cfg.DataDir, "signing-key")
	if _, err := os.Stat(path); errors.Is(err, os.ErrNotExist) {
		if err := writeSigningKey(cfg.DataDir, path); err != nil {
			return nil, err
		}
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("reading the URL signing key: %w", err)
	}
	key, salt, _ := strings.Cut(strings.TrimSpace(string(b)), ":")
	keys, err := signedurl.ParseKeys(key, salt)
	if err == nil {
		var s *signedurl.Signer
		if s, err = signedurl.New(keys); err == nil {
			return s, nil
		}
	}
	return nil, fmt.Errorf("the URL signing key in %s is damaged (%v); remove it to make a new one, or set IMAGED_SIGNING_KEY", path, err)
}

// writeSigningKey creates the key file once: it is linked into place, so of several processes
// starting together exactly one key wins and all of them read it.
func writeSigningKey(dir, path string) error {
	var k [64]byte
	if _, err := rand.Read(k[:]); err != nil {
		return err
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("setting IMAGED_DATA_DIR: %w", err)
	}
	tmp, err := os.CreateTemp(dir, ".signing-key-")
	if err != nil {
		return fmt.Errorf("writing the URL signing key: %w", err)
	}
	defer os.Remove(tmp.Name())
	_, err = fmt.Fprintf(tmp, "%s:%s\n", hex.EncodeToString(k[:32]), hex.EncodeToString(k[32:]))
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		if err = os.Chmod(tmp.Name(), 0o600); err == nil {
			err = os.Link(tmp.Name(), path)
		}
	}
	if err != nil && !errors.Is(err, os.ErrExist) {
		return fmt.Errorf("writing the URL signing key: %w", err)
	}
	return nil
}
