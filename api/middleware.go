package api

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"runtime/debug"

	"github.com/sirupsen/logrus"
)

// HeaderAPIKey carries the caller's API key.
const HeaderAPIKey = "X-API-Key"

// HeaderRequestID carries the request ID, in requests and responses.
const HeaderRequestID = "X-Request-ID"

// maxRequestIDLen bounds a caller's request ID; longer ones are replaced.
const maxRequestIDLen = 128

type requestIDKey struct{}

// RequestID returns the ID of the request ctx belongs to ("" outside one).
// Mounted handlers can use it to correlate their logs with the access log.
func RequestID(ctx context.Context) string {
	id, _ := ctx.Value(requestIDKey{}).(string)
	return id
}

// withRequestID takes the caller's X-Request-ID when it is sane (printable
// ASCII, bounded, so it is safe in logs), generates one otherwise, and echoes
// it in the response.
func (s *Server) withRequestID(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		id := r.Header.Get(HeaderRequestID)
		if !validRequestID(id) {
			id = newRequestID()
		}
		w.Header().Set(HeaderRequestID, id)
		next.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), requestIDKey{}, id)))
	})
}

func validRequestID(id string) bool {
	if id == "" || len(id) > maxRequestIDLen {
		return false
	}
	for i := 0; i < len(id); i++ {
		if id[i] < 0x21 || id[i] > 0x7e {
			return false
		}
	}
	return true
}

func newRequestID() string {
	var b [16]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails on supported platforms
	return hex.EncodeToString(b[:])
}

// withAccessLog logs one line per request: method, path, status, duration
// and request ID — never headers (the API key) or bodies (credentials). It
// logs in a defer so even an aborted handler is recorded.
func (s *Server) withAccessLog(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := s.cfg.Clock.Now()
		sw := &statusWriter{ResponseWriter: w}
		defer func() {
			s.log.WithFields(logrus.Fields{
				"method":    r.Method,
				"path":      r.URL.Path,
				"status":    sw.status(),
				"duration":  s.cfg.Clock.Now().Sub(start).String(),
				"bytes":     sw.n,
				"requestId": RequestID(r.Context()),
			}).Info("http request")
		}()
		next.ServeHTTP(sw, r)
	})
}

// withRecovery turns a handler panic into a logged 500 JSON answer instead
// of a dropped connection. http.ErrAbortHandler keeps its meaning.
func (s *Server) withRecovery(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		sw := &statusWriter{ResponseWriter: w}
		defer func() {
			v := recover()
			if v == nil {
				return
			}
			if err, ok := v.(error); ok && errors.Is(err, http.ErrAbortHandler) {
				panic(v)
			}
			s.log.WithFields(logrus.Fields{
				"requestId": RequestID(r.Context()),
				"method":    r.Method,
				"path":      r.URL.Path,
				"panic":     fmt.Sprint(v),
				"stack":     string(debug.Stack()),
			}).Error("api: handler panicked")
			if sw.code == 0 {
				writeInternal(sw, r)
			}
		}()
		next.ServeHTTP(sw, r)
	})
}

// RequireKey wraps h so it answers only requests carrying one of keys, in
// the X-API-Key header or as "Authorization: Bearer <key>" (what Prometheus
// sends natively), compared in constant time. Every key is compared, so
// timing tells nothing about which one nearly matched. It takes the given
// keys only (the daemon passes the bootstrap keys), not those made with
// POST /v1/keys: it is for handlers outside a Server.
func RequireKey(keys []string, h http.Handler) http.Handler {
	return keyCheck(hashKeys(keys), "", h)
}

// MetricsRealm is the Basic-auth realm of RequireKeyOrLogin's challenge.
const MetricsRealm = "checkd metrics"

// RequireKeyOrLogin is RequireKey that also takes the dashboard's login:
// HTTP Basic auth with user (the dashboard's, "admin" by default) and an
// API key as the password. Its 401 carries a WWW-Authenticate challenge, so
// a browser asks for that login. The daemon serves /metrics through it.
func RequireKeyOrLogin(user string, keys []string, h http.Handler) http.Handler {
	return keyCheck(hashKeys(keys), user, h)
}

func hashKeys(keys []string) [][sha256.Size]byte {
	sums := make([][sha256.Size]byte, len(keys))
	for i, k := range keys {
		sums[i] = sha256.Sum256([]byte(k))
	}
	return sums
}

// keyCheck accepts a key in X-API-Key or as a bearer token, and, when
// basicUser is set, as the password of Basic auth by that user. It returns
// a keyedHandler, so the server's Routes knows the route needs a key (the
// bootstrap keys, which hold the admin scope).
func keyCheck(keys [][sha256.Size]byte, basicUser string, next http.Handler) http.Handler {
	userSum := sha256.Sum256([]byte(basicUser))
	login := "log in with user " + basicUser + " and an API key as the password, or send an API key in the X-API-Key header"
	return keyedHandler{scope: ScopeAdmin, Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		key, basic, userOK := requestKey(r), false, 1
		if key == "" {
			if u, p, ok := r.BasicAuth(); ok && basicUser != "" {
				sum := sha256.Sum256([]byte(u))
				key, basic, userOK = p, true, subtle.ConstantTimeCompare(sum[:], userSum[:])
			}
		}
		sum := sha256.Sum256([]byte(key))
		match := 0
		for i := range keys {
			match |= subtle.ConstantTimeCompare(sum[:], keys[i][:])
		}
		if key != "" && match&userOK == 1 {
			next.ServeHTTP(w, r)
			return
		}
		msg := "missing X-API-Key header: send one of the configured API keys in it"
		switch {
		case basic:
			msg = "wrong user or password: " + login
		case key != "":
			msg = "the X-API-Key header does not match any configured API key: check the key"
		case basicUser != "":
			msg = "missing credentials: " + login
		}
		if basicUser != "" {
			// A browser asks for the login.
			w.Header().Set("WWW-Authenticate", `Basic realm="`+MetricsRealm+`", charset="UTF-8"`)
		}
		writeError(w, http.StatusUnauthorized, CodeUnauthorized, msg)
	})}
}

// statusWriter records the status and size of a response.
type statusWriter struct {
	http.ResponseWriter
	code int
	n    int64
}

func (w *statusWriter) WriteHeader(code int) {
	if w.code == 0 && code >= 200 { // 1xx are interim: the final status comes later
		w.code = code
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Write(p []byte) (int, error) {
	if w.code == 0 {
		w.code = http.StatusOK
	}
	n, err := w.ResponseWriter.Write(p)
	w.n += int64(n)
	return n, err
}

// Flush lets streaming handlers (mounted ones) flush through the wrapper.
func (w *statusWriter) Flush() {
	if w.code == 0 {
		w.code = http.StatusOK
	}
	_ = http.NewResponseController(w.ResponseWriter).Flush()
}

// Unwrap exposes the underlying writer to http.ResponseController.
func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

func (w *statusWriter) status() int {
	if w.code == 0 {
		return http.StatusOK // nothing written: net/http sends 200
	}
	return w.code
}
