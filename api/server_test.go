package api_test

import (
	"context"
	"io"
	"net/http"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/hibiken/asynq"
	"github.com/sirupsen/logrus"

	"github.com/checkd/checkd/api"
	"github.com/checkd/checkd/internal/testing/openapitest"
	"github.com/checkd/checkd/internal/testing/testenv"
	"github.com/checkd/checkd/store"
)

func TestNewRejectsBadConfig(t *testing.T) {
	t.Parallel()
	st := testenv.New(t, testenv.Options{}).Store
	for _, tc := range []struct {
		name   string
		st     *store.Store
		modify func(*api.Config)
		want   string
	}{
		{"no store", nil, func(*api.Config) {}, "store is required"},
		{"no keys", st, func(c *api.Config) { c.APIKeys = nil }, "CHECKD_API_KEYS"},
		{"empty key", st, func(c *api.Config) { c.APIKeys = []string{"k", " "} }, "API key 2 of 2 is empty"},
		{"no datasources", st, func(c *api.Config) { c.Datasources = nil }, "Datasources is required"},
		{"no address", st, func(c *api.Config) { c.Addr = "" }, "Config.Addr"},
		{"no body limit", st, func(c *api.Config) { c.MaxBodyBytes = 0 }, "Config.MaxBodyBytes"},
		{"public URL without scheme", st, func(c *api.Config) { c.PublicURL = "checkd.example.com" }, "PublicURL"},
		{"public URL with query", st, func(c *api.Config) { c.PublicURL = "https://x.example/?a=1" }, "PublicURL"},
		{"public URL of another scheme", st, func(c *api.Config) { c.PublicURL = "ftp://x.example" }, "PublicURL"},
	} {
		srv, err := api.New(tc.st, testConfig(tc.modify))
		if err == nil || srv != nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: New = %v, %v; want an error mentioning %q", tc.name, srv, err, tc.want)
		}
	}
}

func TestStartStop(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ctx := context.Background()
	if err := e.srv.Stop(ctx); err != nil { // before Start: a no-op
		t.Fatalf("Stop before Start: %v", err)
	}

	st := testenv.New(t, testenv.Options{}).Store
	srv, err := api.New(st, testConfig())
	if err != nil {
		t.Fatal(err)
	}
	if err := srv.Start(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = srv.Stop(context.Background()) })
	addr := srv.Addr()
	if addr == "127.0.0.1:0" || !strings.HasPrefix(addr, "127.0.0.1:") {
		t.Fatalf("Addr() = %q, want the bound port", addr)
	}
	if err := srv.Start(ctx); err == nil || !strings.Contains(err.Error(), "already running") {
		t.Errorf("second Start: %v", err)
	}

	client := openapitest.Client(t)
	resp, err := client.Get("http://" + addr + "/healthz")
	if err != nil {
		t.Fatal(err)
	}
	body := readAll(t, resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || !strings.Contains(body, `"ok"`) {
		t.Errorf("healthz: %d %s", resp.StatusCode, body)
	}

	// A second server on the same address fails fast and says so.
	taken, err := api.New(st, testConfig(func(c *api.Config) { c.Addr = addr }))
	if err != nil {
		t.Fatal(err)
	}
	if err := taken.Start(ctx); err == nil || !strings.Contains(err.Error(), addr) || !strings.Contains(err.Error(), "CHECKD_HTTP_ADDR") {
		t.Errorf("Start on a taken address: %v", err)
	}

	if err := srv.Stop(ctx); err != nil {
		t.Fatalf("Stop: %v", err)
	}
	if err := srv.Stop(ctx); err != nil {
		t.Errorf("second Stop: %v", err)
	}
	if _, err := client.Get("http://" + addr + "/healthz"); err == nil {
		t.Error("server still answers after Stop")
	}
	if err := srv.Start(ctx); err == nil || !strings.Contains(err.Error(), "stopped") {
		t.Errorf("Start after Stop: %v", err)
	}
	if srv.Addr() != addr {
		t.Errorf("Addr after Stop = %q, want %q", srv.Addr(), addr)
	}
}

