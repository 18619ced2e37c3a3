package dashboard_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"
	"github.com/sirupsen/logrus"

	"github.com/checkd/checkd/checks"
	"github.com/checkd/checkd/configs"
	"github.com/checkd/checkd/internal/dashboard"
	"github.com/checkd/checkd/internal/tasks"
	"github.com/checkd/checkd/internal/testing/redistest"
	"github.com/checkd/checkd/internal/testing/testenv"
	"github.com/checkd/checkd/store"
)

func TestMain(m *testing.M) { redistest.Main(m) }

const (
	apiKey      = "api-key-0123456789"
	dashPass    = "dash-pass-abcdef"
	connSecret  = "Conn-Pa55word-never-shown!"
	connUser    = "user_good"
	defaultRoot = dashboard.RootPath
)

var slot = time.Date(2026, 3, 2, 10, 0, 0, 0, time.UTC)

type env struct {
	rdb    *redis.Client
	insp   *asynq.Inspector
	srv    *httptest.Server
	connID string
	taskID string
}

// options are checkd's default dashboard options (no password), changed by
// mod.
func options(mod func(*dashboard.Options)) dashboard.Options {
	o := dashboard.OptionsFrom(configs.Default())
	mod(&o)
	return o
}

// newEnv stores a connection with a known password on a real Redis, enqueues
// its check task, and serves the dashboard with options(mod).
func newEnv(t *testing.T, mod func(*dashboard.Options)) *env {
	t.Helper()
	opts := options(mod)
	te := testenv.New(t, testenv.Options{Redis: redistest.Start(t).Client(t)})
	rdb := te.Redis
	conn := te.Connection(t, store.NewConnection{CompanyID: te.Company(t, "Acme").ID, Datasource: "sandbox",
		Credentials: checks.Credentials{Username: connUser, Password: connSecret}})
	task, err := tasks.NewCheckTask(conn.ID, slot, tasks.ReasonScheduled)
	if err != nil {
		t.Fatal(err)
	}
	info, err := asynq.NewClientFromRedisClient(rdb).Enqueue(task, asynq.Queue(tasks.QueueDefault))
	if err != nil {
		t.Fatal(err)
	}
	h, err := dashboard.New(rdb, opts)
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	mux.Handle(defaultRoot+"/", h) // as the daemon mounts it
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	return &env{rdb: rdb, insp: asynq.NewInspectorFromRedisClient(rdb), srv: srv, connID: conn.ID, taskID: info.ID}
}

type auth func(*http.Request)

func basic(user, pass string) auth { return func(r *http.Request) { r.SetBasicAuth(user, pass) } }
func header(k string) auth         { return func(r *http.Request) { r.Header.Set(dashboard.HeaderAPIKey, k) } }
func none(*http.Request)           {}

