package httpcheck_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sirupsen/logrus"
	logtest "github.com/sirupsen/logrus/hooks/test"
	standardwebhooks "github.com/standard-webhooks/standard-webhooks/libraries/go"

	"github.com/checkd/checkd/checks"
	"github.com/checkd/checkd/checks/httpcheck"
	"github.com/checkd/checkd/checks/sandbox"
)

// testSecret is a valid whsec_ secret (32 bytes).
const testSecret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSwMfKQ9r8GKYo="

const testPassword = "s3cret-Passw0rd!"

func newChecker(t testing.TB, url string, mod func(*httpcheck.Config)) *httpcheck.Checker {
	t.Helper()
	cfg := httpcheck.Config{URL: url, Secret: testSecret, Timeout: 10 * time.Second, AllowHTTP: true, MaxIdleConns: 32}
	if mod != nil {
		mod(&cfg)
	}
	c, err := httpcheck.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.CloseIdleConnections)
	return c
}

func request(user string, accts ...checks.Account) checks.Request {
	return checks.Request{ConnectionID: "cn_test1", Datasource: "utility",
		Credentials: checks.Credentials{Username: user, Password: testPassword, Extra: map[string]string{"pin": "4321"}},
		Accounts:    accts}
}

// quietLogger discards.
func quietLogger() *logrus.Logger {
	l := logrus.New()
	l.SetOutput(io.Discard)
	return l
}

// debugLogger keeps every line at debug level; logged formats them.
func debugLogger() (*logrus.Logger, *logtest.Hook) {
	l, hook := logtest.NewNullLogger()
	l.SetLevel(logrus.DebugLevel)
	return l, hook
}

func logged(hook *logtest.Hook) string {
	var b strings.Builder
	for _, e := range hook.AllEntries() {
		line, _ := e.String()
		b.WriteString(line)
	}
	return b.String()
}

