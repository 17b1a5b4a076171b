package client

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"sort"
	"strings"
)

// Health is what a health probe answered.
type Health struct {
	Status       string                      `json:"status"`
	Dependencies map[string]DependencyHealth `json:"dependencies,omitempty"`
}

// DependencyHealth is one dependency of the readiness probe.
type DependencyHealth struct {
	Status         string  `json:"status"`
	Required       bool    `json:"required"`
	ResponseTimeMS float64 `json:"response_time_ms"`
	Error          string  `json:"error,omitempty"`
}

// Live asks GET /health/live: the process serves HTTP. No key is needed.
func (c *Client) Live(ctx context.Context) (*Health, error) {
	return c.probe(ctx, "GET /health/live")
}

// Ready asks GET /health/ready: every required dependency answers. When it does not, the error
// is an *Error (503, unavailable) naming the dependencies that fail, and Health lists them all.
func (c *Client) Ready(ctx context.Context) (*Health, error) {
	return c.probe(ctx, "GET /health/ready")
}

// probe reads a health answer, which is a report on failure too, not the API's error shape.
func (c *Client) probe(ctx context.Context, route string) (*Health, error) {
	_, target, err := c.routeURL(route, nil)
	if err != nil {
		return nil, err
	}
	if c.timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, c.timeout)
		defer cancel()
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, target, nil)
	if err != nil {
		return nil, err
	}
	req.Header.Set("User-Agent", c.userAgent)
	resp, err := c.hc.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return nil, err
	}
	var h Health
	if json.Unmarshal(body, &h) != nil || h.Status == "" {
		if resp.StatusCode != http.StatusOK {
			return nil, &Error{StatusCode: resp.StatusCode, Code: codeFor(resp.StatusCode),
				Message: fmt.Sprintf("%s answered %s", strings.TrimPrefix(route, "GET "), resp.Status)}
		}
		return nil, fmt.Errorf("%s: the answer is not a health report", route)
	}
	if resp.StatusCode != http.StatusOK {
		var failing []string
		for name, d := range h.Dependencies {
			if d.Status != "healthy" {
				failing = append(failing, fmt.Sprintf("%s (%s)", name, d.Error))
			}
		}
		sort.Strings(failing)
		msg := fmt.Sprintf("%s: %s", strings.TrimPrefix(route, "GET "), h.Status)
		if len(failing) > 0 {
			msg += ": " + strings.Join(failing, ", ")
		}
		return &h, &Error{StatusCode: resp.StatusCode, Code: codeFor(resp.StatusCode), Message: msg}
	}
	return &h, nil
}
