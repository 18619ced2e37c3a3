package ctl

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/checkd/checkd/api"
)

// DefaultURL is the API base URL when neither --url nor CHECKD_URL is set
// (the daemon's default CHECKD_HTTP_ADDR).
const DefaultURL = "http://127.0.0.1:8080"

// DefaultTimeout bounds one API call of a client built without an
// http.Client of its own.
const DefaultTimeout = 30 * time.Second

// maxResponseBytes bounds a response body the client reads.
const maxResponseBytes = 64 << 20

// Client is a small client of checkd's HTTP API: it sends JSON with the API
// key and turns error answers into *APIError. It is safe for concurrent use.
type Client struct {
	base   *url.URL
	apiKey string
	hc     *http.Client
}

// NewClient returns a client of the API at baseURL (http or https, e.g.
// DefaultURL; a trailing /v1 is dropped), authenticating with apiKey. hc nil is an http.Client with
// DefaultTimeout.
func NewClient(baseURL, apiKey string, hc *http.Client) (*Client, error) {
	// The API's own prefix is added by each call: a URL copied with it
	// (http://host:8080/v1) means the same base.
	u, err := url.Parse(strings.TrimSuffix(strings.TrimRight(baseURL, "/"), "/v1"))
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.RawQuery != "" || u.Fragment != "" {
		return nil, fmt.Errorf("API URL %q is not an http(s) URL such as %s", baseURL, DefaultURL)
	}
	if hc == nil {
		hc = &http.Client{Timeout: DefaultTimeout}
	}
	return &Client{base: u, apiKey: apiKey, hc: hc}, nil
}

// APIError is an error answer of the API: its HTTP status and the
// {"error":{"code","message","accounts"}} body.
type APIError struct {
	Status  int
	Code    string
	Message string
	// Accounts names the accounts a refused confirmation objected to.
	Accounts map[string]string
}

// Error returns the API's message (it says what to fix).
func (e *APIError) Error() string {
	if e.Message == "" {
		return fmt.Sprintf("the API answered %d %s", e.Status, http.StatusText(e.Status))
	}
	return e.Message
}

// Do sends method path (relative to the base URL, e.g. "/v1/company") with
// query and, when in is not nil, in as a JSON body. It returns the body of a
// 2xx answer and its status; any other answer is an *APIError, and a
// transport failure an error saying where it tried.
func (c *Client) Do(ctx context.Context, method, path string, query url.Values, in any) ([]byte, int, error) {
	// path's segments are escaped by the caller (seg), so it is appended
	// as it is.
	u, err := url.Parse(c.base.String() + path)
	if err != nil {
		return nil, 0, fmt.Errorf("build request %s %s: %w", method, path, err)
	}
	u.RawQuery = query.Encode()
	var body io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return nil, 0, fmt.Errorf("encode request body: %w", err)
		}
		body = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, u.String(), body)
	if err != nil {
		return nil, 0, fmt.Errorf("build request %s %s: %w", method, path, err)
	}
	req.Header.Set("Accept", "application/json")
	req.Header.Set("User-Agent", "checkctl")
	if in != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if c.apiKey != "" {
		req.Header.Set("X-API-Key", c.apiKey)
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		return nil, 0, fmt.Errorf("cannot reach checkd at %s (is it running? set --url or CHECKD_URL): %w", c.base.Redacted(), err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, maxResponseBytes))
	if err != nil {
		return nil, resp.StatusCode, fmt.Errorf("read the answer to %s %s: %w", method, path, err)
	}
	if resp.StatusCode/100 == 2 {
		return b, resp.StatusCode, nil
	}
	return nil, resp.StatusCode, decodeError(resp.StatusCode, b)
}

func decodeError(status int, b []byte) error {
	var er api.ErrorResponse
	e := &APIError{Status: status}
	if json.Unmarshal(b, &er) == nil && er.Error.Message != "" {
		e.Code, e.Message, e.Accounts = er.Error.Code, er.Error.Message, er.Error.Accounts
		return e
	}
	// Not the API's format (a proxy, a wrong URL): show the start of it.
	text := strings.TrimSpace(string(b))
	if len(text) > 200 {
		text = text[:200] + "..."
	}
	e.Message = fmt.Sprintf("the server answered %d %s (is --url pointing at checkd?)", status, http.StatusText(status))
	if text != "" {
		e.Message += ": " + text
	}
	return e
}

// seg escapes one path segment (an ID, a queue name).
func seg(s string) string { return url.PathEscape(s) }

// isAPIError reports err as an *APIError.
func isAPIError(err error) (*APIError, bool) {
	var ae *APIError
	ok := errors.As(err, &ae)
	return ae, ok
}
