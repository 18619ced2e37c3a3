package daemon_test

import (
	"encoding/json"
	"io"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/checkd/checkd/configs"
	"github.com/checkd/checkd/internal/daemon"
	"github.com/checkd/checkd/internal/tasks"
	"github.com/checkd/checkd/internal/testing/openapitest"
)

// TestOperatorSurface checks what the daemon mounts beside the REST API:
// metrics behind the key, readiness, the dashboard behind basic auth, and
// the ops listener a worker-only process is scraped on.
func TestOperatorSurface(t *testing.T) {
	t.Parallel()
	c := baseConfig()
	c.APIKeys = []string{testAPIKey}
	c.MetricsAddr = "127.0.0.1:0"
	c.Dashboard.Password = "dashboard-password-123"
	d, err := daemon.New(c, quietLogger(t), daemon.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if err := d.Start(stopCtx(t)); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.Stop(stopCtx(t)) })
	base := "http://" + d.API().Addr()
	ops := "http://" + d.OpsAddr()

	get := func(url string, hdr map[string]string, user, pass string) (int, string) {
		t.Helper()
		req, _ := http.NewRequest(http.MethodGet, url, nil)
		for k, v := range hdr {
			req.Header.Set(k, v)
		}
		if user != "" {
			req.SetBasicAuth(user, pass)
		}
		client := openapitest.Client(t)
		if strings.Contains(url, "/monitoring/") || strings.Contains(url, "/console/") { // the dashboard and the console: not the API the document describes
			client = &http.Client{Timeout: 10 * time.Second}
		}
		resp, err := client.Do(req)
		if err != nil {
			t.Fatalf("GET %s: %v", url, err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	key := map[string]string{"X-API-Key": testAPIKey}
	bearer := map[string]string{"Authorization": "Bearer " + testAPIKey}
	lowerBearer := map[string]string{"Authorization": "bearer " + testAPIKey}

	cases := []struct {
		name       string
		url        string
		hdr        map[string]string
		user, pass string
		want       int
		contains   string
	}{
		{"metrics need a key", base + "/metrics", nil, "", "", http.StatusUnauthorized, "X-API-Key"},
		{"metrics with the key", base + "/metrics", key, "", "", http.StatusOK, "checkd_connections"},
		{"metrics with a bearer key", base + "/metrics", bearer, "", "", http.StatusOK, "checkd_due_backlog"},
		{"metrics with a lower-case bearer key", base + "/metrics", lowerBearer, "", "", http.StatusOK, "checkd_due_backlog"},
		{"metrics with another scheme", base + "/metrics", map[string]string{"Authorization": "Basic " + testAPIKey}, "", "", http.StatusUnauthorized, ""},
		{"metrics with the dashboard's login", base + "/metrics", nil, "admin", testAPIKey, http.StatusOK, "checkd_connections"},
		{"metrics with a wrong user", base + "/metrics", nil, "root", testAPIKey, http.StatusUnauthorized, "wrong user or password"},
		{"metrics with a wrong password", base + "/metrics", nil, "admin", "not-a-key-at-all", http.StatusUnauthorized, "log in with user admin"},
		{"metrics take API keys only", base + "/metrics", nil, "admin", "dashboard-password-123", http.StatusUnauthorized, ""},
		{"readyz", base + "/readyz", nil, "", "", http.StatusOK, `"ready"`},
		{"dashboard needs credentials", base + "/monitoring/", nil, "", "", http.StatusUnauthorized, ""},
		{"dashboard wrong password", base + "/monitoring/", nil, "admin", "nope", http.StatusUnauthorized, ""},
		{"dashboard with the api key", base + "/monitoring/", nil, "admin", testAPIKey, http.StatusOK, "<html"},
		{"dashboard with its password", base + "/monitoring/api/queues", nil, "admin", "dashboard-password-123", http.StatusOK, "queues"},
		{"console needs the dashboard's login", base + "/console/", nil, "", "", http.StatusUnauthorized, "Log in required"},
		{"console wrong password", base + "/console/companies", nil, "admin", "nope", http.StatusUnauthorized, ""},
		{"console with the dashboard's password", base + "/console/", nil, "admin", "dashboard-password-123", http.StatusOK, "Load forecast"},
		{"console with the api key", base + "/console/companies", nil, "admin", testAPIKey, http.StatusOK, "No companies yet"},
		{"ops healthz", ops + "/healthz", nil, "", "", http.StatusOK, "ok"},
		{"ops readyz", ops + "/readyz", nil, "", "", http.StatusOK, "ready"},
		{"ops metrics need a key", ops + "/metrics", nil, "", "", http.StatusUnauthorized, ""},
		{"ops metrics", ops + "/metrics", bearer, "", "", http.StatusOK, "checkd_connections"},
		{"ops metrics with the dashboard's login", ops + "/metrics", nil, "admin", testAPIKey, http.StatusOK, "checkd_connections"},
	}
	for _, tc := range cases {
		code, body := get(tc.url, tc.hdr, tc.user, tc.pass)
		if code != tc.want || !strings.Contains(strings.ToLower(body), strings.ToLower(tc.contains)) {
			t.Errorf("%s: %d %.200q, want %d containing %q", tc.name, code, body, tc.want, tc.contains)
		}
	}
	// A refused /metrics asks a browser for the login, like the dashboard.
	for _, u := range []string{base, ops} {
		resp, err := http.Get(u + "/metrics")
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if h := resp.Header.Get("WWW-Authenticate"); resp.StatusCode != http.StatusUnauthorized || !strings.HasPrefix(h, "Basic realm=") {
			t.Errorf("%s/metrics without credentials: %d, WWW-Authenticate %q; want 401 with a Basic challenge", u, resp.StatusCode, h)
		}
	}
	// Every queue shows from the first start, before any task: in the
	// asynq metrics and in the dashboard.
	_, metricsBody := get(base+"/metrics", key, "", "")
	_, dashQueues := get(base+"/monitoring/api/queues", nil, "admin", testAPIKey)
	for _, q := range tasks.AllQueues {
		if !strings.Contains(metricsBody, `asynq_queue_size{queue="`+q+`"} 0`) {
			t.Errorf("metrics lack the empty queue %s before any task", q)
		}
		if !strings.Contains(dashQueues, `"queue":"`+q+`"`) {
			t.Errorf("the dashboard lacks the queue %s before any task: %.300s", q, dashQueues)
		}
	}
	// /readyz is JSON a probe can parse, naming every role of the process.
	for _, u := range []string{base, ops} {
		_, body := get(u+"/readyz", nil, "", "")
		var ready struct {
			Status string   `json:"status"`
			Roles  []string `json:"roles"`
		}
		if err := json.Unmarshal([]byte(body), &ready); err != nil || ready.Status != "ready" || !slices.Equal(ready.Roles, c.Roles) {
			t.Errorf("%s/readyz = %q (%v), want status ready and roles %v", u, body, err, c.Roles)
		}
	}

	// A refresh goes through the wired enqueuer; the queue then shows in
	// asynq's metrics.
	post := func(path, body string) (int, string) {
		t.Helper()
		req, _ := http.NewRequest(http.MethodPost, base+path, strings.NewReader(body))
		req.Header.Set("X-API-Key", testAPIKey)
		req.Header.Set("Content-Type", "application/json")
		resp, err := openapitest.Client(t).Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	code, body := post("/v1/company", `{"name":"Ops Co"}`)
	coID := between(body, `"id":"`, `"`)
	if code != http.StatusCreated || coID == "" {
		t.Fatalf("create company: %d %s", code, body)
	}
	code, body = post("/v1/connection/company/"+coID, `{"datasource":"sandbox","credentials":{"username":"user_good","password":"pw"}}`)
	cnID := between(body, `"id":"`, `"`)
	if code != http.StatusCreated || cnID == "" {
		t.Fatalf("create connection: %d %s", code, body)
	}
	if code, body = post("/v1/connection/"+cnID+"/refresh", ""); code != http.StatusAccepted || !strings.Contains(body, `"enqueued":true`) {
		t.Fatalf("refresh: %d %s", code, body)
	}
	if code, body = get(base+"/metrics", key, "", ""); !strings.Contains(body, `asynq_tasks_enqueued_total{queue="critical"`) && !strings.Contains(body, `queue="critical"`) {
		t.Errorf("asynq metrics do not show the critical queue: %d %.300s", code, body)
	}
	if code, body = get(base+"/v1/link-check-not-a-route", key, "", ""); code != http.StatusNotFound {
		t.Errorf("unknown route: %d", code)
	}

	// The dashboard is read-only by default.
	req, _ := http.NewRequest(http.MethodPost, base+"/monitoring/api/queues/default:pause", nil)
	req.SetBasicAuth("admin", testAPIKey)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode < 400 {
		t.Errorf("read-only dashboard accepted a pause: %d", resp.StatusCode)
	}
	// So is the console.
	req, _ = http.NewRequest(http.MethodPost, base+"/console/connections/"+cnID+"/deactivate", nil)
	req.SetBasicAuth("admin", testAPIKey)
	if resp, err = http.DefaultClient.Do(req); err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusMethodNotAllowed {
		t.Errorf("read-only console accepted a deactivation: %d", resp.StatusCode)
	}

	if err := d.Stop(stopCtx(t)); err != nil {
		t.Fatal(err)
	}
	if _, err := (&http.Client{Timeout: time.Second}).Get(ops + "/healthz"); err == nil {
		t.Error("ops listener still serving after Stop")
	}
}

// A worker-only process has no API but still answers probes and scrapes.
func TestWorkerOnlyOps(t *testing.T) {
	t.Parallel()
	c := baseConfig()
	c.Roles = []string{configs.RoleWorker}
	c.MetricsAddr = "127.0.0.1:0"
	d, err := daemon.New(c, quietLogger(t), daemon.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if err := d.Start(stopCtx(t)); err != nil {
		t.Fatal(err)
	}
	defer d.Stop(stopCtx(t))
	if d.API() != nil || d.Scheduler() != nil || d.Worker() == nil {
		t.Fatal("roles not honoured")
	}
	resp, err := http.Get("http://" + d.OpsAddr() + "/metrics") // no keys configured: open
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || !strings.Contains(string(b), "checkd_connections") {
		t.Fatalf("worker-only metrics: %d %.200s", resp.StatusCode, b)
	}
}

// between returns the text of s between the first from and the next to.
func between(s, from, to string) string {
	_, rest, ok := strings.Cut(s, from)
	if !ok {
		return ""
	}
	v, _, _ := strings.Cut(rest, to)
	return v
}
