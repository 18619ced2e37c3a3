package bench

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/hibiken/asynq"

	"github.com/checkd/checkd/checks"
	"github.com/checkd/checkd/checks/sandbox"
	"github.com/checkd/checkd/internal/tasks"
	"github.com/checkd/checkd/store"
)

// P8: a per-datasource concurrency cap across two worker processes.
// Datasource cappedDS (the sandbox under another name) has
// datasources.capped.maxConcurrent = P8Cap; the sandbox beside it none.
// Round A runs the sandbox's checks alone in two worker processes (its
// ceiling in this run); round B the same with the capped datasource's
// checks queued first. Each worker process logs the start and end of every
// capped checker call; their exact overlap across both processes is the
// measured concurrency.

// cappedDS is P8's capped datasource.
const cappedDS = "capped"

// p8Conns is how many connections of cappedDS P8 creates.
const p8Conns = 1000

// cappedShare is one in how many tasks of round B is the capped
// datasource's, spread through the queue as a sweep mixes datasources: 400/s
// of them reach the workers (at the uncapped ceiling of 2,000/s), eight
// times what the cap lets through, so the cap, not the supply, bounds them.
const cappedShare = 5

// capRound is one round of P8: both processes' results.
type capRound struct {
	runs          []*childRun
	free, capped  float64 // checks per second in the window, both processes
	maxConc       int     // exact overlap of capped checker calls
	maxSlots      int64   // the most slots held, sampled by the parent every 100 ms
	cappedTotal   int64
	freeTotal     int64
	left, cleft   int64
	cappedPerSec  []string
	freePerSecSum []string
}

// runP8 runs the two rounds and compares.
func runP8(ctx context.Context, e *env) (r Result) {
	sz := e.sz
	r = Result{ID: "P8", Name: "concurrency-cap", Unit: "checks/s",
		Goal: fmt.Sprintf("cap %d across 2 processes: sampled concurrency ≤ %d, capped ≥ 0.9 × %d/s, uncapped beside it ≥ 0.9 × its ceiling", sz.P8Cap, sz.P8Cap, sz.P8Cap)}
	if len(e.ds.ids) == 0 || len(e.ds.companies) == 0 {
		r.Err = errors.New("no connections loaded")
		return r
	}
	if e.opts.Exe == "" {
		r.Err = errors.New("the bench binary's path is unknown: cannot start the worker processes")
		return r
	}
	ins := make([]store.NewConnection, p8Conns)
	for i := range ins {
		ins[i] = store.NewConnection{Datasource: cappedDS, Credentials: checks.Credentials{Username: sandbox.UserGood, Password: "p"}}
	}
	cs, err := e.loader.CreateConnections(ctx, e.ds.companies[0], ins)
	if err != nil {
		r.Err = fmt.Errorf("create the capped datasource's connections: %w", err)
		return r
	}
	capped := make([]string, len(cs))
	for i, c := range cs {
		capped[i] = c.ID
	}
	// Alternating rounds, A B A B: the machine's load drifts, and the
	// first worker processes of a run start colder.
	base := time.Now().Truncate(time.Hour).Add(96 * time.Hour)
	var alones, boths []*capRound
	for i := range p8Rounds {
		alone, err := runCapRound(ctx, e, nil, base.Add(time.Duration(2*i)*time.Hour))
		if err != nil {
			r.Err = fmt.Errorf("round A (the sandbox alone): %w", err)
			return r
		}
		both, err := runCapRound(ctx, e, capped, base.Add(time.Duration(2*i+1)*time.Hour))
		if err != nil {
			r.Err = fmt.Errorf("round B (capped beside it): %w", err)
			return r
		}
		alones, boths = append(alones, alone), append(boths, both)
	}
	alone, both := mergeRounds(alones), mergeRounds(boths)
	ideal := float64(sz.P8Cap) / sz.P6Latency.Seconds()
	keep := both.free / alone.free
	r.Value, r.Baseline, r.HasBase, r.Ratio, r.HasRatio = both.capped, ideal, true, both.capped/ideal, true
	r.Met = verdict(both.maxConc <= sz.P8Cap && both.capped >= 0.9*ideal && keep >= 0.9)
	r.Details = append(r.Details,
		fmt.Sprintf("two worker processes of concurrency %d each, %s sandbox latency; value = capped checks recorded per second from %s to %s; baseline = cap / latency = %.0f/s",
			sz.P6Concurrency/2, sz.P6Latency, sz.P6Warmup, sz.P6Duration, ideal),
		fmt.Sprintf("%d rounds of each, alternating A B; rates are their means, concurrency the most of any", p8Rounds),
		fmt.Sprintf("round B: capped %.1f/s (the last round's per second: %s), max concurrency %d (exact overlap of the checker calls of both processes), max slots held %d (sampled every 100 ms); %d capped checks recorded, %d capped tasks not run in the time (put back, or not reached)",
			both.capped, joinOr(both.cappedPerSec), both.maxConc, both.maxSlots, both.cappedTotal, both.cleft),
		fmt.Sprintf("uncapped sandbox: %.0f/s beside the capped datasource vs %.0f/s alone in round A (its ceiling here; ideal %d/s): %.3f; tasks left queued at most %d and %d (never starved: %v)",
			both.free, alone.free, sz.P6Concurrency, keep, both.left, alone.left, both.left > 0 && alone.left > 0))
	for i, run := range both.runs {
		r.Details = append(r.Details, run.describe(fmt.Sprintf("last round B, worker %d (all its checks)", i+1)))
	}
	r.Subs = append(r.Subs,
		Result{ID: "P8.conc", Name: "capped-max-concurrency", Value: float64(both.maxConc), Unit: "checks", Goal: fmt.Sprintf("≤ %d", sz.P8Cap),
			Met: verdict(both.maxConc <= sz.P8Cap)},
		Result{ID: "P8.free", Name: "uncapped-beside", Value: both.free, Unit: "checks/s", Baseline: alone.free, HasBase: true,
			Ratio: keep, HasRatio: true, Goal: "≥ 0.9 × alone", Met: verdict(keep >= 0.9)})
	return r
}

