package store

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/redis/go-redis/v9"

	"github.com/checkd/checkd/checks"
	"github.com/checkd/checkd/internal/clock"
	"github.com/checkd/checkd/internal/testing/redistest"
)

func TestMain(m *testing.M) { redistest.Main(m) }

// backend gives each test a fresh, empty Redis.
type backend func(t *testing.T) redis.UniversalClient

func miniBackend(t *testing.T) redis.UniversalClient {
	mr := miniredis.RunT(t)
	c := redis.NewClient(&redis.Options{Addr: mr.Addr()})
	t.Cleanup(func() { c.Close() })
	return c
}

func realBackend(t *testing.T) redis.UniversalClient { return redistest.Start(t).Client(t) }

// The conformance suite: every status rule and invariant, run against
// miniredis and against a real redis-server.
func TestConformanceMiniredis(t *testing.T) { runConformance(t, miniBackend) }
func TestConformanceRedis(t *testing.T)     { runConformance(t, realBackend) }

var t0 = time.Date(2026, 3, 2, 9, 0, 0, 0, time.UTC)

type fixture struct {
	t   *testing.T
	ctx context.Context
	rdb redis.UniversalClient
	clk *clock.Fake
	s   *Store
	co  Company
}

func newFixture(t *testing.T, b backend, mod func(*Config)) *fixture {
	t.Helper()
	rdb := b(t)
	clk := clock.NewFake(t0)
	cfg := testConfig(t)
	cfg.Clock, cfg.HistoryLimit = clk, 20
	if mod != nil {
		mod(&cfg)
	}
	s, err := New(rdb, cfg)
	if err != nil {
		t.Fatal(err)
	}
	f := &fixture{t: t, ctx: context.Background(), rdb: rdb, clk: clk, s: s}
	f.co, err = s.CreateCompany(f.ctx, NewCompany{Name: "Acme Utilities"})
	if err != nil {
		t.Fatal(err)
	}
	return f
}

func (f *fixture) conn(user string) Connection {
	f.t.Helper()
	c, err := f.s.CreateConnection(f.ctx, NewConnection{CompanyID: f.co.ID, Datasource: "sandbox",
		Credentials: checks.Credentials{Username: user, Password: "s3cret-" + user}})
	if err != nil {
		f.t.Fatal(err)
	}
	return c
}

// record loads id and records res as attempt, started at start and finished
// one second later.
func (f *fixture) record(id, attempt string, start time.Time, res checks.Result) Recorded {
	f.t.Helper()
	tg, err := f.s.LoadCheck(f.ctx, id)
	if err != nil {
		f.t.Fatal(err)
	}
	r, err := f.s.RecordCheck(f.ctx, tg, CheckResult{Attempt: attempt, StartedAt: start, FinishedAt: start.Add(time.Second), Result: res})
	if err != nil {
		f.t.Fatal(err)
	}
	return r
}

func (f *fixture) get(id string) Connection {
	f.t.Helper()
	c, err := f.s.GetConnection(f.ctx, id)
	if err != nil {
		f.t.Fatal(err)
	}
	return c
}

func ok(accts ...string) checks.Result {
	r := checks.Result{Status: checks.ConnConnected}
	for _, a := range accts {
		r.Accounts = append(r.Accounts, checks.AccountResult{Number: a})
	}
	return r
}

func pulled(status checks.AccountStatus, accts ...string) checks.Result {
	r := ok(accts...)
	for i := range r.Accounts {
		r.Accounts[i].Status = status
		r.Accounts[i].Detail = "detail of " + string(status)
	}
	return r
}

func fail(s checks.ConnectionStatus, d string) checks.Result {
	return checks.Result{Status: s, Detail: d}
}

// invariants checks that every index agrees with the stored connections:
// each connection sits in exactly the status index of its status, the
// counters match, it is in the weekly schedule (in the set of its slot's
// minute, scored by its offset) iff it is eligible, and an ineligible one is
// not in the on-demand due index either.
func (f *fixture) invariants() {
	f.t.Helper()
	keys, err := f.rdb.Keys(f.ctx, f.s.cfg.Prefix+"c:*").Result()
	if err != nil {
		f.t.Fatal(err)
	}
	counts := map[string]int64{}
	for _, k := range keys {
		raw, err := f.rdb.Get(f.ctx, k).Result()
		if err != nil {
			f.t.Fatal(err)
		}
		r, err := decodeConn(strings.TrimPrefix(k, f.s.cfg.Prefix+"c:"), raw)
		if err != nil {
			f.t.Fatal(err)
		}
		counts[r.Status]++
		for _, st := range checks.ConnectionStatuses {
			_, err := f.rdb.ZScore(f.ctx, f.s.kIndex(r.CompanyID, string(st)), r.ID).Result()
			in := err == nil
			if in != (string(st) == r.Status) {
				f.t.Errorf("%s (status %s): in index %s = %v", r.ID, r.Status, st, in)
			}
		}
		co, _ := f.s.GetCompany(f.ctx, r.CompanyID)
		eligible := checks.Eligibility(checks.ConnectionStatus(r.Status), !r.Inactive, co.IsActive) == checks.SkipNone
		wk, off := f.s.kWeek(r.ID)
		score, err := f.rdb.ZScore(f.ctx, wk, r.ID).Result()
		if (err == nil) != eligible {
			f.t.Errorf("%s (status %s): in the weekly schedule = %v, eligible = %v", r.ID, r.Status, err == nil, eligible)
		}
		if err == nil && int64(score) != off {
			f.t.Errorf("%s: weekly schedule offset %v, want %d", r.ID, score, off)
		}
		if _, err := f.rdb.ZScore(f.ctx, f.s.kDue(), r.ID).Result(); err == nil && !eligible {
			f.t.Errorf("%s (status %s): ineligible but in the on-demand due index", r.ID, r.Status)
		}
	}
	got, err := f.s.StatusCounts(f.ctx)
	if err != nil {
		f.t.Fatal(err)
	}
	for _, st := range checks.ConnectionStatuses {
		if got[st] != counts[string(st)] {
			f.t.Errorf("status counter %s = %d, stored connections say %d", st, got[st], counts[string(st)])
		}
	}
}