func TestRequestIDAndAccessLog(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	hexID := regexp.MustCompile(`^[0-9a-f]{32}$`)
	for _, tc := range []struct {
		name, sent string
		echoed     bool
	}{
		{"absent", "", false},
		{"sane", "req-123.abc_DEF", true},
		{"with a space", "a b", false},
		{"control character", "a\x01b", false},
		{"too long", strings.Repeat("r", 129), false},
	} {
		e.logs.Reset()
		hdr := map[string]string{}
		if tc.sent != "" {
			hdr[api.HeaderRequestID] = tc.sent
		}
		w := e.do(call{method: "GET", path: "/v1/company", hdr: hdr})
		id := w.Header().Get(api.HeaderRequestID)
		if tc.echoed && id != tc.sent || !tc.echoed && !hexID.MatchString(id) {
			t.Errorf("%s: X-Request-ID %q for %q", tc.name, id, tc.sent)
		}
		entries := e.logs.AllEntries()
		if len(entries) != 1 {
			t.Fatalf("%s: %d log entries, want one access log line", tc.name, len(entries))
		}
		d := entries[0].Data
		if d["method"] != "GET" || d["path"] != "/v1/company" || d["status"] != 200 || d["requestId"] != id || d["duration"] == nil {
			t.Errorf("%s: access log fields %v", tc.name, d)
		}
	}
	// The API key (a header) and the password (a body) never reach the log.
	co := e.company("Acme")
	e.do(call{method: "POST", path: "/v1/connection/company/" + co.ID, body: goodConnection})
	e.do(call{method: "POST", path: "/v1/connection/company/" + co.ID, body: `{"datasource":"nope","credentials":{"password":"` + secret + `"}}`})
	e.do(call{method: "POST", path: "/v1/connection/company/" + co.ID, body: `{"credentials":{"password":"` + secret + `"`})
	e.assertNoSecret()
}

func TestPanicRecovery(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.srv.Mount("GET /boom", http.HandlerFunc(func(http.ResponseWriter, *http.Request) { panic("kaboom") }), false)
	w := e.do(call{method: "GET", path: "/boom", key: "-", hdr: map[string]string{api.HeaderRequestID: "panic-1"}, unchecked: true})
	if w.Code != http.StatusInternalServerError {
		t.Fatalf("status %d: %s", w.Code, w.Body)
	}
	got := decodeAs[api.ErrorResponse](t, w)
	if got.Error.Code != api.CodeInternal || !strings.Contains(got.Error.Message, "panic-1") || strings.Contains(got.Error.Message, "kaboom") {
		t.Errorf("error %+v: want a generic message with the request ID", got)
	}
	var logged, accessed bool
	for _, en := range e.logs.AllEntries() {
		if en.Level == logrus.ErrorLevel && en.Data["panic"] == "kaboom" && en.Data["requestId"] == "panic-1" && en.Data["stack"] != nil {
			logged = true
		}
		if en.Message == "http request" && en.Data["status"] == 500 {
			accessed = true
		}
	}
	if !logged || !accessed {
		t.Errorf("panic logged %v, access log with 500 %v: %v", logged, accessed, e.logs.AllEntries())
	}
}

func TestMount(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ok := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if api.RequestID(r.Context()) == "" {
			t.Error("mounted handler sees no request ID")
		}
		_, _ = io.WriteString(w, "mounted "+r.URL.Path)
	})
	e.srv.Mount("GET /metrics", ok, false)
	e.srv.Mount("/monitoring/", ok, true)
	e.srv.Mount("GET /stream", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.WriteString(w, "part")
		if err := http.NewResponseController(w).Flush(); err != nil {
			t.Errorf("flush through the middleware: %v", err)
		}
	}), false)
	routes := e.srv.Routes()
	for _, want := range []api.Route{{Method: "GET", Path: "/metrics"}, {Path: "/monitoring/", KeyRequired: true, Scope: api.ScopeAdmin}, {Method: "GET", Path: "/stream"}} {
		if !slices.Contains(routes, want) {
			t.Errorf("Routes() lacks the mount %+v: %+v", want, routes)
		}
	}
	if w := e.do(call{method: "GET", path: "/stream", unchecked: true}); w.Code != 200 || !w.Flushed || w.Body.String() != "part" {
		t.Errorf("streaming mount: %d flushed %v %q", w.Code, w.Flushed, w.Body)
	}
	for _, tc := range []struct {
		name string
		c    call
		code int
	}{
		{"open mount without key", call{method: "GET", path: "/metrics", key: "-"}, 200},
		{"keyed mount without key", call{method: "GET", path: "/monitoring/queues", key: "-"}, 401},
		{"keyed mount with wrong key", call{method: "GET", path: "/monitoring/", key: "nope"}, 401},
		{"keyed mount with key", call{method: "POST", path: "/monitoring/queues"}, 200},
		{"wrong method on a method mount", call{method: "DELETE", path: "/metrics"}, 405},
	} {
		tc.c.unchecked = true
		if w := e.do(tc.c); w.Code != tc.code {
			t.Errorf("%s: %d %s, want %d", tc.name, w.Code, w.Body, tc.code)
		}
	}
}