func (e *env) do(t *testing.T, method, path string, a auth, hdr map[string]string) (*http.Response, string) {
	t.Helper()
	req, err := http.NewRequest(method, e.srv.URL+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	a(req)
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp, string(b)
}

func TestAuthentication(t *testing.T) {
	e := newEnv(t, func(o *dashboard.Options) { o.Password, o.APIKeys = dashPass, []string{"other-key-xyz", apiKey} })
	for _, tc := range []struct {
		name string
		auth auth
		want int
	}{
		{"no credentials", none, http.StatusUnauthorized},
		{"basic: dashboard password", basic("admin", dashPass), http.StatusOK},
		{"basic: an API key as password", basic("admin", apiKey), http.StatusOK},
		{"basic: wrong password", basic("admin", "nope"), http.StatusUnauthorized},
		{"basic: wrong user", basic("root", dashPass), http.StatusUnauthorized},
		{"basic: empty password", basic("admin", ""), http.StatusUnauthorized},
		{"header: API key", header(apiKey), http.StatusOK},
		{"header: the dashboard password is not an API key", header(dashPass), http.StatusUnauthorized},
		{"header: wrong key", header("nope"), http.StatusUnauthorized},
	} {
		t.Run(tc.name, func(t *testing.T) {
			resp, body := e.do(t, http.MethodGet, defaultRoot+"/", tc.auth, nil)
			if resp.StatusCode != tc.want {
				t.Fatalf("GET %s/: status %d, want %d: %s", defaultRoot, resp.StatusCode, tc.want, body)
			}
			if tc.want == http.StatusUnauthorized {
				if got := resp.Header.Get("WWW-Authenticate"); !strings.HasPrefix(got, `Basic realm="checkd dashboard"`) {
					t.Errorf("WWW-Authenticate = %q, want a Basic challenge", got)
				}
				var er struct {
					Error struct{ Code, Message string } `json:"error"`
				}
				if err := json.Unmarshal([]byte(body), &er); err != nil || er.Error.Code != "unauthorized" || er.Error.Message == "" {
					t.Errorf("401 body = %s, want the API's error format", body)
				}
				return
			}
			if ct := resp.Header.Get("Content-Type"); !strings.HasPrefix(ct, "text/html") {
				t.Errorf("Content-Type = %q, want HTML", ct)
			}
			if !strings.Contains(body, "<html") || !strings.Contains(body, defaultRoot) {
				t.Errorf("GET %s/ is not asynqmon's page rooted at %s:\n%.300s", defaultRoot, defaultRoot, body)
			}
		})
	}
}

func TestCustomUser(t *testing.T) {
	e := newEnv(t, func(o *dashboard.Options) { o.User, o.Password = "ops", dashPass })
	if resp, _ := e.do(t, http.MethodGet, defaultRoot+"/", basic("ops", dashPass), nil); resp.StatusCode != http.StatusOK {
		t.Fatalf("custom user: status %d, want 200", resp.StatusCode)
	}
	if resp, _ := e.do(t, http.MethodGet, defaultRoot+"/", basic("admin", dashPass), nil); resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("default user with a custom one configured: status %d, want 401", resp.StatusCode)
	}
	if resp, _ := e.do(t, http.MethodGet, defaultRoot+"/", header(dashPass), nil); resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("no API keys configured, X-API-Key must not pass: status %d", resp.StatusCode)
	}
}

func TestQueuesAPIAndPayloadsCarryIDsOnly(t *testing.T) {
	e := newEnv(t, func(o *dashboard.Options) { o.APIKeys = []string{apiKey} })

	resp, body := e.do(t, http.MethodGet, defaultRoot+"/api/queues", header(apiKey), nil)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET api/queues: %d %s", resp.StatusCode, body)
	}
	var qs struct {
		Queues []struct {
			Queue   string `json:"queue"`
			Size    int    `json:"size"`
			Pending int    `json:"pending"`
		} `json:"queues"`
	}
	if err := json.Unmarshal([]byte(body), &qs); err != nil {
		t.Fatalf("api/queues is not JSON: %v: %s", err, body)
	}
	if len(qs.Queues) != 1 || qs.Queues[0].Queue != tasks.QueueDefault || qs.Queues[0].Pending != 1 {
		t.Fatalf("api/queues = %+v, want the default queue with 1 pending task", qs.Queues)
	}

	resp, body = e.do(t, http.MethodGet, defaultRoot+"/api/queues/default/pending_tasks", basic("admin", apiKey), nil)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET pending_tasks: %d %s", resp.StatusCode, body)
	}
	var pt struct {
		Tasks []struct {
			ID      string `json:"id"`
			Type    string `json:"type"`
			Payload string `json:"payload"`
		} `json:"tasks"`
	}
	if err := json.Unmarshal([]byte(body), &pt); err != nil {
		t.Fatalf("pending_tasks is not JSON: %v: %s", err, body)
	}
	if len(pt.Tasks) != 1 {
		t.Fatalf("pending tasks = %+v, want 1", pt.Tasks)
	}
	got := pt.Tasks[0]
	if got.ID != tasks.CheckTaskID(e.connID, slot) || got.Type != tasks.TypeCheckConnection {
		t.Errorf("task = %+v, want %s of type %s", got, tasks.CheckTaskID(e.connID, slot), tasks.TypeCheckConnection)
	}
	p, err := tasks.ParseCheckPayload([]byte(got.Payload))
	if err != nil || p.ConnectionID != e.connID {
		t.Errorf("payload %q does not name connection %s (%v)", got.Payload, e.connID, err)
	}
	if strings.Contains(body, connSecret) {
		t.Fatalf("the connection's password appears in the dashboard's task listing:\n%s", body)
	}
	var fields map[string]any
	if err := json.Unmarshal([]byte(got.Payload), &fields); err != nil {
		t.Fatal(err)
	}
	for k := range fields {
		if k != "connectionId" && k != "slot" && k != "reason" {
			t.Errorf("payload has field %q; payloads carry IDs only", k)
		}
	}
}

