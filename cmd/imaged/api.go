package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"path/filepath"
	"time"

	"github.com/imaged/imaged"
	"github.com/imaged/imaged/auth"
	imagedhttp "github.com/imaged/imaged/http"
	"github.com/imaged/imaged/outbound"
	"github.com/imaged/imaged/prom"
	"github.com/imaged/imaged/ratelimit"
	"github.com/imaged/imaged/redis"
	"github.com/imaged/imaged/settings"
	"github.com/imaged/imaged/signedurl"
	"github.com/imaged/imaged/vips"
)

// newAPI builds the API over the backends: the authenticator (making the first key when
// there is none), the rate limiter (shared through Redis when there is one), the outbound
// client of URL sources and the URL signer, with the settings of each.
func newAPI(ctx context.Context, cfg *Config, a *adapters, processor imaged.Processor, metrics *prom.Metrics, log *slog.Logger) (http.Handler, error) {
	hc := imagedhttp.Config{
		Version: versionString(), Limits: cfg.Limits(), MaxAttempts: cfg.MaxAttempts,
		MaxHeaderBytes: cfg.MaxHeaderBytes, MaxInflight: cfg.MaxInflight, MaxWaiting: cfg.MaxWaiting, URLExpiry: cfg.URLExpiry,
		KeyLimit:    imaged.RateLimit{PerMinute: cfg.KeyRateLimit, Burst: cfg.KeyBurst},
		IPLimit:     imaged.RateLimit{PerMinute: cfg.IPRateLimit, Burst: cfg.IPBurst},
		Concurrency: cfg.KeyConcurrency, TrustedProxies: cfg.TrustedPrefixes,
		MetricsApart: cfg.MetricsAddr != "", SignedMaxAge: cfg.SignedMaxAge,
		OutputCache: cfg.ResultCache == "on", OutputRetention: cfg.Retention.Results,
		Engine: versionString() + " libvips " + vips.LibraryVersion(),
	}
	deps := imagedhttp.Deps{Store: a.store, Outbox: a.outbox, Queue: a.queue, Blobs: a.blobs, Processor: processor,
		Events: a.events, Metrics: metrics, Log: log, Health: a.health(), Shutdown: ctx.Done()}
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
		deps.Auth = auth.New(a.keys, auth.Options{Log: log})
	}
	if cfg.RedisURL != "" {
		// A pool of its own, with a longer timeout than the cache's: under load, a limiter that
		// gives up on Redis falls back to per-process counting, which is less exact.
		c, err := redis.Open(ctx, cfg.RedisURL, redis.Options{Timeout: time.Second})
		if err != nil {
			return nil, fmt.Errorf("setting IMAGED_REDIS_URL: %w", err)
		}
		a.closers = append(a.closers, c)
		deps.Limiter = ratelimit.NewRedis(c.Redis(), ratelimit.RedisOptions{Prefix: c.KeyPrefix() + "ratelimit:",
			Timeout: time.Second, Log: log})
	} else {
		deps.Limiter = ratelimit.NewMemory()
	}
	deps.URLs = newOutbound(cfg) // callback_url's checks at submit
	if cfg.SourceURLs == "on" {
		deps.Fetcher = newOutbound(cfg)
	}
	var err error
	if deps.Signer, err = newSigner(cfg); err != nil {
		return nil, err
	}
	return imagedhttp.NewServer(hc, deps), nil
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
		Allow: cfg.OutboundPrefixes, AllowHosts: settings.List(cfg.OutboundAllowHosts), MaxRedirects: redirects,
		ConnectTimeout: cfg.OutboundConnectTimeout, Timeout: cfg.OutboundTimeout, MaxBytes: maxBytes,
		UserAgent: "imaged/" + versionString(),
	})
}

// newSigner returns the signer of /i/ URLs: the configured keys, or a key and salt generated
// once and kept in the data directory.
func newSigner(cfg *Config) (*signedurl.Signer, error) {
	if cfg.SigningKey != "" {
		s, err := signedurl.FromHex(cfg.SigningKey, cfg.SigningSalt)
		if err != nil {
			return nil, fmt.Errorf("setting IMAGED_SIGNING_KEY: %w", err)
		}
		return s, nil
	}
	b, _, err := settings.FileSecret(cfg.DataDir, "signing-key", "the URL signing key", signedurl.KeyFileSize, signedurl.KeyFile, nil)
	if err != nil {
		return nil, err
	}
	s, err := signedurl.FromKeyFile(b)
	if err != nil {
		return nil, fmt.Errorf("the URL signing key in %s is damaged (%v); remove it to make a new one, or set IMAGED_SIGNING_KEY",
			filepath.Join(cfg.DataDir, "signing-key"), err)
	}
	return s, nil
}
