package bench

import (
	"cmp"
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hibiken/asynq"

	"github.com/checkd/checkd/checks"
	"github.com/checkd/checkd/checks/sandbox"
	"github.com/checkd/checkd/configs"
	"github.com/checkd/checkd/internal/tasks"
	"github.com/checkd/checkd/scheduler"
	"github.com/checkd/checkd/store"
)

// dataset is the run's connections: sandbox user_good, PENDING and due at
// creation, spread over several companies.
type dataset struct {
	e         *env
	companies []string
	ids       []string
	created   []time.Time // creation time = first due slot
	loadN     int
	loadTook  time.Duration
	loadCost  string
	mem0      int64 // used_memory (less client buffers) before the load

	// sweptAt is the now of the sweep that moved every connection to its
	// next slot (zero: not swept); nothing is due at it afterwards.
	sweptAt time.Time
	// checked: ids[:checked] had their first check recorded.
	checked int
}

// loadChunk is how many connections one CreateConnections call creates (it
// pipelines them 500 per round trip).
const loadChunk = 5000

// load creates n connections with store.CreateConnections, one goroutine
// per company.
func (d *dataset) load(ctx context.Context, n int) error {
	e := d.e
	var err error
	if d.mem0, err = datasetMemory(ctx, e.rdb); err != nil {
		return err
	}
	nco := max(1, min(e.sz.Companies, n/1000))
	for i := range nco {
		co, err := e.st.CreateCompany(ctx, store.NewCompany{Name: fmt.Sprintf("bench company %d", i+1)})
		if err != nil {
			return err
		}
		d.companies = append(d.companies, co.ID)
	}
	e.logf("loading %d connections over %d companies", n, nco)
	m := startMeter(ctx, e.rdb, e.rt)
	began := time.Now()
	per := make([][]store.Connection, nco)
	var done atomic.Int64
	var wg sync.WaitGroup
	errs := make([]error, nco)
	for c := range nco {
		share := n / nco
		if c < n%nco {
			share++
		}
		wg.Go(func() {
			in := make([]store.NewConnection, 0, loadChunk)
			for left := share; left > 0; {
				k := min(loadChunk, left)
				in = in[:0]
				for range k {
					in = append(in, store.NewConnection{Datasource: sandbox.Datasource,
						Credentials: checks.Credentials{Username: sandbox.UserGood, Password: "bench-password"}})
				}
				cs, err := e.st.CreateConnections(ctx, d.companies[c], in)
				per[c] = append(per[c], cs...)
				if err != nil {
					errs[c] = err
					return
				}
				left -= k
				if v := done.Add(int64(k)); v%100_000 < int64(k) {
					e.logf("  %d connections created", v)
				}
			}
		})
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			return err
		}
	}
	d.loadTook = time.Since(began)
	m.stop(ctx)
	d.loadCost = m.perItem(n)
	d.loadN = n
	// Interleave the companies, so any prefix of ids spans all of them.
	d.ids = make([]string, 0, n)
	d.created = make([]time.Time, 0, n)
	for i := 0; len(d.ids) < n; i++ {
		for c := range per {
			if i < len(per[c]) {
				d.ids = append(d.ids, per[c][i].ID)
				d.created = append(d.created, per[c][i].CreatedAt)
			}
		}
	}
	e.logf("loaded %d connections in %s (%.0f/s); %s", n, d.loadTook.Round(time.Millisecond), float64(n)/d.loadTook.Seconds(), d.loadCost)
	return nil
}

// The scheduler's claim batch and per-tick cap in the measures: the ones
// every run in BENCHMARKS.md used (the scheduler's own defaults until they
// moved to configs/checkd.yaml, which runs the daemon with 500 and 10,000).
const (
	benchBatchSize  = 1000
	benchMaxPerTick = 50000
)

