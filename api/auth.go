package api

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"errors"
	"fmt"
	"math"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"golang.org/x/time/rate"

	"github.com/checkd/checkd/store"
)

// Scope is what an API key may do. A route needs one scope; a key holds
// any set of them (none implies another). The bootstrap keys
// (Config.APIKeys) hold every one.
type Scope string

// The scopes.
const (
	// ScopeRead reads companies, connections, their history and the
	// status vocabulary.
	ScopeRead Scope = "read"
	// ScopeWrite creates and changes companies and connections, refreshes
	// them and hands out their links.
	ScopeWrite Scope = "write"
	// ScopeAdmin runs checkd itself: the task queues, the encryption keys,
	// the API keys, and handlers mounted behind the key.
	ScopeAdmin Scope = "admin"
	// ScopeWebhooks manages webhook endpoints and their messages.
	ScopeWebhooks Scope = "webhooks"
)

// Scopes lists every scope.
var Scopes = []Scope{ScopeRead, ScopeWrite, ScopeAdmin, ScopeWebhooks}

// BootstrapActor is the actor prefix of the bootstrap keys: a change made
// with one is recorded by "bootstrap:" and the first 8 hex digits of the
// key's SHA-256, which tells the keys apart without showing them.
const BootstrapActor = "bootstrap:"

// caller is who sent a request: the key's name and what it may do.
type caller struct {
	name   string
	scopes []string
	// companies, when not nil, are the only companies the key may see.
	companies []string
}

func (c *caller) has(scope Scope) bool { return slices.Contains(c.scopes, string(scope)) }

// sees reports whether the key may see company co's data.
func (c *caller) sees(co string) bool { return c.companies == nil || slices.Contains(c.companies, co) }

type callerKey struct{}

// callerOf is the request's caller; nil on a route that takes no key.
func callerOf(ctx context.Context) *caller {
	c, _ := ctx.Value(callerKey{}).(*caller)
	return c
}

// bootstrapKey is a configured key: its SHA-256, compared in constant
// time, and the actor it records.
type bootstrapKey struct {
	sum   [sha256.Size]byte
	actor string
}

func newBootstrapKeys(keys []string) []bootstrapKey {
	out := make([]bootstrapKey, len(keys))
	for i, sum := range hashKeys(keys) {
		out[i] = bootstrapKey{sum: sum, actor: BootstrapActor + hex.EncodeToString(sum[:4])}
	}
	return out
}

// allScopes are a bootstrap key's scopes: every one (shared, never
// changed).
var allScopes = func() []string {
	all := make([]string, len(Scopes))
	for i, sc := range Scopes {
		all[i] = string(sc)
	}
	return all
}()

// requestKey is the key a request carries, in X-API-Key or as a bearer
// token; "" when none.
func requestKey(r *http.Request) string {
	if key := r.Header.Get(HeaderAPIKey); key != "" {
		return key
	}
	// The scheme is case-insensitive (RFC 9110, section 11.1).
	if scheme, v, ok := strings.Cut(strings.TrimSpace(r.Header.Get("Authorization")), " "); ok && strings.EqualFold(scheme, "Bearer") {
		return strings.TrimSpace(v)
	}
	return ""
}

// authenticate finds the caller of a request: a bootstrap key (compared in
// memory), else a runtime key, read from Redis on every request so that a
// deleted key is refused at once by every API process (no cache to go
// stale). It answers the refusal itself and returns nil then.
func (s *Server) authenticate(w http.ResponseWriter, r *http.Request) *caller {
	key := requestKey(r)
	if key == "" {
		writeError(w, http.StatusUnauthorized, CodeUnauthorized, "missing X-API-Key header: send an API key in it (or as Authorization: Bearer <key>)")
		return nil
	}
	sum := sha256.Sum256([]byte(key))
	found := -1
	for i := range s.keys {
		if subtle.ConstantTimeCompare(sum[:], s.keys[i].sum[:]) == 1 {
			found = i
		}
	}
	if found >= 0 {
		return &caller{name: s.keys[found].actor, scopes: allScopes}
	}
	k, err := s.st.APIKeyBySecret(r.Context(), key)
	if errors.Is(err, store.ErrNotFound) {
		writeError(w, http.StatusUnauthorized, CodeUnauthorized,
			"the X-API-Key header does not match any API key (was it deleted?): check the key, or ask an admin for one (GET /v1/keys lists them)")
		return nil
	}
	if err != nil {
		s.serverError(w, r, err, "api: read API key")
		return nil
	}
	c := &caller{name: k.Name, scopes: k.Scopes}
	if len(k.Companies) > 0 {
		c.companies = k.Companies
	}
	return c
}

