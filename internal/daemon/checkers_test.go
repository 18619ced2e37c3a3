package daemon_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"hash/crc32"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/checkd/checkd/api"
	"github.com/checkd/checkd/checks"
	"github.com/checkd/checkd/checks/httpcheck"
	"github.com/checkd/checkd/checks/sandbox"
	"github.com/checkd/checkd/configs"
	"github.com/checkd/checkd/internal/clock"
	"github.com/checkd/checkd/internal/daemon"
	"github.com/checkd/checkd/internal/testing/ci"
	"github.com/checkd/checkd/internal/testing/redistest"
	"github.com/checkd/checkd/store"
)

// checkerSecret is the secret of the checker services these tests run.
const checkerSecret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSwMfKQ9r8GKYo="

// checkerProcess is a checker service running as a process of its own.
type checkerProcess struct {
	url  string      // its check URL, read from its first line of output
	logs *syncBuffer // everything it wrote, stdout and stderr
}

// startChecker runs cmd until the test ends and waits for it to print
// "... listening on <url>".
func startChecker(t *testing.T, cmd *exec.Cmd) *checkerProcess {
	t.Helper()
	p := &checkerProcess{logs: &syncBuffer{}}
	cmd.Stderr = p.logs
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", cmd.Path, err)
	}
	exited := make(chan struct{})
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(10 * time.Second):
			_ = cmd.Process.Kill()
			<-exited
		}
	})
	lines := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			if _, u, ok := strings.Cut(sc.Text(), "listening on "); ok && p.url == "" {
				lines <- u
			}
			fmt.Fprintln(p.logs, sc.Text())
		}
		_ = cmd.Wait()
		close(exited)
	}()
	select {
	case p.url = <-lines:
	case <-exited:
		t.Fatalf("%s exited before listening:\n%s", cmd.Path, p.logs)
	case <-time.After(30 * time.Second):
		t.Fatalf("%s did not listen within 30s:\n%s", cmd.Path, p.logs)
	}
	return p
}

// checkerDaemon starts a daemon on a real Redis with one datasource served
// by the checker at url, logging at debug level into logs.
func checkerDaemon(t *testing.T, name, url string, clk clock.Clock, logs *syncBuffer) *daemon.Daemon {
	t.Helper()
	o := redistest.Start(t).Client(t).Options()
	cfg := baseConfig()
	cfg.RedisURL = fmt.Sprintf("redis://%s/%d", o.Addr, o.DB)
	cfg.EncryptionKey, cfg.APIKeys = testEncKey, []string{testAPIKey}
	cfg.Tick = "@every 1h" // ticks are driven by hand
	cfg.Store.AutoTrack = true
	cfg.Scheduler.MaxRetry = 0 // a temporary failure is recorded at once
	cfg.Checkers.AllowHTTP = true
	cfg.Datasources = map[string]configs.Datasource{name: {Checker: configs.CheckerHTTP, URL: url, Secret: checkerSecret, Timeout: 20 * time.Second}}
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	log := logrus.New()
	log.SetOutput(logs)
	log.SetLevel(logrus.DebugLevel)
	d, _ := startDaemon(t, cfg, log, daemon.Options{Clock: clk})
	return d
}

// createConnections creates one connection per username (password from
// passwords) of datasource ds in a new company, and returns their IDs by
// username.
func createConnections(t *testing.T, base, ds string, passwords map[string]string) map[string]string {
	t.Helper()
	var co store.Company
	if code := doJSON(t, http.MethodPost, base+"/v1/company", testAPIKey, api.CreateCompanyRequest{Name: "Acme"}, &co); code != http.StatusCreated {
		t.Fatalf("create company: %d", code)
	}
	ids := map[string]string{}
	for user, pw := range passwords {
		var c api.Connection
		code := doJSON(t, http.MethodPost, base+"/v1/connection/company/"+co.ID, testAPIKey,
			api.CreateConnectionRequest{Datasource: api.DatasourceName(ds), Name: user, Credentials: &checks.Credentials{Username: user, Password: pw}}, &c)
		if code != http.StatusCreated {
			t.Fatalf("create connection %s of %s: %d", user, ds, code)
		}
		ids[user] = c.ID
	}
	return ids
}

// noSecretsIn fails the test when a log holds a password.
func noSecretsIn(t *testing.T, passwords map[string]string, logs map[string]string) {
	t.Helper()
	for name, text := range logs {
		if text == "" {
			t.Errorf("the %s log is empty: nothing to look for credentials in", name)
		}
		for _, pw := range passwords {
			if strings.Contains(text, pw) {
				t.Errorf("the %s log holds the password %q:\n%s", name, pw, text)
			}
		}
	}
}