func runConformance(t *testing.T, b backend) {
	t.Run("create", func(t *testing.T) {
		t.Parallel()
		f := newFixture(t, b, nil)
		c := f.conn("user_good")
		if c.Status != checks.ConnPending || !c.StatusFirstSeenTime.Equal(t0) || !c.StatusLastUpdateTime.Equal(t0) || c.StatusErrorDetail != "" {
			t.Fatalf("new connection: %+v", c)
		}
		if c.NextCheckAt == nil || !c.NextCheckAt.Equal(t0) {
			t.Fatalf("a new connection is due at once (prompt first check), nextCheckAt = %v", c.NextCheckAt)
		}
		if _, err := f.s.CreateConnection(f.ctx, NewConnection{CompanyID: "co_0000000000000000", Datasource: "sandbox",
			Credentials: checks.Credentials{Username: "u"}}); !errors.Is(err, ErrNotFound) {
			t.Fatalf("unknown company: err = %v, want ErrNotFound", err)
		}
		if _, err := f.s.CreateConnection(f.ctx, NewConnection{CompanyID: f.co.ID}); !errors.Is(err, ErrInvalid) {
			t.Fatalf("missing fields: err = %v, want ErrInvalid", err)
		}
		f.invariants()
	})

	t.Run("status rules", func(t *testing.T) {
		t.Parallel()
		// Each step records a result at t0+step hours; want is the
		// connection's (status, firstSeen hour, lastUpdate hour, detail).
		type want struct {
			status      checks.ConnectionStatus
			first, last int
			detail      string
			acctStatus  []checks.AccountStatus
			acctFirst   []int
			transitions int
		}
		steps := []struct {
			name string
			res  checks.Result
			want want
		}{
			{"first check connects and discovers", ok("A", "B"),
				want{checks.ConnConnected, 1, 1, "", []checks.AccountStatus{checks.AcctDetected, checks.AcctDetected}, []int{1, 1}, 3}},
			{"same status: firstSeen stays, lastUpdate advances", ok("A", "B"),
				want{checks.ConnConnected, 1, 2, "", []checks.AccountStatus{checks.AcctDetected, checks.AcctDetected}, []int{1, 1}, 0}},
			{"website down: new status, detail, accounts not accessible", fail(checks.ConnWebsiteDown, "503 from portal"),
				want{checks.ConnWebsiteDown, 3, 3, "503 from portal", []checks.AccountStatus{checks.AcctWorkflowNotAccessible, checks.AcctWorkflowNotAccessible}, []int{3, 3}, 3}},
			{"still down: detail replaced, firstSeen kept", fail(checks.ConnWebsiteDown, "timeout"),
				want{checks.ConnWebsiteDown, 3, 4, "timeout", []checks.AccountStatus{checks.AcctWorkflowNotAccessible, checks.AcctWorkflowNotAccessible}, []int{3, 3}, 0}},
			{"back up: detail cleared, accounts detected again", ok("A", "B"),
				want{checks.ConnConnected, 5, 5, "", []checks.AccountStatus{checks.AcctDetected, checks.AcctDetected}, []int{5, 5}, 3}},
			{"account gone: ACCOUNT_NOT_FOUND", ok("A"),
				want{checks.ConnConnected, 5, 6, "", []checks.AccountStatus{checks.AcctDetected, checks.AcctAccountNotFound}, []int{5, 6}, 1}},
			{"new account appears DETECTED", ok("A", "B", "C"),
				want{checks.ConnConnected, 5, 7, "", []checks.AccountStatus{checks.AcctDetected, checks.AcctDetected, checks.AcctDetected}, []int{5, 7, 7}, 2}},
			{"a login listing no accounts is NO_ACCOUNTS_FOUND", ok(),
				want{checks.ConnNoAccountsFound, 8, 8, checks.NoAccountsDetail, []checks.AccountStatus{checks.AcctWorkflowNotAccessible, checks.AcctWorkflowNotAccessible, checks.AcctWorkflowNotAccessible}, []int{8, 8, 8}, 4}},
			{"no accounts found is a connection failure", fail(checks.ConnNoAccountsFound, ""),
				want{checks.ConnNoAccountsFound, 8, 9, "", []checks.AccountStatus{checks.AcctWorkflowNotAccessible, checks.AcctWorkflowNotAccessible, checks.AcctWorkflowNotAccessible}, []int{8, 8, 8}, 0}},
		}
		f := newFixture(t, b, nil)
		c := f.conn("user_good")
		for i, st := range steps {
			h := i + 1
			at := t0.Add(time.Duration(h) * time.Hour)
			rec := f.record(c.ID, fmt.Sprintf("attempt-%d", h), at.Add(-time.Second), st.res)
			if rec.Outcome != Applied || rec.Transitions != st.want.transitions {
				t.Fatalf("%s: recorded %+v, want applied with %d transitions", st.name, rec, st.want.transitions)
			}
			got := f.get(c.ID)
			hour := func(x time.Time) int { return int(x.Sub(t0) / time.Hour) }
			if got.Status != st.want.status || hour(got.StatusFirstSeenTime) != st.want.first ||
				hour(got.StatusLastUpdateTime) != st.want.last || got.StatusErrorDetail != st.want.detail {
				t.Fatalf("%s: connection = %s first=%d last=%d detail=%q, want %+v", st.name, got.Status,
					hour(got.StatusFirstSeenTime), hour(got.StatusLastUpdateTime), got.StatusErrorDetail, st.want)
			}
			if len(got.Accounts) != len(st.want.acctStatus) {
				t.Fatalf("%s: %d accounts, want %d", st.name, len(got.Accounts), len(st.want.acctStatus))
			}
			for j, a := range got.Accounts {
				if a.Status != st.want.acctStatus[j] || hour(a.StatusFirstSeenTime) != st.want.acctFirst[j] || hour(a.StatusLastUpdateTime) != h {
					t.Fatalf("%s: account %d = %s first=%d last=%d, want %s first=%d last=%d", st.name, j, a.Status,
						hour(a.StatusFirstSeenTime), hour(a.StatusLastUpdateTime), st.want.acctStatus[j], st.want.acctFirst[j], h)
				}
				if a.Status == checks.AcctWorkflowNotAccessible && !strings.Contains(a.StatusErrorDetail, string(got.Status)) {
					t.Fatalf("%s: WORKFLOW_NOT_ACCESSIBLE detail %q does not name the connection status", st.name, a.StatusErrorDetail)
				}
			}
			f.invariants()
		}
		for i, a := range f.get(c.ID).Accounts {
			want := t0.Add(time.Hour) // A and B appeared at the first check, C at hour 7
			if i == 2 {
				want = t0.Add(7 * time.Hour)
			}
			if !a.CreatedAt.Equal(want) || a.TrackingStatus != checks.TrackingUnset {
				t.Fatalf("account %d: createdAt %v tracking %q, want %v UNSET (kept across status changes)", i, a.CreatedAt, a.TrackingStatus, want)
			}
		}
		if got := f.get(c.ID); got.ConsecutiveFailures != 2 || got.LastSuccessAt == nil || !got.LastSuccessAt.Equal(t0.Add(7*time.Hour)) {
			t.Fatalf("bookkeeping: failures=%d lastSuccess=%v", got.ConsecutiveFailures, got.LastSuccessAt)
		}
	})

	t.Run("tracked accounts are pulled, untracked are not", func(t *testing.T) {
		t.Parallel()
		f := newFixture(t, b, func(c *Config) { c.AutoTrack = true })
		c := f.conn("user_good")
		f.record(c.ID, "a1", t0, ok("A", "B"))
		got := f.get(c.ID)
		for _, a := range got.Accounts {
			if a.Status != checks.AcctOnboarded || a.TrackingStatus != checks.TrackingEnabled {
				t.Fatalf("auto-tracked new account = %s/%s, want ONBOARDED/ENABLED", a.Status, a.TrackingStatus)
			}
		}
		tg, _ := f.s.LoadCheck(f.ctx, c.ID)
		for _, a := range tg.Request.Accounts {
			if !a.Pull {
				t.Fatalf("tracked account %s not asked to pull", a.Number)
			}
		}
		f.record(c.ID, "a2", t0.Add(time.Hour), pulled(checks.AcctPDFDownloadFailed, "A", "B"))
		for _, a := range f.get(c.ID).Accounts {
			if a.Status != checks.AcctPDFDownloadFailed || a.StatusErrorDetail == "" {
				t.Fatalf("pull outcome not recorded: %+v", a)
			}
		}
		f.record(c.ID, "a3", t0.Add(2*time.Hour), pulled(checks.AcctPullCompleted, "A", "B"))
		if got := f.get(c.ID); got.LastSuccessAt == nil || !got.LastSuccessAt.Equal(*got.LastCheckAt) || got.ConsecutiveFailures != 0 {
			t.Fatalf("after a successful check: lastSuccess %v lastCheck %v failures %d", got.LastSuccessAt, got.LastCheckAt, got.ConsecutiveFailures)
		}
		f.record(c.ID, "a4", t0.Add(3*time.Hour), fail(checks.ConnWebsiteDown, ""))
		if got := f.get(c.ID); got.LastSuccessAt == nil || !got.LastSuccessAt.Equal(t0.Add(2*time.Hour+time.Second)) || got.ConsecutiveFailures != 1 {
			t.Fatalf("after a failure: lastSuccess %v failures %d", got.LastSuccessAt, got.ConsecutiveFailures)
		}
		f.record(c.ID, "a5", t0.Add(4*time.Hour), pulled(checks.AcctPullCompleted, "A", "B"))
		for _, a := range f.get(c.ID).Accounts {
			if a.Status != checks.AcctPullCompleted || a.StatusErrorDetail != "" {
				t.Fatalf("pull completed: %+v", a)
			}
		}

		g := newFixture(t, b, nil) // no auto-track: discovered accounts wait for a decision
		c2 := g.conn("user_good")
		g.record(c2.ID, "b1", t0, ok("A"))
		tg2, _ := g.s.LoadCheck(g.ctx, c2.ID)
		if len(tg2.Request.Accounts) != 1 || tg2.Request.Accounts[0].Pull {
			t.Fatalf("untracked account must not be pulled: %+v", tg2.Request.Accounts)
		}
		g.record(c2.ID, "b2", t0.Add(time.Hour), pulled(checks.AcctPullCompleted, "A"))
		if a := g.get(c2.ID).Accounts[0]; a.Status != checks.AcctDetected {
			t.Fatalf("a pull result for an untracked account was applied: %s", a.Status)
		}
	})

	t.Run("a company's autoTrack decides over the store's", func(t *testing.T) {
		t.Parallel()
		for _, storeDefault := range []bool{true, false} {
			f := newFixture(t, b, func(c *Config) { c.AutoTrack = storeDefault })
			for _, companyChoice := range []*bool{nil, new(true), new(false)} {
				co, err := f.s.CreateCompany(f.ctx, NewCompany{Name: "Tracking", AutoTrack: companyChoice})
				if err != nil {
					t.Fatal(err)
				}
				if got, err := f.s.GetCompany(f.ctx, co.ID); err != nil || !reflect.DeepEqual(got.AutoTrack, companyChoice) {
					t.Fatalf("company autoTrack read back as %v (%v), want %v", got.AutoTrack, err, companyChoice)
				}
				c, err := f.s.CreateConnection(f.ctx, NewConnection{CompanyID: co.ID, Datasource: "sandbox", Credentials: checks.Credentials{Username: "u"}})
				if err != nil {
					t.Fatal(err)
				}
				f.record(c.ID, "a1", f.clk.Now(), ok("A"))
				want := storeDefault
				if companyChoice != nil {
					want = *companyChoice
				}
				a := f.get(c.ID).Accounts[0]
				tracked := a.TrackingStatus == checks.TrackingEnabled && a.Status == checks.AcctOnboarded
				detected := a.TrackingStatus == checks.TrackingUnset && a.Status == checks.AcctDetected
				if want && !tracked || !want && !detected {
					t.Errorf("store autoTrack %v, company %v: discovered account %s/%s", storeDefault, companyChoice, a.TrackingStatus, a.Status)
				}
			}
		}
	})

	t.Run("duplicate attempt is a no-op", func(t *testing.T) {
		t.Parallel()
		f := newFixture(t, b, nil)
		c := f.conn("user_good")
		f.record(c.ID, "same", t0, ok("A"))
		before := f.snapshot(c.ID)
		rec := f.record(c.ID, "same", t0.Add(time.Hour), fail(checks.ConnWebsiteDown, "x"))
		if rec.Outcome != Duplicate {
			t.Fatalf("outcome = %s, want duplicate", rec.Outcome)
		}
		if after := f.snapshot(c.ID); after != before {
			t.Fatalf("duplicate attempt changed state:\n%s\n%s", before, after)
		}
	})

	t.Run("stale result never overwrites newer", func(t *testing.T) {
		t.Parallel()
		f := newFixture(t, b, nil)
		c := f.conn("user_good")
		// Two checks loaded, the later-started one records first.
		early, _ := f.s.LoadCheck(f.ctx, c.ID)
		late, _ := f.s.LoadCheck(f.ctx, c.ID)
		if _, err := f.s.RecordCheck(f.ctx, late, CheckResult{Attempt: "late", StartedAt: t0.Add(time.Minute), FinishedAt: t0.Add(2 * time.Minute), Result: ok("A")}); err != nil {
			t.Fatal(err)
		}
		before := f.snapshot(c.ID)
		rec, err := f.s.RecordCheck(f.ctx, early, CheckResult{Attempt: "early", StartedAt: t0, FinishedAt: t0.Add(3 * time.Minute), Result: fail(checks.ConnPasswordIncorrect, "")})
		if err != nil || rec.Outcome != Stale {
			t.Fatalf("older check: %+v %v, want stale", rec, err)
		}
		if after := f.snapshot(c.ID); after != before {
			t.Fatal("stale result changed state")
		}
		f.invariants()
	})

	t.Run("credential failure leaves the due index, others stay", func(t *testing.T) {
		t.Parallel()
		f := newFixture(t, b, nil)
		blocked, down := f.conn("bad"), f.conn("down")
		for _, st := range []checks.ConnectionStatus{checks.ConnPasswordIncorrect, checks.ConnMFATokenExpired, checks.ConnNewPasswordNeeded, checks.ConnAdditionalCredentialsNeeded} {
			f.record(blocked.ID, "a-"+string(st), f.clk.Advance(time.Hour), fail(st, ""))
			if got := f.get(blocked.ID); got.NextCheckAt != nil {
				t.Fatalf("%s connection still scheduled at %v", st, got.NextCheckAt)
			}
			tg, _ := f.s.LoadCheck(f.ctx, blocked.ID)
			if tg.Skip != checks.SkipCredentialBlocked {
				t.Fatalf("%s: skip = %q", st, tg.Skip)
			}
			if rec := f.record(blocked.ID, "late-"+string(st), f.clk.Now().Add(time.Minute), ok()); rec.Outcome != Ineligible {
				t.Fatalf("a check result for a blocked connection was %s, want ineligible", rec.Outcome)
			}
			// unblock for the next status in the table
			if _, err := f.rdb.Get(f.ctx, f.s.kConn(blocked.ID)).Result(); err != nil {
				t.Fatal(err)
			}
			f.forceStatus(blocked.ID, checks.ConnConnected)
		}
		f.record(down.ID, "d1", t0, fail(checks.ConnWebsiteDown, ""))
		got := f.get(down.ID)
		if got.NextCheckAt == nil || got.NextCheckAt.Sub(got.StatusLastUpdateTime) > DefaultInterval {
			t.Fatalf("provider error must stay scheduled within the interval: next=%v last=%v", got.NextCheckAt, got.StatusLastUpdateTime)
		}
	})

	t.Run("a recorded check serves the due time it covers", func(t *testing.T) {
		t.Parallel()
		f := newFixture(t, b, nil)
		c := f.conn("user_good") // due at t0 (prompt first check)
		// A check started after the due time (say an on-demand one) serves it:
		// the connection leaves the on-demand index, its next check is its
		// weekly slot, and it is not checked twice.
		f.record(c.ID, "refresh", t0.Add(time.Second), ok())
		want := checks.NextSlot(c.ID, f.clk.Now(), DefaultInterval)
		if got := f.get(c.ID); got.NextCheckAt == nil || !got.NextCheckAt.Equal(want) {
			t.Fatalf("next check %v, want the next slot %v", got.NextCheckAt, want)
		}
		if _, err := f.rdb.ZScore(f.ctx, f.s.kDue(), c.ID).Result(); !errors.Is(err, redis.Nil) {
			t.Fatalf("served due time still in the on-demand index: %v", err)
		}
		// A check that started before a later due time leaves it alone.
		d := f.conn("user_good")
		f.forceDue(d.ID, t0.Add(time.Hour))
		f.record(d.ID, "early", t0, ok())
		if s, err := f.rdb.ZScore(f.ctx, f.s.kDue(), d.ID).Result(); err != nil || int64(s) != ms(t0.Add(time.Hour)) {
			t.Fatalf("a later due time was moved: %v, %v", s, err)
		}
		want = t0.Add(time.Hour)
		if w := checks.NextSlot(d.ID, f.clk.Now(), DefaultInterval); w.Before(want) {
			want = w
		}
		if got := f.get(d.ID); got.NextCheckAt == nil || !got.NextCheckAt.Equal(want) {
			t.Fatalf("next check %v, want %v (the earlier of its due time and weekly slot)", got.NextCheckAt, want)
		}
		f.invariants()
	})

	t.Run("history and events follow transitions", func(t *testing.T) {
		t.Parallel()
		f := newFixture(t, b, nil)
		c := f.conn("user_good")
		f.record(c.ID, "a1", t0, ok("A"))
		f.record(c.ID, "a2", t0.Add(time.Hour), ok("A")) // no transition
		f.record(c.ID, "a3", t0.Add(90*time.Minute), fail(checks.ConnWebsiteDown, "503"))
		down := f.get(c.ID)
		f.record(c.ID, "a4", t0.Add(2*time.Hour), fail(checks.ConnPasswordIncorrect, "rejected"))
		blocked := f.get(c.ID)
		h, err := f.s.History(f.ctx, c.ID, 0)
		if err != nil {
			t.Fatal(err)
		}
		var conn []string
		for _, e := range h {
			if e.AccountID == "" {
				conn = append(conn, e.From+">"+e.To+"/"+e.Cause)
			}
		}
		want := []string{"WEBSITE_DOWN>PASSWORD_INCORRECT/check", "CONNECTED>WEBSITE_DOWN/check", "PENDING>CONNECTED/check", ">PENDING/created"}
		if strings.Join(conn, " ") != strings.Join(want, " ") {
			t.Fatalf("history = %v, want %v", conn, want)
		}
		evs, err := f.s.Events(f.ctx, "", 100)
		if err != nil {
			t.Fatal(err)
		}
		if len(evs) != 4 || evs[0].Type != EventConnectionCreated || evs[3].Type != EventConnectionUpdated {
			t.Fatalf("events = %+v", evs)
		}
		// old holds the previous value of every protected change (seed 001).
		stamp := func(x time.Time) string { return x.UTC().Format(time.RFC3339Nano) }
		for _, kv := range []struct {
			m         map[string]any
			key, want string
		}{
			{evs[3].Old, "status", "WEBSITE_DOWN"},
			{evs[3].Old, "statusErrorDetail", "503"},
			{evs[3].Old, "statusFirstSeenTime", stamp(down.StatusFirstSeenTime)},
			{evs[3].New, "status", "PASSWORD_INCORRECT"},
			{evs[3].New, "statusErrorDetail", "rejected"},
			{evs[3].New, "statusFirstSeenTime", stamp(blocked.StatusFirstSeenTime)},
		} {
			if kv.m[kv.key] != kv.want {
				t.Fatalf("event %s = %v, want %s: %+v", kv.key, kv.m[kv.key], kv.want, evs[3])
			}
		}
		if !slices.Equal(evs[3].ProtectedChanges, []string{"status", "statusFirstSeenTime", "statusErrorDetail"}) {
			t.Fatalf("protectedChanges = %v", evs[3].ProtectedChanges)
		}
		if none, err := f.s.Events(f.ctx, evs[1].ID, 0); err != nil || len(none) != 0 {
			t.Fatalf("Events with count 0 = %v, %v; want none", none, err)
		}
		rest, err := f.s.Events(f.ctx, evs[1].ID, 100)
		if err != nil || len(rest) != 2 || rest[1].ID != evs[3].ID {
			t.Fatalf("events after %s = %+v %v", evs[1].ID, rest, err)
		}
	})

	t.Run("reactivation restores the status with its since", func(t *testing.T) {
		t.Parallel()
		f := newFixture(t, b, nil)
		stamp := func(x time.Time) string { return x.UTC().Format(time.RFC3339Nano) }
		setActive := func(id string, active bool) {
			t.Helper()
			if _, err := f.s.UpdateDetails(f.ctx, id, DetailsPatch{IsActive: &active}); err != nil {
				t.Fatal(err)
			}
		}
		// A website down since Monday 09:00, deactivated at 10:00 and
		// reactivated at 11:00, is still down since Monday 09:00; it was
		// updated at 11:00, and the event says both.
		down := f.conn("user_good")
		f.record(down.ID, "d1", t0.Add(-time.Second), fail(checks.ConnWebsiteDown, "503"))
		since := f.get(down.ID).StatusFirstSeenTime
		f.clk.Set(t0.Add(time.Hour))
		setActive(down.ID, false)
		f.clk.Set(t0.Add(2 * time.Hour))
		setActive(down.ID, true)
		got := f.get(down.ID)
		if got.Status != checks.ConnWebsiteDown || got.StatusErrorDetail != "503" || !got.StatusFirstSeenTime.Equal(since) ||
			!got.StatusLastUpdateTime.Equal(t0.Add(2*time.Hour)) {
			t.Fatalf("reactivated: %s %q since %v updated %v; want WEBSITE_DOWN \"503\" since %v updated %v",
				got.Status, got.StatusErrorDetail, got.StatusFirstSeenTime, got.StatusLastUpdateTime, since, t0.Add(2*time.Hour))
		}
		evs, err := f.s.Events(f.ctx, "", 100)
		if err != nil {
			t.Fatal(err)
		}
		last := evs[len(evs)-1]
		if last.Cause != CauseReactivated || last.New["statusFirstSeenTime"] != stamp(since) ||
			last.Old["statusFirstSeenTime"] != stamp(t0.Add(time.Hour)) || !last.Time.Equal(t0.Add(2*time.Hour)) {
			t.Fatalf("reactivation event %+v: want new statusFirstSeenTime %s, old %s", last, stamp(since), stamp(t0.Add(time.Hour)))
		}

		// Company deactivation: the connection and each account keep their
		// own since. A connection whose credentials were replaced meanwhile
		// comes back PENDING since the replacement.
		good := f.conn("user_good")
		f.clk.Set(t0.Add(3 * time.Hour))
		f.record(good.ID, "g1", f.clk.Now(), pulled(checks.AcctPullCompleted, "A", "B"))
		blocked := f.conn("user_bad")
		f.record(blocked.ID, "b1", f.clk.Now(), fail(checks.ConnPasswordIncorrect, "rejected"))
		before := f.get(good.ID)
		f.clk.Set(t0.Add(5 * time.Hour))
		if _, err := f.s.SetCompanyActive(f.ctx, f.co.ID, false); err != nil {
			t.Fatal(err)
		}
		f.clk.Set(t0.Add(6 * time.Hour))
		if _, err := f.s.UpdateCredentials(f.ctx, blocked.ID, checks.Credentials{Username: "user_good", Password: "new"}); err != nil {
			t.Fatal(err)
		}
		f.clk.Set(t0.Add(8 * time.Hour))
		if _, err := f.s.SetCompanyActive(f.ctx, f.co.ID, true); err != nil {
			t.Fatal(err)
		}
		after := f.get(good.ID)
		if after.Status != checks.ConnConnected || !after.StatusFirstSeenTime.Equal(before.StatusFirstSeenTime) ||
			!after.StatusLastUpdateTime.Equal(t0.Add(8*time.Hour)) {
			t.Fatalf("company reactivated: connection %s since %v updated %v; want CONNECTED since %v",
				after.Status, after.StatusFirstSeenTime, after.StatusLastUpdateTime, before.StatusFirstSeenTime)
		}
		for i, a := range after.Accounts {
			p := before.Accounts[i]
			if a.Status != p.Status || !a.StatusFirstSeenTime.Equal(p.StatusFirstSeenTime) || a.StatusErrorDetail != p.StatusErrorDetail {
				t.Fatalf("company reactivated: account %s %s since %v; want %s since %v", a.ID, a.Status, a.StatusFirstSeenTime, p.Status, p.StatusFirstSeenTime)
			}
		}
		if b := f.get(blocked.ID); b.Status != checks.ConnPending || !b.StatusFirstSeenTime.Equal(t0.Add(6*time.Hour)) {
			t.Fatalf("credentials replaced while inactive: %s since %v; want PENDING since the replacement %v", b.Status, b.StatusFirstSeenTime, t0.Add(6*time.Hour))
		}
		// A status that came before the since was kept (a record saved by
		// an older version) comes back from now, as before.
		old := f.conn("user_good")
		setActive(old.ID, false)
		f.rewrite(old.ID, func(r *connRec) { r.PrevFirst = 0 })
		f.clk.Set(t0.Add(9 * time.Hour))
		setActive(old.ID, true)
		if o := f.get(old.ID); o.Status != checks.ConnPending || !o.StatusFirstSeenTime.Equal(t0.Add(9*time.Hour)) {
			t.Fatalf("restored without a kept since: %s since %v; want PENDING since %v", o.Status, o.StatusFirstSeenTime, t0.Add(9*time.Hour))
		}
		f.invariants()
	})

	t.Run("history is bounded", func(t *testing.T) {
		t.Parallel()
		f := newFixture(t, b, func(c *Config) { c.HistoryLimit = 5 })
		c := f.conn("user_good")
		for i := 0; i < 20; i++ {
			res := ok()
			if i%2 == 0 {
				res = fail(checks.ConnWebsiteDown, "")
			}
			f.record(c.ID, fmt.Sprint(i), t0.Add(time.Duration(i)*time.Hour), res)
		}
		// Five elements kept: the newest recordHistory in the record, the
		// rest in the list.
		if n, _ := f.rdb.LLen(f.ctx, f.s.kHistory(c.ID)).Result(); n != 5-recordHistory {
			t.Fatalf("history list length %d, want %d", n, 5-recordHistory)
		}
		h, err := f.s.History(f.ctx, c.ID, 0)
		if err != nil || len(h) != 5 || h[0].Attempt != "19" || h[4].Attempt != "15" {
			t.Fatalf("history = %+v, %v; want the last 5 checks", h, err)
		}
	})

	t.Run("concurrent writers never lose an update", func(t *testing.T) {
		t.Parallel()
		f := newFixture(t, b, nil)
		c := f.conn("user_good")
		const n = 40
		var wg sync.WaitGroup
		errs := make(chan error, n)
		for i := 0; i < n; i++ {
			wg.Add(1)
			go func(i int) {
				defer wg.Done()
				tg, err := f.s.LoadCheck(f.ctx, c.ID)
				if err != nil {
					errs <- err
					return
				}
				// All start at the same instant: none is stale, each applies once.
				_, err = f.s.RecordCheck(f.ctx, tg, CheckResult{Attempt: fmt.Sprint("w", i), StartedAt: t0, FinishedAt: t0.Add(time.Second),
					Result: fail(checks.ConnWebsiteDown, "")})
				errs <- err
			}(i)
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			if err != nil {
				t.Fatal(err)
			}
		}
		if got := f.get(c.ID); got.ConsecutiveFailures != n {
			t.Fatalf("consecutiveFailures = %d after %d concurrent failed checks: an update was lost", got.ConsecutiveFailures, n)
		}
		f.invariants()
	})

	t.Run("claims are exclusive across schedulers", func(t *testing.T) {
		t.Parallel()
		f := newFixture(t, b, nil)
		const n = 300
		for i := 0; i < n; i++ {
			f.conn(fmt.Sprint("u", i))
		}
		var mu sync.Mutex
		seen := map[string]int{}
		var wg sync.WaitGroup
		for w := 0; w < 3; w++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for {
					items, err := f.s.claimDue(f.ctx, t0, t0.Add(time.Minute), 7)
					if err != nil {
						t.Error(err)
						return
					}
					if len(items) == 0 {
						return
					}
					mu.Lock()
					for _, it := range items {
						seen[it.ConnectionID]++
					}
					mu.Unlock()
				}
			}()
		}
		wg.Wait()
		if len(seen) != n {
			t.Fatalf("claimed %d distinct, want %d", len(seen), n)
		}
		for id, k := range seen {
			if k != 1 {
				t.Fatalf("%s claimed %d times", id, k)
			}
		}
	})

	t.Run("an on-demand claim leaves the due index; unacknowledged claims come back with their slot", func(t *testing.T) {
		t.Parallel()
		f := newFixture(t, b, nil)
		c := f.conn("user_good")
		lease := t0.Add(5 * time.Minute)
		items, _ := f.s.claimDue(f.ctx, t0, lease, 10)
		if len(items) != 1 || !items[0].Slot.Equal(t0) {
			t.Fatalf("claim = %+v", items)
		}
		want := checks.NextSlot(c.ID, t0, DefaultInterval)
		if got := f.get(c.ID); got.NextCheckAt == nil || !got.NextCheckAt.Equal(want) {
			t.Fatalf("next check after the claim = %v, want its next slot %v", got.NextCheckAt, want)
		}
		if again, _ := f.s.claimDue(f.ctx, t0.Add(time.Minute), t0.Add(6*time.Minute), 10); len(again) != 0 {
			t.Fatalf("claimed twice within the lease: %+v", again)
		}
		// The claimer died before acknowledging: after the lease the claim
		// comes back with the same slot (so the same task ID).
		again, _ := f.s.claimDue(f.ctx, lease, lease.Add(5*time.Minute), 10)
		if len(again) != 1 || again[0].ConnectionID != c.ID || !again[0].Slot.Equal(t0) {
			t.Fatalf("after the lease: %+v, want %s at its original slot", again, c.ID)
		}
		if more, _ := f.s.claimDue(f.ctx, lease.Add(time.Minute), lease.Add(6*time.Minute), 10); len(more) != 0 {
			t.Fatalf("a reclaimed batch was handed out twice: %+v", more)
		}
		// Both acknowledgements are harmless; afterwards nothing comes back.
		if n, err := f.s.ackDue(f.ctx, again); err != nil || n != 1 {
			t.Fatalf("ack = %d, %v", n, err)
		}
		if n, err := f.s.ackDue(f.ctx, items); err != nil || n != 0 {
			t.Fatalf("late ack of the first claimer = %d, %v", n, err)
		}
		if n, _ := f.rdb.ZCard(f.ctx, f.s.kInflight()).Result(); n != 0 {
			t.Fatalf("%d batches left in flight after acknowledgement", n)
		}
		if later, _ := f.s.claimDue(f.ctx, lease.Add(time.Hour), lease.Add(2*time.Hour), 10); len(later) != 0 {
			t.Fatalf("acknowledged claim came back: %+v", later)
		}
		if _, err := f.s.ackDue(f.ctx, []DueItem{{ConnectionID: c.ID, Slot: t0}}); !errors.Is(err, ErrInvalid) {
			t.Fatalf("ack of an item not from claimDue: %v", err)
		}
		// A check enqueued outside the sweep serves the due time it was for.
		d := f.conn("user_good")
		if moved, err := f.s.ServeDue(f.ctx, d.ID, t0); err != nil || !moved {
			t.Fatalf("ServeDue = %v, %v", moved, err)
		}
		if moved, _ := f.s.ServeDue(f.ctx, d.ID, t0); moved {
			t.Fatal("ServeDue served a connection no longer due at that slot")
		}
		if got := f.get(d.ID); got.NextCheckAt == nil || !got.NextCheckAt.Equal(checks.NextSlot(d.ID, f.clk.Now(), DefaultInterval)) {
			t.Fatalf("after ServeDue the next check is %v, want the weekly slot", got.NextCheckAt)
		}
	})

	t.Run("a check sees its company's flag change at once, in every store", func(t *testing.T) {
		t.Parallel()
		f := newFixture(t, b, nil)
		c := f.conn("user_good")
		s2, err := New(f.rdb, f.s.cfg) // another worker process: its own cache
		if err != nil {
			t.Fatal(err)
		}
		load := func(s *Store, want checks.Skip, when string) {
			t.Helper()
			for range 2 { // the second load is served by the cache
				tg, err := s.LoadCheck(f.ctx, c.ID)
				if err != nil || tg.Skip != want {
					t.Fatalf("%s: skip %q, %v; want %q", when, tg.Skip, err, want)
				}
			}
		}
		load(f.s, checks.SkipNone, "active")
		load(s2, checks.SkipNone, "active")
		// SetCompanyActive's first step: the flag is down and no batch has
		// moved the connection yet.
		if err := f.s.setCompanyFlag(f.ctx, f.co.ID, "0"); err != nil {
			t.Fatal(err)
		}
		if got := f.get(c.ID); got.Status == checks.ConnCompanyInactive {
			t.Fatal("the connection moved with the flag; the test needs it unmoved")
		}
		load(f.s, checks.SkipCompanyInactive, "flag down, connection not moved")
		load(s2, checks.SkipCompanyInactive, "flag down, another store")
		if err := s2.setCompanyFlag(f.ctx, f.co.ID, "1"); err != nil {
			t.Fatal(err)
		}
		load(f.s, checks.SkipNone, "flag up again")
		load(s2, checks.SkipNone, "flag up again, another store")
		if _, err := f.s.SetCompanyActive(f.ctx, f.co.ID, false); err != nil {
			t.Fatal(err)
		}
		load(s2, checks.SkipCompanyInactive, "deactivated")
	})

	t.Run("credentials are encrypted at rest", func(t *testing.T) {
		t.Parallel()
		f := newFixture(t, b, nil)
		c := f.conn("user_secret_name")
		keys, _ := f.rdb.Keys(f.ctx, "*").Result()
		for _, k := range keys {
			dump, _ := f.rdb.Dump(f.ctx, k).Result()
			if strings.Contains(dump, "s3cret-") {
				t.Fatalf("key %s holds the password in clear", k)
			}
		}
		tg, err := f.s.LoadCheck(f.ctx, c.ID)
		if err != nil || tg.Request.Credentials.Password != "s3cret-user_secret_name" {
			t.Fatalf("round trip: %v %v", tg, err)
		}
		if s := fmt.Sprint(tg.Request.Credentials); strings.Contains(s, "s3cret") {
			t.Fatalf("credentials print their secret: %s", s)
		}
		ex, err := f.s.CreateConnection(f.ctx, NewConnection{CompanyID: f.co.ID, Datasource: "sandbox",
			Credentials: checks.Credentials{Username: "u", Password: "p", Extra: map[string]string{"pin": "1234"}}})
		if err != nil {
			t.Fatal(err)
		}
		if tg, err := f.s.LoadCheck(f.ctx, ex.ID); err != nil || tg.Request.Credentials.Extra["pin"] != "1234" || tg.Request.Credentials.Password != "p" {
			t.Fatalf("extra credentials round trip: %+v %v", tg, err)
		}
		other, _ := GenerateKey()
		oc, _ := NewCipher(other)
		cfg := f.s.cfg
		cfg.Cipher = oc
		s2, _ := New(f.rdb, cfg)
		if _, err := s2.LoadCheck(f.ctx, c.ID); err == nil || !strings.Contains(err.Error(), "CHECKD_ENCRYPTION_KEY") {
			t.Fatalf("wrong key: err = %v, want a hint about the key", err)
		}
	})

	t.Run("a credential update based on an older time is refused", func(t *testing.T) {
		t.Parallel()
		f := newFixture(t, b, nil)
		c := f.conn("user_good")
		issued := f.clk.Now()
		if _, err := f.s.UpdateCredentialsSince(f.ctx, c.ID, checks.Credentials{Username: "same-ms"}, issued); err != nil {
			t.Fatalf("never updated since: %v", err) // creation is no update
		}
		if _, err := f.s.UpdateCredentialsSince(f.ctx, c.ID, checks.Credentials{Username: "same-ms-again"}, issued); err != nil {
			t.Fatalf("updated in the same millisecond as since: %v, want applied", err)
		}
		f.clk.Advance(time.Millisecond)
		if _, err := f.s.UpdateCredentials(f.ctx, c.ID, checks.Credentials{Username: "operator"}); err != nil {
			t.Fatal(err)
		}
		before := f.snapshot(c.ID) // the event stream's length included
		_, err := f.s.UpdateCredentialsSince(f.ctx, c.ID, checks.Credentials{Username: "stale"}, issued)
		if !errors.Is(err, ErrSuperseded) || !strings.Contains(err.Error(), c.ID) {
			t.Fatalf("stale update: %v, want ErrSuperseded naming the connection", err)
		}
		if f.snapshot(c.ID) != before {
			t.Fatal("a refused update wrote")
		}
		if tg, _ := f.s.LoadCheck(f.ctx, c.ID); tg.Request.Credentials.Username != "operator" {
			t.Fatalf("credentials %q, want the operator's", tg.Request.Credentials.Username)
		}
		if _, err := f.s.UpdateCredentialsSince(f.ctx, c.ID, checks.Credentials{Username: "newer"}, f.clk.Now()); err != nil {
			t.Fatalf("based on the time of the last update: %v", err)
		}
		f.invariants()
	})

	t.Run("listing filters by status and pages", func(t *testing.T) {
		t.Parallel()
		f := newFixture(t, b, nil)
		var bad []string
		for i := 0; i < 7; i++ {
			c := f.conn(fmt.Sprint("u", i))
			if i%2 == 0 {
				f.record(c.ID, "a", t0, fail(checks.ConnPasswordIncorrect, ""))
				bad = append(bad, c.ID)
			}
		}
		var got []string
		cursor := ""
		for pages := 0; ; pages++ {
			p, err := f.s.ListConnections(f.ctx, f.co.ID, []checks.ConnectionStatus{checks.ConnPasswordIncorrect}, cursor, 3)
			if err != nil {
				t.Fatal(err)
			}
			for _, c := range p.Connections {
				got = append(got, c.ID)
			}
			if p.Next == "" || pages > 5 {
				break
			}
			cursor = p.Next
		}
		sort.Strings(got)
		sort.Strings(bad)
		if strings.Join(got, ",") != strings.Join(bad, ",") {
			t.Fatalf("filtered listing = %v, want %v", got, bad)
		}
		all, err := f.s.ListConnections(f.ctx, f.co.ID, nil, "", 100)
		if err != nil || len(all.Connections) != 7 {
			t.Fatalf("unfiltered listing: %d, %v", len(all.Connections), err)
		}
		for _, c := range []string{"garbage", "0.3", "0.0.", "0.1.cn_x", "-1.0." + bad[0], "99.0." + bad[0], "0.x." + bad[0], "0.1." + bad[0] + ".x"} {
			if _, err := f.s.ListConnections(f.ctx, f.co.ID, nil, c, 10); !errors.Is(err, ErrInvalid) {
				t.Fatalf("bad cursor %q: %v", c, err)
			}
		}
	})

	t.Run("paging lists each connection that keeps its status exactly once", func(t *testing.T) {
		t.Parallel()
		f := newFixture(t, b, nil)
		// Ties (created in the same millisecond) and distinct times.
		var ids []string
		for i := range 11 {
			if i%4 == 0 {
				f.clk.Advance(time.Millisecond)
			}
			c := f.conn("bad")
			f.record(c.ID, "a", t0.Add(time.Hour), fail(checks.ConnPasswordIncorrect, ""))
			ids = append(ids, c.ID)
		}
		for _, tc := range []struct {
			name     string
			statuses []checks.ConnectionStatus
			limit    int
		}{
			{"one status", []checks.ConnectionStatus{checks.ConnPasswordIncorrect}, 2},
			{"every status", nil, 3},
			{"page of one", []checks.ConnectionStatus{checks.ConnPasswordIncorrect, checks.ConnPending}, 1},
		} {
			// After each page, the first connection it listed leaves the
			// status (a credential update makes it PENDING): the cursor
			// may name a connection no longer in its group.
			seen := map[string]int{}
			moved := map[string]bool{}
			cursor := ""
			for pages := 0; ; pages++ {
				p, err := f.s.ListConnections(f.ctx, f.co.ID, tc.statuses, cursor, tc.limit)
				if err != nil {
					t.Fatalf("%s: %v", tc.name, err)
				}
				for _, c := range p.Connections {
					seen[c.ID]++
				}
				if len(p.Connections) > 0 && p.Connections[0].Status == checks.ConnPasswordIncorrect {
					id := p.Connections[0].ID
					if _, err := f.s.UpdateCredentials(f.ctx, id, checks.Credentials{Username: "user_good"}); err != nil {
						t.Fatal(err)
					}
					moved[id] = true
				}
				if p.Next == "" {
					break
				}
				if pages > 30 {
					t.Fatalf("%s: paging does not end", tc.name)
				}
				cursor = p.Next
			}
			for _, id := range ids {
				if !moved[id] && seen[id] != 1 {
					t.Fatalf("%s: %s kept its status and was listed %d times (seen %v)", tc.name, id, seen[id], seen)
				}
			}
			// Back to PASSWORD_INCORRECT for the next case.
			for id := range moved {
				f.clk.Advance(time.Minute)
				f.record(id, "again-"+tc.name, f.clk.Now(), fail(checks.ConnPasswordIncorrect, ""))
			}
		}
	})
	runOpsConformance(t, b)
	runHealthConformance(t, b)
}

