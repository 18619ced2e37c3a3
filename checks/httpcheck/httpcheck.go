// Package httpcheck is the HTTP checker protocol: a datasource whose
// connections are checked by an operator's checker service, in any language,
// that checkd calls over HTTP. docs/checkers.md is the contract for checker
// authors; this package is both of its sides in Go:
//
//   - Checker (New) is checkd's side, a checks.Checker that POSTs each check
//     to the datasource's URL and turns the answer into a result or a retry;
//   - Handler (NewHandler) serves any checks.Checker over the protocol,
//     verifying the signature: cmd/checkd-sandbox serves the sandbox with it.
//
// A check is one POST of a JSON Request, signed as Standard Webhooks sign a
// message (webhook-id, webhook-timestamp, webhook-signature "v1,<base64
// HMAC-SHA256 of id.timestamp.body>" with the datasource's whsec_ secret).
// Credentials travel only in that body: never in the URL, a header or a log.
//
// The answer decides what is recorded:
//
//	200 with a checks.Result (JSON)     the result (an invalid one: OTHER_ERROR naming the problem)
//	timeout, refused, reset, 5xx, 429   temporary: retried by asynq, OTHER_ERROR on the last attempt
//	429 or 503 with Retry-After         retried after it, not counted as a failed attempt
//	3xx                                 OTHER_ERROR: redirects are not followed
//	other 4xx                           OTHER_ERROR with the status and the start of the body
//	other 1xx/2xx, over MaxResponseBytes OTHER_ERROR
package httpcheck

import (
	"encoding/base64"
	"errors"
	"fmt"
	"net/url"
	"strings"
	"time"

	"github.com/checkd/checkd/checks"
)

// Request is the JSON body checkd POSTs to a checker for one check.
type Request struct {
	// ConnectionID is checkd's ID of the connection.
	ConnectionID string `json:"connectionId"`
	// Datasource is the datasource's name in checkd's configuration.
	Datasource string `json:"datasource"`
	// Credentials are the connection's login to the provider's website;
	// extra is absent when the connection has none.
	Credentials checks.Credentials `json:"credentials"`
	// Accounts are the accounts checkd knows for the connection.
	Accounts []Account `json:"accounts"`
	// Deadline is when checkd stops waiting for the answer (RFC 3339): a
	// checker should answer before it.
	Deadline time.Time `json:"deadline"`
}

// Account is an account checkd knows, as a Request lists it.
type Account struct {
	// ID is checkd's account ID.
	ID string `json:"id"`
	// Number is the provider's account number, as a check discovered it.
	Number string `json:"number"`
	// Pull asks for the account's bills on this check (it is tracked).
	Pull bool `json:"pull"`
}

// NewRequest is the body of a check of req that must end by deadline.
func NewRequest(req checks.Request, deadline time.Time) Request {
	accts := make([]Account, len(req.Accounts))
	for i, a := range req.Accounts {
		accts[i] = Account{ID: a.ID, Number: a.Number, Pull: a.Pull}
	}
	return Request{ConnectionID: req.ConnectionID, Datasource: req.Datasource, Credentials: req.Credentials,
		Accounts: accts, Deadline: deadline.UTC()}
}

// Check is the checks.Request a body describes.
func (r Request) Check() checks.Request {
	accts := make([]checks.Account, len(r.Accounts))
	for i, a := range r.Accounts {
		accts[i] = checks.Account{ID: a.ID, Number: a.Number, Pull: a.Pull}
	}
	return checks.Request{ConnectionID: r.ConnectionID, Datasource: r.Datasource, Credentials: r.Credentials, Accounts: accts}
}

// Limits of the protocol.
const (
	// MaxResponseBytes bounds a checker's answer: a larger one is refused
	// and recorded as OTHER_ERROR. The Handler bounds requests the same way.
	MaxResponseBytes = 1 << 20
	// MaxRetryAfter bounds the wait a Retry-After asks for; a longer one
	// is cut to it, so a checker cannot park a check for days.
	MaxRetryAfter = time.Hour
	// MinRetryAfter is the shortest wait a Retry-After gets (0 or a date
	// in the past included): a retry is never immediate.
	MinRetryAfter = time.Second
	// maxBodyInDetail bounds how much of a refused answer's body a detail
	// quotes.
	maxBodyInDetail = 256
)

// Secret sizes, in bytes (the Standard Webhooks range).
const (
	MinSecretBytes = 24
	MaxSecretBytes = 64
)

// SecretPrefix starts every checker secret.
const SecretPrefix = "whsec_"

// ParseSecret decodes a whsec_ secret: "whsec_" and the standard base64 of
// 24 to 64 random bytes (generate one with: echo "whsec_$(openssl rand
// -base64 32)"). Its errors never quote the secret.
func ParseSecret(s string) ([]byte, error) {
	rest, ok := strings.CutPrefix(s, SecretPrefix)
	if !ok {
		return nil, errors.New(`the secret must start with "whsec_" (generate one with: echo "whsec_$(openssl rand -base64 32)")`)
	}
	key, err := base64.StdEncoding.DecodeString(rest)
	if err != nil {
		return nil, errors.New(`the secret after "whsec_" is not standard base64 (generate one with: echo "whsec_$(openssl rand -base64 32)")`)
	}
	if len(key) < MinSecretBytes || len(key) > MaxSecretBytes {
		return nil, fmt.Errorf("the secret holds %d bytes; use %d to %d (generate one with: echo \"whsec_$(openssl rand -base64 32)\")",
			len(key), MinSecretBytes, MaxSecretBytes)
	}
	return key, nil
}

// CheckURL reports why rawURL cannot be a checker's URL: it must be an
// absolute https URL (http too when allowHTTP: development and tests)
// without user information (requests are authenticated by their
// signature) or fragment.
func CheckURL(rawURL string, allowHTTP bool) error {
	u, err := url.Parse(rawURL)
	if err != nil {
		return fmt.Errorf("%q is not a URL", rawURL)
	}
	switch {
	case u.Scheme == "http" && !allowHTTP:
		return fmt.Errorf("%q is plain http: credentials travel in the request body, so use https (for development, allow http with %s=true)",
			redactedURL(u), EnvAllowHTTP)
	case u.Scheme != "https" && u.Scheme != "http":
		return fmt.Errorf("%q is not an https URL such as https://checkers.example.com/check", redactedURL(u))
	case u.Host == "":
		return fmt.Errorf("%q has no host", redactedURL(u))
	case u.User != nil:
		return fmt.Errorf("%q holds user information: requests are authenticated by their signature; put no credentials in the URL", redactedURL(u))
	case u.Fragment != "":
		return fmt.Errorf("%q has a fragment (#...), which HTTP never sends", redactedURL(u))
	}
	return nil
}

// EnvAllowHTTP is the environment variable of the development switch that
// allows plain http:// checker URLs (configs reads it; named here for
// messages).
const EnvAllowHTTP = "CHECKD_CHECKER_ALLOW_HTTP"

// redactedURL is u without user information, query or fragment, for
// messages and errors.
func redactedURL(u *url.URL) string {
	c := *u
	c.User, c.RawQuery, c.ForceQuery, c.Fragment, c.RawFragment = nil, "", false, "", ""
	return c.String()
}