// serveSandbox serves the sandbox over the protocol on a loopback server.
func serveSandbox(t testing.TB, log *logrus.Logger) *httptest.Server {
	t.Helper()
	h, err := httpcheck.NewHandler(sandbox.New(sandbox.Options{}), httpcheck.HandlerConfig{Secret: testSecret, Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	return srv
}

// TestSandboxOverHTTP: every scenario gives over the protocol what the
// sandbox gives in process.
func TestSandboxOverHTTP(t *testing.T) {
	t.Parallel()
	log, hook := debugLogger()
	srv := serveSandbox(t, log)
	c := newChecker(t, srv.URL+"/check", nil)
	sb := sandbox.New(sandbox.Options{})
	known := sandbox.AccountNumbers("cn_test1", 3)
	accts := []checks.Account{{ID: "ac_1", Number: known[0], Pull: true}, {ID: "ac_2", Number: known[1]}, {ID: "ac_3", Number: known[2], Pull: true}}
	for _, user := range []string{sandbox.UserGood, sandbox.UserNoDocs, sandbox.UserPDFFail, sandbox.UserAccountGone, sandbox.UserNewAccounts,
		"user_accounts_3", "user_accounts_99", "error_PASSWORD_INCORRECT", "error_website_down", "error_nonsense", "someone"} {
		t.Run(user, func(t *testing.T) {
			t.Parallel()
			req := request(user, accts...)
			want, err := sb.Check(context.Background(), req)
			if err != nil {
				t.Fatal(err)
			}
			got, err := c.Check(context.Background(), req)
			if err != nil {
				t.Fatalf("over http: %v", err)
			}
			if !reflect.DeepEqual(got, want) {
				t.Errorf("over http:\n got %+v\nwant %+v", got, want)
			}
		})
	}
	t.Run("temporary", func(t *testing.T) {
		t.Parallel()
		_, err := c.Check(context.Background(), request(sandbox.UserTemporary))
		if !errors.Is(err, checks.ErrTemporary) || !strings.Contains(err.Error(), "503") {
			t.Errorf("user_temporary: %v, want a temporary error naming the 503", err)
		}
		if _, ok := checks.RetryAfter(err); ok {
			t.Errorf("user_temporary: %v carries a Retry-After it was not given", err)
		}
	})
	t.Run("panic", func(t *testing.T) {
		t.Parallel()
		got, err := c.Check(context.Background(), request(sandbox.UserPanic))
		if err != nil || got.Status != checks.ConnOtherError || !strings.Contains(got.Detail, "panicked") {
			t.Errorf("user_panic: %+v %v, want OTHER_ERROR naming the panic", got, err)
		}
	})
	t.Cleanup(func() {
		if logs := logged(hook); strings.Contains(logs, testPassword) || !strings.Contains(logs, "check done") {
			t.Errorf("the handler logged the password, or no check:\n%s", logs)
		}
	})
}

// captured is one request a test server received.
type captured struct {
	method, path, rawQuery string
	header                 http.Header
	body                   []byte
}

// TestRequestOnTheWire: the body is the protocol's JSON, signed as Standard
// Webhooks sign (the reference library verifies it), and credentials are
// nowhere but in the body.
func TestRequestOnTheWire(t *testing.T) {
	t.Parallel()
	got := make(chan captured, 1)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		got <- captured{method: r.Method, path: r.URL.Path, rawQuery: r.URL.RawQuery, header: r.Header.Clone(), body: b}
		fmt.Fprint(w, `{"status":"CONNECTED","accounts":[{"number":"1"}]}`)
	}))
	t.Cleanup(srv.Close)
	c := newChecker(t, srv.URL+"/v1/check?fleet=east", func(c *httpcheck.Config) { c.Timeout = 7 * time.Second })
	before := time.Now()
	res, err := c.Check(context.Background(), request("user_good", checks.Account{ID: "ac_1", Number: "0042", Pull: true}))
	if err != nil || res.Status != checks.ConnConnected {
		t.Fatalf("check: %+v %v", res, err)
	}
	r := <-got
	if r.method != http.MethodPost || r.path != "/v1/check" || r.rawQuery != "fleet=east" || r.header.Get("Content-Type") != "application/json" {
		t.Errorf("request %s %s?%s %q", r.method, r.path, r.rawQuery, r.header.Get("Content-Type"))
	}
	wh, err := standardwebhooks.NewWebhook(testSecret)
	if err != nil {
		t.Fatal(err)
	}
	if err := wh.Verify(r.body, r.header); err != nil {
		t.Errorf("the reference library does not verify the request: %v", err)
	}
	if sig := r.header.Get("webhook-signature"); !strings.HasPrefix(sig, "v1,") || r.header.Get("webhook-id") == "" {
		t.Errorf("signature headers: id %q signature %q", r.header.Get("webhook-id"), sig)
	}
	var body map[string]any
	if err := json.Unmarshal(r.body, &body); err != nil {
		t.Fatal(err)
	}
	want := map[string]any{
		"connectionId": "cn_test1", "datasource": "utility",
		"credentials": map[string]any{"username": "user_good", "password": testPassword, "extra": map[string]any{"pin": "4321"}},
		"accounts":    []any{map[string]any{"id": "ac_1", "number": "0042", "pull": true}},
	}
	deadline, err := time.Parse(time.RFC3339Nano, fmt.Sprint(body["deadline"]))
	delete(body, "deadline")
	if err != nil || deadline.Before(before.Add(7*time.Second)) || deadline.After(time.Now().Add(7*time.Second)) {
		t.Errorf("deadline %v (%v), want the call's start + its 7s timeout", deadline, err)
	}
	if !reflect.DeepEqual(body, want) {
		t.Errorf("body:\n got %v\nwant %v", body, want)
	}
	for k, v := range r.header {
		if strings.Contains(strings.Join(v, " "), testPassword) || strings.Contains(strings.Join(v, " "), "4321") {
			t.Errorf("header %s carries a credential", k)
		}
	}
	// The caller's earlier deadline is the one sent.
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	if _, err := c.Check(ctx, request("user_good")); err != nil {
		t.Fatal(err)
	}
	r = <-got
	var b2 httpcheck.Request
	if err := json.Unmarshal(r.body, &b2); err != nil {
		t.Fatal(err)
	}
	if d, _ := ctx.Deadline(); !b2.Deadline.Equal(d.UTC()) || b2.Accounts == nil {
		t.Errorf("deadline %v, want the caller's %v; accounts %v, want [] not null", b2.Deadline, d, b2.Accounts)
	}
}

// answer is what a test server answers.
type answer struct {
	code   int
	header map[string]string
	body   string
}

