// Package imaged holds the domain of the image service: plain types (Image, Task, Batch, Op,
// Event) and the interfaces every adapter implements (TaskStore, Queue, BlobStore, Events,
// Processor). Adapters live in packages named after their dependency; cmd/imaged wires them.
package imaged

import (
	"errors"
	"fmt"
	"time"
	"unicode/utf8"
)

// Error codes. The HTTP layer maps each to one status code in one place.
const (
	EInvalid          = "invalid_argument"       // 400
	EUnauthenticated  = "unauthenticated"        // 401
	EPermissionDenied = "permission_denied"      // 403
	EQuotaExceeded    = "quota_exceeded"         // 403: a tenant's storage quota is full
	ENotFound         = "not_found"              // 404
	EMethodNotAllowed = "method_not_allowed"     // 405: a known path, another method
	EConflict         = "conflict"               // 409
	ETooLarge         = "payload_too_large"      // 413
	EHeadersTooLarge  = "headers_too_large"      // 431
	EUnsupported      = "unsupported_media_type" // 415
	ERateLimited      = "rate_limited"           // 429
	EUnavailable      = "unavailable"            // 503
	ENotInstalled     = "not_installed"          // 501: a model or library the op needs is not installed here
	EInternal         = "internal"               // 500
)

// Error is a domain error: a code, a message written for the person reading it, and optionally
// the request field at fault. Err keeps the underlying cause for logs; it is never shown to
// clients.
type Error struct {
	Code       string
	Message    string
	Field      string
	RetryAfter time.Duration // for EUnavailable / ERateLimited
	Err        error
	// Details are every violation found when there were several (this error is the first of
	// them), so a client can fix them all at once.
	Details []*Error
}

// Violations returns one error for every violation in errs (nil ones skipped): the first, with
// Details listing them all when there is more than one; nil when there is none.
func Violations(errs []error) error {
	var all []*Error
	var first error
	for _, err := range errs {
		if err == nil {
			continue
		}
		if first == nil {
			first = err
		}
		var e *Error
		if !errors.As(err, &e) {
			return err // not a violation: what went wrong is not the request
		}
		all = append(all, e)
	}
	if len(all) <= 1 {
		return first
	}
	head := *all[0]
	head.Details = all
	return &head
}

func (e *Error) Error() string {
	if e.Err != nil {
		return e.Message + ": " + e.Err.Error()
	}
	return e.Message
}

func (e *Error) Unwrap() error { return e.Err }

// Errorf returns an *Error with the given code and a formatted message.
func Errorf(code, format string, args ...any) *Error {
	return &Error{Code: code, Message: fmt.Sprintf(format, args...)}
}

// FieldErrorf returns an EInvalid error naming the offending field.
func FieldErrorf(field, format string, args ...any) *Error {
	return &Error{Code: EInvalid, Field: field, Message: fmt.Sprintf(format, args...)}
}

// WrapError returns an *Error with code and message that keeps err as its cause.
func WrapError(code string, err error, format string, args ...any) *Error {
	return &Error{Code: code, Message: fmt.Sprintf(format, args...), Err: err}
}

// ErrorCode returns the code of err, EInternal for errors that are not an *Error and "" for nil.
func ErrorCode(err error) string {
	if err == nil {
		return ""
	}
	var e *Error
	if errors.As(err, &e) {
		return e.Code
	}
	return EInternal
}

// ErrorMessage returns the client-facing message of err; internal errors get a generic text so
// that nothing internal leaks.
func ErrorMessage(err error) string {
	var e *Error
	if errors.As(err, &e) {
		return e.Message
	}
	return "internal error"
}

// IsCode reports whether err carries the given code.
func IsCode(err error, code string) bool { return ErrorCode(err) == code }

// maxEcho is the most characters of a caller's id or value an error message repeats.
const maxEcho = 64

// EchoID is an id (or any value a caller sent) as an error message may repeat it: at most 64
// characters, cut with "…", so that a megabyte of id never comes back in a 404.
func EchoID(id string) string {
	if utf8.RuneCountInString(id) <= maxEcho {
		return id
	}
	return string([]rune(id)[:maxEcho]) + "…"
}
