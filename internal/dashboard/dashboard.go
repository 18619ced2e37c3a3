// Package dashboard serves asynqmon, asynq's web UI and its JSON API, under
// /monitoring behind authentication a browser can do:
//
//   - HTTP Basic auth: user "admin" (Options.User), password the dashboard
//     password (Options.Password) or any API key (Options.APIKeys);
//   - or an X-API-Key header carrying an API key, for scripts.
//
// An X-API-Key header, when sent, decides alone. Secrets are compared in
// constant time. Anything else is answered 401 with a WWW-Authenticate
// challenge, so a browser asks for the login.
//
// The dashboard is read-only unless Options.Writable is set: queues and
// tasks can be looked at, not paused, deleted, run or archived. With
// Writable mutating calls are allowed, but only from the dashboard's own origin (a
// browser's saved Basic credentials must not let another site act).
//
// Task payloads are shown as they are stored; checkd's carry IDs only (see
// package tasks), never credentials.
//
// asynqmon answers a failed Redis call with a plain-text 500 carrying the
// error, which names the Redis address; the dashboard answers any 5xx of
// asynqmon with a JSON 503 instead ({"error":{"code":"unavailable"}},
// Retry-After) and logs the detail.
package dashboard

import (
	"bytes"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"

	"github.com/hibiken/asynqmon"
	"github.com/redis/go-redis/v9"
	"github.com/sirupsen/logrus"

	"github.com/checkd/checkd/api"
	"github.com/checkd/checkd/configs"
)

// RootPath is where checkd mounts the dashboard: the handler at RootPath
// + "/".
const RootPath = "/monitoring"

// Realm is the Basic-auth realm the browser shows.
const Realm = "checkd dashboard"

// HeaderAPIKey is the header scripts put an API key in (the REST API's).
const HeaderAPIKey = "X-API-Key"

// Options configure the dashboard. They have no defaults: New refuses an
// empty User or RootPath. OptionsFrom builds them from checkd's
// configuration (whose defaults are configs/checkd.yaml's).
type Options struct {
	// User is the Basic-auth user name (dashboard.user).
	User string
	// Password is the dashboard's own password. Optional when APIKeys has
	// one: every API key is accepted as the Basic-auth password too
	// (dashboard.password).
	Password string
	// APIKeys are the REST API's keys: accepted as the Basic-auth password
	// and in the X-API-Key header.
	APIKeys []string
	// Writable allows pausing queues and deleting, running or archiving
	// tasks; false: the dashboard is for viewing (dashboard.writable).
	Writable bool
	// RootPath is the URL path of the dashboard, without a trailing slash:
	// RootPath in checkd.
	RootPath string
	// Logger receives the detail of asynqmon's failures (answered as a
	// 503 without it). Default: logrus's standard logger.
	Logger logrus.FieldLogger
}

// OptionsFrom returns the dashboard's options in a checkd configuration:
// its dashboard section, at RootPath. The caller adds APIKeys.
func OptionsFrom(c configs.Config) Options {
	d := c.Dashboard
	return Options{User: d.User, Password: d.Password, Writable: d.Writable, RootPath: RootPath}
}

// New returns the dashboard over rdb, the Redis asynq uses. The handler
// shares rdb (it opens no connection of its own) and never closes it: the
// caller keeps owning it. Mount the handler at RootPath + "/" (a net/http
// ServeMux then redirects RootPath to it). New fails when there is no
// secret to log in with.
func New(rdb redis.UniversalClient, opts Options) (http.Handler, error) {
	if rdb == nil {
		return nil, errors.New("dashboard: a redis client is required")
	}
	login, err := NewLogin(opts)
	if err != nil {
		return nil, err
	}
	if !strings.HasPrefix(opts.RootPath, "/") || strings.HasSuffix(opts.RootPath, "/") {
		return nil, fmt.Errorf("dashboard: root path %q must start with a slash and not end with one (e.g. %q)", opts.RootPath, RootPath)
	}
	if opts.Logger == nil {
		opts.Logger = logrus.StandardLogger()
	}
	readOnly := !opts.Writable
	mon := asynqmon.New(asynqmon.Options{
		RootPath:     opts.RootPath,
		RedisConnOpt: sharedClient{rdb},
		ReadOnly:     readOnly,
	})
	return &handler{next: mon, login: login, readOnly: readOnly, log: opts.Logger}, nil
}

// Login is the dashboard's authentication (see the package doc), shared
// by every page served behind it: asynqmon, and checkd's admin console
// (package console). Both challenge with one realm, so a browser logged in
// to one is logged in to the other.
type Login struct {
	name    string
	user    [sha256.Size]byte
	secrets [][sha256.Size]byte // the password and the API keys: Basic-auth passwords
	keys    [][sha256.Size]byte // the API keys: X-API-Key values
}

// NewLogin returns the login of opts' User, Password and APIKeys. It fails
// when there is no user or no secret to log in with.
func NewLogin(opts Options) (*Login, error) {
	if opts.User == "" {
		return nil, errors.New("dashboard: Options.User is empty; give the Basic-auth user name (configs: dashboard.user)")
	}
	var secrets [][sha256.Size]byte
	if opts.Password != "" {
		secrets = append(secrets, sha256.Sum256([]byte(opts.Password)))
	}
	var keys [][sha256.Size]byte
	for i, k := range opts.APIKeys {
		if strings.TrimSpace(k) == "" {
			return nil, fmt.Errorf("dashboard: API key %d of %d is empty: remove it or give it a value", i+1, len(opts.APIKeys))
		}
		keys = append(keys, sha256.Sum256([]byte(k)))
	}
	secrets = append(secrets, keys...)
	if len(secrets) == 0 {
		return nil, errors.New("dashboard: set a dashboard password or at least one API key: the dashboard is never served without authentication")
	}
	return &Login{name: opts.User, user: sha256.Sum256([]byte(opts.User)), secrets: secrets, keys: keys}, nil
}

