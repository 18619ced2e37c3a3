package worker_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/checkd/checkd/checks"
	"github.com/checkd/checkd/checks/sandbox"
	"github.com/checkd/checkd/store"
	"github.com/checkd/checkd/worker"
)

// TestCheckWithoutSlot: a check of a capped datasource whose every slot is
// held is not attempted and not recorded; its task goes back to the queue
// with a checks.RetryAfterError (not a failed attempt), runs once a slot
// is free, and gives its slot back. A check pushed back for a whole check
// interval is recorded as OTHER_ERROR saying why, as a checker's
// Retry-After is.
func TestCheckWithoutSlot(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOpts{cfg: func(c *worker.Config) {
		c.Datasources.MaxConcurrent = func(ds string) int {
			if ds == sandbox.Datasource {
				return 1
			}
			return 0
		}
	}})
	ctx := context.Background()
	const lease = time.Hour // longer than the test's checks
	hold := func() {
		t.Helper()
		ok, err := e.st.AcquireSlot(ctx, sandbox.Datasource, "another-check", 1, lease, e.clk.Now())
		must(t, err)
		if !ok {
			t.Fatal("the test's check could not take the only slot")
		}
	}
	cn := e.connection(t, sandbox.Datasource, "user_good")
	slot := e.clk.Now()
	hold()
	err := e.w.HandleCheck(ctx, task(t, cn.ID, slot))
	d, ok := checks.RetryAfter(err)
	if !ok || d <= 0 || !strings.Contains(err.Error(), "maxConcurrent 1") {
		t.Fatalf("check without a free slot: %v; want a RetryAfterError naming the cap", err)
	}
	if got := e.get(t, cn.ID); got.Status != checks.ConnPending || got.LastCheckAt != nil {
		t.Fatalf("a check put back was recorded: %s at %v", got.Status, got.LastCheckAt)
	}

	must(t, e.st.ReleaseSlot(ctx, sandbox.Datasource, "another-check"))
	must(t, e.w.HandleCheck(ctx, task(t, cn.ID, slot)))
	if got := e.get(t, cn.ID); got.Status != checks.ConnConnected {
		t.Fatalf("once a slot was free: %s, want CONNECTED", got.Status)
	}
	if n, err := e.st.RunningSlots(ctx, sandbox.Datasource, e.clk.Now()); err != nil || n != 0 {
		t.Fatalf("slots held after the check: %d (%v), want 0", n, err)
	}

	// Pushed back for a whole interval: recorded, not pushed on.
	cn2 := e.connection(t, sandbox.Datasource, "user_good")
	slot2 := e.clk.Now()
	e.clk.Advance(e.st.Interval())
	hold()
	err = e.w.HandleCheck(ctx, task(t, cn2.ID, slot2))
	if err != nil {
		t.Fatalf("a check pushed back for a whole interval: %v, want it recorded", err)
	}
	got := e.get(t, cn2.ID)
	if got.Status != checks.ConnOtherError || !strings.Contains(got.StatusErrorDetail, "no concurrency slot") ||
		!strings.Contains(got.StatusErrorDetail, "whole check interval") {
		t.Fatalf("status %s %q, want OTHER_ERROR naming the slots and the interval", got.Status, got.StatusErrorDetail)
	}
}

// TestSkippedCheckForgetsItsRecheck: a connection not attempted while its
// datasource was DOWN, then deactivated, needs no re-check: the worker
// that skips its check takes it off the re-check list.
func TestSkippedCheckForgetsItsRecheck(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOpts{})
	ctx := context.Background()
	rules := store.HealthRules{Window: time.Minute, MinChecks: 1, DownRatio: 0.5, DegradedRatio: 0.5, ProbesPerMinute: 1}
	cn := e.connection(t, sandbox.Datasource, "user_good")
	notAttempted := func() int64 {
		t.Helper()
		hs, err := e.st.DatasourceHealths(ctx, nil, func(string) (store.HealthRules, int) { return rules, 0 }, e.clk.Now())
		must(t, err)
		for _, h := range hs {
			if h.Name == sandbox.Datasource {
				return h.NotAttempted
			}
		}
		return 0
	}
	_, _, err := e.st.RecordOutcome(ctx, sandbox.Datasource, "cn_other", rules, checks.ConnWebsiteDown, time.Second, false, e.clk.Now())
	must(t, err)
	if adm, _, _ := e.st.AdmitCheck(ctx, sandbox.Datasource, "cn_other", rules, e.clk.Now()); adm != store.Probe {
		t.Fatalf("first admission %v, want the probe", adm)
	}
	if adm, _, _ := e.st.AdmitCheck(ctx, sandbox.Datasource, cn.ID, rules, e.clk.Now()); adm != store.NotAttempted {
		t.Fatalf("second admission %v, want NotAttempted", adm)
	}
	if n := notAttempted(); n != 1 {
		t.Fatalf("%d waiting for a re-check, want 1", n)
	}
	off := false
	_, err = e.st.UpdateDetails(ctx, cn.ID, store.DetailsPatch{IsActive: &off})
	must(t, err)
	must(t, e.w.HandleCheck(ctx, task(t, cn.ID, e.clk.Now())))
	if n := notAttempted(); n != 0 {
		t.Fatalf("%d waiting for a re-check after the deactivated connection's check was skipped, want 0", n)
	}
}

