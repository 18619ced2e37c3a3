package worker_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/hibiken/asynq"
	"github.com/sirupsen/logrus"
	logtest "github.com/sirupsen/logrus/hooks/test"

	"github.com/checkd/checkd/checks"
	"github.com/checkd/checkd/configs"
	"github.com/checkd/checkd/internal/tasks"
	"github.com/checkd/checkd/store"
	"github.com/checkd/checkd/worker"
)

// step is one check of a connection in a HandleCheck scenario.
type step struct {
	user       string // sandbox username for this check ("" keeps the previous one)
	status     checks.ConnectionStatus
	detail     string                 // substring of statusErrorDetail
	accounts   []checks.AccountStatus // account statuses after the check, in order
	acctDetail string                 // substring of every account's detail
	err        error                  // HandleCheck's error must wrap it
	noWrite    bool                   // the connection must be left untouched
}

func TestHandleCheck(t *testing.T) {
	t.Parallel()
	wna := checks.AcctWorkflowNotAccessible
	tests := []struct {
		name       string
		datasource string
		autoTrack  bool
		timeout    time.Duration
		steps      []step
	}{
		{name: "good discovers accounts", steps: []step{
			{user: "user_good", status: checks.ConnConnected, accounts: []checks.AccountStatus{checks.AcctDetected, checks.AcctDetected}},
			{status: checks.ConnConnected, accounts: []checks.AccountStatus{checks.AcctDetected, checks.AcctDetected}},
		}},
		{name: "auto-track onboards then pulls", autoTrack: true, steps: []step{
			{user: "user_good", status: checks.ConnConnected, accounts: []checks.AccountStatus{checks.AcctOnboarded, checks.AcctOnboarded}},
			{status: checks.ConnConnected, accounts: []checks.AccountStatus{checks.AcctPullCompleted, checks.AcctPullCompleted}},
		}},
		{name: "password incorrect after accounts, then blocked", steps: []step{
			{user: "user_good", status: checks.ConnConnected, accounts: []checks.AccountStatus{checks.AcctDetected, checks.AcctDetected}},
			{user: "error_PASSWORD_INCORRECT", status: checks.ConnPasswordIncorrect, detail: "rejected",
				accounts: []checks.AccountStatus{wna, wna}, acctDetail: "connection status PASSWORD_INCORRECT"},
			{user: "user_good", noWrite: true}, // credential-blocked: skipped at run time
		}},
		{name: "website down", autoTrack: true, steps: []step{
			{user: "user_good", status: checks.ConnConnected, accounts: []checks.AccountStatus{checks.AcctOnboarded, checks.AcctOnboarded}},
			{user: "error_WEBSITE_DOWN", status: checks.ConnWebsiteDown, detail: "503",
				accounts: []checks.AccountStatus{wna, wna}, acctDetail: "connection status WEBSITE_DOWN"},
			{user: "user_good", status: checks.ConnConnected, accounts: []checks.AccountStatus{checks.AcctPullCompleted, checks.AcctPullCompleted}},
		}},
		{name: "account gone", autoTrack: true, steps: []step{
			{user: "user_account_gone", status: checks.ConnConnected, accounts: []checks.AccountStatus{checks.AcctOnboarded, checks.AcctOnboarded}},
			{status: checks.ConnConnected, accounts: []checks.AccountStatus{checks.AcctPullCompleted, checks.AcctAccountNotFound}},
		}},
		{name: "panic", steps: []step{
			{user: "user_panic", status: checks.ConnOtherError, detail: "checker panicked: sandbox: user_panic scenario"},
		}},
		{name: "temporary is retried and records nothing", steps: []step{
			{user: "user_temporary", err: checks.ErrTemporary, noWrite: true},
		}},
		{name: "timeout", timeout: 20 * time.Millisecond, steps: []step{
			{user: "user_slow", status: checks.ConnWebsiteDown, detail: "check timed out after 20ms"},
		}},
		{name: "checker error", datasource: "broken", steps: []step{
			{status: checks.ConnOtherError, detail: errBroken.Error()},
		}},
		{name: "long error is truncated", datasource: "verbose", steps: []step{
			{status: checks.ConnOtherError, detail: strings.Repeat("é", 512) + "…"},
		}},
		{name: "invalid result", datasource: "invalid", steps: []step{
			{status: checks.ConnOtherError, detail: "invalid checker result: checker returned PENDING"},
		}},
		{name: "unknown datasource", datasource: "nope", steps: []step{
			{status: checks.ConnOtherError, detail: "no checker for datasource nope"},
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			e := newEnv(t, envOpts{autoTrack: tt.autoTrack, cfg: func(c *worker.Config) {
				if tt.timeout > 0 {
					c.CheckTimeout = tt.timeout
				}
			},
				checkers: map[string]checks.Checker{
					"broken": checks.CheckerFunc(func(context.Context, checks.Request) (checks.Result, error) {
						return checks.Result{}, errBroken
					}),
					"verbose": checks.CheckerFunc(func(context.Context, checks.Request) (checks.Result, error) {
						return checks.Result{}, errors.New(strings.Repeat("é", 3000)) // 6000 bytes of 2-byte runes
					}),
					"invalid": checks.CheckerFunc(func(context.Context, checks.Request) (checks.Result, error) {
						return checks.Result{Status: checks.ConnPending}, nil
					}),
				}})
			ds := tt.datasource
			if ds == "" {
				ds = "sandbox"
			}
			cn := e.connection(t, ds, "user_good")
			ctx := context.Background()
			for i, s := range tt.steps {
				if s.user != "" {
					e.users.Store(cn.ID, s.user)
				}
				before := e.get(t, cn.ID)
				hist, _ := e.st.History(ctx, cn.ID, 0)
				e.clk.Advance(time.Hour)
				err := e.w.HandleCheck(ctx, task(t, cn.ID, e.clk.Now()))
				switch {
				case s.err != nil && !errors.Is(err, s.err):
					t.Fatalf("step %d: err %v, want one wrapping %v", i, err, s.err)
				case s.err == nil && err != nil:
					t.Fatalf("step %d: HandleCheck: %v", i, err)
				}
				got := e.get(t, cn.ID)
				if s.noWrite {
					hist2, _ := e.st.History(ctx, cn.ID, 0)
					if !got.StatusLastUpdateTime.Equal(before.StatusLastUpdateTime) || got.Status != before.Status ||
						len(hist2) != len(hist) || (got.LastCheckAt == nil) != (before.LastCheckAt == nil) {
						t.Fatalf("step %d: connection written: before %+v after %+v", i, before, got)
					}
					continue
				}
				if got.Status != s.status {
					t.Fatalf("step %d: status %s (%q), want %s", i, got.Status, got.StatusErrorDetail, s.status)
				}
				if !utf8.ValidString(got.StatusErrorDetail) || len(got.StatusErrorDetail) > 1100 {
					t.Errorf("step %d: detail of %d bytes, want at most ~1KiB of valid UTF-8", i, len(got.StatusErrorDetail))
				}
				if !strings.Contains(got.StatusErrorDetail, s.detail) {
					t.Errorf("step %d: detail %q, want it to contain %q", i, got.StatusErrorDetail, s.detail)
				}
				if !got.StatusLastUpdateTime.Equal(e.clk.Now()) {
					t.Errorf("step %d: statusLastUpdateTime %v, want %v", i, got.StatusLastUpdateTime, e.clk.Now())
				}
				if len(got.Accounts) != len(s.accounts) {
					t.Fatalf("step %d: %d accounts %+v, want %v", i, len(got.Accounts), got.Accounts, s.accounts)
				}
				for j, a := range got.Accounts {
					if a.Status != s.accounts[j] {
						t.Errorf("step %d: account %d status %s, want %s", i, j, a.Status, s.accounts[j])
					}
					if !strings.Contains(a.StatusErrorDetail, s.acctDetail) {
						t.Errorf("step %d: account %d detail %q, want it to contain %q", i, j, a.StatusErrorDetail, s.acctDetail)
					}
				}
			}
		})
	}
}

