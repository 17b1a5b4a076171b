// Package outbound is imaged's one HTTP client for reaching other hosts: URL sources and
// webhooks. It refuses loopback, private, link-local, carrier-grade NAT, multicast, reserved and
// documentation addresses, and the IPv6 forms that reach them (IPv4-mapped and -compatible,
// NAT64, 6to4, Teredo), unless an address range is allow-listed.
//
// The address is checked where it cannot be dodged: after the name is resolved and again in
// the dialer's Control hook, on the very address being connected to, right before the
// connection is made. Every redirect dials afresh, so every hop is checked; DNS rebinding gains
// nothing because the checked address is the one connected to. Proxies from the environment
// are ignored, since a proxy would connect on the client's behalf.
package outbound

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/imaged/imaged"
)

// Defaults of Config.
const (
	DefaultMaxRedirects   = 5
	DefaultConnectTimeout = 5 * time.Second
	DefaultTimeout        = 30 * time.Second
	DefaultMaxBytes       = 50 << 20
)

// Resolver looks host names up; *net.Resolver is one.
type Resolver interface {
	LookupNetIP(ctx context.Context, network, host string) ([]netip.Addr, error)
}

// Config is the client's policy and limits.
type Config struct {
	// Allow lists address ranges that may be reached although the policy refuses them (a
	// private image server, a test peer on loopback).
	Allow []netip.Prefix
	// AllowHosts, when not empty, is the only hosts that may be reached: names ("cdn.example.com")
	// or suffixes ("*.example.com", which does not match example.com itself).
	AllowHosts []string
	// MaxRedirects is how many redirects a request follows; 0 means DefaultMaxRedirects and a
	// negative number none.
	MaxRedirects int
	// ConnectTimeout bounds each connection attempt; Timeout a whole request, body included.
	ConnectTimeout time.Duration
	Timeout        time.Duration
	// MaxBytes bounds a body read by Fetch.
	MaxBytes int64
	// Resolver looks names up; net.DefaultResolver when nil.
	Resolver Resolver
	// Control, when set, runs after the policy's own check in the dialer's Control hook, right
	// before each connection; tests install one that fails anything off the machine.
	Control func(network, address string, c syscall.RawConn) error
	// UserAgent is sent with every request.
	UserAgent string
}

// Client makes outbound requests under the policy.
type Client struct {
	cfg    Config
	dialer *net.Dialer
	http   *http.Client
}

// New returns a client with cfg's policy.
func New(cfg Config) *Client {
	if cfg.MaxRedirects == 0 {
		cfg.MaxRedirects = DefaultMaxRedirects
	}
	cfg = imaged.WithDefaults(cfg, Config{
		ConnectTimeout: DefaultConnectTimeout,
		Timeout:        DefaultTimeout,
		MaxBytes:       DefaultMaxBytes,
		Resolver:       net.DefaultResolver,
		UserAgent:      "imaged",
	})
	c := &Client{cfg: cfg}
	c.dialer = &net.Dialer{Timeout: cfg.ConnectTimeout, KeepAlive: 30 * time.Second, Control: c.control}
	transport := &http.Transport{
		Proxy:                  nil,
		DialContext:            c.dial,
		ForceAttemptHTTP2:      true,
		MaxIdleConns:           64,
		MaxIdleConnsPerHost:    8,
		IdleConnTimeout:        90 * time.Second,
		TLSHandshakeTimeout:    cfg.ConnectTimeout,
		ResponseHeaderTimeout:  cfg.Timeout,
		MaxResponseHeaderBytes: 64 << 10,
	}
	c.http = &http.Client{Transport: transport, Timeout: cfg.Timeout, CheckRedirect: c.checkRedirect}
	return c
}

// HTTPClient returns the client for callers that build their own requests (webhooks). Every
// connection it makes, redirects included, is under the policy.
func (c *Client) HTTPClient() *http.Client { return c.http }

// permit checks one address against the allow-list and the policy.
func (c *Client) permit(host string, ip netip.Addr) error {
	ip = ip.WithZone("")
	for _, p := range c.cfg.Allow {
		if p.Contains(ip) || p.Contains(ip.Unmap()) {
			return nil
		}
	}
	if reason := Classify(ip); reason != "" {
		return &RefusedError{Host: host, Addr: ip.Unmap(), Reason: reason}
	}
	return nil
}

