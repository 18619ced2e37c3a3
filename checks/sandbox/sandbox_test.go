package sandbox_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/checkd/checkd/checks"
	"github.com/checkd/checkd/checks/sandbox"
)

const connID = "cn_0123456789abcdef"

// known returns the first n sandbox accounts of connID as the service would
// hand them to the checker.
func known(n int, pull bool) []checks.Account {
	out := make([]checks.Account, n)
	for i, num := range sandbox.AccountNumbers(connID, n) {
		out[i] = checks.Account{ID: fmt.Sprintf("ac_%d", i), Number: num, Pull: pull}
	}
	return out
}

func numbers(r checks.Result) []string {
	out := make([]string, len(r.Accounts))
	for i, a := range r.Accounts {
		out[i] = a.Number
	}
	return out
}

type scenario struct {
	name       string
	user       string
	accounts   []checks.Account
	status     checks.ConnectionStatus
	detail     string // substring of the connection detail
	numbers    []string
	pull       checks.AccountStatus // expected status of every listed account
	pullDetail bool                 // listed accounts carry a detail
}

func TestCheckScenarios(t *testing.T) {
	t.Parallel()
	two := sandbox.AccountNumbers(connID, 2)
	tests := []scenario{
		{name: "good first check", user: "user_good", status: checks.ConnConnected, numbers: two},
		{name: "good pulls tracked accounts", user: "user_good", accounts: known(2, true),
			status: checks.ConnConnected, numbers: two, pull: checks.AcctPullCompleted},
		{name: "good does not pull untracked", user: "user_good", accounts: known(2, false),
			status: checks.ConnConnected, numbers: two},
		{name: "accounts 1", user: "user_accounts_1", status: checks.ConnConnected, numbers: sandbox.AccountNumbers(connID, 1)},
		{name: "accounts 50", user: "user_accounts_50", accounts: known(50, true), status: checks.ConnConnected,
			numbers: sandbox.AccountNumbers(connID, 50), pull: checks.AcctPullCompleted},
		{name: "accounts 0", user: "user_accounts_0", status: checks.ConnOtherError, detail: "N from 1 to 50"},
		{name: "accounts 51", user: "user_accounts_51", status: checks.ConnOtherError, detail: "N from 1 to 50"},
		{name: "accounts junk", user: "user_accounts_x", status: checks.ConnOtherError, detail: "user_accounts_x is not a scenario"},
		{name: "new accounts first", user: "user_new_accounts", status: checks.ConnConnected, numbers: sandbox.AccountNumbers(connID, 1)},
		{name: "new accounts grows", user: "user_new_accounts", accounts: known(3, false), status: checks.ConnConnected,
			numbers: sandbox.AccountNumbers(connID, 4)},
		{name: "nodocs", user: "user_nodocs", accounts: known(2, true), status: checks.ConnConnected, numbers: two,
			pull: checks.AcctNoDocumentsFound, pullDetail: true},
		{name: "pdf fail", user: "user_pdf_fail", accounts: known(2, true), status: checks.ConnConnected, numbers: two,
			pull: checks.AcctPDFDownloadFailed, pullDetail: true},
		{name: "pull error", user: "user_pull_error", accounts: known(2, true), status: checks.ConnConnected, numbers: two,
			pull: checks.AcctOtherError, pullDetail: true},
		{name: "account gone first", user: "user_account_gone", status: checks.ConnConnected, numbers: two},
		{name: "account gone once known", user: "user_account_gone", accounts: known(2, true), status: checks.ConnConnected,
			numbers: two[:1], pull: checks.AcctPullCompleted},
		{name: "unknown user", user: "alice", status: checks.ConnPasswordIncorrect, detail: "rejected"},
		{name: "empty user", user: "", status: checks.ConnPasswordIncorrect, detail: "rejected"},
		{name: "unknown error", user: "error_FOO", status: checks.ConnOtherError, detail: "error_OTHER_ERROR, error_MFA_TOKEN_EXPIRED, error_PASSWORD_INCORRECT"},
		{name: "error of a healthy status", user: "error_CONNECTED", status: checks.ConnOtherError, detail: "not a scenario"},
		{name: "error of a system status", user: "error_DEACTIVATED", status: checks.ConnOtherError, detail: "not a scenario"},
		{name: "error lower case", user: "error_website_down", status: checks.ConnWebsiteDown, detail: "503"},
	}
	for _, s := range []checks.ConnectionStatus{
		checks.ConnPasswordIncorrect, checks.ConnMFATokenExpired, checks.ConnNewPasswordNeeded,
		checks.ConnAdditionalCredentialsNeeded, checks.ConnWebsiteDown, checks.ConnURLInaccessible,
		checks.ConnNoAccountsFound, checks.ConnOtherError,
	} {
		tests = append(tests, scenario{name: "error " + string(s), user: "error_" + string(s), accounts: known(2, true), status: s, detail: "sandbox: "})
	}
	c := sandbox.New(sandbox.Options{})
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			req := checks.Request{ConnectionID: connID, Datasource: sandbox.Datasource,
				Credentials: checks.Credentials{Username: tt.user, Password: "pw"}, Accounts: tt.accounts}
			res, err := c.Check(context.Background(), req)
			if err != nil {
				t.Fatalf("Check: %v", err)
			}
			if err := res.Validate(); err != nil {
				t.Fatalf("invalid result %+v: %v", res, err)
			}
			if res.Status != tt.status {
				t.Fatalf("status %s, want %s (detail %q)", res.Status, tt.status, res.Detail)
			}
			if !strings.Contains(res.Detail, tt.detail) {
				t.Errorf("detail %q, want it to contain %q", res.Detail, tt.detail)
			}
			if tt.status == checks.ConnConnected && res.Detail != "" {
				t.Errorf("CONNECTED with detail %q", res.Detail)
			}
			if got := numbers(res); strings.Join(got, ",") != strings.Join(tt.numbers, ",") {
				t.Errorf("accounts %v, want %v", got, tt.numbers)
			}
			for _, a := range res.Accounts {
				if a.Name == "" {
					t.Errorf("account %s has no name", a.Number)
				}
				if a.Status != tt.pull {
					t.Errorf("account %s: status %q, want %q", a.Number, a.Status, tt.pull)
				}
				if (a.Detail != "") != tt.pullDetail {
					t.Errorf("account %s: detail %q, want detail: %v", a.Number, a.Detail, tt.pullDetail)
				}
			}
		})
	}
}