func TestHandleCheckTaskProblems(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name      string
		task      *asynq.Task
		skipRetry bool
	}{
		{name: "not JSON", task: asynq.NewTask(tasks.TypeCheckConnection, []byte("{")), skipRetry: true},
		{name: "no connection ID", task: asynq.NewTask(tasks.TypeCheckConnection, []byte(`{"slot":1}`)), skipRetry: true},
		{name: "unknown connection", task: asynq.NewTask(tasks.TypeCheckConnection, []byte(`{"connectionId":"cn_0000000000000000","slot":1}`))},
		{name: "not an ID", task: asynq.NewTask(tasks.TypeCheckConnection, []byte(`{"connectionId":"../etc","slot":1}`))},
	}
	e := newEnv(t, envOpts{})
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			err := e.w.HandleCheck(context.Background(), tt.task)
			if tt.skipRetry {
				if !errors.Is(err, asynq.SkipRetry) || !errors.Is(err, tasks.ErrMalformed) {
					t.Fatalf("err %v, want one wrapping asynq.SkipRetry and tasks.ErrMalformed", err)
				}
				return
			}
			if err != nil {
				t.Fatalf("HandleCheck: %v, want nil (nothing to do)", err)
			}
		})
	}
	if n := len(e.outcomes()); n != 0 {
		t.Fatalf("OnCheck called %d times, want 0", n)
	}
}