// control runs in the dialer right before each connect, on the address being connected to.
func (c *Client) control(network, address string, raw syscall.RawConn) error {
	ap, err := netip.ParseAddrPort(address)
	if err != nil {
		return &RefusedError{Host: address, Reason: "not an IP address and port"}
	}
	if err := c.permit("", ap.Addr()); err != nil {
		return err
	}
	if c.cfg.Control != nil {
		return c.cfg.Control(network, address, raw)
	}
	return nil
}

// dial resolves the host, skips the addresses the policy refuses and connects to the first
// permitted one that answers.
func (c *Client) dial(ctx context.Context, network, addr string) (net.Conn, error) {
	host, portStr, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, err
	}
	port, err := strconv.ParseUint(portStr, 10, 16)
	if err != nil {
		return nil, fmt.Errorf("bad port %q", portStr)
	}
	if err := c.checkHost(host); err != nil {
		return nil, err
	}
	var ips []netip.Addr
	if ip, err := netip.ParseAddr(host); err == nil {
		ips = []netip.Addr{ip}
	} else {
		ips, err = c.cfg.Resolver.LookupNetIP(ctx, "ip", host)
		if err != nil {
			return nil, &lookupError{host: host, err: err}
		}
	}
	var refused, failed error
	for _, ip := range ips {
		if err := c.permit(host, ip); err != nil {
			if refused == nil {
				refused = err
			}
			continue
		}
		conn, err := c.dialer.DialContext(ctx, network, netip.AddrPortFrom(ip.Unmap(), uint16(port)).String())
		if err == nil {
			return conn, nil
		}
		if failed == nil {
			failed = err
		}
	}
	if failed != nil {
		return nil, failed
	}
	if refused != nil {
		return nil, refused
	}
	return nil, &lookupError{host: host, err: errors.New("no address")}
}

type lookupError struct {
	host string
	err  error
}

func (e *lookupError) Error() string { return "looking up " + e.host + ": " + e.err.Error() }
func (e *lookupError) Unwrap() error { return e.err }

// Check refuses, before any connection, a URL whose scheme is not http or https, whose host is
// not allow-listed, or whose host is an address the policy refuses (in any notation).
func (c *Client) Check(u *url.URL) error {
	if u.Scheme != "http" && u.Scheme != "https" {
		return &RefusedError{Reason: fmt.Sprintf("only http and https URLs are fetched, not %q", u.Scheme)}
	}
	if u.Host == "" {
		return &RefusedError{Reason: "the URL has no host"}
	}
	if u.User != nil {
		return &RefusedError{Host: u.Hostname(), Reason: "URLs with credentials are not fetched"}
	}
	host := u.Hostname()
	if err := c.checkHost(host); err != nil {
		return err
	}
	if ip, err := netip.ParseAddr(host); err == nil {
		return c.permit(host, ip)
	}
	return nil
}

// checkHost applies the host allow-list and refuses IPv4 addresses in loose notations.
func (c *Client) checkHost(host string) error {
	if host == "" {
		return &RefusedError{Reason: "the URL has no host"}
	}
	if _, err := netip.ParseAddr(host); err != nil {
		if ip, ok := parseLooseIPv4(host); ok {
			return &RefusedError{Host: host, Reason: fmt.Sprintf("an IP address in a non-standard notation (%s); write addresses as a.b.c.d", ip)}
		}
	}
	if len(c.cfg.AllowHosts) == 0 {
		return nil
	}
	h := strings.ToLower(strings.TrimSuffix(host, "."))
	for _, a := range c.cfg.AllowHosts {
		a = strings.ToLower(a)
		if suffix, ok := strings.CutPrefix(a, "*"); ok {
			if strings.HasSuffix(h, suffix) && len(h) > len(suffix) {
				return nil
			}
		} else if h == a {
			return nil
		}
	}
	return &RefusedError{Host: host, Reason: "not on the list of hosts imaged may fetch from"}
}

