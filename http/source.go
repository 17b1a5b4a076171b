package http

import (
	"context"
	"net/url"
	"path"

	"github.com/imaged/imaged"
)

// Fetcher fetches URL sources under the outbound address policy (package outbound implements
// it). Errors are for the client and name field.
type Fetcher interface {
	Fetch(ctx context.Context, rawURL, field string) ([]byte, error)
}

// URLChecker applies the outbound address policy's checks that need no connection to a URL
// kept to be called later (package outbound implements it). Errors are for the client and name
// field.
type URLChecker interface {
	CheckURL(ctx context.Context, rawURL, field string) error
}

// checkCallback refuses at submit a callback_url the outbound policy would refuse when the
// callback is sent, as a source_url is refused.
func (s *Server) checkCallback(ctx context.Context, rawURL string) error {
	if rawURL == "" || s.deps.URLs == nil {
		return nil
	}
	return s.deps.URLs.CheckURL(ctx, rawURL, "callback_url")
}

// fetchSource fetches a source_url, validates it from its header and stores it as an image,
// returning the image and its bytes.
func (s *Server) fetchSource(ctx context.Context, rawURL string) (*imaged.Image, []byte, error) {
	if s.deps.Fetcher == nil {
		return nil, nil, imaged.FieldErrorf("source_url", "URL sources are not enabled on this server")
	}
	data, err := s.deps.Fetcher.Fetch(ctx, rawURL, "source_url")
	if err != nil {
		return nil, nil, err
	}
	if len(data) == 0 {
		return nil, nil, imaged.FieldErrorf("source_url", "source_url answered with an empty body")
	}
	name := ""
	if u, err := url.Parse(rawURL); err == nil {
		name = path.Base(u.Path)
		if name == "/" || name == "." {
			name = ""
		}
	}
	img, err := s.storeImage(ctx, data, name)
	if err != nil {
		return nil, nil, err
	}
	return img, data, nil
}

func btoi(b bool) int {
	if b {
		return 1
	}
	return 0
}
