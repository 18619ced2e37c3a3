package httpcheck

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	standardwebhooks "github.com/standard-webhooks/standard-webhooks/libraries/go"

	"github.com/checkd/checkd/checks"
)

// Config configures a Checker; every field is required unless it says
// otherwise (configs holds the defaults).
type Config struct {
	// URL receives the checks: https, or http with AllowHTTP.
	URL string
	// Secret signs the requests (whsec_...).
	Secret string
	// Timeout bounds one call, connection included; a call that overruns
	// it is a temporary failure. It should be shorter than the worker's
	// check timeout, which records WEBSITE_DOWN instead.
	Timeout time.Duration
	// AllowHTTP accepts a plain http:// URL (development and tests).
	AllowHTTP bool
	// MaxIdleConns is how many idle keep-alive connections to the checker
	// are kept for the next checks: the worker's concurrency, so that every
	// check reuses a connection.
	MaxIdleConns int
	// Transport replaces the HTTP transport (tests). Optional.
	Transport http.RoundTripper
}

// Checker is checkd's side of the protocol: a checks.Checker calling a
// checker service. It is safe for concurrent use and reuses connections.
type Checker struct {
	url     string
	where   string // the URL without query, for messages
	timeout time.Duration
	wh      *standardwebhooks.Webhook
	client  *http.Client
}

var _ checks.Checker = (*Checker)(nil)

// New returns a checker calling cfg.URL.
func New(cfg Config) (*Checker, error) {
	if err := CheckURL(cfg.URL, cfg.AllowHTTP); err != nil {
		return nil, fmt.Errorf("httpcheck: url: %w", err)
	}
	key, err := ParseSecret(cfg.Secret)
	if err != nil {
		return nil, fmt.Errorf("httpcheck: %w", err)
	}
	if cfg.Timeout <= 0 || cfg.MaxIdleConns <= 0 {
		return nil, fmt.Errorf("httpcheck: timeout (%s) and MaxIdleConns (%d) must be positive", cfg.Timeout, cfg.MaxIdleConns)
	}
	wh, err := standardwebhooks.NewWebhookRaw(key)
	if err != nil {
		return nil, fmt.Errorf("httpcheck: %w", err)
	}
	tr := cfg.Transport
	if tr == nil {
		t := http.DefaultTransport.(*http.Transport).Clone()
		t.MaxIdleConns, t.MaxIdleConnsPerHost = cfg.MaxIdleConns, cfg.MaxIdleConns
		tr = t
	}
	u, _ := url.Parse(cfg.URL) // CheckURL parsed it
	return &Checker{url: cfg.URL, where: redactedURL(u), timeout: cfg.Timeout, wh: wh,
		client: &http.Client{Transport: tr, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}}, nil
}

// CloseIdleConnections closes the kept connections (on stop).
func (c *Checker) CloseIdleConnections() { c.client.CloseIdleConnections() }

// Check POSTs the signed request and reads the answer (see the package
// documentation for what each answer gives).
func (c *Checker) Check(ctx context.Context, req checks.Request) (checks.Result, error) {
	now := time.Now() // wall time: the checker verifies the timestamp against its own clock
	deadline := now.Add(c.timeout)
	if d, ok := ctx.Deadline(); ok && d.Before(deadline) {
		deadline = d
	}
	body, err := json.Marshal(NewRequest(req, deadline))
	if err != nil {
		return checks.Result{}, fmt.Errorf("httpcheck: encode the request: %w", err)
	}
	id := newMessageID()
	sig, err := c.wh.Sign(id, now, body)
	if err != nil {
		return checks.Result{}, fmt.Errorf("httpcheck: sign the request: %w", err)
	}
	hctx, cancel := context.WithDeadline(ctx, deadline)
	defer cancel()
	hreq, err := http.NewRequestWithContext(hctx, http.MethodPost, c.url, bytes.NewReader(body))
	if err != nil {
		return checks.Result{}, fmt.Errorf("httpcheck: %w", err)
	}
	h := hreq.Header
	h.Set("Content-Type", "application/json")
	h.Set("User-Agent", "checkd-httpcheck/1")
	h.Set(standardwebhooks.HeaderWebhookID, id)
	h.Set(standardwebhooks.HeaderWebhookTimestamp, strconv.FormatInt(now.Unix(), 10))
	h.Set(standardwebhooks.HeaderWebhookSignature, sig)
	resp, err := c.client.Do(hreq)
	if err != nil {
		return checks.Result{}, c.callError(ctx, hctx, err)
	}
	defer resp.Body.Close()
	return c.answer(ctx, hctx, resp, &req.Credentials)
}

// callError is the error of a call that got no answer: the caller's own
// context ending is returned as is (the worker decides), anything else is
// temporary.
func (c *Checker) callError(ctx, hctx context.Context, err error) error {
	if ctx.Err() != nil {
		return fmt.Errorf("httpcheck: call to the checker at %s interrupted: %w", c.where, ctx.Err())
	}
	if hctx.Err() != nil {
		return fmt.Errorf("the checker at %s did not answer within %s: %w", c.where, c.timeout, checks.ErrTemporary)
	}
	var ue *url.Error
	if errors.As(err, &ue) {
		err = ue.Err // its text repeats the URL, query included
	}
	return fmt.Errorf("the checker at %s could not be reached: %v: %w", c.where, err, checks.ErrTemporary)
}

