package imaged_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"syscall"
	"testing"

	"github.com/imaged/imaged"
)

func TestTransient(t *testing.T) {
	for _, c := range []struct {
		err  error
		want bool
	}{
		{nil, false},
		{imaged.Errorf(imaged.EUnavailable, "down"), true},
		{imaged.Errorf(imaged.ENotFound, "gone"), false},
		{imaged.Errorf(imaged.EConflict, "clash"), false},
		{imaged.Errorf(imaged.EInvalid, "bad"), false},
		{imaged.WrapError(imaged.EInvalid, io.ErrUnexpectedEOF, "bad upload"), false},
		{imaged.WrapError(imaged.EInternal, io.ErrUnexpectedEOF, "read"), true},
		{errors.New("bug"), false},
		{context.Canceled, false},
		{fmt.Errorf("query: %w", context.DeadlineExceeded), true},
		{&net.OpError{Op: "dial", Net: "tcp", Err: syscall.ECONNREFUSED}, true},
		{fmt.Errorf("write: %w", syscall.EPIPE), true},
		{fmt.Errorf("read: %w", syscall.ECONNRESET), true},
		{&net.DNSError{Err: "no such host", Name: "db"}, true},
		{sqlState("08006"), true},
		{sqlState("57P01"), true},
		{sqlState("40001"), true},
		{sqlState("23505"), false}, // unique violation
		{sqlState("42P01"), false}, // undefined table
		{safeToRetry{}, true},
	} {
		if got := imaged.Transient(c.err); got != c.want {
			t.Errorf("Transient(%v) = %v, want %v", c.err, got, c.want)
		}
	}
}

type sqlState string

func (s sqlState) Error() string    { return "SQLSTATE " + string(s) }
func (s sqlState) SQLState() string { return string(s) }

type safeToRetry struct{}

func (safeToRetry) Error() string     { return "conn closed before sending" }
func (safeToRetry) SafeToRetry() bool { return true }