// TestHTTPCheckerEndToEnd: connections of a datasource configured as
// `checker: http` are checked through the reference checker service,
// cmd/checkd-sandbox, run as a process of its own (built from this
// repository: the binary operators and make cluster run, over a real TCP
// connection between processes, as in production), on a real Redis:
// statuses are recorded as the sandbox decides, a second check pulls the
// tracked accounts (their pull flags travelled), a temporary failure is
// recorded on the last attempt, and no log of either process holds a
// password.
func TestHTTPCheckerEndToEnd(t *testing.T) {
	t.Parallel()
	goTool, err := exec.LookPath("go")
	if err != nil {
		ci.SkipOrFail(t, "the go tool is needed to build cmd/checkd-sandbox: %v", err)
	}
	bin := filepath.Join(t.TempDir(), "checkd-sandbox")
	if out, err := exec.Command(goTool, "build", "-o", bin, "github.com/checkd/checkd/cmd/checkd-sandbox").CombinedOutput(); err != nil {
		t.Fatalf("build cmd/checkd-sandbox: %v\n%s", err, out)
	}
	cmd := exec.Command(bin, "-addr", "127.0.0.1:0", "-log-level", "debug")
	cmd.Env = append(os.Environ(), "CHECKD_SANDBOX_SECRET="+checkerSecret)
	svc := startChecker(t, cmd)

	t0 := time.Date(2026, 3, 2, 9, 0, 0, 0, time.UTC)
	clk := clock.NewFake(t0)
	var logs syncBuffer
	const ds = "utility-http"
	d := checkerDaemon(t, ds, svc.url, clk, &logs)
	base := "http://" + d.API().Addr()

	passwords := map[string]string{
		sandbox.UserGood:           "pw-Good-7c1f0e",
		"error_PASSWORD_INCORRECT": "pw-Bad-94d2aa",
		sandbox.UserTemporary:      "pw-Temp-03be55",
	}
	ids := createConnections(t, base, ds, passwords)

	// An unknown datasource is refused, naming the configured ones.
	var conn api.Connection
	if code := getJSON(t, base+"/v1/connection/"+ids[sandbox.UserGood]+"/details", testAPIKey, &conn); code != http.StatusOK {
		t.Fatalf("get connection: %d", code)
	}
	body, _ := json.Marshal(api.CreateConnectionRequest{Datasource: "utility-ftp", Name: "x", Credentials: &checks.Credentials{Username: "u", Password: "p"}})
	req, _ := http.NewRequest(http.MethodPost, base+"/v1/connection/company/"+conn.CompanyID, bytes.NewReader(body))
	req.Header.Set(api.HeaderAPIKey, testAPIKey)
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	var apiErr api.ErrorResponse
	_ = json.NewDecoder(resp.Body).Decode(&apiErr)
	resp.Body.Close()
	if resp.StatusCode != http.StatusBadRequest || !strings.Contains(apiErr.Error.Message, "sandbox") || !strings.Contains(apiErr.Error.Message, ds) {
		t.Errorf("unknown datasource: %d %q, want 400 naming sandbox and %s", resp.StatusCode, apiErr.Error.Message, ds)
	}

	ctx := context.Background()
	if stats, err := d.Scheduler().Tick(ctx, clk.Now()); err != nil || stats.Enqueued != 3 {
		t.Fatalf("first tick: %+v %v; want 3 enqueued", stats, err)
	}
	first := waitFor(t, base, ids, func(c api.Connection) bool { return c.Status != checks.ConnPending })
	good, bad, temp := first[ids[sandbox.UserGood]], first[ids["error_PASSWORD_INCORRECT"]], first[ids[sandbox.UserTemporary]]
	if good.Status != checks.ConnConnected || len(good.Accounts) != 2 || good.Datasource.Name != ds {
		t.Fatalf("user_good over http: %s %+v (%s), want CONNECTED with 2 accounts", good.Status, good.Accounts, good.Datasource.Name)
	}
	want := sandbox.AccountNumbers(good.ID, 2)
	for i, a := range good.Accounts {
		if a.AccountNumber != want[i] || a.Status != checks.AcctOnboarded {
			t.Errorf("account %d: %s %s, want %s ONBOARDED (the sandbox's numbers)", i, a.AccountNumber, a.Status, want[i])
		}
	}
	if bad.Status != checks.ConnPasswordIncorrect || !strings.Contains(bad.StatusErrorDetail, "sandbox: the website rejected") {
		t.Errorf("error_PASSWORD_INCORRECT over http: %s %q", bad.Status, bad.StatusErrorDetail)
	}
	if temp.Status != checks.ConnOtherError || !strings.Contains(temp.StatusErrorDetail, "temporary failure on every attempt") ||
		!strings.Contains(temp.StatusErrorDetail, "503") {
		t.Errorf("user_temporary over http: %s %q, want OTHER_ERROR naming the 503 on the last attempt", temp.Status, temp.StatusErrorDetail)
	}

	// A week later the tracked accounts are pulled: the request carried
	// them with pull true.
	t1 := clk.Advance(7*24*time.Hour + time.Minute)
	if stats, err := d.Scheduler().Tick(ctx, t1); err != nil || stats.Enqueued < 1 {
		t.Fatalf("second tick: %+v %v", stats, err)
	}
	again := waitFor(t, base, map[string]string{"good": good.ID}, func(c api.Connection) bool { return c.StatusLastUpdateTime.Equal(t1) })
	for _, a := range again[good.ID].Accounts {
		if a.Status != checks.AcctPullCompleted {
			t.Errorf("tracked account %s after the second check: %s, want PULL_COMPLETED", a.AccountNumber, a.Status)
		}
	}

	// The checks went through the other process, and no log holds a password.
	if n := strings.Count(svc.logs.String(), "check done"); n < 3 {
		t.Errorf("the checker service logged %d checks, want at least 3:\n%s", n, svc.logs)
	}
	noSecretsIn(t, passwords, map[string]string{"checkd": logs.String(), "checkd-sandbox": svc.logs.String()})
}