func TestAccountNumbers(t *testing.T) {
	t.Parallel()
	a := sandbox.AccountNumbers(connID, 50)
	if b := sandbox.AccountNumbers(connID, 50); strings.Join(a, ",") != strings.Join(b, ",") {
		t.Fatalf("numbers are not stable: %v vs %v", a, b)
	}
	seen := map[string]bool{}
	for _, n := range a {
		if len(n) != 10 || strings.Trim(n, "0123456789") != "" {
			t.Errorf("number %q is not ten digits", n)
		}
		if seen[n] {
			t.Errorf("number %q repeated", n)
		}
		seen[n] = true
	}
	other := sandbox.AccountNumbers("cn_zzzzzzzzzzzzzzzz", 1)
	if other[0] == a[0] {
		t.Errorf("two connections share account number %s", a[0])
	}
}

func TestFailureScenarios(t *testing.T) {
	t.Parallel()
	c := sandbox.New(sandbox.Options{})
	req := func(user string) checks.Request {
		return checks.Request{ConnectionID: connID, Credentials: checks.Credentials{Username: user}}
	}

	t.Run("temporary", func(t *testing.T) {
		t.Parallel()
		_, err := c.Check(context.Background(), req("user_temporary"))
		if !errors.Is(err, checks.ErrTemporary) {
			t.Fatalf("err %v, want one wrapping checks.ErrTemporary", err)
		}
	})
	t.Run("panic", func(t *testing.T) {
		t.Parallel()
		defer func() {
			if r := recover(); r == nil {
				t.Fatal("user_panic did not panic")
			}
		}()
		_, _ = c.Check(context.Background(), req("user_panic"))
	})
	t.Run("slow waits for the context", func(t *testing.T) {
		t.Parallel()
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan checks.Result, 1)
		go func() {
			res, _ := c.Check(ctx, req("user_slow"))
			done <- res
		}()
		select {
		case res := <-done:
			t.Fatalf("user_slow returned before its context was done: %+v", res)
		default:
		}
		cancel()
		res := <-done
		if res.Status != checks.ConnWebsiteDown || !strings.Contains(res.Detail, "timed out") {
			t.Fatalf("got %+v, want WEBSITE_DOWN timed out", res)
		}
	})
	t.Run("slow with deadline", func(t *testing.T) {
		t.Parallel()
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Millisecond)
		defer cancel()
		res, err := c.Check(ctx, req("user_slow"))
		if err != nil || res.Status != checks.ConnWebsiteDown {
			t.Fatalf("got %+v, %v; want WEBSITE_DOWN", res, err)
		}
	})
}

