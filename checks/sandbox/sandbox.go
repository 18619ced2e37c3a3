// Package sandbox is the "sandbox" datasource: a fake utility website, in
// the spirit of Plaid's sandbox, whose behaviour is chosen by the
// connection's username (the password is ignored). It lets demos, tests and
// integrators drive every connection and account status without a real
// provider. Everything is deterministic: the same connection ID, username and
// known accounts give the same result.
//
// Connection scenarios:
//
//	user_good                 CONNECTED with 2 accounts; every account to pull ends in PULL_COMPLETED
//	error_<STATUS>            that connection status with a detail, for STATUS one of
//	                          PASSWORD_INCORRECT, MFA_TOKEN_EXPIRED, NEW_PASSWORD_NEEDED,
//	                          ADDITIONAL_CREDENTIALS_NEEDED, WEBSITE_DOWN, URL_INACCESSIBLE,
//	                          NO_ACCOUNTS_FOUND, OTHER_ERROR (case-insensitive);
//	                          any other error_X gives OTHER_ERROR naming the valid ones
//	any other username        PASSWORD_INCORRECT, as a real website would answer
//
// Account scenarios (all CONNECTED):
//
//	user_accounts_<N>         N accounts (1 to 50), all pulled to PULL_COMPLETED;
//	                          N out of range gives OTHER_ERROR saying so
//	user_new_accounts         lists one account more than the service knows (up to 50),
//	                          so every check discovers a new DETECTED account
//	user_nodocs               2 accounts; pulls end in NO_DOCUMENTS_FOUND
//	user_pdf_fail             2 accounts; pulls end in PDF_DOWNLOAD_FAILED
//	user_pull_error           2 accounts; pulls end in OTHER_ERROR
//	user_account_gone         2 accounts at first; once the service knows two or more, only
//	                          the first is listed, so the others become ACCOUNT_NOT_FOUND
//
// Failure scenarios (for the worker's error handling):
//
//	user_slow                 waits until the check's context is done, then WEBSITE_DOWN "timed out"
//	user_temporary            returns an error wrapping checks.ErrTemporary (retried, nothing recorded)
//	user_panic                panics
//
// Datasource scenario (issue 20's outage breaker): Checker.SetDown(true),
// or Options.Down at New, makes the whole datasource down:
// every check answers WEBSITE_DOWN, whatever the username, until
// SetDown(false). Logins counts the checks that reached the website (none
// is lost while it is down: they count too).
//
// Account numbers are ten digits: eight from a hash of the connection ID and
// a two-digit index (01, 02, ...), so they are stable across checks and
// differ between connections.
package sandbox

import (
	"context"
	"fmt"
	"hash/fnv"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/checkd/checkd/checks"
)

// Datasource is the name the sandbox checker registers under.
const Datasource = "sandbox"

// Usernames of the scenarios; see the package documentation.
const (
	UserGood        = "user_good"
	UserNewAccounts = "user_new_accounts"
	UserNoDocs      = "user_nodocs"
	UserPDFFail     = "user_pdf_fail"
	UserPullError   = "user_pull_error"
	UserAccountGone = "user_account_gone"
	UserSlow        = "user_slow"
	UserTemporary   = "user_temporary"
	UserPanic       = "user_panic"
	// UserAccountsPrefix followed by N (1..MaxAccounts) lists N accounts.
	UserAccountsPrefix = "user_accounts_"
	// ErrorPrefix followed by a connection error status yields that status.
	ErrorPrefix = "error_"
)

// MaxAccounts bounds how many accounts a sandbox website lists.
const MaxAccounts = 50

// defaultAccounts is how many accounts the two-account scenarios list.
const defaultAccounts = 2

// Options tunes the sandbox.
type Options struct {
	// Latency is waited at the start of every check, to simulate a website;
	// a context done meanwhile ends the check with WEBSITE_DOWN.
	Latency time.Duration
	// Down starts the sandbox with the whole datasource down (SetDown).
	Down bool
}

// Checker is the sandbox checker. It is safe for concurrent use.
type Checker struct {
	opts   Options
	down   atomic.Bool
	logins atomic.Int64
}

// SetDown makes the whole datasource down (every check WEBSITE_DOWN) or up
// again.
func (c *Checker) SetDown(down bool) { c.down.Store(down) }

// Logins counts the checks that reached the sandbox website.
func (c *Checker) Logins() int64 { return c.logins.Load() }

// DownDetail is the detail of a check while the whole datasource is down.
const DownDetail = "sandbox: the provider's whole website is down (outage scenario)"

var _ checks.Checker = (*Checker)(nil)

// New returns a sandbox checker.
func New(opts Options) *Checker {
	c := &Checker{opts: opts}
	c.down.Store(opts.Down)
	return c
}

// errorStatuses are the statuses error_<STATUS> yields, with their details.
var errorStatuses = map[checks.ConnectionStatus]string{
	checks.ConnPasswordIncorrect:           "sandbox: the website rejected the username or password",
	checks.ConnMFATokenExpired:             "sandbox: the website asked for a one-time code that did not arrive in time",
	checks.ConnNewPasswordNeeded:           "sandbox: the website requires the password to be reset",
	checks.ConnAdditionalCredentialsNeeded: "sandbox: the website asks for a security question answer",
	checks.ConnWebsiteDown:                 "sandbox: the website answered 503 Service Unavailable",
	checks.ConnURLInaccessible:             "sandbox: the website's address does not resolve",
	checks.ConnNoAccountsFound:             "sandbox: logged in, but the website lists no accounts",
	checks.ConnOtherError:                  "sandbox: the website returned a page the checker does not understand",
}