func (c *Client) checkRedirect(req *http.Request, via []*http.Request) error {
	if c.cfg.MaxRedirects < 0 || len(via) > c.cfg.MaxRedirects {
		return &RefusedError{Reason: fmt.Sprintf("more than %d redirects", max(c.cfg.MaxRedirects, 0))}
	}
	return c.Check(req.URL)
}

// CheckURL applies the checks that need no connection to rawURL (scheme, host, credentials,
// address notation, the host allow-list, an address written in the URL), for a URL kept to be
// called later (a callback): EInvalid naming field when it could never be called.
func (c *Client) CheckURL(ctx context.Context, rawURL, field string) error {
	u, err := url.Parse(rawURL)
	if err != nil || !u.IsAbs() {
		return imaged.FieldErrorf(field, "%s must be an absolute http or https URL", field)
	}
	if err := c.Check(u); err != nil {
		return c.explain(ctx, field, err)
	}
	return nil
}

// Fetch GETs rawURL and returns its body, under the policy and within the timeout and byte
// limit. Its errors are for the person who sent the URL and name field: EInvalid for a URL
// that is refused or does not answer with 200, ETooLarge for a body over the limit.
func (c *Client) Fetch(ctx context.Context, rawURL, field string) ([]byte, error) {
	u, err := url.Parse(rawURL)
	if err != nil || !u.IsAbs() {
		return nil, imaged.FieldErrorf(field, "%s must be an absolute http or https URL", field)
	}
	if err := c.Check(u); err != nil {
		return nil, c.explain(ctx, field, err)
	}
	ctx, cancel := context.WithTimeout(ctx, c.cfg.Timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u.String(), nil)
	if err != nil {
		return nil, imaged.FieldErrorf(field, "%s must be an absolute http or https URL", field)
	}
	req.Header.Set("User-Agent", c.cfg.UserAgent)
	req.Header.Set("Accept", "image/*")
	resp, err := c.http.Do(req)
	if err != nil {
		return nil, c.explain(ctx, field, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, imaged.FieldErrorf(field, "%s answered %d %s", field, resp.StatusCode, http.StatusText(resp.StatusCode))
	}
	if resp.ContentLength > c.cfg.MaxBytes {
		return nil, &imaged.Error{Code: imaged.ETooLarge, Field: field,
			Message: fmt.Sprintf("%s is %d bytes; the limit is %d bytes", field, resp.ContentLength, c.cfg.MaxBytes)}
	}
	b, err := io.ReadAll(io.LimitReader(resp.Body, c.cfg.MaxBytes+1))
	if err != nil {
		return nil, c.explain(ctx, field, err)
	}
	if int64(len(b)) > c.cfg.MaxBytes {
		return nil, &imaged.Error{Code: imaged.ETooLarge, Field: field,
			Message: fmt.Sprintf("%s is over the limit of %d bytes", field, c.cfg.MaxBytes)}
	}
	return b, nil
}

// explain turns a failed fetch into a message that names the reason without internals: a
// refusal by its policy class, the address it concerned going to the server's log only.
func (c *Client) explain(ctx context.Context, field string, err error) error {
	var refused *RefusedError
	var lookup *lookupError
	var netErr net.Error
	switch {
	case errors.As(err, &refused):
		slog.WarnContext(ctx, "outbound URL refused", "field", field, "reason", refused.Error())
		return &imaged.Error{Code: imaged.EInvalid, Field: field, Message: field + " is refused: " + refused.Public(), Err: err}
	case errors.As(err, &lookup):
		return &imaged.Error{Code: imaged.EInvalid, Field: field, Message: fmt.Sprintf("%s: the host %s does not resolve", field, lookup.host), Err: err}
	case errors.Is(err, context.DeadlineExceeded) || (errors.As(err, &netErr) && netErr.Timeout()):
		return &imaged.Error{Code: imaged.EInvalid, Field: field, Message: fmt.Sprintf("%s did not answer within %s", field, c.cfg.Timeout), Err: err}
	case errors.Is(err, context.Canceled):
		return err
	}
	return &imaged.Error{Code: imaged.EInvalid, Field: field, Message: field + " could not be fetched: the connection failed", Err: err}
}