// snapshot renders everything stored about a connection, for comparisons.
func (f *fixture) snapshot(id string) string {
	f.t.Helper()
	raw, _ := f.rdb.Get(f.ctx, f.s.kConn(id)).Result()
	h, _ := f.rdb.LRange(f.ctx, f.s.kHistory(id), 0, -1).Result()
	due, _ := f.rdb.ZScore(f.ctx, f.s.kDue(), id).Result()
	n, _ := f.rdb.XLen(f.ctx, f.s.kEvents()).Result()
	counts, _ := f.rdb.HGetAll(f.ctx, f.s.kCounts()).Result()
	b, _ := json.Marshal([]any{raw, h, due, n, counts})
	return string(b)
}

// forceDue sets a connection's next check time (tests only).
func (f *fixture) forceDue(id string, at time.Time) {
	f.t.Helper()
	if err := f.rdb.ZAdd(f.ctx, f.s.kDue(), redis.Z{Score: float64(ms(at)), Member: id}).Err(); err != nil {
		f.t.Fatal(err)
	}
}

// forceStatus rewrites a connection's status through the store's own write
// path (tests only), keeping every index consistent.
// rewrite changes the stored record of id with fn, as an older version
// may have written it; nothing else moves.
func (f *fixture) rewrite(id string, fn func(r *connRec)) {
	f.t.Helper()
	err := f.s.update(f.ctx, id, "", func(r *connRec) (*mutation, error) {
		fn(r)
		return &mutation{}, nil
	})
	if err != nil {
		f.t.Fatal(err)
	}
}

func (f *fixture) forceStatus(id string, st checks.ConnectionStatus) {
	f.t.Helper()
	err := f.s.update(f.ctx, id, "", func(r *connRec) (*mutation, error) {
		now := ms(f.clk.Now())
		setStatus(&r.Status, &r.FirstSeen, &r.LastUpdate, &r.Detail, string(st), "", now)
		return &mutation{due: dueSet, dueAt: now}, nil
	})
	if err != nil {
		f.t.Fatal(err)
	}
}
