package httpcheck

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/checkd/checkd/checks"
)

// roundTripper answers every request with a fixed response.
type roundTripper func(*http.Request) (*http.Response, error)

func (f roundTripper) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

// The credentials start with a letter no quoting escape ends with (not a
// hex digit, n, t, r, ...), so a detail's quoted excerpt cannot spell one
// by accident (an escaped byte followed by the rest of it).
const fuzzPassword = "zPassw0rd-fuzz"

// FuzzAnswer: whatever a checker answers (status, Retry-After, body), the
// checker returns a result or an error without panicking, a non-200 answer
// is never taken for a result other than OTHER_ERROR, details stay short,
// and the password never appears in them.
func FuzzAnswer(f *testing.F) {
	f.Add(200, "", []byte(`{"status":"CONNECTED","accounts":[{"number":"1","status":"PULL_COMPLETED"}]}`))
	f.Add(200, "", []byte(`{"status":"OTHER_ERROR","detail":"`+fuzzPassword+`"}`))
	f.Add(503, "120", []byte("busy"))
	f.Add(429, "Wed, 21 Oct 2015 07:28:00 GMT", []byte{})
	f.Add(400, "", []byte("bad "+fuzzPassword))
	f.Add(500, "", []byte(`{"error":"login zuser-fuzz/zpin-fuzz-9 failed"}`))
	f.Add(302, "", []byte{})
	f.Add(204, "", []byte{0xff, 0xfe})
	f.Fuzz(func(t *testing.T, code int, retryAfter string, body []byte) {
		if code < 100 || code > 999 {
			return
		}
		c, err := New(Config{URL: "https://checker.test/check", Secret: "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSwMfKQ9r8GKYo=", Timeout: time.Second, MaxIdleConns: 1,
			Transport: roundTripper(func(r *http.Request) (*http.Response, error) {
				h := http.Header{}
				if retryAfter != "" {
					h.Set("Retry-After", retryAfter)
				}
				return &http.Response{StatusCode: code, Status: http.StatusText(code), Header: h, ContentLength: -1,
					Body: io.NopCloser(bytes.NewReader(body)), Request: r}, nil
			})})
		if err != nil {
			t.Fatal(err)
		}
		res, err := c.Check(context.Background(), checks.Request{ConnectionID: "cn_1", Datasource: "d",
			Credentials: checks.Credentials{Username: "zuser-fuzz", Password: fuzzPassword, Extra: map[string]string{"pin": "zpin-fuzz-9"}}})
		if err != nil {
			if !errors.Is(err, checks.ErrTemporary) {
				t.Fatalf("%d: a non-temporary error %v", code, err)
			}
			if d, ok := checks.RetryAfter(err); ok && (d < MinRetryAfter || d > MaxRetryAfter) {
				t.Fatalf("Retry-After %q gave %s", retryAfter, d)
			}
			if holdsCredential(err.Error()) || strings.Contains(err.Error(), "zuser-fuzz") || len(err.Error()) > 2048 {
				t.Fatalf("error %q", err)
			}
			return
		}
		if code != 200 && res.Status != checks.ConnOtherError {
			t.Fatalf("%d answered, %s recorded", code, res.Status)
		}
		if holdsCredential(res.Detail) {
			t.Fatalf("detail holds a credential: %q", res.Detail)
		}
		for _, a := range res.Accounts {
			if holdsCredential(a.Detail) {
				t.Fatalf("account detail holds the password: %q", a.Detail)
			}
		}
		if code != 200 && len(res.Detail) > 2048 {
			t.Fatalf("detail of %d bytes", len(res.Detail))
		}
	})
}

func holdsCredential(s string) bool {
	return strings.Contains(s, fuzzPassword) || strings.Contains(s, "zpin-fuzz-9")
}

// FuzzRetryAfter: any header value gives a wait within the bounds, or none.
func FuzzRetryAfter(f *testing.F) {
	for _, s := range []string{"0", "120", "-1", "99999999999999999999", "Wed, 21 Oct 2015 07:28:00 GMT", "soon", " 5 "} {
		f.Add(s)
	}
	now := time.Date(2026, 3, 2, 9, 0, 0, 0, time.UTC)
	f.Fuzz(func(t *testing.T, v string) {
		d, ok := parseRetryAfter(v, now)
		if ok && (d < MinRetryAfter || d > MaxRetryAfter) {
			t.Fatalf("%q gave %s", v, d)
		}
		if !ok && d != 0 {
			t.Fatalf("%q refused with %s", v, d)
		}
	})
}