func (a answer) serve(w http.ResponseWriter) {
	for k, v := range a.header {
		w.Header().Set(k, v)
	}
	w.WriteHeader(a.code)
	fmt.Fprint(w, a.body)
}

// TestOutcomes: each kind of answer gives the result or error the protocol
// says.
func TestOutcomes(t *testing.T) {
	t.Parallel()
	big := strings.Repeat("x", httpcheck.MaxResponseBytes+1)
	tests := []struct {
		name       string
		answer     answer
		wantStatus checks.ConnectionStatus // for a result
		wantTemp   bool                    // a temporary error
		wantRetry  time.Duration           // a Retry-After error
		wantIn     []string                // in the detail or error
		notIn      []string                // not in it
	}{
		{name: "result", answer: answer{200, nil, `{"status":"PASSWORD_INCORRECT","detail":"bad login"}`},
			wantStatus: checks.ConnPasswordIncorrect, wantIn: []string{"bad login"}},
		{name: "not json", answer: answer{200, nil, `<html>oops</html>`},
			wantStatus: checks.ConnOtherError, wantIn: []string{"not a result", "oops"}},
		{name: "500", answer: answer{500, nil, "boom"}, wantTemp: true, wantIn: []string{"500", "boom"}},
		{name: "502 empty", answer: answer{502, nil, ""}, wantTemp: true, wantIn: []string{"502", "empty body"}},
		{name: "503 without retry-after", answer: answer{503, nil, "busy"}, wantTemp: true, wantIn: []string{"503"}},
		{name: "503 retry-after seconds", answer: answer{503, map[string]string{"Retry-After": "7"}, ""}, wantRetry: 7 * time.Second, wantIn: []string{"503"}},
		{name: "429 retry-after date", answer: answer{429, map[string]string{"Retry-After": time.Now().Add(90 * time.Second).UTC().Format(http.TimeFormat)}, ""},
			wantRetry: 90 * time.Second, wantIn: []string{"429"}},
		{name: "429 retry-after 0", answer: answer{429, map[string]string{"Retry-After": "0"}, ""}, wantRetry: httpcheck.MinRetryAfter},
		{name: "429 retry-after huge", answer: answer{429, map[string]string{"Retry-After": "99999999999"}, ""}, wantRetry: httpcheck.MaxRetryAfter},
		{name: "429 retry-after garbage", answer: answer{429, map[string]string{"Retry-After": "soon"}, ""}, wantTemp: true, wantIn: []string{"429"}},
		{name: "429 without retry-after", answer: answer{429, nil, ""}, wantTemp: true},
		{name: "400", answer: answer{400, nil, `{"error":"accounts must be a list"}`},
			wantStatus: checks.ConnOtherError, wantIn: []string{"400 Bad Request", "accounts must be a list"}},
		{name: "401", answer: answer{401, nil, "signature mismatch"}, wantStatus: checks.ConnOtherError, wantIn: []string{"401", "signature mismatch"}},
		{name: "4xx long body truncated", answer: answer{422, nil, strings.Repeat("é", 1000)},
			wantStatus: checks.ConnOtherError, wantIn: []string{"422", "…"}},
		{name: "4xx echoing the password", answer: answer{400, nil, "bad request: password=" + testPassword},
			wantStatus: checks.ConnOtherError, wantIn: []string{"password=<redacted>"}},
		{name: "5xx echoing the password", answer: answer{500, nil, "crash with " + testPassword}, wantTemp: true, wantIn: []string{"<redacted>"}},
		{name: "5xx echoing the username and pin", answer: answer{502, nil, "login user_good/4321 crashed"}, wantTemp: true,
			wantIn: []string{"login <redacted>/<redacted> crashed"}, notIn: []string{"user_good", "4321"}},
		{name: "4xx echoing the pin", answer: answer{400, nil, `{"pin":"4321"}`}, wantStatus: checks.ConnOtherError,
			wantIn: []string{"<redacted>"}, notIn: []string{"4321"}},
		{name: "detail echoing the password", answer: answer{200, nil, `{"status":"OTHER_ERROR","detail":"login ` + testPassword + ` refused"}`},
			wantStatus: checks.ConnOtherError, wantIn: []string{"login <redacted> refused"}},
		{name: "204", answer: answer{204, nil, ""}, wantStatus: checks.ConnOtherError, wantIn: []string{"204", "wants 200"}},
		{name: "over 1 MiB", answer: answer{200, nil, big}, wantStatus: checks.ConnOtherError, wantIn: []string{"over 1048576 bytes"}},
		{name: "over 1 MiB with length", answer: answer{400, map[string]string{"Content-Length": fmt.Sprint(len(big))}, big},
			wantStatus: checks.ConnOtherError, wantIn: []string{"over 1048576 bytes"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				_, _ = io.Copy(io.Discard, r.Body)
				tc.answer.serve(w)
			}))
			t.Cleanup(srv.Close)
			res, err := newChecker(t, srv.URL, nil).Check(context.Background(), request("user_good"))
			text := res.Detail
			if err != nil {
				text = err.Error()
			}
			switch d, isRA := checks.RetryAfter(err); {
			case tc.wantRetry > 0:
				if !isRA || d < tc.wantRetry-2*time.Second || d > tc.wantRetry || !errors.Is(err, checks.ErrTemporary) {
					t.Fatalf("got %+v %v, want a Retry-After of %s", res, err, tc.wantRetry)
				}
			case tc.wantTemp:
				if !errors.Is(err, checks.ErrTemporary) || isRA {
					t.Fatalf("got %+v %v, want a temporary error without Retry-After", res, err)
				}
			default:
				if err != nil || res.Status != tc.wantStatus {
					t.Fatalf("got %+v %v, want status %s", res, err, tc.wantStatus)
				}
			}
			for _, s := range tc.wantIn {
				if !strings.Contains(text, s) {
					t.Errorf("%q lacks %q", text, s)
				}
			}
			for _, s := range append(tc.notIn, testPassword) {
				if strings.Contains(text, s) {
					t.Errorf("%q holds %q", text, s)
				}
			}
			if len(text) > 2048 {
				t.Errorf("detail of %d bytes, want a truncated one", len(text))
			}
		})
	}
}

