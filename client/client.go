// Package client is a Go client of the imaged HTTP API: uploads, synchronous pipelines, tasks,
// batches, OCR and detection, live progress over Server-Sent Events, and the health probes.
//
// The wire types are the service's own (imaged.Image, imaged.Task, imaged.Op, imaged.Event …),
// so a value reads the same on both sides. Every call takes a context; calls that are not
// streams are also bounded by the client's timeout (WithTimeout). An answer other than 2xx is an
// *Error carrying the API's JSON error body. A Client holds no state but its settings and its
// HTTP client, and is safe for concurrent use.
//
//	c, err := client.New("http://localhost:8000", client.WithKey(os.Getenv("IMAGED_KEY")))
//	img, err := c.UploadFile(ctx, "photo.jpg")
//	out, err := c.Process(ctx, client.ProcessRequest{ImageID: img.ID, Ops: ops})
package client

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"
)

// DefaultTimeout bounds each call but streams unless WithTimeout says otherwise.
const DefaultTimeout = 5 * time.Minute

// Client calls one imaged server.
type Client struct {
	base      *url.URL
	key       string
	hc        *http.Client
	timeout   time.Duration
	userAgent string
}

// Option sets up a Client.
type Option func(*Client)

// WithKey sends key as X-API-Key with every call (health needs none).
func WithKey(key string) Option { return func(c *Client) { c.key = strings.TrimSpace(key) } }

// WithHTTPClient makes the calls through hc instead of a client of its own. hc's own Timeout, if
// set, also cuts event streams.
func WithHTTPClient(hc *http.Client) Option { return func(c *Client) { c.hc = hc } }

// WithTimeout bounds each call that is not a stream, body included; 0 leaves them to ctx alone.
func WithTimeout(d time.Duration) Option { return func(c *Client) { c.timeout = d } }

// WithUserAgent sets the User-Agent header.
func WithUserAgent(ua string) Option { return func(c *Client) { c.userAgent = ua } }

// New returns a client of the server at baseURL (http or https, e.g. http://localhost:8000; a
// path prefix is kept, for a server behind a proxy that mounts it under one).
func New(baseURL string, opts ...Option) (*Client, error) {
	u, err := url.Parse(strings.TrimRight(strings.TrimSpace(baseURL), "/"))
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("the server URL %q is not an absolute http or https URL", baseURL)
	}
	c := &Client{base: u, timeout: DefaultTimeout, userAgent: "imaged-client"}
	for _, o := range opts {
		o(c)
	}
	if c.hc == nil {
		c.hc = &http.Client{Transport: http.DefaultTransport.(*http.Transport).Clone()}
	}
	return c, nil
}

// URL is the server's base URL.
func (c *Client) URL() string { return c.base.String() }

// request is one call: a route of the API as http/routes.go writes it ("GET /v1/tasks/{id}"),
// the values of its path parameters in order, and what to send.
type request struct {
	route       string
	params      []string
	query       url.Values
	body        io.Reader
	contentType string
	header      http.Header
	stream      bool // an event stream or a download the caller reads: no call timeout
}

// routeURL fills the route's {params} with the escaped values, in order.
func (c *Client) routeURL(route string, params []string) (method, target string, err error) {
	method, path, ok := strings.Cut(route, " ")
	if !ok {
		return "", "", fmt.Errorf("client: bad route %q", route)
	}
	segs := strings.Split(path, "/")
	n := 0
	for i, s := range segs {
		if strings.HasPrefix(s, "{") && strings.HasSuffix(s, "}") {
			if n >= len(params) || params[n] == "" {
				return "", "", fmt.Errorf("the %s of %s is empty", strings.Trim(s, "{}"), route)
			}
			segs[i] = url.PathEscape(params[n])
			n++
		}
	}
	return method, c.base.String() + strings.Join(segs, "/"), nil
}

// do sends r and returns the answer when it is 2xx; any other answer is an *Error. The caller
// closes the body; the returned cancel ends the call's timeout and must be called once the body
// is read.
func (c *Client) do(ctx context.Context, r request) (*http.Response, context.CancelFunc, error) {
	method, target, err := c.routeURL(r.route, r.params)
	if err != nil {
		closeBody(r.body)
		return nil, nil, err
	}
	if len(r.query) > 0 {
		target += "?" + r.query.Encode()
	}
	cancel := context.CancelFunc(func() {})
	if c.timeout > 0 && !r.stream {
		ctx, cancel = context.WithTimeout(ctx, c.timeout)
	}
	req, err := http.NewRequestWithContext(ctx, method, target, r.body)
	if err != nil {
		closeBody(r.body)
		cancel()
		return nil, nil, err
	}
	for k, v := range r.header {
		req.Header[k] = v
	}
	if r.contentType != "" {
		req.Header.Set("Content-Type", r.contentType)
	}
	if c.key != "" {
		req.Header.Set("X-API-Key", c.key)
	}
	req.Header.Set("User-Agent", c.userAgent)
	resp, err := c.hc.Do(req)
	if err != nil {
		cancel()
		return nil, nil, err
	}
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		defer cancel()
		defer resp.Body.Close()
		return nil, nil, readError(resp)
	}
	return resp, cancel, nil
}

// call sends r and decodes a JSON answer into out (nil: the body is dropped).
func (c *Client) call(ctx context.Context, r request, out any) error {
	resp, cancel, err := c.do(ctx, r)
	if err != nil {
		return err
	}
	defer cancel()
	defer resp.Body.Close()
	if out == nil {
		_, err = io.Copy(io.Discard, resp.Body)
		return err
	}
	if err := json.NewDecoder(resp.Body).Decode(out); err != nil {
		return fmt.Errorf("%s: the answer is not the JSON expected: %w", r.route, err)
	}
	return nil
}

// callJSON sends v as a JSON body.
func (c *Client) callJSON(ctx context.Context, r request, v, out any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	r.body, r.contentType = bytes.NewReader(b), "application/json"
	return c.call(ctx, r, out)
}

// closeBody closes a request body that will not be sent (the writer of a streamed form ends).
func closeBody(body io.Reader) {
	if c, ok := body.(io.Closer); ok {
		_ = c.Close()
	}
}
