package main

import (
	"errors"
	"fmt"
	"net/netip"
	"strings"
	"time"

	"github.com/imaged/imaged/auth"
	"github.com/imaged/imaged/outbound"
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
	return []setting{
		{"auth", "IMAGED_AUTH", "on: every API request needs an API key; off: none does (only where nobody else can reach the port)", stringFlag(&c.Auth, "on")},
		{"bootstrap-api-key", "IMAGED_BOOTSTRAP_API_KEY", "an API key (imk_…) recorded as an admin key at start-up when absent; unset: the first start creates one and logs it once", stringFlag(&c.BootstrapAPIKey, "")},
		{"metrics-addr", "IMAGED_METRICS_ADDR", "serve /metrics on this address (e.g. :9090) instead of the API's", stringFlag(&c.MetricsAddr, "")},
		{"rate-limit-key", "IMAGED_RATE_LIMIT_KEY", "requests per minute of an API key whose record sets none; 0 = no limit", intFlag(&c.KeyRateLimit, 1000)},
		{"rate-limit-key-burst", "IMAGED_RATE_LIMIT_KEY_BURST", "most requests in any one second of such a key; 0 = no limit", intFlag(&c.KeyBurst, 50)},
		{"rate-limit-ip", "IMAGED_RATE_LIMIT_IP", "requests per minute per client address without a key (signed URLs, failed authentication); 0 = no limit", intFlag(&c.IPRateLimit, 60)},
		{"rate-limit-ip-burst", "IMAGED_RATE_LIMIT_IP_BURST", "most such requests in any one second; 0 = no limit", intFlag(&c.IPBurst, 10)},
		{"key-concurrency", "IMAGED_KEY_CONCURRENCY", "requests at once per API key (or client address) in one process; 0 = no limit", intFlag(&c.KeyConcurrency, 32)},
		{"pipeline-share", "IMAGED_PIPELINE_SHARE", "synchronous pipelines one key (or client address) runs at once; 0 = half of IMAGED_MAX_INFLIGHT", intFlag(&c.PipelineShare, 0)},
		{"trusted-proxies", "IMAGED_TRUSTED_PROXIES", "CIDRs of proxies whose X-Forwarded-For names the client, comma-separated", stringFlag(&c.TrustedProxies, "")},
		{"source-urls", "IMAGED_SOURCE_URLS", "on: /v1/process and /v1/tasks take source_url; off: they refuse it", stringFlag(&c.SourceURLs, "on")},
		{"outbound-allow", "IMAGED_OUTBOUND_ALLOW", "CIDRs that URL sources and webhooks may reach although private or special, comma-separated", stringFlag(&c.OutboundAllow, "")},
		{"outbound-allow-hosts", "IMAGED_OUTBOUND_ALLOW_HOSTS", "when set, the only hosts URL sources and webhooks may reach (names or *.suffix, comma-separated)", stringFlag(&c.OutboundAllowHosts, "")},
		{"outbound-max-redirects", "IMAGED_OUTBOUND_MAX_REDIRECTS", "redirects an outbound request follows", intFlag(&c.OutboundMaxRedirects, outbound.DefaultMaxRedirects)},
		{"outbound-connect-timeout", "IMAGED_OUTBOUND_CONNECT_TIMEOUT", "longest wait for an outbound connection", durationFlag(&c.OutboundConnectTimeout, outbound.DefaultConnectTimeout)},
		{"outbound-timeout", "IMAGED_OUTBOUND_TIMEOUT", "longest outbound request, body included", durationFlag(&c.OutboundTimeout, outbound.DefaultTimeout)},
		{"outbound-max-bytes", "IMAGED_OUTBOUND_MAX_BYTES", "largest body fetched from a source_url; 0 = IMAGED_MAX_UPLOAD_BYTES", int64Flag(&c.OutboundMaxBytes, 0)},
		{"signing-key", "IMAGED_SIGNING_KEY", "hex keys (32 bytes or more) of signed image URLs, comma-separated, the first signs; default: generated once into DATA_DIR", stringFlag(&c.SigningKey, "")},
		{"signing-salt", "IMAGED_SIGNING_SALT", "hex salts of signed image URLs, one per key", stringFlag(&c.SigningSalt, "")},
		{"signed-max-age", "IMAGED_SIGNED_MAX_AGE", "Cache-Control max-age of signed image URLs", durationFlag(&c.SignedMaxAge, 365*24*time.Hour)},
		{"read-header-timeout", "IMAGED_READ_HEADER_TIMEOUT", "longest wait for a request's headers", durationFlag(&c.ReadHeaderTimeout, 10*time.Second)},
		{"read-timeout", "IMAGED_READ_TIMEOUT", "longest read of a whole request, body included", durationFlag(&c.ReadTimeout, 5*time.Minute)},
		{"write-timeout", "IMAGED_WRITE_TIMEOUT", "longest time from the end of a request's headers to the end of its answer", durationFlag(&c.WriteTimeout, 5*time.Minute)},
		{"idle-timeout", "IMAGED_IDLE_TIMEOUT", "how long an idle keep-alive connection stays open", durationFlag(&c.IdleTimeout, 2*time.Minute)},
		{"max-header-bytes", "IMAGED_MAX_HEADER_BYTES", "largest request header block", intFlag(&c.MaxHeaderBytes, 64<<10)},
	}
}

func (c *Config) validateAccess() error {
	if err := firstFailure([]check{
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
	}); err != nil {
		return err
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
		if _, err := signedurl.FromHex(c.SigningKey, c.SigningSalt); err != nil {
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