func TestReadOnlyRefusesMutations(t *testing.T) {
	e := newEnv(t, func(o *dashboard.Options) { o.APIKeys = []string{apiKey} }) // not Writable: read-only
	for _, tc := range []struct {
		method, path string
	}{
		{http.MethodDelete, "/api/queues/default/pending_tasks/" + "TASK"},
		{http.MethodPost, "/api/queues/default/pending_tasks/" + "TASK" + ":archive"},
		{http.MethodPost, "/api/queues/default:pause"},
		{http.MethodDelete, "/api/queues/default"},
	} {
		path := strings.ReplaceAll(tc.path, "TASK", e.taskID)
		t.Run(tc.method+" "+path, func(t *testing.T) {
			resp, body := e.do(t, tc.method, defaultRoot+path, basic("admin", apiKey), nil)
			if resp.StatusCode != http.StatusMethodNotAllowed || !strings.Contains(body, "read-only") {
				t.Fatalf("status %d %s, want 405 saying read-only", resp.StatusCode, body)
			}
		})
	}
	info, err := e.insp.GetTaskInfo(tasks.QueueDefault, e.taskID)
	if err != nil || info.State != asynq.TaskStatePending {
		t.Fatalf("the task must still be pending after refused mutations: %+v %v", info, err)
	}
	qi, err := e.insp.GetQueueInfo(tasks.QueueDefault)
	if err != nil || qi.Paused {
		t.Fatalf("the queue must not be paused: %+v %v", qi, err)
	}
}

func TestWritableAllowsSameOriginMutationsOnly(t *testing.T) {
	e := newEnv(t, func(o *dashboard.Options) { o.Password, o.Writable = dashPass, true })
	path := defaultRoot + "/api/queues/default/pending_tasks/" + e.taskID

	resp, body := e.do(t, http.MethodDelete, path, basic("admin", dashPass),
		map[string]string{"Origin": "https://evil.example", "Sec-Fetch-Site": "cross-site"})
	if resp.StatusCode != http.StatusForbidden {
		t.Fatalf("cross-site DELETE: status %d %s, want 403", resp.StatusCode, body)
	}
	if _, err := e.insp.GetTaskInfo(tasks.QueueDefault, e.taskID); err != nil {
		t.Fatalf("a refused cross-site DELETE removed the task: %v", err)
	}

	resp, body = e.do(t, http.MethodDelete, path, basic("admin", dashPass),
		map[string]string{"Origin": e.srv.URL, "Sec-Fetch-Site": "same-origin"})
	if resp.StatusCode/100 != 2 {
		t.Fatalf("same-origin DELETE: status %d %s, want 2xx", resp.StatusCode, body)
	}
	if _, err := e.insp.GetTaskInfo(tasks.QueueDefault, e.taskID); !errors.Is(err, asynq.ErrTaskNotFound) {
		t.Fatalf("after DELETE the task lookup = %v, want ErrTaskNotFound", err)
	}
}