// TestRedirectNotFollowed: a 3xx is recorded, its target never called.
func TestRedirectNotFollowed(t *testing.T) {
	t.Parallel()
	var followed atomic.Bool
	target := httptest.NewServer(http.HandlerFunc(func(http.ResponseWriter, *http.Request) { followed.Store(true) }))
	t.Cleanup(target.Close)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, target.URL+"/elsewhere", http.StatusTemporaryRedirect)
	}))
	t.Cleanup(srv.Close)
	res, err := newChecker(t, srv.URL, nil).Check(context.Background(), request("user_good"))
	if err != nil || res.Status != checks.ConnOtherError || !strings.Contains(res.Detail, "redirects are not followed") ||
		!strings.Contains(res.Detail, "/elsewhere") {
		t.Fatalf("redirect: %+v %v, want OTHER_ERROR naming the redirect", res, err)
	}
	if followed.Load() {
		t.Error("the redirect was followed (credentials sent to another URL)")
	}
}

// TestTimeoutIsTemporary: a checker that does not answer within the
// timeout is a temporary failure; the caller's own context ending is not.
func TestTimeoutIsTemporary(t *testing.T) {
	t.Parallel()
	release := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body) // the server notices a closed connection once the body is read
		select {
		case <-r.Context().Done(): // the client gave up
		case <-release:
		}
	}))
	t.Cleanup(srv.Close)
	t.Cleanup(func() { close(release) })
	c := newChecker(t, srv.URL, func(c *httpcheck.Config) { c.Timeout = 50 * time.Millisecond })
	_, err := c.Check(context.Background(), request("user_good"))
	if !errors.Is(err, checks.ErrTemporary) || !strings.Contains(err.Error(), "did not answer within 50ms") {
		t.Errorf("timeout: %v, want a temporary error naming the timeout", err)
	}

	slow := newChecker(t, srv.URL, nil)
	ctx, cancel := context.WithCancel(context.Background())
	go func() { cancel() }()
	_, err = slow.Check(ctx, request("user_good"))
	if errors.Is(err, checks.ErrTemporary) || !errors.Is(err, context.Canceled) {
		t.Errorf("caller canceled: %v, want context.Canceled and not temporary", err)
	}
}

