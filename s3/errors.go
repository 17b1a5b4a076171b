package s3

import (
	"context"
	"errors"
	"io"
	"net"
	"slices"

	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/smithy-go"
	smithyhttp "github.com/aws/smithy-go/transport/http"

	"github.com/imaged/imaged"
)

// Error codes S3 gives for credentials it does not accept.
var authCodes = []string{
	"AccessDenied", "InvalidAccessKeyId", "SignatureDoesNotMatch", "ExpiredToken",
	"InvalidToken", "TokenRefreshRequired", "AuthorizationHeaderMalformed", "AllAccessDisabled",
}

// Error codes that mean "try again later" whatever the status says.
var transientCodes = []string{
	"SlowDown", "ServiceUnavailable", "InternalError", "RequestTimeout",
	"Throttling", "ThrottlingException", "RequestLimitExceeded",
}

// classify turns an SDK error into a domain error that keeps it as the cause; nil stays nil.
func (s *Store) classify(err error, format string, args ...any) error {
	if err == nil {
		return nil
	}
	var e *imaged.Error
	if errors.As(err, &e) {
		return err
	}
	code := ""
	var apiErr smithy.APIError
	if errors.As(err, &apiErr) {
		code = apiErr.ErrorCode()
	}
	status := 0
	var respErr *awshttp.ResponseError
	if errors.As(err, &respErr) {
		status = respErr.HTTPStatusCode()
	}

	wrap := func(c string, detail string) error {
		w := imaged.WrapError(c, err, format, args...)
		if detail != "" {
			w.Message += ": " + detail
		}
		return w
	}
	switch {
	case code == "NoSuchBucket":
		return wrap(imaged.EInternal, "bucket "+s.cfg.Bucket+" does not exist at "+s.where)
	case code == "NoSuchKey" || code == "NotFound" || status == 404:
		return wrap(imaged.ENotFound, "not found")
	case slices.Contains(authCodes, code) || status == 401 || status == 403:
		detail := "S3 at " + s.where + " refused the credentials or permissions"
		if code != "" {
			detail += " (" + code + ")"
		}
		return wrap(imaged.EInternal, detail+": check the access key, secret key, region and bucket policy")
	case slices.Contains(transientCodes, code) || status >= 500 || status == 408 || status == 429:
		return wrap(imaged.EUnavailable, "S3 at "+s.where+" is unavailable")
	case status >= 400:
		detail := "S3 rejected the request"
		if code != "" {
			detail += " (" + code + ")"
		}
		return wrap(imaged.EInternal, detail)
	case errors.Is(err, context.DeadlineExceeded):
		return wrap(imaged.EUnavailable, "timed out")
	case errors.Is(err, context.Canceled):
		return wrap(imaged.EUnavailable, "cancelled")
	case isTransport(err):
		return wrap(imaged.EUnavailable, "S3 at "+s.where+" is unreachable")
	}
	return wrap(imaged.EInternal, "")
}

// isTransport reports whether err is a failure to exchange a request with the server at all.
func isTransport(err error) bool {
	var sendErr *smithyhttp.RequestSendError
	var netErr net.Error
	return errors.As(err, &sendErr) || errors.As(err, &netErr) ||
		errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, io.EOF)
}

// isCode reports whether err is an S3 API error with the given code.
func isCode(err error, code string) bool {
	var apiErr smithy.APIError
	return errors.As(err, &apiErr) && apiErr.ErrorCode() == code
}