func TestNewRefusesUnsafeOptions(t *testing.T) {
	rdb := redis.NewClient(&redis.Options{Addr: "127.0.0.1:1"}) // never dialled by New
	t.Cleanup(func() { _ = rdb.Close() })
	for _, tc := range []struct {
		name string
		rdb  redis.UniversalClient
		opts func(*dashboard.Options)
		want string
	}{
		{"no secret", rdb, func(*dashboard.Options) {}, "password or at least one API key"},
		{"empty API key", rdb, func(o *dashboard.Options) { o.APIKeys = []string{"k", " "} }, "API key 2 of 2 is empty"},
		{"root path with trailing slash", rdb, func(o *dashboard.Options) { o.Password, o.RootPath = "p", "/mon/" }, "must start with a slash"},
		{"relative root path", rdb, func(o *dashboard.Options) { o.Password, o.RootPath = "p", "mon" }, "must start with a slash"},
		{"no root path", rdb, func(o *dashboard.Options) { o.Password, o.RootPath = "p", "" }, "must start with a slash"},
		{"no user", rdb, func(o *dashboard.Options) { o.Password, o.User = "p", "" }, "Options.User"},
		{"no client", nil, func(o *dashboard.Options) { o.Password = "p" }, "redis client is required"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h, err := dashboard.New(tc.rdb, options(tc.opts))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("New = %v, %v; want an error containing %q", h, err, tc.want)
			}
		})
	}
}

// TestRedisDownAnswersJSON503: asynqmon answers a failed Redis call with a
// plain-text 500 naming the Redis address; the dashboard answers a JSON 503
// without it instead, and logs the detail.
func TestRedisDownAnswersJSON503(t *testing.T) {
	t.Parallel()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close() // nothing listens there now: connection refused
	rdb := redis.NewClient(&redis.Options{Addr: addr, MaxRetries: -1})
	t.Cleanup(func() { _ = rdb.Close() })
	log := logrus.New()
	var logs bytes.Buffer
	log.SetOutput(&logs)
	h, err := dashboard.New(rdb, options(func(o *dashboard.Options) { o.Password, o.Logger = dashPass, log }))
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	e := &env{srv: srv}
	for _, path := range []string{"/monitoring/api/queues", "/monitoring/api/queues/default", "/monitoring/api/servers"} {
		resp, body := e.do(t, http.MethodGet, path, basic("admin", dashPass), nil)
		var got struct {
			Error struct{ Code, Message string }
		}
		if resp.StatusCode != http.StatusServiceUnavailable || resp.Header.Get("Content-Type") != "application/json" ||
			resp.Header.Get("Retry-After") == "" || json.Unmarshal([]byte(body), &got) != nil || got.Error.Code != "unavailable" {
			t.Errorf("GET %s with Redis down: %d %q %s; want a JSON 503 unavailable with Retry-After", path, resp.StatusCode, resp.Header.Get("Content-Type"), body)
		}
		if strings.Contains(body, addr) || strings.Contains(body, "127.0.0.1") {
			t.Errorf("GET %s: the answer names the Redis address: %s", path, body)
		}
	}
	if !strings.Contains(logs.String(), addr) {
		t.Errorf("the failure's detail is not in the log:\n%s", logs.String())
	}
}

// Example mounts the dashboard next to an API on one mux.
func Example() {
	rdb := redis.NewClient(&redis.Options{Addr: "127.0.0.1:6379"}) // the daemon's client
	defer rdb.Close()
	opts := dashboard.OptionsFrom(configs.Default()) // checkd's defaults: user admin, read-only
	opts.Password, opts.APIKeys = "s3cret", []string{"key-1"}
	dash, err := dashboard.New(rdb, opts)
	if err != nil {
		panic(err)
	}
	mux := http.NewServeMux()
	mux.Handle(dashboard.RootPath+"/", dash)

	rec := httptest.NewRecorder()
	mux.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/monitoring/", nil))
	fmt.Println(rec.Code, rec.Header().Get("WWW-Authenticate"))
	// Output:
	// 401 Basic realm="checkd dashboard", charset="UTF-8"
}
