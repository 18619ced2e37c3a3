package api_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"io"
	"net/http/httptest"
	"net/netip"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/checkd/checkd/internal/testing/testenv"

	"github.com/alicebob/miniredis/v2"
	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"
	"github.com/sirupsen/logrus"
	logtest "github.com/sirupsen/logrus/hooks/test"

	"github.com/checkd/checkd/api"
	"github.com/checkd/checkd/checks"
	"github.com/checkd/checkd/configs"
	"github.com/checkd/checkd/internal/clock"
	"github.com/checkd/checkd/internal/link"
	"github.com/checkd/checkd/internal/tasks"
	"github.com/checkd/checkd/internal/testing/openapitest"
	"github.com/checkd/checkd/internal/testing/redistest"
	"github.com/checkd/checkd/store"
	"github.com/checkd/checkd/webhook"
)

func TestMain(m *testing.M) { redistest.Main(m) }

const (
	testKey  = "test-key-0123456789"
	otherKey = "second-key-abcdef"
	secret   = "hunter2-Sup3rSecret!"
)

var testNow = time.Date(2026, 3, 2, 10, 0, 0, 0, time.UTC)

var datasources = func() []string { return []string{"sandbox", "webportal"} }

// linkTTL is how long the test link tokens live.
const linkTTL = time.Hour

// publicURL is the PublicURL of the test servers.
const publicURL = "https://checkd.example.com"

// env is one API over its own miniredis (newEnv) or its own database of a
// real redis-server (newRealEnv).
type env struct {
	t    testing.TB
	te   *testenv.Env
	mr   *miniredis.Miniredis // nil on real Redis
	rdb  redis.UniversalClient
	st   *store.Store
	srv  *api.Server
	clk  *clock.Fake
	logs *logtest.Hook
	// dump renders the whole database, to prove a request wrote nothing.
	dump  func() string
	links *link.Signer
	enq   *testenv.Enqueuer // newEnv: records what the API enqueues
	insp  *asynq.Inspector  // newRealEnv: the real queues
	wh    *webhook.Admin
}

func newSigner(tb testing.TB, clk clock.Clock) *link.Signer {
	tb.Helper()
	s, err := link.NewSigner(link.DeriveKey(bytes.Repeat([]byte("k"), 32)), linkTTL, clk)
	if err != nil {
		tb.Fatal(err)
	}
	return s
}

// testConfig is checkd's default API configuration on a free port, with
// the test key, the test datasources and a quiet logger, changed by each
// of mods.
func testConfig(mods ...func(*api.Config)) api.Config {
	cfg := api.ConfigFrom(configs.Default())
	cfg.Addr, cfg.APIKeys, cfg.Datasources = "127.0.0.1:0", []string{testKey}, datasources
	// No rate limit on a fake clock that stands still (TestRateLimit sets one).
	cfg.RateLimit = 0
	quiet := logrus.New()
	quiet.SetOutput(io.Discard)
	cfg.Logger = quiet
	for _, m := range mods {
		m(&cfg)
	}
	return cfg
}

// newEnv is an API over miniredis with a recording enqueuer and a link
// signer and no queue inspector; opts adjust its config.
func newEnv(tb testing.TB, opts ...func(*api.Config)) *env {
	tb.Helper()
	// No retries: a test that stops Redis wants the failure at once.
	te := testenv.New(tb, testenv.Options{Start: testNow, MiniOptions: func(o *redis.Options) { o.MaxRetries = -1 }})
	rdb, clk, st := te.Redis, te.Clock, te.Store
	logger, hook := logtest.NewNullLogger()
	logger.SetLevel(logrus.DebugLevel)
	e := &env{t: tb, te: te, mr: te.Mini, rdb: rdb, st: st, clk: clk, logs: hook, dump: te.Mini.Dump,
		links: newSigner(tb, clk), enq: &testenv.Enqueuer{}}
	e.wh = newWebhooks(tb, st, e.enq, clk)
	cfg := testConfig(func(c *api.Config) {
		c.APIKeys, c.Logger, c.Clock, c.MaxBodyBytes = []string{testKey, otherKey}, logger, clk, 4096
		c.Enqueuer, c.Links, c.PublicURL, c.Webhooks = e.enq, e.links, publicURL, e.wh
	})
	for _, o := range opts {
		o(&cfg)
	}
	srv, err := api.New(st, cfg)
	if err != nil {
		tb.Fatal(err)
	}
	e.srv = srv
	return e
}