func TestHandleCheckRedisDown(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOpts{})
	cn := e.connection(t, "sandbox", "user_good")
	_ = e.rdb.Close() // every command now fails as if Redis were down
	err := e.w.HandleCheck(context.Background(), task(t, cn.ID, t0))
	if err == nil || errors.Is(err, asynq.SkipRetry) {
		t.Fatalf("err %v, want a retryable error", err)
	}
}

func TestHandleCheckServedSlot(t *testing.T) {
	t.Parallel()
	var calls atomic.Int32
	e := newEnv(t, envOpts{checkers: map[string]checks.Checker{
		"counted": checks.CheckerFunc(func(context.Context, checks.Request) (checks.Result, error) {
			calls.Add(1)
			return checks.Result{Status: checks.ConnConnected, Accounts: []checks.AccountResult{{Number: "1"}}}, nil
		}),
	}})
	cn := e.connection(t, "counted", "user_good")
	ctx := context.Background()
	slot := e.clk.Now()
	must(t, e.w.HandleCheck(ctx, task(t, cn.ID, slot)))
	first := e.get(t, cn.ID)
	for _, tc := range []struct {
		name string
		slot time.Time
		runs bool
	}{
		// asynq redelivers after a lost acknowledgement, or the same slot
		// comes from a second queue: no second login at the provider.
		{"the same slot again", slot, false},
		// A sweep read again after its scheduler died (asynq forgot the
		// completed task's ID).
		{"an earlier slot", slot.Add(-time.Hour), false},
		{"a later slot", slot.Add(2 * time.Minute), true},
	} {
		e.clk.Advance(time.Minute)
		before := calls.Load()
		must(t, e.w.HandleCheck(ctx, task(t, cn.ID, tc.slot)))
		if ran := calls.Load() > before; ran != tc.runs {
			t.Fatalf("%s: checker ran %v, want %v", tc.name, ran, tc.runs)
		}
		if got := e.get(t, cn.ID); !tc.runs && !got.StatusLastUpdateTime.Equal(first.StatusLastUpdateTime) {
			t.Fatalf("%s: a served slot wrote statusLastUpdateTime %v (was %v)", tc.name, got.StatusLastUpdateTime, first.StatusLastUpdateTime)
		}
	}
	if got := e.outcomes(); len(got) != 2 || got[0] != store.Applied || got[1] != store.Applied {
		t.Fatalf("outcomes %v, want [applied applied]: served slots record nothing", got)
	}
}