// TestOlderCheckLeavesNotAttemptedListed: two checks of one connection
// overlap (a second delivery of its task, or a refresh beside the weekly
// check): the first logs in while the datasource is up, the breaker opens,
// the second is not attempted and recorded, then the first ends. Its
// record is stale against the newer one, so the connection shows the
// check not attempted, and it stays listed for its re-check once the
// breaker closes.
func TestOlderCheckLeavesNotAttemptedListed(t *testing.T) {
	t.Parallel()
	const ds = "slowsite"
	entered, release := make(chan struct{}, 1), make(chan struct{})
	slow := checks.CheckerFunc(func(ctx context.Context, req checks.Request) (checks.Result, error) {
		entered <- struct{}{}
		<-release
		return checks.Result{Status: checks.ConnConnected, Accounts: []checks.AccountResult{{Number: "A-1"}}}, nil
	})
	rules := store.HealthRules{Window: time.Minute, MinChecks: 1, DownRatio: 0.5, DegradedRatio: 0.5, ProbesPerMinute: 1}
	e := newEnv(t, envOpts{checkers: map[string]checks.Checker{ds: slow}, cfg: func(c *worker.Config) {
		c.Datasources.Health = func(string) store.HealthRules { return rules }
	}})
	ctx := context.Background()
	cn := e.connection(t, ds, "user_good")

	older := make(chan error, 1)
	go func() { older <- e.w.HandleCheck(ctx, task(t, cn.ID, e.clk.Now())) }()
	<-entered // the older check is logging in
	e.clk.Advance(2 * time.Second)
	_, _, err := e.st.RecordOutcome(ctx, ds, "cn_other", rules, checks.ConnWebsiteDown, time.Second, false, e.clk.Now())
	must(t, err)
	if adm, _, _ := e.st.AdmitCheck(ctx, ds, "cn_other", rules, e.clk.Now()); adm != store.Probe {
		t.Fatalf("the minute's first admission %v, want the probe", adm)
	}
	must(t, e.w.HandleCheck(ctx, task(t, cn.ID, e.clk.Now())))
	if got := e.get(t, cn.ID); !strings.HasSuffix(got.StatusErrorDetail, "not attempted") {
		t.Fatalf("the newer check: %s %q, want it not attempted", got.Status, got.StatusErrorDetail)
	}
	e.clk.Advance(time.Second)
	close(release)
	must(t, <-older)
	if got := e.get(t, cn.ID); got.Status != checks.ConnWebsiteDown || !strings.HasSuffix(got.StatusErrorDetail, "not attempted") {
		t.Fatalf("after the older check ended: %s %q, want the newer check's (the older one's record is stale)", got.Status, got.StatusErrorDetail)
	}
	if _, ch, _ := e.st.RecordOutcome(ctx, ds, "cn_other", rules, checks.ConnConnected, time.Second, true, e.clk.Now()); ch != store.BreakerClosed {
		t.Fatalf("the probe's success: %v, want BreakerClosed", ch)
	}
	todo, err := e.st.TakeNotAttempted(ctx, 10, e.clk.Now())
	must(t, err)
	if len(todo) != 1 || todo[0].ConnectionID != cn.ID {
		t.Fatalf("re-checks once the breaker closed: %v, want %s (its last check was not attempted)", todo, cn.ID)
	}
}