// TestPythonExampleChecker: the Python example under examples/ checks a
// live checkd's connections: it verifies the signature, its answers are
// recorded, and it refuses a request signed with another secret. Without
// python3 it is skipped, but in CI (whose .ci/run installs python3) it
// fails.
func TestPythonExampleChecker(t *testing.T) {
	t.Parallel()
	py, err := exec.LookPath("python3")
	if err != nil {
		ci.SkipOrFail(t, "python3 is not installed (.ci/run installs it): %v", err)
	}
	cmd := exec.Command(py, filepath.Join("..", "..", "examples", "python", "checker.py"), "0")
	cmd.Env = append(os.Environ(), "CHECKER_SECRET="+checkerSecret)
	svc := startChecker(t, cmd)

	t0 := time.Date(2026, 3, 2, 9, 0, 0, 0, time.UTC)
	clk := clock.NewFake(t0)
	var logs syncBuffer
	d := checkerDaemon(t, "python-example", svc.url, clk, &logs)
	base := "http://" + d.API().Addr()
	passwords := map[string]string{"alice": "open-sesame", "bob": "not-the-password"}
	ids := createConnections(t, base, "python-example", passwords)

	ctx := context.Background()
	if stats, err := d.Scheduler().Tick(ctx, clk.Now()); err != nil || stats.Enqueued != 2 {
		t.Fatalf("first tick: %+v %v", stats, err)
	}
	first := waitFor(t, base, ids, func(c api.Connection) bool { return c.Status != checks.ConnPending })
	alice, bob := first[ids["alice"]], first[ids["bob"]]
	number := fmt.Sprintf("%010d", crc32.ChecksumIEEE([]byte(alice.ID)))
	if alice.Status != checks.ConnConnected || len(alice.Accounts) != 1 || alice.Accounts[0].AccountNumber != number {
		t.Fatalf("alice: %s %+v, want CONNECTED with account %s", alice.Status, alice.Accounts, number)
	}
	if bob.Status != checks.ConnPasswordIncorrect {
		t.Errorf("bob: %s %q, want PASSWORD_INCORRECT", bob.Status, bob.StatusErrorDetail)
	}
	t1 := clk.Advance(7*24*time.Hour + time.Minute)
	if _, err := d.Scheduler().Tick(ctx, t1); err != nil {
		t.Fatal(err)
	}
	again := waitFor(t, base, map[string]string{"alice": alice.ID}, func(c api.Connection) bool { return c.StatusLastUpdateTime.Equal(t1) })
	if a := again[alice.ID].Accounts[0]; a.Status != checks.AcctPullCompleted {
		t.Errorf("alice's tracked account after the second check: %s, want PULL_COMPLETED", a.Status)
	}

	// Signed with another secret: refused.
	other, err := httpcheck.New(httpcheck.Config{URL: svc.url, Secret: "whsec_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=",
		Timeout: 10 * time.Second, AllowHTTP: true, MaxIdleConns: 1})
	if err != nil {
		t.Fatal(err)
	}
	res, err := other.Check(ctx, checks.Request{ConnectionID: alice.ID, Datasource: "python-example",
		Credentials: checks.Credentials{Username: "alice", Password: "open-sesame"}})
	if err != nil || res.Status != checks.ConnOtherError || !strings.Contains(res.Detail, "401") {
		t.Errorf("a request signed with another secret: %+v %v, want OTHER_ERROR naming the 401", res, err)
	}
	noSecretsIn(t, map[string]string{"bob": passwords["bob"]}, map[string]string{"checkd": logs.String(), "checker.py": svc.logs.String()})
}
