package api

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"syscall"

	"github.com/redis/go-redis/v9"
	"github.com/sirupsen/logrus"

	"github.com/checkd/checkd/store"
)

// Error codes of ErrorInfo.Code.
const (
	CodeInvalidRequest       = "invalid_request"
	CodeUnauthorized         = "unauthorized"
	CodeForbidden            = "forbidden"
	CodeRateLimited          = "rate_limited"
	CodeNotFound             = "not_found"
	CodeMethodNotAllowed     = "method_not_allowed"
	CodeConflict             = "conflict"
	CodeNotAllowed           = "not_allowed"
	CodeGone                 = "gone"
	CodeUnavailable          = "unavailable"
	CodePayloadTooLarge      = "payload_too_large"
	CodeUnsupportedMediaType = "unsupported_media_type"
	CodeInternal             = "internal"
)

// ErrorResponse is the body of every error answer.
type ErrorResponse struct {
	Error ErrorInfo `json:"error"`
}

// ErrorInfo says what went wrong (Code, stable) and what to fix (Message,
// for people).
type ErrorInfo struct {
	Code    string `json:"code"`
	Message string `json:"message"`
	// Accounts names every account a refused account confirmation
	// (PATCH /v1/connection/{connectionId}/status) objected to, with the
	// problem of each.
	Accounts map[string]string `json:"accounts,omitempty"`
}

// writeJSON answers v with status. It marshals first so an encoding failure
// is a clean 500 instead of half a body.
func writeJSON(w http.ResponseWriter, status int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		status = http.StatusInternalServerError
		b = []byte(`{"error":{"code":"internal","message":"internal error: the response could not be encoded; retry later"}}`)
	}
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_, _ = w.Write(append(b, '\n'))
}

func writeError(w http.ResponseWriter, status int, code, msg string) {
	writeJSON(w, status, ErrorResponse{Error: ErrorInfo{Code: code, Message: msg}})
}

// logError records a failure whose detail the answer does not carry.
func (s *Server) logError(r *http.Request, err error, msg string) {
	s.log.WithError(err).WithFields(logrus.Fields{
		"requestId": RequestID(r.Context()),
		"method":    r.Method,
		"path":      r.URL.Path,
	}).Error(msg)
}

func writeInternal(w http.ResponseWriter, r *http.Request) {
	writeError(w, http.StatusInternalServerError, CodeInternal, fmt.Sprintf(
		"internal error: retry later, and report request ID %s if it persists", RequestID(r.Context())))
}

// Unreachable reports an error of the connection to Redis (refused,
// reset, timed out, closed, no free connection, the request's deadline
// passed while waiting for it), or Redis answering that it
// cannot serve now (loading its data after a restart, a read-only replica
// or a lost master during a failover, too few replicas for
// min-replicas-to-write; inside a transaction these come back as
// EXECABORT, as checkd's transactions are otherwise well formed), rather
// than a failed command: the request may succeed once Redis is back.
func Unreachable(err error) bool {
	var ne net.Error
	var re redis.Error
	if errors.As(err, &re) {
		for _, p := range []string{"LOADING ", "READONLY ", "MASTERDOWN ", "TRYAGAIN ", "CLUSTERDOWN ", "NOREPLICAS ", "EXECABORT "} {
			if strings.HasPrefix(re.Error(), p) {
				return true
			}
		}
	}
	return errors.As(err, &ne) || errors.Is(err, context.DeadlineExceeded) || errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) ||
		errors.Is(err, syscall.ECONNREFUSED) || errors.Is(err, syscall.ECONNRESET) ||
		errors.Is(err, redis.ErrPoolTimeout) || errors.Is(err, redis.ErrClosed)
}

// storeError answers a store error: ErrNotFound → 404 with notFound as the
// message, ErrInvalid → 400 with the store's explanation (and the refused
// accounts of an *store.AccountsError), ErrNotAllowed → 409 saying why,
// ErrConflict and ErrExists → 409, Redis unreachable → 503 with Retry-After, anything
// else → 500; the detail of a 503 or 500 is logged, not returned.
func (s *Server) storeError(w http.ResponseWriter, r *http.Request, err error, notFound string) {
	var accts *store.AccountsError
	switch {
	case errors.Is(err, store.ErrNotFound):
		writeError(w, http.StatusNotFound, CodeNotFound, notFound)
	case errors.As(err, &accts):
		writeJSON(w, http.StatusBadRequest, ErrorResponse{Error: ErrorInfo{Code: CodeInvalidRequest,
			Message: err.Error() + ": fix or remove the accounts named in error.accounts and send the request again", Accounts: accts.Problems}})
	case errors.Is(err, store.ErrNotAllowed):
		writeError(w, http.StatusConflict, CodeNotAllowed, err.Error())
	case errors.Is(err, store.ErrInvalid):
		writeError(w, http.StatusBadRequest, CodeInvalidRequest, err.Error())
	case errors.Is(err, store.ErrConflict), errors.Is(err, store.ErrExists):
		writeError(w, http.StatusConflict, CodeConflict, err.Error())
	default:
		s.serverError(w, r, err, "api: request failed")
	}
}

// serverError answers a failure that is not the request's fault: 503 with
// Retry-After while Redis is unreachable or not serving, else 500. The
// detail is logged with msg, never returned.
func (s *Server) serverError(w http.ResponseWriter, r *http.Request, err error, msg string) {
	s.logError(r, err, msg)
	if Unreachable(err) {
		w.Header().Set("Retry-After", "5")
		writeError(w, http.StatusServiceUnavailable, CodeUnavailable,
			"the database is unreachable: retry in a few seconds (GET /readyz says when it is back)")
		return
	}
	writeInternal(w, r)
}