func TestHandleCheckStale(t *testing.T) {
	t.Parallel()
	entered, release := make(chan struct{}), make(chan struct{})
	var calls atomic.Int32
	e := newEnv(t, envOpts{checkers: map[string]checks.Checker{
		"gated": checks.CheckerFunc(func(ctx context.Context, req checks.Request) (checks.Result, error) {
			if calls.Add(1) == 1 { // the older check: slow, and finds the website down
				close(entered)
				<-release
				return checks.Result{Status: checks.ConnWebsiteDown, Detail: "old"}, nil
			}
			return checks.Result{Status: checks.ConnConnected, Accounts: []checks.AccountResult{{Number: "1"}}}, nil
		}),
	}})
	cn := e.connection(t, "gated", "user_good")
	ctx := context.Background()
	older, olderTask := make(chan error, 1), task(t, cn.ID, t0)
	go func() { older <- e.w.HandleCheck(ctx, olderTask) }()
	<-entered
	e.clk.Advance(time.Hour)
	must(t, e.w.HandleCheck(ctx, task(t, cn.ID, e.clk.Now())))
	close(release)
	must(t, <-older)
	if got := e.outcomes(); len(got) != 2 || got[0] != store.Applied || got[1] != store.Stale {
		t.Fatalf("outcomes %v, want [applied stale]", got)
	}
	if got := e.get(t, cn.ID); got.Status != checks.ConnConnected {
		t.Fatalf("status %s (%q): the older check overwrote the newer", got.Status, got.StatusErrorDetail)
	}
}

func TestHandleCheckInterrupted(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOpts{})
	cn := e.connection(t, "sandbox", "user_slow")
	ctx, cancel := context.WithCancel(context.Background())
	cancel() // shutdown: the task goes back to the queue, nothing is recorded
	err := e.w.HandleCheck(ctx, task(t, cn.ID, t0))
	if !errors.Is(err, context.Canceled) || errors.Is(err, asynq.SkipRetry) {
		t.Fatalf("err %v, want a retryable error wrapping context.Canceled", err)
	}
	if got := e.get(t, cn.ID); got.Status != checks.ConnPending {
		t.Fatalf("status %s, want PENDING untouched", got.Status)
	}
}

func TestCheckEvent(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOpts{})
	cn := e.connection(t, "sandbox", "error_NO_ACCOUNTS_FOUND")
	ctx := context.Background()
	must(t, e.w.HandleCheck(ctx, task(t, cn.ID, t0)))
	e.mu.Lock()
	defer e.mu.Unlock()
	want := worker.CheckEvent{ConnectionID: cn.ID, TaskID: tasks.CheckTaskID(cn.ID, t0), Datasource: "sandbox",
		Status: checks.ConnNoAccountsFound, Outcome: store.Applied, From: checks.ConnPending, To: checks.ConnNoAccountsFound}
	if len(e.events) != 1 || e.events[0] != want {
		t.Fatalf("events %+v, want [%+v]", e.events, want)
	}
	h, err := e.st.History(context.Background(), cn.ID, 1)
	if err != nil || len(h) != 1 || h[0].Attempt != want.TaskID {
		t.Fatalf("history %+v, %v: want the task ID as the attempt", h, err)
	}
}

func TestNewConfig(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOpts{})
	tests := []struct {
		name   string
		modify func(*worker.Config)
		want   string // "": accepted; else the field the error names
	}{
		{"checkd.yaml", func(*worker.Config) {}, ""},
		{"empty-queue recheck off", func(c *worker.Config) { c.EmptyQueueRecheck = 0 }, ""},
		{"no concurrency", func(c *worker.Config) { c.Concurrency = 0 }, "Config.Concurrency"},
		{"negative concurrency", func(c *worker.Config) { c.Concurrency = -1 }, "Config.Concurrency"},
		{"no queues", func(c *worker.Config) { c.Queues = nil }, "Config.Queues"},
		{"zero weight", func(c *worker.Config) { c.Queues = map[string]int{"default": 0} }, "Config.Queues"},
		{"no check timeout", func(c *worker.Config) { c.CheckTimeout = 0 }, "Config.CheckTimeout"},
		{"negative timeout", func(c *worker.Config) { c.CheckTimeout = -time.Second }, "Config.CheckTimeout"},
		{"no shutdown timeout", func(c *worker.Config) { c.ShutdownTimeout = 0 }, "Config.ShutdownTimeout"},
		{"negative recheck", func(c *worker.Config) { c.EmptyQueueRecheck = -time.Millisecond }, "Config.EmptyQueueRecheck"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			cfg := worker.ConfigFrom(configs.Default())
			tt.modify(&cfg)
			_, err := worker.New(e.rdb, e.st, e.reg, cfg)
			switch {
			case tt.want == "" && err != nil:
				t.Fatalf("New: %v, want it accepted", err)
			case tt.want != "" && (err == nil || !strings.Contains(err.Error(), tt.want)):
				t.Fatalf("New: %v, want an error naming %s", err, tt.want)
			}
		})
	}
	if _, err := worker.New(nil, e.st, e.reg, worker.ConfigFrom(configs.Default())); err == nil {
		t.Fatal("New without a redis client succeeded")
	}
}