// TestRefusedIsTemporary: nothing listening is a temporary failure.
func TestRefusedIsTemporary(t *testing.T) {
	t.Parallel()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	_, err = newChecker(t, "http://"+addr+"/check?token=abc", nil).Check(context.Background(), request("user_good"))
	if !errors.Is(err, checks.ErrTemporary) || !strings.Contains(err.Error(), "could not be reached") {
		t.Fatalf("refused: %v, want a temporary error", err)
	}
	if strings.Contains(err.Error(), "token=abc") {
		t.Errorf("the error quotes the URL's query: %v", err)
	}
}

// TestConnectionsReused: checks share kept-alive connections, sequential
// ones a single one.
func TestConnectionsReused(t *testing.T) {
	t.Parallel()
	var conns atomic.Int64
	h, err := httpcheck.NewHandler(sandbox.New(sandbox.Options{}), httpcheck.HandlerConfig{Secret: testSecret, Logger: quietLogger()})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewUnstartedServer(h)
	srv.Config.ConnState = func(_ net.Conn, s http.ConnState) {
		if s == http.StateNew {
			conns.Add(1)
		}
	}
	srv.Start()
	t.Cleanup(srv.Close)
	c := newChecker(t, srv.URL, func(c *httpcheck.Config) { c.MaxIdleConns = 8 })
	for i := range 20 {
		if res, err := c.Check(context.Background(), request("error_WEBSITE_DOWN")); err != nil || res.Status != checks.ConnWebsiteDown {
			t.Fatalf("check %d: %+v %v", i, res, err)
		}
	}
	if n := conns.Load(); n != 1 {
		t.Errorf("20 sequential checks opened %d connections, want 1", n)
	}
	var wg sync.WaitGroup
	for range 5 {
		for range 8 {
			wg.Go(func() {
				if _, err := c.Check(context.Background(), request("user_good")); err != nil {
					t.Error(err)
				}
			})
		}
		wg.Wait()
	}
	if n := conns.Load(); n > 8 {
		t.Errorf("5 rounds of 8 concurrent checks opened %d connections, want at most 8", n)
	}
}

func TestNewRefusesBadConfig(t *testing.T) {
	t.Parallel()
	ok := httpcheck.Config{URL: "https://checkers.example.com/check", Secret: testSecret, Timeout: time.Second, MaxIdleConns: 1}
	if _, err := httpcheck.New(ok); err != nil {
		t.Fatalf("valid config refused: %v", err)
	}
	tests := []struct {
		name string
		mod  func(*httpcheck.Config)
		want string
	}{
		{"plain http", func(c *httpcheck.Config) { c.URL = "http://checkers.example.com/check" }, httpcheck.EnvAllowHTTP},
		{"other scheme", func(c *httpcheck.Config) { c.URL = "ftp://checkers.example.com/check" }, "not an https URL"},
		{"no host", func(c *httpcheck.Config) { c.URL = "https:///check" }, "no host"},
		{"user info", func(c *httpcheck.Config) { c.URL = "https://bob:hunter22@checkers.example.com/" }, "user information"},
		{"fragment", func(c *httpcheck.Config) { c.URL = "https://checkers.example.com/#x" }, "fragment"},
		{"relative", func(c *httpcheck.Config) { c.URL = "/check" }, "not an https URL"},
		{"no prefix", func(c *httpcheck.Config) { c.Secret = strings.TrimPrefix(testSecret, "whsec_") }, "whsec_"},
		{"not base64", func(c *httpcheck.Config) { c.Secret = "whsec_!!!!" }, "base64"},
		{"short secret", func(c *httpcheck.Config) { c.Secret = "whsec_c2hvcnQ=" }, "holds 5 bytes"},
		{"no timeout", func(c *httpcheck.Config) { c.Timeout = 0 }, "timeout"},
		{"no idle conns", func(c *httpcheck.Config) { c.MaxIdleConns = 0 }, "MaxIdleConns"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			cfg := ok
			tc.mod(&cfg)
			_, err := httpcheck.New(cfg)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("New: %v, want an error mentioning %q", err, tc.want)
			}
			if strings.Contains(err.Error(), "hunter22") || strings.Contains(err.Error(), "c2hvcnQ") {
				t.Errorf("error quotes a secret: %v", err)
			}
		})
	}
	allow := ok
	allow.URL, allow.AllowHTTP = "http://127.0.0.1:18100/check", true
	if _, err := httpcheck.New(allow); err != nil {
		t.Errorf("http with AllowHTTP refused: %v", err)
	}
}
