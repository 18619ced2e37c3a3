package api

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"sync"
	"time"

	"github.com/sirupsen/logrus"
)

// A request's context ends Config.RequestTimeout (configs: requestTimeout)
// after it arrived, so the store's Redis calls made under it give up then
// (the daemon's Redis client honours context deadlines on the socket); a
// handler that has not answered by then plus a short grace (asynq's
// inspector and the dashboard call Redis without a context) is answered
// 503 by the server instead, and its late answer is dropped. Either way no
// route answers later than AnswerBound(RequestTimeout) after the request
// was read, whatever Redis does.

// answerGrace is how long after the request's deadline a handler may
// still write its own answer (typically a 503 for the deadline its Redis
// call hit).
const answerGrace = 250 * time.Millisecond

// AnswerBound is the longest a route takes to answer under a request
// deadline of requestTimeout, whatever Redis does: 2.5 s with checkd's
// default of 2 s.
func AnswerBound(requestTimeout time.Duration) time.Duration { return requestTimeout + answerGrace }

// withDeadline runs each request under Config.RequestTimeout and answers
// 503 for a handler still running at that plus answerGrace. The handler
// writes into a buffer, copied out when it returns in time: a handler
// answering late never races the 503. A handler that flushes (a stream)
// sends what it wrote so far and writes through from then on: it has
// answered, and the deadline no longer applies to it.
func (s *Server) withDeadline(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ctx, cancel := context.WithTimeout(r.Context(), s.cfg.RequestTimeout)
		defer cancel()
		bw := &bufferedWriter{w: w, header: http.Header{}}
		done := make(chan any, 1) // the handler's panic, or nil; buffered: a late handler never blocks
		go func() {
			defer func() { done <- recover() }()
			next.ServeHTTP(bw, r.WithContext(ctx))
		}()
		bound := AnswerBound(s.cfg.RequestTimeout)
		timer := time.NewTimer(bound)
		defer timer.Stop()
		var p any
		select {
		case p = <-done:
		case <-timer.C:
			if bw.abandon() {
				s.log.WithFields(logrus.Fields{"requestId": RequestID(r.Context()), "method": r.Method, "path": r.URL.Path}).
					Warnf("api: no answer within %s (is Redis hanging?): answered 503; the handler's late answer is dropped", bound)
				w.Header().Set("Retry-After", "5")
				if h, _ := s.mux.Handler(r); h != nil {
					if ua, ok := h.(UnavailableAnswerer); ok { // a mounted page: its own format
						ua.AnswerUnavailable(w, r, bound)
						return
					}
				}
				writeError(w, http.StatusServiceUnavailable, CodeUnavailable, fmt.Sprintf(
					"the request did not finish within %s (the database is slow or unreachable): retry in a few seconds (GET /readyz says when it is back); a write may or may not have been applied, so read before repeating one",
					bound))
				return
			}
			p = <-done // streaming: it writes to w until it returns
		}
		if p != nil {
			panic(p) // withRecovery let it through (http.ErrAbortHandler): net/http handles it here
		}
		bw.finish()
	})
}

// UnavailableAnswerer is a handler mounted on the server (Mount) that
// answers, in its own format, the 503 the server sends for a request it
// did not answer within the deadline (AnswerBound): the admin console's
// HTML page rather than the API's JSON error. AnswerUnavailable must not
// touch Redis (it answers for a handler that is stuck on it) and must
// write the 503 itself; Retry-After is set already.
type UnavailableAnswerer interface {
	AnswerUnavailable(w http.ResponseWriter, r *http.Request, bound time.Duration)
}

// bufferedWriter holds a handler's answer until it returns (finish) or
// flushes (then it writes through); abandoned (the deadline answered for
// it), it drops every write.
type bufferedWriter struct {
	w      http.ResponseWriter
	header http.Header

	mu        sync.Mutex
	code      int
	body      bytes.Buffer
	abandoned bool
	streaming bool
}

func (b *bufferedWriter) Header() http.Header {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.streaming {
		return b.w.Header()
	}
	return b.header
}

func (b *bufferedWriter) WriteHeader(code int) {
	b.mu.Lock()
	defer b.mu.Unlock()
	switch {
	case b.streaming:
		b.w.WriteHeader(code)
	case b.code == 0 && code >= 200:
		b.code = code
	}
}

func (b *bufferedWriter) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	switch {
	case b.abandoned:
		return 0, http.ErrHandlerTimeout
	case b.streaming:
		return b.w.Write(p)
	}
	if b.code == 0 {
		b.code = http.StatusOK
	}
	return b.body.Write(p)
}

// FlushError sends what the handler wrote so far and switches to writing
// through (http.ResponseController uses it).
func (b *bufferedWriter) FlushError() error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.abandoned {
		return http.ErrHandlerTimeout
	}
	if !b.streaming {
		b.streaming = true
		b.copyLocked()
	}
	return http.NewResponseController(b.w).Flush()
}

// Flush is FlushError for callers of http.Flusher.
func (b *bufferedWriter) Flush() { _ = b.FlushError() }

// abandon drops the handler's answer unless it is streaming, and reports
// whether it did.
func (b *bufferedWriter) abandon() bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.abandoned = !b.streaming
	return b.abandoned
}

// finish writes the buffered answer out; the handler has returned.
func (b *bufferedWriter) finish() {
	b.mu.Lock()
	defer b.mu.Unlock()
	if !b.streaming {
		b.copyLocked()
	}
}

func (b *bufferedWriter) copyLocked() {
	h := b.w.Header()
	for k, v := range b.header {
		h[k] = v
	}
	code := b.code
	if code == 0 {
		code = http.StatusOK
	}
	b.w.WriteHeader(code)
	_, _ = b.w.Write(b.body.Bytes())
	b.body = bytes.Buffer{}
}