func TestLogging(t *testing.T) {
	t.Parallel()
	log, hook := logtest.NewNullLogger()
	e := newEnv(t, envOpts{cfg: func(c *worker.Config) { c.Logger = log.WithField("component", "worker") }})
	ctx := context.Background()
	cn := e.connection(t, "sandbox", "error_PASSWORD_INCORRECT")
	must(t, e.w.HandleCheck(ctx, task(t, cn.ID, t0)))
	must(t, e.w.HandleCheck(ctx, task(t, cn.ID, t0.Add(time.Hour)))) // credential-blocked now
	entries := hook.AllEntries()
	if len(entries) != 2 {
		t.Fatalf("%d log lines, want 2 (one recorded, one skipped)", len(entries))
	}
	rec, skip := entries[0], entries[1]
	if rec.Message != "check recorded" || rec.Level != logrus.InfoLevel ||
		rec.Data["connectionId"] != cn.ID || rec.Data["taskId"] != tasks.CheckTaskID(cn.ID, t0) ||
		rec.Data["from"] != checks.ConnPending || rec.Data["to"] != checks.ConnPasswordIncorrect ||
		rec.Data["outcome"] != store.Applied || rec.Data["datasource"] != "sandbox" || rec.Data["component"] != "worker" {
		t.Errorf("recorded line: %q %+v", rec.Message, rec.Data)
	}
	if skip.Message != "check skipped" || skip.Data["reason"] != string(checks.SkipCredentialBlocked) {
		t.Errorf("skipped line: %q %+v", skip.Message, skip.Data)
	}
	for _, en := range entries {
		if line, _ := en.String(); strings.Contains(line, "hunter2") {
			t.Errorf("a log line carries the password: %s", line)
		}
	}

	// A check that changes nothing logs at debug only.
	good := e.connection(t, "sandbox", "user_good")
	must(t, e.w.HandleCheck(ctx, task(t, good.ID, t0)))
	hook.Reset()
	must(t, e.w.HandleCheck(ctx, task(t, good.ID, t0.Add(time.Hour))))
	if n := len(hook.AllEntries()); n != 0 {
		t.Errorf("a check without a transition logged %d lines at info", n)
	}
	log.SetLevel(logrus.DebugLevel)
	must(t, e.w.HandleCheck(ctx, task(t, good.ID, t0.Add(2*time.Hour))))
	if es := hook.AllEntries(); len(es) != 1 || es[0].Level != logrus.DebugLevel || es[0].Data["transitions"] != 0 {
		t.Errorf("at debug level: %d lines %+v, want one debug line with 0 transitions", len(es), es)
	}
	log.SetLevel(logrus.InfoLevel)

	// At warn level the per-check line is not even built.
	hook.Reset()
	log.SetLevel(logrus.WarnLevel)
	cn2 := e.connection(t, "sandbox", "user_good")
	must(t, e.w.HandleCheck(ctx, task(t, cn2.ID, t0)))
	if n := len(hook.AllEntries()); n != 0 {
		t.Fatalf("%d log lines at warn level, want 0", n)
	}

	// A panic is logged at error with its stack.
	e.users.Store(cn2.ID, "user_panic")
	must(t, e.w.HandleCheck(ctx, task(t, cn2.ID, t0.Add(time.Hour))))
	en := hook.LastEntry()
	if en == nil || en.Level != logrus.ErrorLevel || en.Message != "checker panicked" ||
		!strings.Contains(fmt.Sprint(en.Data["stack"]), "worker.(*Worker).call") {
		t.Fatalf("panic line: %+v", en)
	}
}
