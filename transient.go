package imaged

import (
	"context"
	"errors"
	"io"
	"net"
	"strings"
	"syscall"
)

// Transient reports whether err is a failure that may pass if the call is made again: an
// EUnavailable error, a timeout, a refused, reset or broken connection, or a database
// error of the connection, shutdown, serialization or too-many-connections kind. Errors with any
// other code (ENotFound, EConflict, EInvalid…) are permanent; for EInternal errors and
// errors that are not an *Error the cause chain decides. A cancelled context is not
// transient: the caller gave up.
func Transient(err error) bool {
	if err == nil || errors.Is(err, context.Canceled) {
		return false
	}
	var e *Error
	if errors.As(err, &e) {
		switch e.Code {
		case EUnavailable:
			return true
		case EInternal:
			// Look at the cause below.
		default:
			return false
		}
	}
	if errors.Is(err, context.DeadlineExceeded) || errors.Is(err, io.ErrUnexpectedEOF) ||
		errors.Is(err, io.EOF) || errors.Is(err, net.ErrClosed) {
		return true
	}
	for _, errno := range []syscall.Errno{syscall.ECONNREFUSED, syscall.ECONNRESET, syscall.ECONNABORTED,
		syscall.EPIPE, syscall.ETIMEDOUT, syscall.EHOSTUNREACH, syscall.ENETUNREACH, syscall.ENETDOWN} {
		if errors.Is(err, errno) {
			return true
		}
	}
	// Dial, read and write failures of any network client, DNS failures included.
	var ne net.Error
	if errors.As(err, &ne) {
		return true
	}
	// Drivers that know a request never reached the server (pgconn.SafeToRetry) or that
	// classify their own errors (AWS SDK retryables, timeouts).
	var safe interface{ SafeToRetry() bool }
	if errors.As(err, &safe) && safe.SafeToRetry() {
		return true
	}
	var retryable interface{ RetryableError() bool }
	if errors.As(err, &retryable) && retryable.RetryableError() {
		return true
	}
	var timeout interface{ Timeout() bool }
	if errors.As(err, &timeout) && timeout.Timeout() {
		return true
	}
	// PostgreSQL SQLSTATEs (pgconn.PgError has SQLState()).
	var pg interface{ SQLState() string }
	if errors.As(err, &pg) {
		code := pg.SQLState()
		switch {
		case strings.HasPrefix(code, "08"), // connection exception
			code == "57P01", code == "57P02", code == "57P03", // admin/crash shutdown, cannot connect now
			code == "40001", code == "40P01", // serialization failure, deadlock (transaction rolled back)
			code == "53300": // too many connections
			return true
		}
	}
	return false
}