// errorScenarios lists the valid error_<STATUS> usernames, in the
// reference's status order, for the detail of an unknown one.
var errorScenarios = func() string {
	var names []string
	for _, s := range checks.ConnectionStatuses {
		if _, ok := errorStatuses[s]; ok {
			names = append(names, ErrorPrefix+string(s))
		}
	}
	return strings.Join(names, ", ")
}()

// Check plays the scenario the request's username names.
func (c *Checker) Check(ctx context.Context, req checks.Request) (checks.Result, error) {
	if c.opts.Latency > 0 {
		t := time.NewTimer(c.opts.Latency)
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			return timedOut(), nil
		}
	}
	c.logins.Add(1)
	if c.down.Load() {
		return checks.Result{Status: checks.ConnWebsiteDown, Detail: DownDetail}, nil
	}
	user := req.Credentials.Username
	switch user {
	case UserGood:
		return connected(req, defaultAccounts, checks.AcctPullCompleted, ""), nil
	case UserNewAccounts:
		return connected(req, min(len(req.Accounts)+1, MaxAccounts), checks.AcctPullCompleted, ""), nil
	case UserNoDocs:
		return connected(req, defaultAccounts, checks.AcctNoDocumentsFound, "sandbox: no bill has been published for this account yet"), nil
	case UserPDFFail:
		return connected(req, defaultAccounts, checks.AcctPDFDownloadFailed, "sandbox: the bill PDF download was cut off"), nil
	case UserPullError:
		return connected(req, defaultAccounts, checks.AcctOtherError, "sandbox: the billing page layout was not recognised"), nil
	case UserAccountGone:
		n := defaultAccounts
		if len(req.Accounts) >= defaultAccounts {
			n = 1
		}
		return connected(req, n, checks.AcctPullCompleted, ""), nil
	case UserSlow:
		<-ctx.Done()
		return timedOut(), nil
	case UserTemporary:
		return checks.Result{}, fmt.Errorf("sandbox: simulated outage of the checker's own browser pool: %w", checks.ErrTemporary)
	case UserPanic:
		panic("sandbox: user_panic scenario")
	}
	if rest, ok := strings.CutPrefix(user, UserAccountsPrefix); ok {
		n, err := strconv.Atoi(rest)
		if err != nil || n < 1 || n > MaxAccounts {
			return checks.Result{Status: checks.ConnOtherError, Detail: fmt.Sprintf(
				"sandbox: %s%s is not a scenario: use %sN with N from 1 to %d", UserAccountsPrefix, rest, UserAccountsPrefix, MaxAccounts)}, nil
		}
		return connected(req, n, checks.AcctPullCompleted, ""), nil
	}
	if rest, ok := strings.CutPrefix(user, ErrorPrefix); ok {
		s := checks.ConnectionStatus(strings.ToUpper(rest))
		if d, ok := errorStatuses[s]; ok {
			return checks.Result{Status: s, Detail: d}, nil
		}
		return checks.Result{Status: checks.ConnOtherError, Detail: fmt.Sprintf(
			"sandbox: %s%s is not a scenario: valid ones are %s", ErrorPrefix, rest, errorScenarios)}, nil
	}
	return checks.Result{Status: checks.ConnPasswordIncorrect, Detail: errorStatuses[checks.ConnPasswordIncorrect]}, nil
}

func timedOut() checks.Result {
	return checks.Result{Status: checks.ConnWebsiteDown, Detail: "sandbox: timed out waiting for the website"}
}

// connected lists n accounts of the connection and gives every one the
// request asks to pull the pull outcome (with detail, for failures).
func connected(req checks.Request, n int, pull checks.AccountStatus, detail string) checks.Result {
	res := checks.Result{Status: checks.ConnConnected, Accounts: make([]checks.AccountResult, n)}
	base := accountBase(req.ConnectionID)
	for i := range res.Accounts {
		a := &res.Accounts[i]
		a.Number = accountNumber(base, i)
		a.Name = accountNames[i%len(accountNames)] + " " + a.Number[8:]
		if wantsPull(req.Accounts, a.Number) {
			a.Status, a.Detail = pull, detail
		}
	}
	return res
}

var accountNames = []string{"Electric", "Gas", "Water", "Sewer", "Waste"}

// wantsPull is a linear scan: a connection has a handful of accounts, and a
// map would cost more than it saves on the hot path.
func wantsPull(known []checks.Account, number string) bool {
	for _, k := range known {
		if k.Number == number {
			return k.Pull
		}
	}
	return false
}

// accountBase is the connection's eight-digit account number prefix.
func accountBase(connectionID string) uint64 {
	h := fnv.New64a()
	h.Write([]byte("sandbox:"))
	h.Write([]byte(connectionID))
	return h.Sum64() % 100_000_000
}

// accountNumber is the number of the i-th (from 0) account of a connection
// whose base is accountBase(connectionID).
func accountNumber(base uint64, i int) string {
	return fmt.Sprintf("%08d%02d", base, i+1)
}

// AccountNumbers returns the numbers of the first n sandbox accounts of a
// connection, as its website lists them.
func AccountNumbers(connectionID string, n int) []string {
	base := accountBase(connectionID)
	out := make([]string, n)
	for i := range out {
		out[i] = accountNumber(base, i)
	}
	return out
}