func joinOr(v []string) string {
	if len(v) == 0 {
		return "-"
	}
	return fmt.Sprint(v)
}

// p8Rounds is how many A B pairs P8 runs.
const p8Rounds = 2

// mergeRounds averages rounds' rates and keeps the worst concurrency;
// runs and per-second counts are the last round's.
func mergeRounds(rs []*capRound) *capRound {
	out := *rs[len(rs)-1]
	out.free, out.capped, out.cappedTotal, out.freeTotal, out.cleft, out.left = 0, 0, 0, 0, 0, 0
	for _, r := range rs {
		out.free += r.free / float64(len(rs))
		out.capped += r.capped / float64(len(rs))
		out.maxConc, out.maxSlots = max(out.maxConc, r.maxConc), max(out.maxSlots, r.maxSlots)
		out.cappedTotal += r.cappedTotal
		out.freeTotal += r.freeTotal
		out.cleft += r.cleft
		out.left = max(out.left, r.left)
	}
	return &out
}

// runCapRound queues the sandbox's tasks (and, when capped is given, the
// capped datasource's first), runs two worker processes, and measures.
func runCapRound(ctx context.Context, e *env, capped []string, slotBase time.Time) (*capRound, error) {
	sz := e.sz
	if err := flushAsynq(ctx, e.rdb); err != nil {
		return nil, err
	}
	opts := []asynq.Option{asynq.Queue(tasks.QueueDefault), asynq.Timeout(5 * time.Minute)}
	n := p6Tasks(sz)
	ids := e.ds.ids
	nCapped := 0
	if capped != nil {
		// Every cappedShare-th task is the capped datasource's.
		ids = make([]string, 0, n)
		for i := 0; len(ids) < n; i++ {
			if i%cappedShare == 0 {
				ids = append(ids, capped[(i/cappedShare)%len(capped)])
				nCapped++
			} else {
				ids = append(ids, e.ds.ids[i%len(e.ds.ids)])
			}
		}
	}
	if _, err := enqueueChecks(ctx, e.aq, ids, n, func(i int) time.Time { return slotBase.Add(time.Duration(i) * time.Millisecond) }, 1, opts...); err != nil {
		return nil, err
	}
	cfg := childConfig{Mode: "worker", Addr: e.srv.Addr, KeyHex: e.keyHex(), Concurrency: sz.P6Concurrency / 2,
		LatencyMS: sz.P6Latency.Milliseconds(), DurationMS: sz.P6Duration.Milliseconds(), Protocol: e.srv.protocol,
		Cap: sz.P8Cap, CappedDS: cappedDS}
	e.logf("P8: two worker processes, concurrency %d each, %d sandbox tasks and %d capped (cap %d) queued", cfg.Concurrency, n-nCapped,
		nCapped, sz.P8Cap)
	// The parent samples the slots held, as GET /v1/datasources reads them.
	var maxSlots int64
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		t := time.NewTicker(100 * time.Millisecond)
		defer t.Stop()
		for {
			select {
			case <-stop:
				return
			case <-t.C:
				if n, err := e.st.RunningSlots(ctx, cappedDS, time.Now()); err == nil && n > maxSlots {
					maxSlots = n
				}
			}
		}
	})
	runs := make([]*childRun, 2)
	errs := make([]error, 2)
	var cw sync.WaitGroup
	for i := range runs {
		cw.Go(func() { runs[i], errs[i] = startChild(ctx, e, cfg, fmt.Sprintf("P8-%d", i+1)) })
	}
	cw.Wait()
	close(stop)
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	out := &capRound{runs: runs, maxSlots: maxSlots}
	var err error
	if out.left, err = pendingTasks(ctx, e.rdb, tasks.QueueDefault); err != nil {
		return nil, err
	}
	lo, hi := int(sz.P6Warmup/childBucket), int(sz.P6Duration/childBucket)
	var freeWin, capWin int64
	var intervals [][2]int64
	cappedSec := map[int]int64{}
	for _, run := range runs {
		var win int64
		for i, c := range run.res.Buckets {
			out.freeTotal += c
			run.total += c
			if i >= lo && i < hi {
				freeWin += c
				win += c
			}
		}
		for i, c := range run.res.CappedBuckets {
			out.cappedTotal += c
			run.total += c
			cappedSec[i/10] += c
			if i >= lo && i < hi {
				capWin += c
				win += c
			}
		}
		run.rate = float64(win) / (sz.P6Duration - sz.P6Warmup).Seconds()
		intervals = append(intervals, run.res.Intervals...)
	}
	out.cleft = int64(nCapped) - out.cappedTotal
	for s := 0; s < len(cappedSec); s++ {
		out.cappedPerSec = append(out.cappedPerSec, strconv.FormatInt(cappedSec[s], 10))
	}
	win := (sz.P6Duration - sz.P6Warmup).Seconds()
	out.free, out.capped = float64(freeWin)/win, float64(capWin)/win
	out.maxConc = MaxOverlap(intervals)
	if err := flushAsynq(ctx, e.rdb); err != nil {
		return nil, err
	}
	return out, nil
}