// webhookHosts resolves the hosts of the test endpoints: no test looks up
// a real name.
type webhookHosts map[string]string

func (h webhookHosts) LookupNetIP(_ context.Context, _, host string) ([]netip.Addr, error) {
	a, ok := h[host]
	if !ok {
		return nil, fmt.Errorf("no such host %q", host)
	}
	return []netip.Addr{netip.MustParseAddr(a)}, nil
}

// newWebhooks is the webhook operations of the test APIs: the address
// policy on, with hooks.example.com public and internal.example.com
// private.
func newWebhooks(tb testing.TB, st *store.Store, enq webhook.Enqueuer, clk clock.Clock) *webhook.Admin {
	tb.Helper()
	a, err := webhook.NewAdmin(st, enq, webhook.AdminConfig{
		Policy:        webhook.Policy{Resolver: webhookHosts{"hooks.example.com": "93.184.216.34", "internal.example.com": "10.0.0.7"}},
		RotationGrace: time.Hour, Timeout: 15 * time.Second, Retention: 30 * 24 * time.Hour, Clock: clk,
	})
	if err != nil {
		tb.Fatal(err)
	}
	return a
}

// newRealEnv is an API over a database of its own on the real
// redis-server, with a real asynq client and inspector on that database.
func newRealEnv(tb testing.TB) *env {
	tb.Helper()
	te := testenv.New(tb, testenv.Options{Redis: redistest.Start(tb).Client(tb), Start: testNow})
	rdb, clk, st := te.Redis, te.Clock, te.Store
	logger, hook := logtest.NewNullLogger()
	logger.SetLevel(logrus.DebugLevel)
	// Both share rdb, which the harness closes; asynq never closes a
	// client it was handed.
	insp := asynq.NewInspectorFromRedisClient(rdb)
	e := &env{t: tb, te: te, rdb: rdb, st: st, clk: clk, logs: hook, links: newSigner(tb, clk), insp: insp}
	e.dump = func() string { return snapshot(tb, rdb) }
	srv, err := api.New(st, testConfig(func(c *api.Config) {
		c.APIKeys, c.Logger, c.Clock, c.MaxBodyBytes = []string{testKey, otherKey}, logger, clk, 4096
		c.Enqueuer, c.Inspector = asynq.NewClientFromRedisClient(rdb), insp
		c.Links, c.PublicURL = e.links, publicURL+"/" // the trailing slash is dropped
		c.Webhooks = newWebhooks(tb, st, asynq.NewClientFromRedisClient(rdb), clk)
		// Options reach the task, but never move it off the critical queue.
		c.TaskOptions = []asynq.Option{asynq.MaxRetry(2), asynq.Queue(tasks.QueueLow)}
	}))
	if err != nil {
		tb.Fatal(err)
	}
	e.srv = srv
	return e
}

// snapshot renders every key of a real Redis database with a digest of its
// DUMP, so two snapshots are equal only if nothing was written between.
func snapshot(tb testing.TB, rdb *redis.Client) string {
	tb.Helper()
	ctx := context.Background()
	var keys []string
	it := rdb.Scan(ctx, 0, "*", 1000).Iterator()
	for it.Next(ctx) {
		keys = append(keys, it.Val())
	}
	if err := it.Err(); err != nil {
		tb.Fatalf("scan: %v", err)
	}
	slices.Sort(keys)
	var b strings.Builder
	for _, k := range keys {
		v, err := rdb.Dump(ctx, k).Result()
		if err != nil && err != redis.Nil {
			tb.Fatalf("dump %s: %v", k, err)
		}
		fmt.Fprintf(&b, "%s %x\n", k, sha256.Sum256([]byte(v)))
	}
	return b.String()
}

// call is one request. key "" sends the valid key, "-" none; ct "" sends
// application/json when there is a body, "-" none.
type call struct {
	method, path, body string
	key, ct            string
	hdr                map[string]string
	chunked            bool
	// unchecked: not checked against the OpenAPI document (a handler the
	// test mounted, not the API's).
	unchecked bool
}

