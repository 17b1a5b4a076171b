package http

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"math"
	"net/http"
	"strconv"
	"strings"

	"github.com/imaged/imaged"
)

// statusOf maps domain error codes to HTTP status codes, in one place.
var statusOf = map[string]int{
	imaged.EInvalid:          http.StatusBadRequest,
	imaged.EUnauthenticated:  http.StatusUnauthorized,
	imaged.EPermissionDenied: http.StatusForbidden,
	imaged.EQuotaExceeded:    http.StatusForbidden,
	imaged.ENotFound:         http.StatusNotFound,
	imaged.EConflict:         http.StatusConflict,
	imaged.EMethodNotAllowed: http.StatusMethodNotAllowed,
	imaged.ETooLarge:         http.StatusRequestEntityTooLarge,
	imaged.EHeadersTooLarge:  http.StatusRequestHeaderFieldsTooLarge,
	imaged.EUnsupported:      http.StatusUnsupportedMediaType,
	imaged.ERateLimited:      http.StatusTooManyRequests,
	imaged.EUnavailable:      http.StatusServiceUnavailable,
	imaged.ENotInstalled:     http.StatusNotImplemented,
	imaged.EInternal:         http.StatusInternalServerError,
}

type errorBody struct {
	Error errorDetail `json:"error"`
}

type errorDetail struct {
	Code    string `json:"code"`
	Message string `json:"message"`
	Field   string `json:"field,omitempty"`
	// Details lists every violation found, the first included (one entry for a lone one).
	Details []violation `json:"details,omitempty"`
}

// violation is one entry of errorDetail.Details.
type violation struct {
	Code    string `json:"code"`
	Message string `json:"message"`
	Field   string `json:"field,omitempty"`
}

// writeError is the one way errors leave the API. Internal errors are logged with their cause
// and answered with a generic message, so nothing internal leaks.
func (s *Server) writeError(w http.ResponseWriter, r *http.Request, err error) {
	code := imaged.ErrorCode(err)
	if errors.Is(err, context.Canceled) {
		code = imaged.EUnavailable
		err = &imaged.Error{Code: code, Message: "the request was cancelled"}
	} else if errors.Is(err, context.DeadlineExceeded) && code == imaged.EInternal {
		code = imaged.EUnavailable
		err = &imaged.Error{Code: code, Message: "the request ran past its deadline", Err: err}
	}
	status, ok := statusOf[code]
	if !ok {
		status = http.StatusInternalServerError
	}
	body := errorBody{Error: errorDetail{Code: code, Message: imaged.ErrorMessage(err)}}
	var e *imaged.Error
	if errors.As(err, &e) {
		body.Error.Field = e.Field
		if status < 500 {
			for _, d := range e.Details {
				body.Error.Details = append(body.Error.Details, violation{Code: d.Code, Message: d.Message, Field: d.Field})
			}
			if len(body.Error.Details) == 0 && code == imaged.EInvalid {
				body.Error.Details = []violation{{Code: code, Message: body.Error.Message, Field: e.Field}}
			}
		}
		if e.RetryAfter > 0 {
			w.Header().Set("Retry-After", strconv.Itoa(int(math.Ceil(e.RetryAfter.Seconds()))))
		}
	}
	if status == http.StatusServiceUnavailable && w.Header().Get("Retry-After") == "" {
		w.Header().Set("Retry-After", "5")
	}
	if status >= 500 {
		s.log.ErrorContext(r.Context(), "request failed", "status", status, "error", err.Error())
	} else {
		s.log.InfoContext(r.Context(), "request refused", "status", status, "code", code, "error", err.Error())
	}
	writeJSON(w, status, body)
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	if err := enc.Encode(v); err != nil {
		slog.Debug("writing response failed", "error", err.Error())
	}
}

func (s *Server) handleNotFound(mux *http.ServeMux) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		// A path that routes with other methods is a 405 naming them (Allow), not a 404.
		var allow []string
		for _, m := range []string{http.MethodGet, http.MethodHead, http.MethodPost, http.MethodPut, http.MethodPatch, http.MethodDelete} {
			probe := r.Clone(r.Context())
			probe.Method = m
			if _, pattern := mux.Handler(probe); pattern != "/" && pattern != "" {
				allow = append(allow, m)
			}
		}
		if len(allow) > 0 {
			w.Header().Set("Allow", strings.Join(allow, ", "))
			s.writeError(w, r, imaged.Errorf(imaged.EMethodNotAllowed, "%s is not allowed on %s; allowed: %s",
				imaged.EchoID(r.Method), imaged.EchoID(r.URL.Path), strings.Join(allow, ", ")))
			return
		}
		s.writeError(w, r, imaged.Errorf(imaged.ENotFound, "no route for %s %s", imaged.EchoID(r.Method), imaged.EchoID(r.URL.Path)))
	})
}
