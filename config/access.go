package config

import (
	"errors"
	"fmt"
	"net/netip"
	"time"

	"github.com/imaged/imaged/auth"
	"github.com/imaged/imaged/outbound"
	"github.com/imaged/imaged/settings"
	"github.com/imaged/imaged/signedurl"
)

// accessConfig is the settings of who may call imaged, how often, what it may reach and how
// its HTTP server protects itself. It is part of Config.
type accessConfig struct {
	Auth            string
	BootstrapAPIKey string
	MetricsAddr     string
	MetricsTenants  int
	KeyRateLimit    int
	KeyBurst        int
	IPRateLimit     int
	IPBurst         int
	KeyConcurrency  int
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

	// Parsed by validation: IMAGED_TRUSTED_PROXIES and IMAGED_OUTBOUND_ALLOW.
	TrustedPrefixes  []netip.Prefix
	OutboundPrefixes []netip.Prefix
}

func accessSettings(c *Config) []settings.Setting {
	return []settings.Setting{
		settings.New("auth", "IMAGED_AUTH", "on: every API request needs an API key; off: none does (only where nobody else can reach the port)", settings.String(&c.Auth, "on")),
		settings.New("bootstrap-api-key", "IMAGED_BOOTSTRAP_API_KEY", "an API key (imk_…) recorded as an admin key at start-up when absent; unset: the first start creates one and logs it once", settings.String(&c.BootstrapAPIKey, "")),
		settings.New("metrics-addr", "IMAGED_METRICS_ADDR", "serve /metrics on this address (e.g. :9090) instead of the API's", settings.String(&c.MetricsAddr, "")),
		settings.New("metrics-max-tenants", "IMAGED_METRICS_MAX_TENANTS", "distinct tenant label values on the request and task counters; the rest count as other (0 = 50)", settings.Int(&c.MetricsTenants, 50)),
		settings.New("rate-limit-key", "IMAGED_RATE_LIMIT_KEY", "requests per minute of an API key whose record sets none; 0 = no limit", settings.Int(&c.KeyRateLimit, 0)),
		settings.New("rate-limit-key-burst", "IMAGED_RATE_LIMIT_KEY_BURST", "most requests in any one second of such a key; 0 = no limit", settings.Int(&c.KeyBurst, 0)),
		settings.New("rate-limit-ip", "IMAGED_RATE_LIMIT_IP", "requests per minute per client address without a key (signed URLs, failed authentication); 0 = no limit", settings.Int(&c.IPRateLimit, 60)),
		settings.New("rate-limit-ip-burst", "IMAGED_RATE_LIMIT_IP_BURST", "most such requests in any one second; 0 = no limit", settings.Int(&c.IPBurst, 10)),
		settings.New("key-concurrency", "IMAGED_KEY_CONCURRENCY", "requests at once per API key (or client address) in one process; 0 = no limit", settings.Int(&c.KeyConcurrency, 32)),
		settings.New("trusted-proxies", "IMAGED_TRUSTED_PROXIES", "CIDRs of proxies whose X-Forwarded-For names the client, comma-separated", settings.String(&c.TrustedProxies, "")),
		settings.New("source-urls", "IMAGED_SOURCE_URLS", "on: /v1/process and /v1/tasks take source_url; off: they refuse it", settings.String(&c.SourceURLs, "on")),
		settings.New("outbound-allow", "IMAGED_OUTBOUND_ALLOW", "CIDRs that URL sources and webhooks may reach although private or special, comma-separated", settings.String(&c.OutboundAllow, "")),
		settings.New("outbound-allow-hosts", "IMAGED_OUTBOUND_ALLOW_HOSTS", "when set, the only hosts URL sources and webhooks may reach (names or *.suffix, comma-separated)", settings.String(&c.OutboundAllowHosts, "")),
		settings.New("outbound-max-redirects", "IMAGED_OUTBOUND_MAX_REDIRECTS", "redirects an outbound request follows", settings.Int(&c.OutboundMaxRedirects, outbound.DefaultMaxRedirects)),
		settings.New("outbound-connect-timeout", "IMAGED_OUTBOUND_CONNECT_TIMEOUT", "longest wait for an outbound connection", settings.Duration(&c.OutboundConnectTimeout, outbound.DefaultConnectTimeout)),
		settings.New("outbound-timeout", "IMAGED_OUTBOUND_TIMEOUT", "longest outbound request, body included", settings.Duration(&c.OutboundTimeout, outbound.DefaultTimeout)),
		settings.New("outbound-max-bytes", "IMAGED_OUTBOUND_MAX_BYTES", "largest body fetched from a source_url; 0 = IMAGED_MAX_UPLOAD_BYTES", settings.Int64(&c.OutboundMaxBytes, 0)),
		settings.New("signing-key", "IMAGED_SIGNING_KEY", "hex keys (32 bytes or more) of signed image URLs, comma-separated, the first signs; default: generated once into DATA_DIR", settings.String(&c.SigningKey, "")),
		settings.New("signing-salt", "IMAGED_SIGNING_SALT", "hex salts of signed image URLs, one per key", settings.String(&c.SigningSalt, "")),
		settings.New("signed-max-age", "IMAGED_SIGNED_MAX_AGE", "Cache-Control max-age of signed image URLs", settings.Duration(&c.SignedMaxAge, 365*24*time.Hour)),
		settings.New("read-header-timeout", "IMAGED_READ_HEADER_TIMEOUT", "longest wait for a request's headers", settings.Duration(&c.ReadHeaderTimeout, 10*time.Second)),
		settings.New("read-timeout", "IMAGED_READ_TIMEOUT", "longest read of a whole request, body included", settings.Duration(&c.ReadTimeout, 5*time.Minute)),
		settings.New("write-timeout", "IMAGED_WRITE_TIMEOUT", "longest time from the end of a request's headers to the end of its answer", settings.Duration(&c.WriteTimeout, 5*time.Minute)),
		settings.New("idle-timeout", "IMAGED_IDLE_TIMEOUT", "how long an idle keep-alive connection stays open", settings.Duration(&c.IdleTimeout, 2*time.Minute)),
		settings.New("max-header-bytes", "IMAGED_MAX_HEADER_BYTES", "largest request header block", settings.Int(&c.MaxHeaderBytes, 64<<10)),
	}
}