// newScheduler returns a scheduler over the dataset with quiet logs and
// the daemon's settings but for benchBatchSize; maxPerTick 0 is
// benchMaxPerTick, concurrency 0 the daemon's enqueue concurrency.
func (e *env) newScheduler(st *store.Store, maxPerTick, concurrency int) (*scheduler.Scheduler, error) {
	// The daemon's enqueuer: an asynq client over the store's shared client.
	aq := asynq.NewClientFromRedisClient(st.SharedClient())
	cfg := scheduler.ConfigFrom(configs.Default())
	cfg.BatchSize, cfg.MaxPerTick, cfg.Logger = benchBatchSize, cmp.Or(maxPerTick, benchMaxPerTick), e.quiet
	cfg.EnqueueConcurrency = cmp.Or(concurrency, cfg.EnqueueConcurrency)
	return scheduler.New(st, aq, cfg)
}

// ensureSwept sweeps the dataset (unmeasured) unless P1 did, then empties
// the queues: afterwards nothing is due at d.sweptAt.
func (d *dataset) ensureSwept(ctx context.Context) error {
	if !d.sweptAt.IsZero() {
		return nil
	}
	e := d.e
	sch, err := e.newScheduler(e.st, len(d.ids)+1, 0)
	if err != nil {
		return err
	}
	now := time.Now()
	st, err := sch.Tick(ctx, now)
	if err != nil {
		return err
	}
	if st.Enqueued != len(d.ids) {
		return fmt.Errorf("sweep enqueued %d of %d connections", st.Enqueued, len(d.ids))
	}
	d.sweptAt = now
	return flushAsynq(ctx, e.rdb)
}

// checkRange records one sandbox check (user_good, zero latency) of
// ids[lo:hi] with store.LoadCheck and RecordCheck in goroutines, as a
// worker would without asynq, through the store with no group-commit
// window (its goroutines call back to back).
func (d *dataset) checkRange(ctx context.Context, lo, hi, goroutines int, slot time.Time) (int, error) {
	e := d.e
	sb := sandbox.New(sandbox.Options{})
	var next atomic.Int64
	next.Store(int64(lo))
	var applied atomic.Int64
	var firstErr error
	var mu sync.Mutex
	var wg sync.WaitGroup
	for range goroutines {
		wg.Go(func() {
			for {
				i := int(next.Add(1) - 1)
				if i >= hi || ctx.Err() != nil {
					return
				}
				err := func() error {
					id := d.ids[i]
					t, err := e.loader.LoadCheck(ctx, id)
					if err != nil {
						return err
					}
					if t.Skip != checks.SkipNone {
						return fmt.Errorf("connection %s skipped: %s", id, t.Skip)
					}
					started := time.Now()
					res, err := sb.Check(ctx, t.Request)
					if err != nil {
						return err
					}
					rec, err := e.loader.RecordCheck(ctx, t, store.CheckResult{Attempt: tasks.CheckTaskID(id, slot),
						StartedAt: started, FinishedAt: time.Now(), Result: res})
					if err != nil {
						return err
					}
					if rec.Outcome == store.Applied {
						applied.Add(1)
					}
					return nil
				}()
				if err != nil {
					mu.Lock()
					if firstErr == nil {
						firstErr = err
					}
					mu.Unlock()
					return
				}
			}
		})
	}
	wg.Wait()
	return int(applied.Load()), firstErr
}

// enqueueChecks enqueues check tasks for ids[i % len(ids)], i in [0, n),
// slot base+i ms (distinct task IDs), with goroutines enqueuers; it returns
// the wall time.
func enqueueChecks(ctx context.Context, aq *asynq.Client, ids []string, n int, slotOf func(i int) time.Time, goroutines int, opts ...asynq.Option) (time.Duration, error) {
	var next atomic.Int64
	var failed atomic.Int64
	var firstErr atomic.Value
	var wg sync.WaitGroup
	began := time.Now()
	for range goroutines {
		wg.Go(func() {
			for {
				i := int(next.Add(1) - 1)
				if i >= n {
					return
				}
				t, err := tasks.NewCheckTask(ids[i%len(ids)], slotOf(i), tasks.ReasonScheduled, opts...)
				if err == nil {
					_, err = aq.EnqueueContext(ctx, t)
				}
				if err != nil {
					if failed.Add(1) == 1 {
						firstErr.Store(err)
					}
				}
			}
		})
	}
	wg.Wait()
	took := time.Since(began)
	if f := failed.Load(); f > 0 {
		return took, fmt.Errorf("%d of %d enqueues failed, first: %v", f, n, firstErr.Load())
	}
	return took, nil
}
