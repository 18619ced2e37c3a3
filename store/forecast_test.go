package store

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"testing"
	"time"

	"github.com/checkd/checkd/checks"
)

// The console's reads (DueForecast, CompanyStatusCounts) and the origin of
// its writes, on miniredis and on a real redis-server.
func TestConsoleReadsMiniredis(t *testing.T) { runConsoleReads(t, miniBackend) }
func TestConsoleReadsRedis(t *testing.T)     { runConsoleReads(t, realBackend) }

// floorDiv is a/b rounded down (b > 0).
func floorDiv(a, b int64) int64 {
	q := a / b
	if a%b != 0 && (a < 0) != (b < 0) {
		q--
	}
	return q
}

// wantForecast counts by brute force what DueForecast should: each
// scheduled connection's slots (offset + n × interval) and each on-demand
// due time in each window.
func (f *fixture) wantForecast(bounds []time.Time) []DueCount {
	f.t.Helper()
	iv := f.s.intervalMS()
	keys, err := f.rdb.Keys(f.ctx, f.s.kWeekPrefix()+"*").Result()
	if err != nil {
		f.t.Fatal(err)
	}
	var offsets []int64
	for _, k := range keys {
		zs, err := f.rdb.ZRangeWithScores(f.ctx, k, 0, -1).Result()
		if err != nil {
			f.t.Fatal(err)
		}
		for _, z := range zs {
			id := z.Member.(string)
			if off := int64(checks.SlotOffset(id, f.s.Interval()) / time.Millisecond); off != int64(z.Score) {
				f.t.Fatalf("%s in the schedule at %d, its slot is %d", id, int64(z.Score), off)
			}
			offsets = append(offsets, int64(z.Score))
		}
	}
	due, err := f.rdb.ZRangeWithScores(f.ctx, f.s.kDue(), 0, -1).Result()
	if err != nil {
		f.t.Fatal(err)
	}
	out := make([]DueCount, len(bounds)-1)
	for i := range out {
		a, b := ms(bounds[i]), ms(bounds[i+1])
		out[i] = DueCount{Start: bounds[i].UTC(), End: bounds[i+1].UTC()}
		for _, off := range offsets {
			out[i].Weekly += floorDiv(b-off, iv) - floorDiv(a-off, iv)
		}
		for _, z := range due {
			if at := int64(z.Score); a < at && at <= b {
				out[i].OnDemand++
			}
		}
	}
	return out
}

func (f *fixture) checkForecast(bounds []time.Time) []DueCount {
	f.t.Helper()
	got, err := f.s.DueForecast(f.ctx, bounds)
	if err != nil {
		f.t.Fatal(err)
	}
	want := f.wantForecast(bounds)
	if len(got) != len(want) {
		f.t.Fatalf("%d windows, want %d", len(got), len(want))
	}
	for i := range want {
		if got[i] != want[i] {
			f.t.Errorf("window %d: %+v, want %+v", i, got[i], want[i])
		}
	}
	return got
}

func hourly(from time.Time, n int) []time.Time {
	out := []time.Time{from}
	for end := from.Truncate(time.Hour).Add(time.Hour); len(out) <= n; end = end.Add(time.Hour) {
		out = append(out, end)
	}
	return out
}

