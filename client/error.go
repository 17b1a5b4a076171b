package client

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/imaged/imaged"
)

// Error is an answer other than 2xx: the API's JSON error body
// {"error":{"code","message","field","details"}} with the HTTP status and the headers that
// matter to a caller. An answer that is not that JSON (a proxy's page) gets the code the status
// means and the start of its body as the message.
type Error struct {
	StatusCode int
	Code       string        // imaged's error code: invalid_argument, not_found, … (imaged.E*)
	Message    string        // written for a person
	Field      string        // the request field at fault, when one is
	Details    []ErrorDetail // every violation found, when the server lists them
	// RetryAfter is the server's Retry-After (429, 503), 0 when it sent none.
	RetryAfter time.Duration
	// CorrelationID is the request's X-Correlation-ID, to find it in the server's log.
	CorrelationID string
}

// ErrorDetail is one violation of a request.
type ErrorDetail struct {
	Code    string `json:"code,omitempty"`
	Message string `json:"message"`
	Field   string `json:"field,omitempty"`
}

func (e *Error) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%d %s: %s", e.StatusCode, e.Code, e.Message)
	if e.Field != "" && !strings.Contains(e.Message, e.Field) {
		fmt.Fprintf(&b, " (field %s)", e.Field)
	}
	for _, d := range e.Details {
		if d.Message != e.Message {
			fmt.Fprintf(&b, "; %s", d.Message)
		}
	}
	return b.String()
}

// IsCode reports whether err is an *Error with the given code (imaged.ENotFound, …).
func IsCode(err error, code string) bool {
	var e *Error
	return errors.As(err, &e) && e.Code == code
}

// codeOfStatus is the code of an answer whose body does not say, as the API maps them.
var codeOfStatus = map[int]string{
	400: imaged.EInvalid, 401: imaged.EUnauthenticated, 403: imaged.EPermissionDenied, 404: imaged.ENotFound,
	405: imaged.EMethodNotAllowed, 409: imaged.EConflict, 413: imaged.ETooLarge, 415: imaged.EUnsupported,
	429: imaged.ERateLimited, 431: imaged.EHeadersTooLarge, 501: imaged.ENotInstalled, 503: imaged.EUnavailable,
}

// codeFor is the code of a status whose body does not say.
func codeFor(status int) string {
	if c, ok := codeOfStatus[status]; ok {
		return c
	}
	return imaged.EInternal
}

// readError reads an error answer (at most 1 MiB of it).
func readError(resp *http.Response) error {
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	e := &Error{StatusCode: resp.StatusCode, CorrelationID: resp.Header.Get("X-Correlation-ID")}
	if s, err := strconv.Atoi(resp.Header.Get("Retry-After")); err == nil && s >= 0 {
		e.RetryAfter = time.Duration(s) * time.Second
	}
	var wire struct {
		Error *struct {
			Code    string        `json:"code"`
			Message string        `json:"message"`
			Field   string        `json:"field"`
			Details []ErrorDetail `json:"details"`
		} `json:"error"`
	}
	if json.Unmarshal(body, &wire) == nil && wire.Error != nil && wire.Error.Code != "" {
		e.Code, e.Message, e.Field, e.Details = wire.Error.Code, wire.Error.Message, wire.Error.Field, wire.Error.Details
		return e
	}
	e.Code = codeFor(resp.StatusCode)
	msg := strings.TrimSpace(string(body))
	if len(msg) > 200 {
		msg = msg[:200] + "…"
	}
	if msg == "" {
		msg = http.StatusText(resp.StatusCode)
	}
	e.Message = msg
	return e
}
