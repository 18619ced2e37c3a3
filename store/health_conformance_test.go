package store

import (
	"fmt"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/checkd/checkd/checks"
	"github.com/checkd/checkd/internal/testing/poll"
	"github.com/checkd/checkd/internal/testing/redistest"
)

// runHealthConformance is the conformance suite's part for datasource
// health, the outage breaker, the re-checks after it and concurrency
// slots (issue 20.3, 20.4). It runs on every backend runConformance does.
func runHealthConformance(t *testing.T, b backend) {
	rules := HealthRules{Window: 5 * time.Minute, MinChecks: 10, DownRatio: 0.8, DegradedRatio: 0.3, ProbesPerMinute: 2}
	rulesOf := func(string) (HealthRules, int) { return rules, 0 }
	// outcomes records n outcomes of ds at now, the first failed of them
	// site failures and the rest successes.
	outcomes := func(f *fixture, ds string, n, failed int) (Breaker, []OutcomeChange) {
		f.t.Helper()
		var br Breaker
		var changes []OutcomeChange
		for i := range n {
			st := checks.ConnConnected
			if i < failed {
				st = checks.ConnWebsiteDown
			}
			b, ch, err := f.s.RecordOutcome(f.ctx, ds, fmt.Sprintf("cn_x%d", i), rules, st, time.Duration(i+1)*time.Second, false, f.clk.Now())
			if err != nil {
				f.t.Fatal(err)
			}
			br, changes = b, append(changes, ch)
		}
		return br, changes
	}
	// openProbed opens ds1's breaker and takes the minute's probes: the
	// minute's next checks are not attempted.
	openProbed := func(f *fixture) {
		f.t.Helper()
		outcomes(f, "ds1", 10, 10)
		for i := range 2 {
			if _, _, err := f.s.AdmitCheck(f.ctx, "ds1", fmt.Sprintf("cn_probe%d", i), rules, f.clk.Now()); err != nil {
				f.t.Fatal(err)
			}
		}
	}
	// take is what TakeNotAttempted lists now, at most limit.
	take := func(f *fixture, limit int) string {
		f.t.Helper()
		todo, err := f.s.TakeNotAttempted(f.ctx, limit, f.clk.Now())
		if err != nil {
			f.t.Fatal(err)
		}
		return fmt.Sprint(todo)
	}
	health := func(f *fixture, ds string) DatasourceHealth {
		f.t.Helper()
		hs, err := f.s.DatasourceHealths(f.ctx, []string{ds}, rulesOf, f.clk.Now())
		if err != nil {
			f.t.Fatal(err)
		}
		for _, h := range hs {
			if h.Name == ds {
				return h
			}
		}
		f.t.Fatalf("%s not listed in %+v", ds, hs)
		return DatasourceHealth{}
	}

	t.Run("health from the window: too few checks, DEGRADED, then DOWN opens the breaker", func(t *testing.T) {
		t.Parallel()
		f := newFixture(t, b, nil)
		if br, _ := outcomes(f, "ds1", 9, 9); br.Open {
			t.Fatal("9 failures of 9 opened the breaker; minChecks is 10")
		}
		if h := health(f, "ds1"); h.Health != HealthHealthy || h.Checks != 9 || h.SiteFailures != 9 {
			t.Fatalf("under minChecks: %+v, want HEALTHY with 9 checks, 9 failures", h)
		}
		f.clk.Advance(rules.Window) // the window moves past them
		outcomes(f, "ds1", 10, 4)
		h := health(f, "ds1")
		if h.Health != HealthDegraded || h.Checks != 10 || h.Successes != 6 || h.SuccessRate == nil || *h.SuccessRate != 0.6 {
			t.Fatalf("4 failures of 10: %+v, want DEGRADED, 10 checks, success rate 0.6", h)
		}
		if h.DurationP50Ms != 5000 || h.DurationP95Ms != 10000 {
			t.Fatalf("durations p50 %d p95 %d ms, want 5000 and 10000 (the 19 recorded: 1-9 s and 1-10 s)", h.DurationP50Ms, h.DurationP95Ms)
		}
		f.clk.Advance(time.Minute)
		br, changes := outcomes(f, "ds1", 30, 30) // 34 of 40 in the window: 85%
		opened := 0
		for _, c := range changes {
			if c == BreakerOpened {
				opened++
			}
		}
		if !br.Open || opened != 1 || !br.Since.Equal(f.clk.Now()) {
			t.Fatalf("breaker %+v, opened %d times; want open once, since now", br, opened)
		}
		if h := health(f, "ds1"); h.Health != HealthDown || h.Breaker != "open" || h.BreakerSince == nil {
			t.Fatalf("after the outage: %+v, want DOWN, breaker open", h)
		}
		if other := health(f, "ds2"); other.Health != HealthHealthy || other.Breaker != "closed" {
			t.Fatalf("another datasource: %+v, want untouched", other)
		}
	})

	t.Run("an open breaker admits the minute's probes, records the rest not attempted, and a probe that reaches the website closes it", func(t *testing.T) {
		t.Parallel()
		f := newFixture(t, b, nil)
		// Closed: every check admitted, none remembered.
		if adm, _, err := f.s.AdmitCheck(f.ctx, "ds1", "cn_a", rules, f.clk.Now()); err != nil || adm != Admitted {
			t.Fatalf("closed breaker: %v %v, want Admitted", adm, err)
		}
		br, _ := outcomes(f, "ds1", 10, 10)
		if !br.Open {
			t.Fatal("10 failures of 10 did not open the breaker")
		}
		var got []Admission
		for i := range 5 {
			adm, b, err := f.s.AdmitCheck(f.ctx, "ds1", fmt.Sprintf("cn_%d", i), rules, f.clk.Now())
			if err != nil {
				t.Fatal(err)
			}
			if !b.Open || b.Checks != 10 || b.Failed != 10 {
				t.Fatalf("breaker as admission saw it: %+v", b)
			}
			got = append(got, adm)
		}
		want := []Admission{Probe, Probe, NotAttempted, NotAttempted, NotAttempted}
		if fmt.Sprint(got) != fmt.Sprint(want) {
			t.Fatalf("one minute's admissions %v, want %v (2 probes a minute)", got, want)
		}
		if h := health(f, "ds1"); h.NotAttempted != 3 {
			t.Fatalf("not attempted %d, want 3", h.NotAttempted)
		}
		// Nothing to re-check while open.
		if todo, err := f.s.TakeNotAttempted(f.ctx, 100, f.clk.Now()); err != nil || len(todo) != 0 {
			t.Fatalf("re-checks while open: %v %v, want none", todo, err)
		}
		// A new minute: probes again. A probe that fails keeps it open.
		f.clk.Advance(time.Minute)
		if adm, _, _ := f.s.AdmitCheck(f.ctx, "ds1", "cn_p", rules, f.clk.Now()); adm != Probe {
			t.Fatalf("a new minute's first check: %v, want Probe", adm)
		}
		if b, ch, err := f.s.RecordOutcome(f.ctx, "ds1", "cn_p", rules, checks.ConnURLInaccessible, time.Second, true, f.clk.Now()); err != nil || !b.Open || ch != BreakerKept {
			t.Fatalf("a failed probe: %+v %v %v, want still open", b, ch, err)
		}
		// A probe the website answered (a wrong password is an answer) closes it.
		b, ch, err := f.s.RecordOutcome(f.ctx, "ds1", "cn_1", rules, checks.ConnPasswordIncorrect, time.Second, true, f.clk.Now())
		if err != nil || b.Open || ch != BreakerClosed || !b.Since.Equal(f.clk.Now()) {
			t.Fatalf("a probe that reached the website: %+v %v %v, want closed now", b, ch, err)
		}
		if h := health(f, "ds1"); h.Health != HealthHealthy || h.Checks != 0 || h.Breaker != "closed" {
			t.Fatalf("after closing: %+v, want a fresh window", h)
		}
		if adm, _, _ := f.s.AdmitCheck(f.ctx, "ds1", "cn_z", rules, f.clk.Now()); adm != Admitted {
			t.Fatalf("after closing: %v, want Admitted", adm)
		}
	})

	t.Run("connections not attempted stay listed for their re-check until one is attempted or needs none", func(t *testing.T) {
		t.Parallel()
		f := newFixture(t, b, nil)
		openProbed(f)
		for _, id := range []string{"cn_a", "cn_b", "cn_c"} {
			f.clk.Advance(time.Millisecond) // listed oldest first
			if adm, _, _ := f.s.AdmitCheck(f.ctx, "ds1", id, rules, f.clk.Now()); adm != NotAttempted {
				t.Fatalf("%s: %v, want NotAttempted", id, adm)
			}
		}
		if _, ch, _ := f.s.RecordOutcome(f.ctx, "ds1", "cn_probe0", rules, checks.ConnConnected, time.Second, true, f.clk.Now()); ch != BreakerClosed {
			t.Fatalf("the probe's success: %v, want BreakerClosed", ch)
		}
		if got := take(f, 2); got != "[{ds1 cn_a} {ds1 cn_b}]" {
			t.Fatalf("take 2: %s, want the oldest two", got)
		}
		// Taking is not forgetting: a re-check not run yet is listed again.
		if got := take(f, 10); got != "[{ds1 cn_a} {ds1 cn_b} {ds1 cn_c}]" {
			t.Fatalf("take again: %s, want all three still", got)
		}
		// cn_a's check is attempted (it started after cn_a was not
		// attempted); cn_b's skipped as ineligible.
		f.clk.Advance(time.Second)
		if _, _, err := f.s.RecordOutcome(f.ctx, "ds1", "cn_a", rules, checks.ConnConnected, time.Second, false, f.clk.Now()); err != nil {
			t.Fatal(err)
		}
		if err := f.s.DoneNotAttempted(f.ctx, []NotAttemptedConn{{Datasource: "ds1", ConnectionID: "cn_b"}}); err != nil {
			t.Fatal(err)
		}
		if got := take(f, 10); got != "[{ds1 cn_c}]" {
			t.Fatalf("after cn_a's check and cn_b's skip: %s, want cn_c alone", got)
		}
		// One not attempted a check interval ago has had its weekly check since.
		f.clk.Advance(f.s.Interval() + time.Second)
		if got := take(f, 10); got != "[]" {
			t.Fatalf("an interval later: %s, want none", got)
		}
		if h := health(f, "ds1"); h.NotAttempted != 0 {
			t.Fatalf("not attempted %d after the interval, want 0", h.NotAttempted)
		}
	})

	t.Run("a check that started before its connection was not attempted leaves it listed: its record loses to the newer one", func(t *testing.T) {
		t.Parallel()
		f := newFixture(t, b, nil)
		openProbed(f)
		older := f.clk.Now() // a check of cn_a starts (admitted before the breaker opened, or a second delivery of its task)
		f.clk.Advance(time.Second)
		notAttempted := f.clk.Now()
		if adm, _, _ := f.s.AdmitCheck(f.ctx, "ds1", "cn_a", rules, notAttempted); adm != NotAttempted {
			t.Fatalf("cn_a: %v, want NotAttempted", adm)
		}
		f.clk.Advance(time.Second)
		// The older check ends after the one not attempted was recorded.
		if _, _, err := f.s.RecordOutcome(f.ctx, "ds1", "cn_a", rules, checks.ConnWebsiteDown, f.clk.Now().Sub(older), false, f.clk.Now()); err != nil {
			t.Fatal(err)
		}
		if _, ch, _ := f.s.RecordOutcome(f.ctx, "ds1", "cn_probe0", rules, checks.ConnConnected, time.Second, true, f.clk.Now()); ch != BreakerClosed {
			t.Fatalf("the probe's success: %v, want BreakerClosed", ch)
		}
		if got := take(f, 10); got != "[{ds1 cn_a}]" {
			t.Fatalf("after an older check's outcome: %s, want cn_a still listed", got)
		}
		// A check that started when cn_a was not attempted is its re-check.
		if _, _, err := f.s.RecordOutcome(f.ctx, "ds1", "cn_a", rules, checks.ConnConnected, f.clk.Now().Sub(notAttempted), false, f.clk.Now()); err != nil {
			t.Fatal(err)
		}
		if got := take(f, 10); got != "[]" {
			t.Fatalf("after a check that started when cn_a was not attempted: %s, want none", got)
		}
	})

	t.Run("a probe is an attempted check: one that fails still ends the listing of its connection not attempted before", func(t *testing.T) {
		t.Parallel()
		f := newFixture(t, b, nil)
		openProbed(f)
		if adm, _, _ := f.s.AdmitCheck(f.ctx, "ds1", "cn_a", rules, f.clk.Now()); adm != NotAttempted {
			t.Fatalf("cn_a: %v, want NotAttempted", adm)
		}
		f.clk.Advance(time.Minute)
		if adm, _, _ := f.s.AdmitCheck(f.ctx, "ds1", "cn_a", rules, f.clk.Now()); adm != Probe {
			t.Fatalf("cn_a a minute later: %v, want the minute's probe", adm)
		}
		if b, _, err := f.s.RecordOutcome(f.ctx, "ds1", "cn_a", rules, checks.ConnWebsiteDown, time.Second, true, f.clk.Now()); err != nil || !b.Open {
			t.Fatalf("cn_a's failed probe: %+v %v, want the breaker still open", b, err)
		}
		if _, ch, _ := f.s.RecordOutcome(f.ctx, "ds1", "cn_probe0", rules, checks.ConnConnected, time.Second, true, f.clk.Now()); ch != BreakerClosed {
			t.Fatalf("the probe's success: %v, want BreakerClosed", ch)
		}
		if got := take(f, 10); got != "[]" {
			t.Fatalf("after cn_a logged in as a probe: %s, want none (its last check was attempted)", got)
		}
	})

	t.Run("concurrency slots: the cap holds, a release frees one, a lease that ends frees its slot", func(t *testing.T) {
		t.Parallel()
		f := newFixture(t, b, nil)
		acquire := func(holder string, lease time.Duration) bool {
			t.Helper()
			ok, err := f.s.AcquireSlot(f.ctx, "ds1", holder, 2, lease, f.clk.Now())
			if err != nil {
				t.Fatal(err)
			}
			return ok
		}
		if !acquire("t1", time.Minute) || !acquire("t2", time.Hour) {
			t.Fatal("two slots of a cap of 2 refused")
		}
		if acquire("t3", time.Minute) {
			t.Fatal("a third slot of a cap of 2 granted")
		}
		if ok, err := f.s.AcquireSlot(f.ctx, "ds2", "t3", 2, time.Minute, f.clk.Now()); err != nil || !ok {
			t.Fatalf("another datasource's slot: %v %v, want granted", ok, err)
		}
		if n, err := f.s.RunningSlots(f.ctx, "ds1", f.clk.Now()); err != nil || n != 2 {
			t.Fatalf("running %d (%v), want 2", n, err)
		}
		if err := f.s.ReleaseSlot(f.ctx, "ds1", "t1"); err != nil {
			t.Fatal(err)
		}
		if !acquire("t3", time.Minute) {
			t.Fatal("a released slot was not granted")
		}
		// t3's holder dies: its slot comes back when its lease ends, t2's not yet.
		f.clk.Advance(time.Minute + time.Millisecond)
		if n, _ := f.s.RunningSlots(f.ctx, "ds1", f.clk.Now()); n != 1 {
			t.Fatalf("running %d after t3's lease ended, want 1 (t2)", n)
		}
		if !acquire("t4", time.Minute) || acquire("t5", time.Minute) {
			t.Fatal("after a lease ended: want exactly its slot granted again")
		}
		if h := health(f, "ds1"); h.Running != 2 {
			t.Fatalf("health shows %d running, want 2", h.Running)
		}
	})

	t.Run("outcomes recorded while another is in flight go together: every one counted, one caller told the breaker opened", func(t *testing.T) {
		t.Parallel()
		f := newFixture(t, b, nil)
		gate := redistest.NewGate()
		f.rdb.AddHook(gate)
		outcomes(f, "warm", 1, 0) // the script cached: one call each from here
		const k = 50              // gathered behind the held call: 45 site failures, 5 successes
		ids := make([]any, k)
		for i := range ids {
			ids[i] = fmt.Sprintf("cn_g%d", i)
		}
		for _, id := range ids { // waiting for their re-check; their outcome ends that
			if err := f.rdb.ZAdd(f.ctx, f.s.kNotAttempted("ds1"), redis.Z{Score: 1, Member: id}).Err(); err != nil {
				t.Fatal(err)
			}
		}
		before := len(gate.Singles())
		release := gate.HoldNextSingle()
		defer release()
		type reply struct {
			b   Breaker
			ch  OutcomeChange
			err error
		}
		replies := make(chan reply, k+1)
		record := func(id string, st checks.ConnectionStatus, took time.Duration) {
			b, ch, err := f.s.RecordOutcome(f.ctx, "ds1", id, rules, st, took, false, f.clk.Now())
			replies <- reply{b, ch, err}
		}
		go record("cn_first", checks.ConnWebsiteDown, time.Second)
		<-gate.Entered()
		for i, id := range ids {
			st := checks.ConnWebsiteDown
			if i >= 45 {
				st = checks.ConnConnected
			}
			go record(id.(string), st, time.Duration(i+2)*time.Second)
		}
		poll.WaitFor(t, 20*time.Second, "the outcomes to gather behind the held call", func() bool {
			f.s.outcomes.mu.Lock()
			defer f.s.outcomes.mu.Unlock()
			g := f.s.outcomes.next["ds1"]
			return g != nil && g.len() == k
		})
		release()
		opened, open := 0, 0
		for range k + 1 {
			r := <-replies
			if r.err != nil {
				t.Fatal(r.err)
			}
			if r.ch == BreakerOpened {
				opened++
			}
			if r.b.Open {
				open++
			}
		}
		if sent := len(gate.Singles()) - before; sent != 2 {
			t.Fatalf("%d script calls for the held outcome and the %d gathered, want 2", sent, k)
		}
		if opened != 1 || open != k {
			t.Fatalf("%d replies say the breaker opened and %d see it open; want 1, and the %d gathered", opened, open, k)
		}
		h := health(f, "ds1")
		if h.Checks != k+1 || h.SiteFailures != 46 || h.Successes != 5 || h.Health != HealthDown || h.NotAttempted != 0 {
			t.Fatalf("after the group: %+v, want 51 checks, 46 site failures, 5 successes, DOWN, none waiting for a re-check", h)
		}
		if h.DurationP50Ms != 26000 || h.DurationP95Ms != 49000 {
			t.Fatalf("durations p50 %d p95 %d ms, want 26000 and 49000 (1 s to 51 s)", h.DurationP50Ms, h.DurationP95Ms)
		}
	})
}