func runConsoleReads(t *testing.T, b backend) {
	t.Run("forecast over a weekly interval", func(t *testing.T) {
		t.Parallel()
		f := newFixture(t, b, nil)
		var ids []string
		for i := range 300 {
			ids = append(ids, f.conn("user_"+strconv.Itoa(i)).ID)
		}
		// Checked ones leave the due index; deactivated and credential-blocked
		// ones leave the schedule too.
		for i, id := range ids[:150] {
			res := ok("A")
			if i%10 == 0 {
				res = fail(checks.ConnPasswordIncorrect, "")
			}
			f.record(id, "a"+strconv.Itoa(i), t0, res)
		}
		off := false
		for _, id := range ids[150:170] {
			if _, err := f.s.UpdateDetails(f.ctx, id, DetailsPatch{IsActive: &off}); err != nil {
				t.Fatal(err)
			}
		}
		f.clk.Advance(90 * time.Minute)
		now := f.clk.Now().Add(17 * time.Second)
		week := f.checkForecast(hourly(now, 168))
		var sum int64
		for _, w := range week {
			sum += w.Weekly
		}
		// Every scheduled connection comes due once in a week, less those
		// whose slot falls in the part of the week before the first bound.
		if scheduled := int64(300 - 15 - 20); sum > scheduled || sum < scheduled*9/10 {
			t.Errorf("the week's bars hold %d weekly slots, want about %d (one per scheduled connection)", sum, scheduled)
		}
		// On-demand times still due are the unchecked PENDING ones, due at
		// t0: before the forecast, so counted in no window.
		for _, w := range week {
			if w.OnDemand != 0 {
				t.Errorf("window %v: %d on-demand, want none (all due before now)", w.Start, w.OnDemand)
			}
		}
		// From before t0 the due index is seen; and windows that wrap the
		// interval's end.
		f.checkForecast(hourly(t0.Add(-time.Hour), 3))
		start := time.UnixMilli(0).UTC().Add(-3 * time.Hour)
		for ms(start) < ms(t0)-f.s.intervalMS() {
			start = start.Add(f.s.Interval())
		}
		f.checkForecast(hourly(start, 6))
	})

	t.Run("forecast windows longer than the interval", func(t *testing.T) {
		t.Parallel()
		f := newFixture(t, b, func(c *Config) { c.Interval = 2 * time.Minute })
		for i := range 40 {
			f.conn("user_" + strconv.Itoa(i))
		}
		got := f.checkForecast(hourly(t0.Add(7*time.Second), 5))
		// A full hour is 30 intervals: each connection 30 times.
		if got[1].Weekly != 40*30 {
			t.Errorf("an hour of a 2-minute interval holds %d slots, want %d", got[1].Weekly, 40*30)
		}
		f.checkForecast([]time.Time{t0, t0.Add(3*time.Minute + 500*time.Millisecond), t0.Add(3*time.Minute + 501*time.Millisecond)})
	})

	t.Run("forecast refuses bounds that do not increase", func(t *testing.T) {
		t.Parallel()
		f := newFixture(t, b, nil)
		for _, bounds := range [][]time.Time{nil, {t0}, {t0, t0}, {t0, t0.Add(time.Hour), t0.Add(time.Minute)}, make([]time.Time, MaxForecastWindows+2)} {
			if _, err := f.s.DueForecast(f.ctx, bounds); !errors.Is(err, ErrInvalid) {
				t.Errorf("%d bounds: err = %v, want ErrInvalid", len(bounds), err)
			}
		}
	})

	t.Run("company status counts", func(t *testing.T) {
		t.Parallel()
		f := newFixture(t, b, nil)
		other, err := f.s.CreateCompany(f.ctx, NewCompany{Name: "Other"})
		if err != nil {
			t.Fatal(err)
		}
		a, c := f.conn("u1"), f.conn("u2")
		f.conn("u3")
		f.record(a.ID, "a1", t0, ok("A"))
		f.record(c.ID, "a2", t0, fail(checks.ConnWebsiteDown, "503"))
		got, err := f.s.CompanyStatusCounts(f.ctx, []string{f.co.ID, other.ID, "co_bad", "../x"})
		if err != nil {
			t.Fatal(err)
		}
		if len(got) != 4 {
			t.Fatalf("%d counts, want one per ID", len(got))
		}
		want := map[checks.ConnectionStatus]int64{checks.ConnPending: 1, checks.ConnConnected: 1, checks.ConnWebsiteDown: 1}
		for _, st := range checks.ConnectionStatuses {
			if got[0][st] != want[st] {
				t.Errorf("%s: %d, want %d", st, got[0][st], want[st])
			}
			for i := 1; i < 4; i++ {
				if got[i][st] != 0 {
					t.Errorf("company %d: %s %d, want 0", i, st, got[i][st])
				}
			}
		}
		if _, err := f.s.SetCompanyActive(f.ctx, f.co.ID, false); err != nil {
			t.Fatal(err)
		}
		got, _ = f.s.CompanyStatusCounts(f.ctx, []string{f.co.ID})
		if got[0][checks.ConnCompanyInactive] != 3 || got[0][checks.ConnConnected] != 0 {
			t.Errorf("after deactivation: %v, want 3 COMPANY_INACTIVE", got[0])
		}
	})

	t.Run("origin: cause and actor", func(t *testing.T) {
		t.Parallel()
		f := newFixture(t, b, nil)
		c := f.conn("user_good")
		f.record(c.ID, "a1", t0, ok("A"))
		acct := f.get(c.ID).Accounts[0].ID
		ctx, err := WithOrigin(f.ctx, Origin{Channel: "console", Actor: "admin"})
		if err != nil {
			t.Fatal(err)
		}
		f.clk.Advance(time.Minute)
		off, on := false, true
		if _, err := f.s.UpdateDetails(ctx, c.ID, DetailsPatch{IsActive: &off}); err != nil {
			t.Fatal(err)
		}
		f.clk.Advance(time.Minute)
		if _, err := f.s.UpdateDetails(ctx, c.ID, DetailsPatch{IsActive: &on}); err != nil {
			t.Fatal(err)
		}
		f.clk.Advance(time.Minute)
		if _, err := f.s.ConfirmAccounts(ctx, c.ID, []AccountDecision{{AccountID: acct, TrackingStatus: checks.TrackingEnabled}}); err != nil {
			t.Fatal(err)
		}
		f.clk.Advance(time.Minute)
		if _, err := f.s.SetCompanyActive(ctx, f.co.ID, false); err != nil {
			t.Fatal(err)
		}
		f.clk.Advance(time.Minute)
		if _, err := f.s.UpdateCredentials(ctx, c.ID, checks.Credentials{Username: "u2"}); err != nil {
			t.Fatal(err)
		}
		f.clk.Advance(time.Minute)
		if _, err := f.s.SetCompanyActive(f.ctx, f.co.ID, true); err != nil { // no origin: the plain cause, the implied actor
			t.Fatal(err)
		}
		h, err := f.s.History(f.ctx, c.ID, 0)
		if err != nil {
			t.Fatal(err)
		}
		var got []string
		for _, e := range h {
			if e.AccountID == "" || e.Cause == "console:confirm-accounts" {
				got = append(got, e.Cause+"/"+e.Actor)
			}
		}
		want := []string{"admin:company-reactivate/" + ActorSystem, "console:company-deactivate/admin", "console:confirm-accounts/admin",
			"console:reactivate/admin", "console:deactivate/admin", "check/" + ActorCheck, "created/" + ActorSystem}
		if fmt.Sprint(got) != fmt.Sprint(want) {
			t.Errorf("history causes/actors\n got %v\nwant %v", got, want)
		}
		evs, err := f.s.Events(f.ctx, "", 100)
		if err != nil {
			t.Fatal(err)
		}
		var causes []string
		for _, ev := range evs {
			causes = append(causes, ev.Cause)
		}
		wantEv := []string{"created", "check", "console:deactivate", "console:reactivate", "console:confirm-accounts",
			"console:company-deactivate", "credentials", "admin:company-reactivate"}
		if fmt.Sprint(causes) != fmt.Sprint(wantEv) {
			t.Errorf("event causes\n got %v\nwant %v", causes, wantEv)
		}
		f.invariants()
	})

	t.Run("origin refused", func(t *testing.T) {
		t.Parallel()
		for _, o := range []Origin{{}, {Channel: "console"}, {Channel: "Console", Actor: "a"}, {Channel: "con:sole", Actor: "a"},
			{Channel: "console", Actor: "a\x1b[2J"}, {Channel: "console", Actor: string(make([]byte, MaxActorLen+1))}} {
			if _, err := WithOrigin(context.Background(), o); !errors.Is(err, ErrInvalid) {
				t.Errorf("WithOrigin(%+v) = %v, want ErrInvalid", o, err)
			}
		}
	})
}