// requireScope wraps next so that it serves only requests whose key holds
// scope (401 without a valid key, 403 without the scope), within the key's
// rate (429 with Retry-After), and, for a key limited to companies, only
// about those companies: a route's {companyId} or the company of its
// {connectionId} must be one of them (404 otherwise, as for a company or
// connection that does not exist). Under it the store records the key's
// name as the actor of every change. It returns a keyedHandler, so the
// server's Routes knows the route's scope.
func (s *Server) requireScope(scope Scope, next http.Handler) http.Handler {
	return keyedHandler{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c := s.authenticate(w, r)
		if c == nil {
			return
		}
		if wait := s.limits.wait(c.name, s.cfg.Clock.Now()); wait > 0 {
			w.Header().Set("Retry-After", strconv.Itoa(int(math.Ceil(wait.Seconds()))))
			writeError(w, http.StatusTooManyRequests, CodeRateLimited, fmt.Sprintf(
				"key %s sent more than %g requests a second (burst %d): retry after the seconds in Retry-After", c.name, s.cfg.RateLimit, s.cfg.RateBurst))
			return
		}
		if !c.has(scope) {
			writeError(w, http.StatusForbidden, CodeForbidden, fmt.Sprintf(
				"key %s lacks the %s scope this route needs (it has %s): use a key with it, or ask an admin to create one (POST /v1/keys)",
				c.name, scope, strings.Join(c.scopes, ", ")))
			return
		}
		if c.companies != nil && !s.seesSubject(w, r, c) {
			return
		}
		ctx, err := store.WithActor(context.WithValue(r.Context(), callerKey{}, c), c.name)
		if err != nil { // a stored name the store refuses now: refuse rather than record no actor
			s.logError(r, err, "api: API key name")
			writeInternal(w, r)
			return
		}
		next.ServeHTTP(w, r.WithContext(ctx))
	}), scope: scope}
}

// seesSubject answers 404 (false) unless c may see the company the route
// is about: its {companyId}, or the company of its {connectionId}.
func (s *Server) seesSubject(w http.ResponseWriter, r *http.Request, c *caller) bool {
	if co := r.PathValue("companyId"); co != "" && !c.sees(co) {
		writeError(w, http.StatusNotFound, CodeNotFound, companyNotFound(co))
		return false
	}
	id := r.PathValue("connectionId")
	if id == "" {
		return true
	}
	co, err := s.st.ConnectionCompany(r.Context(), id)
	if err != nil && !errors.Is(err, store.ErrNotFound) {
		s.serverError(w, r, err, "api: read a connection's company")
		return false
	}
	if err != nil || !c.sees(co) {
		writeError(w, http.StatusNotFound, CodeNotFound, connectionNotFound(id))
		return false
	}
	return true
}

// actorContext is ctx recording actor as the actor of the store's writes.
func actorContext(ctx context.Context, actor string) context.Context {
	if actor == "" {
		return ctx
	}
	if out, err := store.WithActor(ctx, actor); err == nil {
		return out
	}
	return ctx // the actors passed here are the store's own or were accepted before
}

// limiters keeps one token bucket per key name, in this process.
type limiters struct {
	limit rate.Limit // 0: no limit
	burst int
	mu    sync.Mutex
	m     map[string]*rate.Limiter
}

// wait takes a token of name's bucket at now: 0 when there was one, else
// how long until there is (the token is not taken).
func (l *limiters) wait(name string, now time.Time) time.Duration {
	if l.limit == 0 {
		return 0
	}
	l.mu.Lock()
	lim := l.m[name]
	if lim == nil {
		if l.m == nil {
			l.m = map[string]*rate.Limiter{}
		}
		lim = rate.NewLimiter(l.limit, l.burst)
		l.m[name] = lim
	}
	l.mu.Unlock()
	res := lim.ReserveN(now, 1)
	if !res.OK() {
		return time.Hour // burst < 1: New refuses it
	}
	if d := res.DelayFrom(now); d > 0 {
		res.CancelAt(now)
		return d
	}
	return 0
}