func (c *Config) validateAccess() error {
	if err := settings.FirstFailure([]settings.Check{
		settings.Rule(settings.OneOf(c.Auth, "on", "off"), "IMAGED_AUTH", "must be on or off"),
		settings.Rule(settings.OneOf(c.SourceURLs, "on", "off"), "IMAGED_SOURCE_URLS", "must be on or off"),
		settings.Rule(c.KeyRateLimit >= 0, "IMAGED_RATE_LIMIT_KEY", "must not be negative"),
		settings.Rule(c.KeyBurst >= 0, "IMAGED_RATE_LIMIT_KEY_BURST", "must not be negative"),
		settings.Rule(c.IPRateLimit >= 0, "IMAGED_RATE_LIMIT_IP", "must not be negative"),
		settings.Rule(c.IPBurst >= 0, "IMAGED_RATE_LIMIT_IP_BURST", "must not be negative"),
		settings.Rule(c.KeyConcurrency >= 0, "IMAGED_KEY_CONCURRENCY", "must not be negative"),
		settings.Rule(c.OutboundMaxRedirects >= 0 && c.OutboundMaxRedirects <= 20, "IMAGED_OUTBOUND_MAX_REDIRECTS", "must be between 0 and 20"),
		settings.Rule(c.OutboundConnectTimeout > 0, "IMAGED_OUTBOUND_CONNECT_TIMEOUT", "must be positive"),
		settings.Rule(c.OutboundTimeout > 0, "IMAGED_OUTBOUND_TIMEOUT", "must be positive"),
		settings.Rule(c.OutboundMaxBytes >= 0, "IMAGED_OUTBOUND_MAX_BYTES", "must not be negative"),
		settings.Rule(c.SignedMaxAge >= 0, "IMAGED_SIGNED_MAX_AGE", "must not be negative"),
		settings.Rule(c.ReadHeaderTimeout > 0, "IMAGED_READ_HEADER_TIMEOUT", "must be positive"),
		settings.Rule(c.ReadTimeout > 0, "IMAGED_READ_TIMEOUT", "must be positive"),
		settings.Rule(c.WriteTimeout > 0, "IMAGED_WRITE_TIMEOUT", "must be positive"),
		settings.Rule(c.IdleTimeout > 0, "IMAGED_IDLE_TIMEOUT", "must be positive"),
		settings.Rule(c.MaxHeaderBytes >= 4096 && c.MaxHeaderBytes <= 1<<20, "IMAGED_MAX_HEADER_BYTES", "must be between 4096 and 1048576"),
	}); err != nil {
		return err
	}
	var err error
	if c.TrustedPrefixes, err = settings.Prefixes(c.TrustedProxies); err != nil {
		return fmt.Errorf("setting IMAGED_TRUSTED_PROXIES: %w", err)
	}
	if c.OutboundPrefixes, err = settings.Prefixes(c.OutboundAllow); err != nil {
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