// MaxOverlap is the most intervals [start, end) open at once: the
// concurrency of calls logged with their start and end (P8, and the
// worker's test of the cap across processes).
func MaxOverlap(iv [][2]int64) int {
	type edge struct {
		t int64
		d int
	}
	es := make([]edge, 0, 2*len(iv))
	for _, v := range iv {
		es = append(es, edge{v[0], 1}, edge{v[1], -1})
	}
	// An end before a start at the same instant: [a, b) and [b, c) do not overlap.
	slices.SortFunc(es, func(a, b edge) int {
		if a.t != b.t {
			return int(a.t - b.t)
		}
		return a.d - b.d
	})
	n, best := 0, 0
	for _, x := range es {
		n += x.d
		best = max(best, n)
	}
	return best
}

// cappedChecker wraps the sandbox for the capped datasource, logging the
// start and end (Unix ns) of every call.
type cappedChecker struct {
	c  checks.Checker
	mu sync.Mutex
	iv [][2]int64
}

func (c *cappedChecker) Check(ctx context.Context, req checks.Request) (checks.Result, error) {
	start := time.Now().UnixNano()
	res, err := c.c.Check(ctx, req)
	end := time.Now().UnixNano()
	c.mu.Lock()
	c.iv = append(c.iv, [2]int64{start, end})
	c.mu.Unlock()
	return res, err
}

func (c *cappedChecker) intervals() [][2]int64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	return slices.Clone(c.iv)
}
