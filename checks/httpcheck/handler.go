package httpcheck

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"net/http"
	"runtime/debug"
	"strconv"
	"time"

	"github.com/sirupsen/logrus"
	standardwebhooks "github.com/standard-webhooks/standard-webhooks/libraries/go"

	"github.com/checkd/checkd/checks"
)

// HandlerConfig configures a Handler; both fields are required.
type HandlerConfig struct {
	// Secret is the datasource's whsec_ secret, the one checkd signs with.
	Secret string
	// Logger gets a warning per refused request and a debug line per
	// check, neither with credentials.
	Logger *logrus.Logger
}

// Handler serves a checks.Checker over the protocol: the checker service's
// side. It refuses requests that are not signed with the secret or whose
// timestamp is more than five minutes off, runs the checker until a little
// before the request's deadline, and answers as checkd reads it: the result
// with 200; a checks.RetryAfterError with 503 and Retry-After; another
// error wrapping checks.ErrTemporary with 503; any other error, or a panic,
// with 200 and OTHER_ERROR (what checkd records for them in process).
type Handler struct {
	checker checks.Checker
	wh      *standardwebhooks.Webhook
	log     *logrus.Logger
}

// NewHandler returns a handler serving c.
func NewHandler(c checks.Checker, cfg HandlerConfig) (*Handler, error) {
	if c == nil || cfg.Logger == nil {
		return nil, errors.New("httpcheck: a checker and a logger are required")
	}
	key, err := ParseSecret(cfg.Secret)
	if err != nil {
		return nil, fmt.Errorf("httpcheck: %w", err)
	}
	wh, err := standardwebhooks.NewWebhookRaw(key)
	if err != nil {
		return nil, fmt.Errorf("httpcheck: %w", err)
	}
	return &Handler{checker: c, wh: wh, log: cfg.Logger}, nil
}

// maxAnswerMargin bounds the time kept before a request's deadline for the
// answer to travel back (a tenth of the time left, at most this).
const maxAnswerMargin = time.Second

// ServeHTTP handles one check.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", http.MethodPost)
		h.refuse(w, r, http.StatusMethodNotAllowed, "POST a signed check request")
		return
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, MaxResponseBytes))
	if err != nil {
		h.refuse(w, r, http.StatusRequestEntityTooLarge, fmt.Sprintf("reading the request: %v (at most %d bytes)", err, MaxResponseBytes))
		return
	}
	if err := h.wh.Verify(body, r.Header); err != nil {
		h.refuse(w, r, http.StatusUnauthorized, "signature: "+err.Error()+" (is the secret the datasource's, and the clock right?)")
		return
	}
	var req Request
	if err := json.Unmarshal(body, &req); err != nil {
		h.refuse(w, r, http.StatusBadRequest, "the body is not a check request: "+err.Error())
		return
	}
	if req.ConnectionID == "" || req.Datasource == "" || req.Deadline.IsZero() {
		h.refuse(w, r, http.StatusBadRequest, "connectionId, datasource and deadline are required")
		return
	}
	left := time.Until(req.Deadline)
	if left <= 0 {
		h.refuse(w, r, http.StatusServiceUnavailable, "the request's deadline has passed")
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), left-min(left/10, maxAnswerMargin))
	defer cancel()
	began := time.Now()
	res, err := h.run(ctx, req)
	// The line per check only when it is kept: its fields cost allocations.
	logCheck := func(fields logrus.Fields, msg string) {
		if h.log.IsLevelEnabled(logrus.DebugLevel) {
			fields["connectionId"], fields["datasource"], fields["durationMs"] = req.ConnectionID, req.Datasource, time.Since(began).Milliseconds()
			h.log.WithFields(fields).Debug(msg)
		}
	}
	if err != nil {
		code := http.StatusServiceUnavailable
		if d, ok := checks.RetryAfter(err); ok {
			w.Header().Set("Retry-After", strconv.FormatInt(int64(math.Ceil(d.Seconds())), 10))
		}
		msg := scrubAll(err.Error(), &req.Credentials)
		logCheck(logrus.Fields{"error": msg, "code": code}, "check failed temporarily")
		writeJSON(w, code, errorBody{Error: msg})
		return
	}
	logCheck(logrus.Fields{"status": res.Status}, "check done")
	writeJSON(w, http.StatusOK, res)
}

// run calls the checker: a temporary error is returned, any other error
// or a panic becomes OTHER_ERROR.
func (h *Handler) run(ctx context.Context, req Request) (res checks.Result, err error) {
	defer func() {
		if v := recover(); v != nil {
			h.log.WithFields(logrus.Fields{"connectionId": req.ConnectionID, "panic": v, "stack": string(debug.Stack())}).Error("checker panicked")
			res, err = checks.Result{Status: checks.ConnOtherError, Detail: scrub(fmt.Sprintf("checker panicked: %v", v), &req.Credentials)}, nil
		}
	}()
	res, err = h.checker.Check(ctx, req.Check())
	if err != nil && !errors.Is(err, checks.ErrTemporary) {
		return checks.Result{Status: checks.ConnOtherError, Detail: scrub(err.Error(), &req.Credentials)}, nil
	}
	return res, err
}

// errorBody is the JSON of an answer that is not a result.
type errorBody struct {
	Error string `json:"error"`
}

func (h *Handler) refuse(w http.ResponseWriter, r *http.Request, code int, msg string) {
	h.log.WithFields(logrus.Fields{"remote": r.RemoteAddr, "code": code}).Warn("check request refused: " + msg)
	writeJSON(w, code, errorBody{Error: msg})
}

// writeJSON answers with v, its length set so the connection is reused
// without chunking.
func writeJSON(w http.ResponseWriter, code int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		code, b = http.StatusInternalServerError, []byte(`{"error":"encoding the answer failed"}`)
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Content-Length", strconv.Itoa(len(b)))
	w.WriteHeader(code)
	_, _ = w.Write(b)
}
