package checks

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"sync"
	"time"
)

// Credentials are a connection's login to the provider's website. They exist
// in clear only in memory, between the store's decryption and a checker.
type Credentials struct {
	Username string            `json:"username"`
	Password string            `json:"password"`
	Extra    map[string]string `json:"extra,omitempty"`
}

// String hides the secret so credentials never reach a log by accident.
func (c Credentials) String() string {
	return fmt.Sprintf("{username:%q password:<redacted>}", c.Username)
}

// GoString hides the secret from %#v as well.
func (c Credentials) GoString() string { return c.String() }

// Account is an account the service already knows, handed to a checker.
type Account struct {
	ID     string // the service's account ID
	Number string // the provider's account number, as discovered
	Pull   bool   // pull bills for it on this check (tracked, not terminal)
}

// Request is one check of one connection.
type Request struct {
	ConnectionID string
	Datasource   string
	Credentials  Credentials
	Accounts     []Account
}

// AccountResult is one account the checker saw on the website. Status is the
// pull outcome for an account the request asked to pull, and empty otherwise.
type AccountResult struct {
	Number string        `json:"number"`
	Name   string        `json:"name,omitempty"`
	Status AccountStatus `json:"status,omitempty"`
	Detail string        `json:"detail,omitempty"`
}

// Result is what a check found: the connection's status (CONNECTED, or the
// error it hit), a detail for errors, and every account seen on the website.
// Accounts the service knew but the checker did not see become
// ACCOUNT_NOT_FOUND; accounts it had not seen before become DETECTED.
type Result struct {
	Status   ConnectionStatus `json:"status"`
	Detail   string           `json:"detail,omitempty"`
	Accounts []AccountResult  `json:"accounts,omitempty"`
}

// Validate reports a result a checker may not return: a status a check cannot
// produce (PENDING, DEACTIVATED, COMPANY_INACTIVE, unknown) or an account
// outcome that is not a pull outcome.
func (r Result) Validate() error {
	switch {
	case !r.Status.Valid():
		return fmt.Errorf("checker returned unknown connection status %q", r.Status)
	case r.Status == ConnPending || r.Status.Category() == CategorySystem:
		return fmt.Errorf("checker returned %s, which only the service itself sets", r.Status)
	case r.Status == ConnUnderInvestigation:
		return fmt.Errorf("checker returned %s, which only the operations team sets (it flags a connection for review)", r.Status)
	}
	seen := make(map[string]bool, len(r.Accounts))
	for _, a := range r.Accounts {
		if a.Number == "" {
			return errors.New("checker returned an account without a number")
		}
		if seen[a.Number] {
			return fmt.Errorf("checker returned account %q twice", a.Number)
		}
		seen[a.Number] = true
		switch a.Status {
		case "", AcctPullCompleted, AcctNoDocumentsFound, AcctPDFDownloadFailed, AcctOtherError:
		default:
			return fmt.Errorf("checker returned %q for account %q: a pull ends in PULL_COMPLETED, NO_DOCUMENTS_FOUND, PDF_DOWNLOAD_FAILED or OTHER_ERROR", a.Status, a.Number)
		}
	}
	return nil
}

// NoAccountsDetail is the detail of a CONNECTED result without accounts,
// which Normalized records as NO_ACCOUNTS_FOUND.
const NoAccountsDetail = "logged in, but the website listed no accounts"

// Normalized returns the result as the status rules record it: a login that
// listed no accounts is NO_ACCOUNTS_FOUND ("can log in to the website, but no
// accounts were available"), not CONNECTED.
func (r Result) Normalized() Result {
	if r.Status == ConnConnected && len(r.Accounts) == 0 {
		r.Status, r.Detail = ConnNoAccountsFound, NoAccountsDetail
	}
	return r
}

// ErrTemporary marks a checker error on the service's own side (not the
// provider's): the check is retried later instead of recording a status.
var ErrTemporary = errors.New("temporary checker failure")

// RetryAfterError is a temporary failure whose checker said when to try
// again (HTTP 429 or 503 with Retry-After): the check is retried after
// Delay, and the attempt does not count against the task's retries. It
// wraps ErrTemporary, so code that knows only ErrTemporary retries it too.
type RetryAfterError struct {
	// Delay is how long to wait before the next attempt.
	Delay time.Duration
	// Err says what the checker answered.
	Err error
}

func (e *RetryAfterError) Error() string {
	return fmt.Sprintf("%v (retry after %s)", e.Err, e.Delay)
}

// Unwrap returns Err and ErrTemporary.
func (e *RetryAfterError) Unwrap() []error { return []error{e.Err, ErrTemporary} }

// RetryAfter returns the delay of a RetryAfterError in err's chain.
func RetryAfter(err error) (time.Duration, bool) {
	var ra *RetryAfterError
	if errors.As(err, &ra) {
		return ra.Delay, true
	}
	return 0, false
}

// Checker checks one connection of one datasource. A provider-side failure
// (bad password, website down) is a Result with that status, not an error.
// An error means the check could not be carried out; one wrapping
// ErrTemporary is retried, any other is recorded as OTHER_ERROR.
type Checker interface {
	Check(ctx context.Context, req Request) (Result, error)
}

// CheckerFunc adapts a function to the Checker interface.
type CheckerFunc func(ctx context.Context, req Request) (Result, error)

// Check calls f.
func (f CheckerFunc) Check(ctx context.Context, req Request) (Result, error) { return f(ctx, req) }

// Registry holds the checker of each datasource. It is safe for concurrent use.
type Registry struct {
	mu       sync.RWMutex
	checkers map[string]Checker
}

// NewRegistry returns an empty registry.
func NewRegistry() *Registry { return &Registry{checkers: map[string]Checker{}} }

// Register adds the checker of a datasource; a datasource is registered once.
func (r *Registry) Register(datasource string, c Checker) error {
	if datasource == "" || c == nil {
		return errors.New("register checker: datasource name and checker are required")
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if _, dup := r.checkers[datasource]; dup {
		return fmt.Errorf("register checker: datasource %q is already registered", datasource)
	}
	r.checkers[datasource] = c
	return nil
}

// Lookup returns the checker of a datasource.
func (r *Registry) Lookup(datasource string) (Checker, error) {
	r.mu.RLock()
	defer r.mu.RUnlock()
	c, ok := r.checkers[datasource]
	if !ok {
		return nil, &UnknownValueError{Kind: "datasource", Value: datasource, Valid: r.namesLocked()}
	}
	return c, nil
}

// Names lists the registered datasources, sorted.
func (r *Registry) Names() []string {
	r.mu.RLock()
	defer r.mu.RUnlock()
	return r.namesLocked()
}

func (r *Registry) namesLocked() []string {
	out := make([]string, 0, len(r.checkers))
	for n := range r.checkers {
		out = append(out, n)
	}
	sort.Strings(out)
	return out
}