// answer reads a response into a result or an error.
func (c *Checker) answer(ctx, hctx context.Context, resp *http.Response, cred *checks.Credentials) (checks.Result, error) {
	if resp.ContentLength > MaxResponseBytes {
		return c.tooLarge(resp), nil
	}
	b, err := io.ReadAll(io.LimitReader(resp.Body, MaxResponseBytes+1))
	if err != nil {
		return checks.Result{}, c.callError(ctx, hctx, fmt.Errorf("reading its answer (%s): %w", resp.Status, err))
	}
	if len(b) > MaxResponseBytes {
		return c.tooLarge(resp), nil
	}
	code := resp.StatusCode
	switch {
	case code == http.StatusOK:
		var res checks.Result
		if err := json.Unmarshal(b, &res); err != nil {
			return otherError(cred, "the checker at %s answered 200 with a body that is not a result (JSON with status, detail, accounts): %v; body: %s",
				c.where, err, excerpt(scrub(string(b), cred))), nil
		}
		res.Detail = scrub(res.Detail, cred)
		for i := range res.Accounts {
			res.Accounts[i].Detail = scrub(res.Accounts[i].Detail, cred)
		}
		return res, nil
	case code == http.StatusTooManyRequests || code == http.StatusServiceUnavailable:
		if d, ok := parseRetryAfter(resp.Header.Get("Retry-After"), time.Now()); ok {
			return checks.Result{}, &checks.RetryAfterError{Delay: d,
				Err: fmt.Errorf("the checker at %s answered %s", c.where, resp.Status)}
		}
		return checks.Result{}, c.temporary(resp, b, cred)
	case code >= 500:
		return checks.Result{}, c.temporary(resp, b, cred)
	case code >= 300 && code < 400:
		return otherError(cred, "the checker at %s answered %s (to %q); redirects are not followed: set the datasource's url to the final address",
			c.where, resp.Status, resp.Header.Get("Location")), nil
	case code >= 400:
		return otherError(cred, "the checker at %s answered %s: %s", c.where, resp.Status, excerpt(scrub(string(b), cred))), nil
	}
	return otherError(cred, "the checker at %s answered %s; the protocol wants 200 with a result", c.where, resp.Status), nil
}

// temporary is the error of a temporary failure answered: asynq logs it
// and keeps it with the task.
func (c *Checker) temporary(resp *http.Response, body []byte, cred *checks.Credentials) error {
	return fmt.Errorf("the checker at %s answered %s: %s: %w", c.where, resp.Status,
		excerpt(scrubAll(string(body), cred)), checks.ErrTemporary)
}

func (c *Checker) tooLarge(resp *http.Response) checks.Result {
	return checks.Result{Status: checks.ConnOtherError, Detail: fmt.Sprintf(
		"the checker at %s answered %s with a body over %d bytes; refused", c.where, resp.Status, MaxResponseBytes)}
}

// otherError is an OTHER_ERROR result whose detail holds no credential.
func otherError(cred *checks.Credentials, format string, args ...any) checks.Result {
	return checks.Result{Status: checks.ConnOtherError, Detail: scrub(fmt.Sprintf(format, args...), cred)}
}

// scrub replaces the password and extra values in a text written from a
// checker's answer (which may echo its request, say in an error page) and
// recorded as a detail. The username stays: a detail may name the login
// (the sandbox's do).
func scrub(s string, cred *checks.Credentials) string {
	s = redact(s, cred.Password)
	for _, v := range cred.Extra {
		s = redact(s, v)
	}
	return s
}

// scrubAll also replaces the username: for texts that are logged (asynq
// logs a temporary failure's error and keeps it with the task).
func scrubAll(s string, cred *checks.Credentials) string {
	return redact(scrub(s, cred), cred.Username)
}

func redact(s, secret string) string {
	if secret == "" || !strings.Contains(s, secret) {
		return s
	}
	return strings.ReplaceAll(s, secret, "<redacted>")
}

// excerpt is the start of a (scrubbed) body for a detail, quoted: at most
// maxBodyInDetail bytes, cut on a UTF-8 boundary.
func excerpt(s string) string {
	s = strings.TrimSpace(s)
	if s == "" {
		return "(empty body)"
	}
	if len(s) <= maxBodyInDetail {
		return strconv.Quote(s)
	}
	cut := maxBodyInDetail
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return strconv.Quote(s[:cut]) + "…"
}

// parseRetryAfter reads a Retry-After header (seconds, or an HTTP date)
// into a wait between MinRetryAfter and MaxRetryAfter.
func parseRetryAfter(v string, now time.Time) (time.Duration, bool) {
	v = strings.TrimSpace(v)
	if v == "" {
		return 0, false
	}
	var d time.Duration
	if n, err := strconv.ParseUint(v, 10, 64); err == nil {
		d = time.Duration(min(n, uint64(MaxRetryAfter/time.Second))) * time.Second
	} else if t, err := http.ParseTime(v); err == nil {
		d = t.Sub(now)
	} else {
		return 0, false
	}
	return min(max(d, MinRetryAfter), MaxRetryAfter), true
}

// newMessageID is a request's webhook-id: unique per request, so a checker
// can refuse a replayed one.
func newMessageID() string {
	var b [16]byte
	_, _ = rand.Read(b[:]) // never fails (crypto/rand's contract since Go 1.24)
	return "chk_" + hex.EncodeToString(b[:])
}