func TestStoreFailures(t *testing.T) {
	t.Parallel()
	// logged checks that the failure's detail went to the log at error level.
	logged := func(e *env) bool {
		for _, en := range e.logs.AllEntries() {
			if err, ok := en.Data[logrus.ErrorKey].(error); ok && en.Level == logrus.ErrorLevel && err != nil {
				return true
			}
		}
		return false
	}

	t.Run("a corrupt record is 500", func(t *testing.T) {
		t.Parallel()
		e := newEnv(t)
		c := e.connection(e.company("Acme").ID, "user_good")
		e.mr.Set("cd:c:"+c.ID, "{not json")
		w := e.do(call{method: "GET", path: "/v1/connection/" + c.ID + "/details"})
		got := decodeAs[api.ErrorResponse](t, w)
		if w.Code != http.StatusInternalServerError || got.Error.Code != api.CodeInternal || strings.Contains(got.Error.Message, "json") || !logged(e) {
			t.Fatalf("%d %s, want 500 without the detail, which is logged", w.Code, w.Body)
		}
	})

	t.Run("Redis loading its data is 503 with Retry-After", func(t *testing.T) {
		t.Parallel()
		e := newEnv(t)
		co := e.company("Acme")
		for _, msg := range []string{"LOADING Redis is loading the dataset in memory", "READONLY You can't write against a read only replica.", "MASTERDOWN Link with MASTER is down"} {
			e.mr.SetError(msg)
			w := e.do(call{method: "GET", path: "/v1/company/" + co.ID})
			if w.Code != http.StatusServiceUnavailable || w.Header().Get("Retry-After") == "" {
				t.Errorf("%q: %d %s, want 503 with Retry-After", msg, w.Code, w.Body)
			}
		}
		e.mr.SetError("ERR something else")
		if w := e.do(call{method: "GET", path: "/v1/company/" + co.ID}); w.Code != http.StatusInternalServerError {
			t.Errorf("another error reply: %d %s, want 500", w.Code, w.Body)
		}
	})

	t.Run("Redis unreachable is 503 with Retry-After", func(t *testing.T) {
		t.Parallel()
		insp := &lateInspector{}
		e := newEnv(t, func(c *api.Config) { c.Inspector = insp })
		insp.in = asynq.NewInspectorFromRedisClient(e.rdb)
		co := e.company("Acme")
		addr := e.mr.Addr()
		e.mr.Close() // every store call now fails with a connection error
		for _, c := range []call{
			{method: "GET", path: "/v1/company"},
			{method: "GET", path: "/v1/company/" + co.ID},
			{method: "POST", path: "/v1/connection/company/" + co.ID, body: goodConnection},
			{method: "GET", path: "/v1/queues"},
			{method: "POST", path: "/v1/queues/default/pause"},
		} {
			e.logs.Reset()
			w := e.do(c)
			if w.Code != http.StatusServiceUnavailable || w.Header().Get("Retry-After") == "" {
				t.Errorf("%s %s: %d %v %s, want 503 with Retry-After", c.method, c.path, w.Code, w.Header(), w.Body)
				continue
			}
			got := decodeAs[api.ErrorResponse](t, w)
			if got.Error.Code != api.CodeUnavailable || !strings.Contains(got.Error.Message, "retry") ||
				strings.Contains(got.Error.Message, addr) || strings.Contains(got.Error.Message, "refused") {
				t.Errorf("%s %s: message %q: want a retry hint without the detail", c.method, c.path, got.Error.Message)
			}
			if !logged(e) {
				t.Errorf("%s %s: the failure was not logged", c.method, c.path)
			}
		}
		e.assertNoSecret()
	})
}

func TestStopWithRequestInFlight(t *testing.T) {
	t.Parallel()
	st := testenv.New(t, testenv.Options{}).Store
	srv, err := api.New(st, testConfig())
	if err != nil {
		t.Fatal(err)
	}
	entered, release := make(chan struct{}), make(chan struct{})
	srv.Mount("GET /slow", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		close(entered)
		<-release
	}), false)
	if err := srv.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		resp, err := http.Get("http://" + srv.Addr() + "/slow")
		if err == nil {
			resp.Body.Close()
		}
	}()
	select {
	case <-entered:
	case <-time.After(30 * time.Second): // a hang detector, not a latency bound
		t.Fatal("the slow request never arrived")
	}
	// A deadline that has passed cannot wait for the request: Stop says so
	// and closes the connection instead of hanging.
	expired, cancel := context.WithCancel(context.Background())
	cancel()
	if err := srv.Stop(expired); err == nil || !strings.Contains(err.Error(), "graceful shutdown") {
		t.Errorf("Stop with a request in flight and no time: %v", err)
	}
	close(release)
	select {
	case <-done:
	case <-time.After(30 * time.Second): // a hang detector, not a latency bound
		t.Fatal("the client never returned")
	}
	if err := srv.Stop(context.Background()); err != nil {
		t.Errorf("Stop after a failed Stop: %v", err)
	}
}

// lateInspector is a QueueInspector whose *asynq.Inspector is set after the
// server is built (it needs the env's Redis client).
type lateInspector struct{ in *asynq.Inspector }

func (l *lateInspector) Queues() ([]string, error)                       { return l.in.Queues() }
func (l *lateInspector) GetQueueInfo(q string) (*asynq.QueueInfo, error) { return l.in.GetQueueInfo(q) }
func (l *lateInspector) PauseQueue(q string) error                       { return l.in.PauseQueue(q) }
func (l *lateInspector) UnpauseQueue(q string) error                     { return l.in.UnpauseQueue(q) }