func TestLatency(t *testing.T) {
	t.Parallel()
	t.Run("waits", func(t *testing.T) {
		t.Parallel()
		c := sandbox.New(sandbox.Options{Latency: 20 * time.Millisecond})
		start := time.Now()
		res, err := c.Check(context.Background(), checks.Request{ConnectionID: connID, Credentials: checks.Credentials{Username: "user_good"}})
		if err != nil || res.Status != checks.ConnConnected {
			t.Fatalf("got %+v, %v", res, err)
		}
		if d := time.Since(start); d < 20*time.Millisecond {
			t.Fatalf("returned after %v, want at least the 20ms latency", d)
		}
	})
	t.Run("cancelled", func(t *testing.T) {
		t.Parallel()
		c := sandbox.New(sandbox.Options{Latency: time.Hour})
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		res, err := c.Check(ctx, checks.Request{ConnectionID: connID, Credentials: checks.Credentials{Username: "user_good"}})
		if err != nil || res.Status != checks.ConnWebsiteDown || !strings.Contains(res.Detail, "timed out") {
			t.Fatalf("got %+v, %v; want WEBSITE_DOWN timed out", res, err)
		}
	})
}

func FuzzCheck(f *testing.F) {
	for _, u := range []string{"user_good", "user_accounts_7", "user_accounts_-1", "user_accounts_999999999999999999999",
		"user_new_accounts", "user_nodocs", "user_pdf_fail", "user_pull_error", "user_account_gone", "user_slow",
		"user_temporary", "error_PASSWORD_INCORRECT", "error_", "error_\x00", "", "ERROR_WEBSITE_DOWN"} {
		f.Add(u, connID, uint8(2), true)
	}
	c := sandbox.New(sandbox.Options{})
	// A done context: user_slow returns at once instead of blocking the fuzzer.
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	f.Fuzz(func(t *testing.T, user, conn string, nKnown uint8, pull bool) {
		if user == sandbox.UserPanic {
			t.Skip("user_panic panics by design")
		}
		acc := make([]checks.Account, int(nKnown)%60)
		for i, n := range sandbox.AccountNumbers(conn, len(acc)) {
			acc[i] = checks.Account{ID: fmt.Sprint(i), Number: n, Pull: pull}
		}
		res, err := c.Check(ctx, checks.Request{ConnectionID: conn, Credentials: checks.Credentials{Username: user}, Accounts: acc})
		if err != nil {
			if user != sandbox.UserTemporary || !errors.Is(err, checks.ErrTemporary) {
				t.Fatalf("user %q: unexpected error %v", user, err)
			}
			return
		}
		if err := res.Validate(); err != nil {
			t.Fatalf("user %q: invalid result %+v: %v", user, res, err)
		}
		if res.Status != checks.ConnConnected && len(res.Accounts) > 0 {
			t.Fatalf("user %q: %s with accounts", user, res.Status)
		}
	})
}

func Example() {
	c := sandbox.New(sandbox.Options{})
	ctx := context.Background()
	for _, user := range []string{"user_good", "error_WEBSITE_DOWN", "nobody"} {
		res, err := c.Check(ctx, checks.Request{ConnectionID: "cn_0123456789abcdef",
			Credentials: checks.Credentials{Username: user, Password: "secret"}})
		if err != nil {
			fmt.Println(err)
			continue
		}
		fmt.Printf("%s: %s, %d accounts %q\n", user, res.Status, len(res.Accounts), res.Detail)
	}
	// Output:
	// user_good: CONNECTED, 2 accounts ""
	// error_WEBSITE_DOWN: WEBSITE_DOWN, 0 accounts "sandbox: the website answered 503 Service Unavailable"
	// nobody: PASSWORD_INCORRECT, 0 accounts "sandbox: the website rejected the username or password"
}