// do serves c, checking the exchange against the OpenAPI document (a
// mismatch fails e's test). It fails the test for nothing else.
func (e *env) do(c call) *httptest.ResponseRecorder { return e.doAs(e.t, c) }

// doAs is do reporting a mismatch with the document to tb: a fuzz
// target's own test.
func (e *env) doAs(tb testing.TB, c call) *httptest.ResponseRecorder {
	r := httptest.NewRequest(c.method, c.path, strings.NewReader(c.body))
	switch c.key {
	case "":
		r.Header.Set(api.HeaderAPIKey, testKey)
	case "-":
	default:
		r.Header.Set(api.HeaderAPIKey, c.key)
	}
	switch {
	case c.ct == "-":
	case c.ct != "":
		r.Header.Set("Content-Type", c.ct)
	case c.body != "":
		r.Header.Set("Content-Type", "application/json")
	}
	for k, v := range c.hdr {
		r.Header.Set(k, v)
	}
	if c.chunked {
		r.ContentLength = -1 // unknown length: only the body reader's limit can stop it
	}
	w := httptest.NewRecorder()
	if c.unchecked {
		e.srv.Handler().ServeHTTP(w, r)
		return w
	}
	openapitest.Handler(tb, e.srv.Handler()).ServeHTTP(w, r)
	return w
}

func decodeAs[T any](tb testing.TB, w *httptest.ResponseRecorder) T {
	tb.Helper()
	var v T
	if ct := w.Header().Get("Content-Type"); ct != "application/json" {
		tb.Fatalf("Content-Type = %q, want application/json; body %s", ct, w.Body)
	}
	if err := json.Unmarshal(w.Body.Bytes(), &v); err != nil {
		tb.Fatalf("decode %T from %q: %v", v, w.Body, err)
	}
	return v
}

func (e *env) company(name string) store.Company { return e.te.Company(e.t, name) }

func (e *env) connection(companyID, username string) store.Connection {
	return createConnection(e.t, e, companyID, username)
}

// createConnection creates a sandbox connection named "conn " + username
// with the password secret.
func createConnection(tb testing.TB, e *env, companyID, username string) store.Connection {
	return e.te.Connection(tb, store.NewConnection{CompanyID: companyID, Datasource: "sandbox",
		Name: "conn " + username, Credentials: checks.Credentials{Username: username, Password: secret}})
}

var attempts atomic.Int64

// recordCheck applies a check result as the worker would.
func recordCheck(tb testing.TB, st *store.Store, clk *clock.Fake, connID string, res checks.Result) {
	tb.Helper()
	ctx := context.Background()
	tg, err := st.LoadCheck(ctx, connID)
	if err != nil {
		tb.Fatal(err)
	}
	if tg.Skip != checks.SkipNone {
		tb.Fatalf("connection %s is not checkable: %v", connID, tg.Skip)
	}
	start := clk.Now()
	end := clk.Advance(time.Second)
	rec, err := st.RecordCheck(ctx, tg, store.CheckResult{Attempt: fmt.Sprintf("t%d", attempts.Add(1)),
		StartedAt: start, FinishedAt: end, Result: res})
	if err != nil || rec.Outcome != store.Applied {
		tb.Fatalf("record check of %s: %+v, %v", connID, rec, err)
	}
}

// assertNoSecret fails when a log entry or a body mentions the password.
func (e *env) assertNoSecret(bodies ...string) {
	e.t.Helper()
	for _, b := range bodies {
		if strings.Contains(b, secret) {
			e.t.Errorf("response contains the password: %s", b)
		}
	}
	for _, en := range e.logs.AllEntries() {
		line, err := en.String()
		if err != nil {
			e.t.Fatal(err)
		}
		if strings.Contains(line, secret) || strings.Contains(line, testKey) {
			e.t.Errorf("log line contains a secret: %s", line)
		}
	}
}

func readAll(tb testing.TB, r io.Reader) string {
	tb.Helper()
	b, err := io.ReadAll(r)
	if err != nil {
		tb.Fatal(err)
	}
	return string(b)
}
