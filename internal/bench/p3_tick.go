package bench

import (
	"context"
	"fmt"
	"sort"
	"time"

	"github.com/checkd/checkd/checks"
	"github.com/checkd/checkd/checks/sandbox"
	"github.com/checkd/checkd/scheduler"
	"github.com/checkd/checkd/store"
)

// p3DB is the database of P3's small store (flushed afterwards).
const p3DB = 2

// runP3: a tick with nothing due, over the dataset's due index (every
// connection at its next weekly slot, after the sweep) and over a small
// store of its own with as few connections, swept the same way. Ticks of
// the two alternate, so load on the shared machine hits both alike.
func runP3(ctx context.Context, e *env) (r Result) {
	r = Result{ID: "P3", Name: "tick", Unit: "ms", Goal: "median ≤ 2 ms and t(big)/t(small) ≤ 1.5"}
	d := e.ds
	if err := d.ensureSwept(ctx); err != nil {
		r.Err = fmt.Errorf("sweep the dataset: %w", err)
		return r
	}
	big := len(d.ids)

	// The small store: its own database, same server.
	c2, rt2 := e.srv.client(p3DB, 32)
	defer c2.Close()
	defer c2.FlushDB(context.WithoutCancel(ctx))
	ci, err := store.NewCipher(e.key)
	if err != nil {
		r.Err = err
		return r
	}
	st2, err := store.New(c2, storeConfig(ci))
	if err != nil {
		r.Err = err
		return r
	}
	co, err := st2.CreateCompany(ctx, store.NewCompany{Name: "bench small"})
	if err != nil {
		r.Err = err
		return r
	}
	small := e.sz.TickSmall
	in := make([]store.NewConnection, small)
	for i := range in {
		in[i] = store.NewConnection{Datasource: sandbox.Datasource, Credentials: checks.Credentials{Username: sandbox.UserGood}}
	}
	if _, err := st2.CreateConnections(ctx, co.ID, in); err != nil {
		r.Err = err
		return r
	}
	schSmall, err := e.newScheduler(st2, small+1, 0)
	if err != nil {
		r.Err = err
		return r
	}
	smallNow := time.Now()
	if st, err := schSmall.Tick(ctx, smallNow); err != nil || st.Enqueued != small {
		r.Err = fmt.Errorf("sweep the small store: %+v %v", st, err)
		return r
	}
	if err := flushAsynq(ctx, c2); err != nil {
		r.Err = err
		return r
	}
	schBig, err := e.newScheduler(e.st, 0, 0)
	if err != nil {
		r.Err = err
		return r
	}
	if schSmall, err = e.newScheduler(st2, 0, 0); err != nil {
		r.Err = err
		return r
	}

	tick := func(s *scheduler.Scheduler, now time.Time) (time.Duration, error) {
		began := time.Now()
		st, err := s.Tick(ctx, now)
		took := time.Since(began)
		if err == nil && st.Claimed != 0 {
			err = fmt.Errorf("tick claimed %d: something was due", st.Claimed)
		}
		return took, err
	}
	for range 50 { // warm up connections and script caches
		if _, err := tick(schBig, d.sweptAt); err != nil {
			r.Err = err
			return r
		}
		if _, err := tick(schSmall, smallNow); err != nil {
			r.Err = err
			return r
		}
	}
	e.logf("P3: %d alternating ticks over %d and %d connections", 2*e.sz.Ticks, small, big)
	tb := make([]time.Duration, 0, e.sz.Ticks)
	ts := make([]time.Duration, 0, e.sz.Ticks)
	rtb0, rts0 := e.rt.load(), rt2.load()
	cs0 := commandStats(ctx, e.rdb)
	for i := range e.sz.Ticks {
		first, second := schBig, schSmall
		if i%2 == 1 {
			first, second = schSmall, schBig
		}
		for _, s := range []*scheduler.Scheduler{first, second} {
			now := d.sweptAt
			if s == schSmall {
				now = smallNow
			}
			took, err := tick(s, now)
			if err != nil {
				r.Err = err
				return r
			}
			if s == schBig {
				tb = append(tb, took)
			} else {
				ts = append(ts, took)
			}
		}
	}
	cs := commandStats(ctx, e.rdb)
	evals := cs["evalsha"] - cs0["evalsha"]
	rtBig := float64(e.rt.load()-rtb0) / float64(e.sz.Ticks)
	rtSmall := float64(rt2.load()-rts0) / float64(e.sz.Ticks)
	qb, qs := quantiles(tb), quantiles(ts)
	r.Value, r.Baseline, r.HasBase = ms(qb[0]), ms(qs[0]), true
	r.Ratio, r.HasRatio = ms(qb[0])/ms(qs[0]), true
	r.Met = verdict(ms(qb[0]) <= 2 && ms(qs[0]) <= 2 && r.Ratio <= 1.5)
	r.Goal = "median ≤ 2 ms, t(1M)/t(10k) ≤ 1.5"
	if e.sz.Name != "full" {
		r.Goal = fmt.Sprintf("median ≤ 2 ms, t(%s)/t(%s) ≤ 1.5", short(big), short(small))
	}
	r.Details = append(r.Details,
		fmt.Sprintf("value = median tick at %d stored connections (p90 %.3f ms, p99 %.3f ms); baseline = median at %d (p90 %.3f ms, p99 %.3f ms); %d ticks each, alternating",
			big, ms(qb[1]), ms(qb[2]), small, ms(qs[1]), ms(qs[2]), e.sz.Ticks),
		fmt.Sprintf("per idle tick: %.2f client round trips at %d, %.2f at %d; %.2f EVALSHA (on-demand claim: ZRANGEBYSCORE … LIMIT, O(log N); weekly: lock, read from the cursor, release)",
			rtBig, big, rtSmall, small, float64(evals)/float64(2*e.sz.Ticks)))
	r.Subs = append(r.Subs, Result{ID: "P3.small", Name: "tick-" + short(small), Value: ms(qs[0]), Unit: "ms",
		Goal: "median ≤ 2 ms", Met: verdict(ms(qs[0]) <= 2)})
	return r
}

// quantiles returns the median, p90 and p99.
func quantiles(ds []time.Duration) [3]time.Duration {
	s := append([]time.Duration(nil), ds...)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	q := func(p float64) time.Duration { return s[min(len(s)-1, int(p*float64(len(s))))] }
	return [3]time.Duration{q(0.5), q(0.9), q(0.99)}
}

func ms(d time.Duration) float64 { return float64(d.Nanoseconds()) / 1e6 }

func short(n int) string {
	switch {
	case n >= 1_000_000 && n%1_000_000 == 0:
		return fmt.Sprintf("%dM", n/1_000_000)
	case n >= 1000 && n%1000 == 0:
		return fmt.Sprintf("%dk", n/1000)
	}
	return fmt.Sprint(n)
}