// Check reports who the request is logged in as: the Basic-auth user, or
// for an X-API-Key header (which, when sent, decides alone) the key's
// actor as the REST API records it (api.BootstrapActor and 8 hex digits of
// its SHA-256); false when it is not logged in.
func (l *Login) Check(r *http.Request) (string, bool) {
	if k := r.Header.Get(HeaderAPIKey); k != "" {
		d := sha256.Sum256([]byte(k))
		if !matchAny(d, l.keys) {
			return "", false
		}
		return api.BootstrapActor + hex.EncodeToString(d[:4]), true
	}
	return l.name, l.basic(r)
}

// Challenge sets the WWW-Authenticate header of a 401 answer, so that a
// browser asks for the login; the caller writes the status and body.
func (l *Login) Challenge(w http.ResponseWriter) {
	w.Header().Set("WWW-Authenticate", `Basic realm="`+Realm+`", charset="UTF-8"`)
}

// basic checks the Basic credentials, comparing fixed-size digests in
// constant time against every secret (no early exit, so timing tells
// nothing about which one matched).
func (l *Login) basic(r *http.Request) bool {
	user, pass, ok := r.BasicAuth()
	if !ok {
		return false
	}
	u := sha256.Sum256([]byte(user))
	userOK := subtle.ConstantTimeCompare(u[:], l.user[:])
	passOK := 0
	if matchAny(sha256.Sum256([]byte(pass)), l.secrets) {
		passOK = 1
	}
	return userOK&passOK == 1
}

// sharedClient is an asynq.RedisConnOpt handing asynqmon the caller's
// client instead of a new connection pool.
type sharedClient struct{ rdb redis.UniversalClient }

// MakeRedisClient returns the shared client.
func (s sharedClient) MakeRedisClient() any { return s.rdb }

type handler struct {
	next     http.Handler
	login    *Login
	readOnly bool
	log      logrus.FieldLogger
}

// ServeHTTP authenticates, applies the method and origin rules, then hands
// the request to asynqmon.
func (h *handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if _, ok := h.login.Check(r); !ok {
		h.login.Challenge(w)
		writeError(w, http.StatusUnauthorized, "unauthorized",
			"log in to the dashboard with user and password (the dashboard password or an API key), or send an API key in the X-API-Key header")
		return
	}
	w.Header().Set("X-Frame-Options", "DENY")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	if !safeMethod(r.Method) {
		if h.readOnly {
			w.Header().Set("Allow", "GET, HEAD")
			writeError(w, http.StatusMethodNotAllowed, "method_not_allowed",
				fmt.Sprintf("the dashboard is read-only: %s is not allowed (the operator can enable changes in the dashboard configuration)", r.Method))
			return
		}
		if !SameOrigin(r) {
			writeError(w, http.StatusForbidden, "forbidden",
				"a change through the dashboard must come from the dashboard's own page (cross-site request refused)")
			return
		}
	}
	fw := &failureWriter{ResponseWriter: w}
	h.next.ServeHTTP(fw, r)
	if fw.failed {
		h.log.WithFields(logrus.Fields{"method": r.Method, "path": r.URL.Path, "status": fw.code,
			"detail": strings.TrimSpace(fw.detail.String())}).Warn("dashboard: asynqmon failed (is Redis reachable?)")
		w.Header().Set("Retry-After", "5")
		writeError(w, http.StatusServiceUnavailable, "unavailable",
			"the dashboard could not read the queues from the database: retry in a few seconds (GET /readyz says when it is back)")
	}
}

// failureWriter passes asynqmon's answers through, except a 5xx: its
// headers and body (the Redis error text) are held back, for the handler
// to log and answer instead.
type failureWriter struct {
	http.ResponseWriter
	code   int
	failed bool
	detail bytes.Buffer
}

func (f *failureWriter) WriteHeader(code int) {
	if f.code != 0 {
		return
	}
	f.code = code
	if code >= 500 {
		f.failed = true
		return
	}
	f.ResponseWriter.WriteHeader(code)
}

func (f *failureWriter) Write(p []byte) (int, error) {
	if f.code == 0 {
		f.WriteHeader(http.StatusOK)
	}
	if f.failed {
		if f.detail.Len() < maxDetail {
			f.detail.Write(p[:min(len(p), maxDetail-f.detail.Len())])
		}
		return len(p), nil
	}
	return f.ResponseWriter.Write(p)
}

// maxDetail bounds the failure text kept for the log.
const maxDetail = 1024

func matchAny(d [sha256.Size]byte, set [][sha256.Size]byte) bool {
	match := 0
	for i := range set {
		match |= subtle.ConstantTimeCompare(d[:], set[i][:])
	}
	return match == 1
}

func safeMethod(m string) bool {
	return m == http.MethodGet || m == http.MethodHead || m == http.MethodOptions
}

// SameOrigin reports whether a state-changing request comes from the
// server's own origin, by the Fetch metadata and Origin headers browsers
// send; a request with neither (curl, scripts) is not a browser's and passes.
func SameOrigin(r *http.Request) bool {
	if s := r.Header.Get("Sec-Fetch-Site"); s != "" && s != "same-origin" && s != "none" {
		return false
	}
	if o := r.Header.Get("Origin"); o != "" {
		u, err := url.Parse(o)
		if err != nil || !strings.EqualFold(u.Host, r.Host) {
			return false
		}
	}
	return true
}

func writeError(w http.ResponseWriter, status int, code, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(map[string]any{"error": map[string]string{"code": code, "message": msg}})
}
