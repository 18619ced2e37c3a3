package httpcheck_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"

	standardwebhooks "github.com/standard-webhooks/standard-webhooks/libraries/go"

	"github.com/checkd/checkd/checks"
	"github.com/checkd/checkd/checks/httpcheck"
	"github.com/checkd/checkd/checks/sandbox"
)

// signed is a request signed with secret at ts.
func signed(t *testing.T, secret string, ts time.Time, body string) *http.Request {
	t.Helper()
	wh, err := standardwebhooks.NewWebhook(secret)
	if err != nil {
		t.Fatal(err)
	}
	sig, err := wh.Sign("msg_1", ts, []byte(body))
	if err != nil {
		t.Fatal(err)
	}
	r := httptest.NewRequest(http.MethodPost, "/check", strings.NewReader(body))
	r.Header.Set("webhook-id", "msg_1")
	r.Header.Set("webhook-timestamp", strconv.FormatInt(ts.Unix(), 10))
	r.Header.Set("webhook-signature", sig)
	return r
}

func checkBody(t *testing.T, user string, deadline time.Time) string {
	t.Helper()
	b, err := json.Marshal(httpcheck.NewRequest(request(user), deadline))
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// TestHandlerRefuses: requests that are not signed with the secret, stale,
// malformed or past their deadline are refused before the checker runs,
// and nothing logged holds a credential.
func TestHandlerRefuses(t *testing.T) {
	t.Parallel()
	log, hook := debugLogger()
	ran := false
	h, err := httpcheck.NewHandler(checks.CheckerFunc(func(context.Context, checks.Request) (checks.Result, error) {
		ran = true
		return checks.Result{Status: checks.ConnConnected}, nil
	}), httpcheck.HandlerConfig{Secret: testSecret, Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	const other = "whsec_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA="
	now := time.Now()
	good := checkBody(t, "user_good", now.Add(time.Minute))
	tests := []struct {
		name string
		req  func() *http.Request
		code int
		want string
	}{
		{"unsigned", func() *http.Request { return httptest.NewRequest(http.MethodPost, "/", strings.NewReader(good)) }, 401, "missing required headers"},
		{"other secret", func() *http.Request { return signed(t, other, now, good) }, 401, "no matching signature"},
		{"tampered", func() *http.Request {
			r := signed(t, testSecret, now, good)
			r.Body = http.NoBody
			return r
		}, 401, "signature"},
		{"stale", func() *http.Request { return signed(t, testSecret, now.Add(-10*time.Minute), good) }, 401, "too old"},
		{"get", func() *http.Request { return httptest.NewRequest(http.MethodGet, "/", nil) }, 405, "POST"},
		{"too large", func() *http.Request {
			return signed(t, testSecret, now, strings.Repeat(" ", httpcheck.MaxResponseBytes+1))
		}, 413, "at most"},
		{"not json", func() *http.Request { return signed(t, testSecret, now, "[1,2") }, 400, "not a check request"},
		{"no connection", func() *http.Request {
			return signed(t, testSecret, now, `{"datasource":"x","deadline":"2030-01-01T00:00:00Z"}`)
		}, 400, "required"},
		{"deadline passed", func() *http.Request {
			return signed(t, testSecret, now, checkBody(t, "user_good", now.Add(-time.Second)))
		}, 503, "deadline"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			w := httptest.NewRecorder()
			h.ServeHTTP(w, tc.req())
			var body struct{ Error string }
			_ = json.Unmarshal(w.Body.Bytes(), &body)
			if w.Code != tc.code || !strings.Contains(body.Error, tc.want) {
				t.Errorf("got %d %q, want %d mentioning %q", w.Code, body.Error, tc.code, tc.want)
			}
		})
	}
	if ran {
		t.Error("the checker ran for a refused request")
	}
	w := httptest.NewRecorder()
	h.ServeHTTP(w, signed(t, testSecret, now, good))
	if w.Code != http.StatusOK || !ran {
		t.Errorf("a good request: %d %s", w.Code, w.Body)
	}
	if logs := logged(hook); strings.Contains(logs, testPassword) || strings.Contains(logs, "4321") || !strings.Contains(logs, "refused") {
		t.Errorf("the handler logged a credential, or no refusal:\n%s", logs)
	}
}

// TestHandlerAnswers: what the checker returns becomes the answer checkd
// reads back as the same outcome, and the checker gets the request's
// deadline less a margin for the answer.
func TestHandlerAnswers(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name      string
		check     func(context.Context) (checks.Result, error)
		code      int
		retryHdr  string
		wantInRes string
	}{
		{"result", func(context.Context) (checks.Result, error) {
			return checks.Result{Status: checks.ConnWebsiteDown, Detail: "down"}, nil
		}, 200, "", `"status":"WEBSITE_DOWN"`},
		{"retry after", func(context.Context) (checks.Result, error) {
			return checks.Result{}, &checks.RetryAfterError{Delay: 1500 * time.Millisecond, Err: fmt.Errorf("browser pool full")}
		}, 503, "2", "browser pool full"},
		{"temporary", func(context.Context) (checks.Result, error) {
			return checks.Result{}, fmt.Errorf("no browser: %w", checks.ErrTemporary)
		}, 503, "", "no browser"},
		{"other error", func(context.Context) (checks.Result, error) {
			return checks.Result{}, fmt.Errorf("page layout changed")
		}, 200, "", `"status":"OTHER_ERROR","detail":"page layout changed"`},
		{"deadline", func(ctx context.Context) (checks.Result, error) {
			d, ok := ctx.Deadline()
			if !ok || time.Until(d) > 54*time.Second || time.Until(d) < 50*time.Second {
				return checks.Result{}, fmt.Errorf("deadline %v, want about a minute less a second", d)
			}
			return checks.Result{Status: checks.ConnConnected}, nil
		}, 200, "", `"status":"CONNECTED"`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			h, err := httpcheck.NewHandler(checks.CheckerFunc(func(ctx context.Context, _ checks.Request) (checks.Result, error) { return tc.check(ctx) }),
				httpcheck.HandlerConfig{Secret: testSecret, Logger: quietLogger()})
			if err != nil {
				t.Fatal(err)
			}
			w := httptest.NewRecorder()
			h.ServeHTTP(w, signed(t, testSecret, time.Now(), checkBody(t, "user_good", time.Now().Add(55*time.Second))))
			if w.Code != tc.code || w.Header().Get("Retry-After") != tc.retryHdr || !strings.Contains(w.Body.String(), tc.wantInRes) {
				t.Errorf("got %d (Retry-After %q) %s; want %d (%q) with %s", w.Code, w.Header().Get("Retry-After"), w.Body, tc.code, tc.retryHdr, tc.wantInRes)
			}
		})
	}
}

func TestNewHandlerRefusesBadConfig(t *testing.T) {
	t.Parallel()
	sb := sandbox.New(sandbox.Options{})
	for name, cfg := range map[string]httpcheck.HandlerConfig{
		"no secret":  {Logger: quietLogger()},
		"bad secret": {Secret: "whsec_short", Logger: quietLogger()},
		"no logger":  {Secret: testSecret},
	} {
		if _, err := httpcheck.NewHandler(sb, cfg); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
	if _, err := httpcheck.NewHandler(nil, httpcheck.HandlerConfig{Secret: testSecret, Logger: quietLogger()}); err == nil {
		t.Error("nil checker accepted")
	}
}
