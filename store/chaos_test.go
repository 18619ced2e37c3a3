package store

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/checkd/checkd/checks"
)

// TestConcurrentOperations is a chaos test of the store: workers, admins,
// company toggles, a scheduler and a clock act at once on six connections
// in two companies, each goroutine for a fixed number of iterations with
// its own math/rand stream from one seed (CHAOS_SEED replays the choices
// of a failed run; the interleaving is the Go scheduler's, so a replay may
// need -count). Every error must be one the method documents. Every
// chaosCheckEvery the test pauses all goroutines between their store
// calls (checkpoint: every write is atomic, so the index invariants, the
// companies' flags and the status fields must hold then, not only at the
// end, where a later write could hide a broken state); after all
// goroutines stop, overtaken company changes are finished and the same
// holds, and history and change events agree with each other and with the
// final statuses.
func TestConcurrentOperations(t *testing.T) {
	for _, bk := range []struct {
		name string
		b    backend
	}{{"miniredis", miniBackend}, {"redis", realBackend}} {
		t.Run(bk.name, func(t *testing.T) {
			t.Parallel()
			seed := rand.Uint64()
			if v := os.Getenv("CHAOS_SEED"); v != "" {
				var err error
				if seed, err = strconv.ParseUint(v, 10, 64); err != nil {
					t.Fatalf("CHAOS_SEED=%q: %v", v, err)
				}
			}
			t.Cleanup(func() {
				if t.Failed() {
					t.Logf("seed %d: replay with CHAOS_SEED=%d go test ./store/ -run 'TestConcurrentOperations/%s'", seed, seed, bk.name)
				}
			})
			runChaos(t, bk.b, seed)
		})
	}
}

// Iterations of each goroutine: about 2.5 s per backend on 2 cores (both
// run in parallel), 6 s with -race.
const (
	chaosWorkers      = 3
	chaosWorkerIters  = 800
	chaosAdminIters   = 400
	chaosCompanyIters = 130
	chaosTicks        = 250
	chaosClockIters   = 800
	chaosConns        = 6
	chaosCheckEvery   = 40 * time.Millisecond
)

type chaosRun struct {
	t    *testing.T
	f    *fixture
	seed uint64
	cos  []string
	ids  []string // connections; ids[i] belongs to cos[i%2]

	// gate: every goroutine but the clock holds it (shared) while it calls
	// the store, and lets go of it while it sleeps; a checkpoint takes it
	// (exclusive) to look at the store between calls.
	gate sync.RWMutex

	mu    sync.Mutex
	queue []task
	log   []string // what every goroutine did, in order, for failures
	stats map[string]int
	// reported: failures reported so far, each once.
	reported map[string]bool
	dumps    int
	// toggleErr: a SetCompanyActive of the company was overtaken.
	toggleErr map[string]bool
	pace      *pacer
}

func (c *chaosRun) rng(stream uint64) *rand.Rand { return rand.New(rand.NewPCG(c.seed, stream)) }

// sleep ends a goroutine's step and lets up to steps of the others' land
// before its next one (so admin actions land between a check's load and
// its record), letting a checkpoint in meanwhile. It waits on the other
// goroutines' steps, not on time.
func (c *chaosRun) sleep(steps int) {
	c.gate.RUnlock()
	c.pace.pause(steps)
	c.gate.RLock()
}

// pacer spreads the goroutines' steps: pause ends the caller's step and
// waits until n more steps were taken by all, or until every goroutine
// still running waits too (then nobody could take one).
type pacer struct {
	mu      sync.Mutex
	cond    *sync.Cond
	steps   int64
	running int
	waiting int
}

func newPacer() *pacer {
	p := &pacer{}
	p.cond = sync.NewCond(&p.mu)
	return p
}

func (p *pacer) pause(n int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.steps++
	target := p.steps + int64(n)
	p.waiting++
	p.cond.Broadcast()
	for p.steps < target && p.waiting < p.running {
		p.cond.Wait()
	}
	p.waiting--
}

// add counts a goroutine in (n 1) or out (n -1).
func (p *pacer) add(n int) {
	p.mu.Lock()
	p.running += n
	p.cond.Broadcast()
	p.mu.Unlock()
}

func (c *chaosRun) count(what string) {
	c.mu.Lock()
	c.stats[what]++
	c.mu.Unlock()
}

func (c *chaosRun) logf(format string, args ...any) {
	s := fmt.Sprintf(format, args...)
	c.mu.Lock()
	c.log = append(c.log, s)
	c.mu.Unlock()
}

// errorf reports a failure once (a checkpoint sees a lasting one again).
func (c *chaosRun) errorf(format string, args ...any) {
	c.t.Helper()
	msg := fmt.Sprintf(format, args...)
	c.mu.Lock()
	seen := c.reported[msg]
	c.reported[msg] = true
	c.mu.Unlock()
	if !seen {
		c.t.Errorf("seed %d: %s", c.seed, msg)
	}
}

// allowed reports an error that is none of the documented ones.
func (c *chaosRun) allowed(op string, err error, ok ...error) {
	c.t.Helper()
	if err == nil {
		return
	}
	for _, e := range ok {
		if errors.Is(err, e) {
			return
		}
	}
	c.errorf("%s: unexpected error %v", op, err)
}

// name is a connection's ID and its company's index, for the log.
func (c *chaosRun) name(id string) string {
	i := slices.Index(c.ids, id)
	return fmt.Sprintf("%s/co%d", id, i%2)
}

func (c *chaosRun) enqueue(k task) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, q := range c.queue {
		if q.id() == k.id() {
			return // asynq refuses a second task of the same ID
		}
	}
	c.queue = append(c.queue, k)
}

func (c *chaosRun) pop(r *rand.Rand) (task, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.queue) == 0 {
		return task{}, false
	}
	i := r.IntN(len(c.queue))
	k := c.queue[i]
	c.queue = slices.Delete(c.queue, i, i+1)
	return k, true
}

// afterChange is the API's answer to an admin write asking for a check.
func (c *chaosRun) afterChange(ch Change) {
	if !ch.CheckNow {
		return
	}
	s, ctx := c.f.s, c.f.ctx
	ok, err := s.MarkQueued(ctx, ch.Connection.ID)
	c.allowed("MarkQueued", err)
	if !ok {
		return
	}
	c.enqueue(task{ch.Connection.ID, ch.DueAt})
	_, err = s.ServeDue(ctx, ch.Connection.ID, ch.DueAt)
	c.allowed("ServeDue", err)
}

func runChaos(t *testing.T, b backend, seed uint64) {
	f := newFixture(t, b, func(c *Config) {
		c.Interval = time.Hour // sweeps find weekly slots as the clock moves
		c.HistoryLimit = 100000
	})
	co2, err := f.s.CreateCompany(f.ctx, NewCompany{Name: "Second Co"})
	if err != nil {
		t.Fatal(err)
	}
	c := &chaosRun{t: t, f: f, seed: seed, cos: []string{f.co.ID, co2.ID}, toggleErr: map[string]bool{}, stats: map[string]int{}, reported: map[string]bool{}, pace: newPacer()}
	for i := range chaosConns {
		cn, err := f.s.CreateConnection(f.ctx, NewConnection{CompanyID: c.cos[i%2], Datasource: "sandbox",
			Name: fmt.Sprint("conn ", i), Credentials: checks.Credentials{Username: "user_good", Password: "pw"}})
		if err != nil {
			t.Fatal(err)
		}
		c.ids = append(c.ids, cn.ID)
	}

	start := time.Now()
	var wg sync.WaitGroup
	goFn := func(name string, fn func()) {
		wg.Add(1)
		c.pace.add(1)
		go func() {
			defer wg.Done()
			defer c.pace.add(-1)
			if name != "clock" {
				c.gate.RLock()
				defer c.gate.RUnlock()
			}
			t0 := time.Now()
			fn()
			c.count(fmt.Sprintf("%s ms=%d", name, time.Since(t0).Milliseconds()))
		}()
	}
	for w := range chaosWorkers {
		goFn(fmt.Sprint("worker", w), func() { c.worker(w, c.rng(uint64(w))) })
	}
	goFn("toggler", func() { c.toggler(c.rng(100)) })
	goFn("connAdmin", func() { c.connAdmin(c.rng(102)) })
	goFn("accountAdmin", func() { c.accountAdmin(c.rng(101)) })
	for i := range c.cos {
		goFn(fmt.Sprint("companyAdmin", i), func() { c.companyAdmin(i, c.rng(200+uint64(i))) })
	}
	goFn("scheduler", func() { c.scheduler(c.rng(300)) })
	goFn("clock", func() { c.clock(c.rng(400)) })
	done := make(chan struct{})
	go func() {
		wg.Wait()
		close(done)
	}()
	for n := 1; ; n++ {
		select {
		case <-done:
		case <-time.After(chaosCheckEvery):
			c.gate.Lock()
			c.checkpoint(n)
			c.gate.Unlock()
			continue
		}
		break
	}
	t.Logf("seed %d: goroutines ran %v: %v", seed, time.Since(start).Round(time.Millisecond), c.stats)

	failed := t.Failed()
	c.settle()
	if !failed && t.Failed() {
		c.dumpLog("")
	}
}

// worker runs checks as the worker does: a queued task, or a direct check
// of a random connection (an API refresh that bypassed the queue).
func (c *chaosRun) worker(w int, r *rand.Rand) {
	s, ctx, clk := c.f.s, c.f.ctx, c.f.clk
	for i := range chaosWorkerIters {
		k, fromQueue := c.pop(r)
		attempt := fmt.Sprintf("w%d-%d", w, i)
		if fromQueue {
			attempt = k.id()
		} else {
			k = task{conn: c.ids[r.IntN(len(c.ids))]}
		}
		tg, err := s.LoadCheck(ctx, k.conn)
		if err != nil {
			c.errorf("LoadCheck(%s): %v", k.conn, err)
			continue
		}
		if tg.Skip == checks.SkipNone && fromQueue && tg.Served(k.slot) {
			tg.Skip = checks.SkipServed
		}
		if tg.Skip != checks.SkipNone {
			c.count("skip " + string(tg.Skip))
			c.allowed("ClearQueued", s.ClearQueued(ctx, k.conn))
			c.sleep(r.IntN(6)) // the next task comes
			continue
		}
		started := clk.Now()
		if r.IntN(3) == 0 { // admin actions land between load and record
			c.sleep(r.IntN(8))
		}
		b := byte(r.Uint32())
		if r.IntN(2) == 0 {
			b = byte(r.IntN(3)) * 11 // CONNECTED (see resultStatuses), with a detail or not
		}
		res := decodeResult(b, byte(r.Uint32()))
		finished := clk.Now()
		rec, err := s.RecordCheck(ctx, tg, CheckResult{Attempt: attempt, StartedAt: started, FinishedAt: finished, Result: res})
		c.allowed("RecordCheck", err, ErrConflict)
		if err != nil {
			continue
		}
		c.count(string(rec.Outcome))
		c.logf("w%d record %s %s started %d finished %d %s: %s %s→%s", w, c.name(k.conn), attempt, ms(started), ms(finished),
			res.Normalized().Status, rec.Outcome, rec.From, rec.To)
		switch rec.Outcome {
		case Applied:
			if rec.To != res.Normalized().Status {
				c.errorf("RecordCheck(%s) applied %s but reports → %s", k.conn, res.Normalized().Status, rec.To)
			}
		case Duplicate, Stale, Fenced, Ineligible:
			if rec.From != rec.To {
				c.errorf("RecordCheck(%s) %s reports %s → %s", k.conn, rec.Outcome, rec.From, rec.To)
			}
			c.allowed("ClearQueued", s.ClearQueued(ctx, k.conn))
		default:
			c.errorf("RecordCheck(%s): outcome %q", k.conn, rec.Outcome)
		}
	}
}

// toggler deactivates a connection and reactivates it a moment later, so
// the reactivations land in every phase of everything else.
func (c *chaosRun) toggler(r *rand.Rand) {
	for range chaosAdminIters {
		id := c.ids[r.IntN(len(c.ids))]
		c.setActive(id, false)
		c.sleep(r.IntN(10))
		c.setActive(id, r.IntN(5) != 0) // now and then it stays deactivated
		c.sleep(r.IntN(12))
	}
}

func (c *chaosRun) setActive(id string, active bool) {
	ch, err := c.f.s.UpdateDetails(c.f.ctx, id, DetailsPatch{IsActive: &active})
	c.allowed("UpdateDetails(isActive)", err, ErrConflict)
	c.logf("admin isActive=%v %s: %v checkNow=%v status=%s", active, c.name(id), err, ch.CheckNow, ch.Connection.Status)
	if err == nil {
		c.afterChange(ch)
	}
}

// connAdmin renames connections and updates their credentials.
func (c *chaosRun) connAdmin(r *rand.Rand) {
	s, ctx := c.f.s, c.f.ctx
	for range chaosAdminIters {
		c.sleep(r.IntN(20))
		id := c.ids[r.IntN(len(c.ids))]
		if r.IntN(3) == 0 {
			names := []string{"Electric", " Gas ", "bad\x1bname", ""}
			name := names[r.IntN(len(names))]
			_, err := s.UpdateDetails(ctx, id, DetailsPatch{Name: &name})
			if nameProblem(strings.TrimSpace(name)) != "" {
				if !errors.Is(err, ErrInvalid) {
					c.errorf("UpdateDetails(name %q): %v, want ErrInvalid", name, err)
				}
				continue
			}
			c.allowed("UpdateDetails(name)", err, ErrConflict)
			continue
		}
		users := []string{"user_good", "user_new", "user_good", ""}
		user := users[r.IntN(len(users))]
		ch, err := s.UpdateCredentials(ctx, id, checks.Credentials{Username: user, Password: "pw2"})
		if user == "" {
			if !errors.Is(err, ErrInvalid) {
				c.errorf("UpdateCredentials without a username: %v, want ErrInvalid", err)
			}
			continue
		}
		c.allowed("UpdateCredentials", err, ErrConflict)
		c.logf("admin credentials %s: %v checkNow=%v status=%s", c.name(id), err, ch.CheckNow, ch.Connection.Status)
		if err == nil {
			c.afterChange(ch)
		}
	}
}

// accountAdmin confirms and rejects accounts and asks for refreshes.
func (c *chaosRun) accountAdmin(r *rand.Rand) {
	s, ctx, clk := c.f.s, c.f.ctx, c.f.clk
	for range chaosAdminIters {
		c.sleep(r.IntN(20))
		id := c.ids[r.IntN(len(c.ids))]
		if r.IntN(3) == 0 {
			cn, err := s.Refreshable(ctx, id)
			c.allowed("Refreshable", err, ErrNotAllowed)
			if err != nil {
				continue
			}
			ok, err := s.MarkQueued(ctx, cn.ID)
			c.allowed("MarkQueued", err)
			if ok {
				c.enqueue(task{cn.ID, clk.Now()})
			}
			continue
		}
		cur, err := s.GetConnection(ctx, id)
		if err != nil {
			c.errorf("GetConnection(%s): %v", id, err)
			continue
		}
		var ds []AccountDecision
		for _, ac := range cur.Accounts {
			switch r.IntN(3) {
			case 0:
				ds = append(ds, AccountDecision{AccountID: ac.ID, TrackingStatus: checks.TrackingEnabled})
			case 1:
				ds = append(ds, AccountDecision{AccountID: ac.ID, TrackingStatus: checks.TrackingDisabled})
			}
		}
		if r.IntN(8) == 0 {
			ds = append(ds, AccountDecision{AccountID: "ac_0000000000", TrackingStatus: checks.TrackingEnabled})
		}
		if len(ds) == 0 {
			continue
		}
		_, err = s.ConfirmAccounts(ctx, id, ds)
		c.allowed("ConfirmAccounts", err, ErrInvalid, ErrNotAllowed, ErrConflict)
		c.logf("admin confirm %s %v: %v", c.name(id), ds, err)
	}
}

// companyAdmin toggles its company, and now and then the other one, so
// two requests for one company overlap.
func (c *chaosRun) companyAdmin(i int, r *rand.Rand) {
	s, ctx := c.f.s, c.f.ctx
	for range chaosCompanyIters {
		co := c.cos[i]
		if r.IntN(5) == 0 {
			co = c.cos[1-i]
		}
		active := r.IntN(3) != 0
		_, err := s.SetCompanyActive(ctx, co, active)
		var toggled *CompanyToggledError
		if errors.As(err, &toggled) || errors.Is(err, ErrConflict) {
			c.mu.Lock()
			c.toggleErr[co] = true
			c.mu.Unlock()
		} else {
			c.allowed("SetCompanyActive", err)
		}
		c.count(fmt.Sprintf("company active=%v err=%v", active, err != nil))
		c.logf("company co%d active=%v: %v", slices.Index(c.cos, co), active, err)
		pause := 12 // short inactive spells, so most checks find their company active
		if active {
			pause = 100
		}
		c.sleep(r.IntN(pause))
	}
}

// scheduler ticks: claims the on-demand due index, then sweeps the weekly
// schedule, as the scheduler does; now and then it dies before
// acknowledging a claim, or an enqueue fails.
func (c *chaosRun) scheduler(r *rand.Rand) {
	s, ctx, clk := c.f.s, c.f.ctx, c.f.clk
	for range chaosTicks {
		now := clk.Now()
		lease := now.Add(5 * time.Minute)
		for range 10 {
			items, err := s.claimDue(ctx, now, lease, 3)
			c.allowed("claimDue", err)
			for _, it := range items {
				c.enqueue(task{it.ConnectionID, it.Slot})
			}
			if len(items) > 0 && r.IntN(6) != 0 {
				_, err := s.ackDue(ctx, items)
				c.allowed("ackDue", err)
			}
			if len(items) < 3 {
				break
			}
		}
		sw, err := s.BeginSweep(ctx, now, 5*time.Minute)
		c.allowed("BeginSweep", err)
		if sw != nil {
			for range 100 {
				items, err := sw.Next(ctx, 3)
				c.allowed("Sweep.Next", err)
				if len(items) == 0 {
					break
				}
				c.sleep(r.IntN(6)) // enqueueing takes a while
				okv := make([]bool, len(items))
				for i, it := range items {
					okv[i] = r.IntN(4) != 0 // the enqueue failed
					c.count("sweep item")
					if okv[i] {
						c.enqueue(task{it.ConnectionID, it.Slot})
					}
				}
				c.logf("sweep %v ok %v", items, okv)
				c.allowed("Sweep.Ack", sw.Ack(ctx, items, okv))
			}
			c.allowed("Sweep.End", sw.End(ctx))
		}
		c.sleep(r.IntN(48))
	}
}

// clock moves the fake clock forward (the only goroutine that does).
func (c *chaosRun) clock(r *rand.Rand) {
	steps := []time.Duration{0, time.Millisecond, time.Second, time.Minute, 7 * time.Minute}
	for range chaosClockIters {
		c.f.clk.Advance(steps[r.IntN(len(steps))])
		c.pace.pause(r.IntN(16))
	}
}

// checkpoint checks the store between calls, while every goroutine
// pauses: each write is atomic and every call has returned, so the indexes
// agree with the records and each company's connections with its flag
// (a SetCompanyActive overtaken by a later one leaves the conversion to
// the later one, which has returned too).
func (c *chaosRun) checkpoint(n int) {
	c.t.Helper()
	failed, known := c.t.Failed(), len(c.reported)
	c.f.invariants()
	for _, co := range c.cos {
		c.checkCompany(co)
	}
	if (!failed && c.t.Failed()) || len(c.reported) > known {
		c.t.Errorf("seed %d: checkpoint %d failed (above)", c.seed, n)
		if c.dumps < 4 {
			c.dumps++
			c.dumpLog("")
		}
	}
	c.count("checkpoint")
}

// settle finishes company conversions overtaken by a later request, then
// checks the final state.
func (c *chaosRun) settle() {
	t, s, ctx := c.t, c.f.s, c.f.ctx
	// A company whose every request returned without error must agree
	// with its flag as it is: no second call.
	for _, co := range c.cos {
		if !c.toggleErr[co] {
			c.checkCompany(co)
		}
	}
	// An overtaken or interrupted run: calling it again finishes it (the
	// flag as the last request left it).
	for _, co := range c.cos {
		if !c.toggleErr[co] {
			continue
		}
		cur, err := s.GetCompany(ctx, co)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := s.SetCompanyActive(ctx, co, cur.IsActive); err != nil {
			c.errorf("SetCompanyActive(%s, %v) at rest: %v", co, cur.IsActive, err)
		}
		c.checkCompany(co)
	}
	c.f.invariants()
	counts, err := s.StatusCounts(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for st, n := range counts {
		if n < 0 {
			c.errorf("status counter %s = %d", st, n)
		}
	}
	c.checkHistoryAndEvents()
}

// checkCompany checks every connection of co against its flag and the
// static rules of the status fields.
func (c *chaosRun) checkCompany(co string) {
	s, ctx := c.f.s, c.f.ctx
	company, err := s.GetCompany(ctx, co)
	if err != nil {
		c.t.Fatal(err)
	}
	for _, id := range c.ids {
		cur := c.f.get(id)
		if cur.CompanyID != co {
			continue
		}
		c.checkConn(cur, company.IsActive)
	}
}

func (c *chaosRun) checkConn(cur Connection, coActive bool) {
	id := cur.ID
	if !coActive && cur.Status != checks.ConnCompanyInactive {
		c.errorf("%s is %s under an inactive company", id, cur.Status)
	}
	if coActive && cur.Status == checks.ConnCompanyInactive {
		c.errorf("%s is COMPANY_INACTIVE under an active company", id)
	}
	if !cur.IsActive && cur.Status != checks.ConnDeactivated && cur.Status != checks.ConnCompanyInactive {
		c.errorf("%s is deactivated (isActive false) but %s", id, cur.Status)
	}
	if cur.IsActive && cur.Status == checks.ConnDeactivated {
		c.errorf("%s is DEACTIVATED with isActive true", id)
	}
	eligible := checks.Eligibility(cur.Status, cur.IsActive, coActive) == checks.SkipNone
	if eligible != (cur.NextCheckAt != nil) {
		c.errorf("%s (%s, isActive %v, company active %v): next check %v", id, cur.Status, cur.IsActive, coActive, cur.NextCheckAt)
	}
	if cur.StatusFirstSeenTime.After(cur.StatusLastUpdateTime) {
		c.errorf("%s (%s): statusFirstSeenTime %v after statusLastUpdateTime %v", id, cur.Status, cur.StatusFirstSeenTime, cur.StatusLastUpdateTime)
	}
	if cur.Status.Category() == checks.CategoryHealthy && cur.StatusErrorDetail != "" {
		c.errorf("%s: healthy status %s with detail %q", id, cur.Status, cur.StatusErrorDetail)
	}
	if cur.ConsecutiveFailures < 0 {
		c.errorf("%s: consecutiveFailures %d", id, cur.ConsecutiveFailures)
	}
	if cur.LastSuccessAt != nil && (cur.LastCheckAt == nil || cur.LastSuccessAt.After(*cur.LastCheckAt)) {
		c.errorf("%s: lastSuccessAt %v, lastCheckAt %v", id, cur.LastSuccessAt, cur.LastCheckAt)
	}
	seen := map[string]bool{}
	for _, ac := range cur.Accounts {
		if seen[ac.AccountNumber] {
			c.errorf("%s: account number %s twice", id, ac.AccountNumber)
		}
		seen[ac.AccountNumber] = true
		if !coActive && ac.Status != checks.AcctCompanyInactive {
			c.errorf("%s: account %s is %s under an inactive company", id, ac.ID, ac.Status)
		}
		if coActive && ac.Status == checks.AcctCompanyInactive {
			c.errorf("%s: account %s is COMPANY_INACTIVE under an active company", id, ac.ID)
		}
		if ac.StatusFirstSeenTime.After(ac.StatusLastUpdateTime) {
			c.errorf("%s: account %s (%s): statusFirstSeenTime %v after statusLastUpdateTime %v", id, ac.ID, ac.Status,
				ac.StatusFirstSeenTime, ac.StatusLastUpdateTime)
		}
		if ac.Status.Category() == checks.CategoryHealthy && ac.StatusErrorDetail != "" {
			c.errorf("%s: account %s healthy status %s with detail %q", id, ac.ID, ac.Status, ac.StatusErrorDetail)
		}
		if ac.CreatedAt.After(ac.StatusFirstSeenTime) {
			c.errorf("%s: account %s created %v after its status was first seen %v", id, ac.ID, ac.CreatedAt, ac.StatusFirstSeenTime)
		}
		if coActive && ac.TrackingStatus == checks.TrackingDisabled && ac.Status != checks.AcctCustomerNotTracked {
			c.errorf("%s: rejected account %s is %s, want CUSTOMER_NOT_TRACKED", id, ac.ID, ac.Status)
		}
	}
}

// chaosTr is one status transition of a connection (acct "") or of one of
// its accounts, as history and the event stream tell it.
type chaosTr struct {
	acct, from, to, cause string
	t                     int64
}

// checkHistoryAndEvents: each connection's history (kept whole:
// HistoryLimit is large) and its change events tell the same transitions,
// subject by subject in the same order, each subject's transitions chain
// (from = the previous to), and the last one ends at the current status
// (for the connection, at its statusFirstSeenTime).
func (c *chaosRun) checkHistoryAndEvents() {
	s, ctx := c.f.s, c.f.ctx
	var evs []Event
	for after := ""; ; {
		page, err := s.Events(ctx, after, 1000)
		if err != nil {
			c.t.Fatal(err)
		}
		if len(page) == 0 {
			break
		}
		evs = append(evs, page...)
		after = page[len(page)-1].ID
	}
	fromEvents := map[string][]chaosTr{}
	for _, ev := range evs {
		t := ms(ev.Time)
		if st, ok := ev.New["status"].(string); ok {
			old, _ := ev.Old["status"].(string)
			fromEvents[ev.ConnectionID] = append(fromEvents[ev.ConnectionID], chaosTr{"", old, st, ev.Cause, t})
			// A new status is first seen at the event, but a restored one
			// keeps its own, older, statusFirstSeenTime.
			first, _ := ev.New["statusFirstSeenTime"].(string)
			at, err := time.Parse(time.RFC3339Nano, first)
			restored := ev.Cause == CauseReactivated || ev.Cause == CauseCompanyReactivate
			if ev.Type == EventConnectionUpdated && (err != nil || at.After(ev.Time) || !restored && !at.Equal(ev.Time)) {
				c.errorf("%s: event %s (%s) new statusFirstSeenTime %s, event time %v", ev.ConnectionID, ev.ID, ev.Cause, first, ev.Time)
			}
		}
		accts, _ := ev.New["accounts"].([]any)
		for _, a := range accts {
			m, _ := a.(map[string]any)
			id, _ := m["id"].(string)
			from, _ := m["from"].(string)
			to, _ := m["to"].(string)
			fromEvents[ev.ConnectionID] = append(fromEvents[ev.ConnectionID], chaosTr{id, from, to, ev.Cause, t})
		}
	}
	for _, id := range c.ids {
		cur := c.f.get(id)
		h, err := s.History(ctx, id, 0)
		if err != nil {
			c.t.Fatal(err)
		}
		var fromHist []chaosTr
		for i := len(h) - 1; i >= 0; i-- { // oldest first
			e := h[i]
			fromHist = append(fromHist, chaosTr{e.AccountID, e.From, e.To, e.Cause, ms(e.Time)})
		}
		bySubject := func(trs []chaosTr) map[string][]chaosTr {
			m := map[string][]chaosTr{}
			for _, tr := range trs {
				m[tr.acct] = append(m[tr.acct], tr)
			}
			return m
		}
		hs, es := bySubject(fromHist), bySubject(fromEvents[id])
		want := map[string]string{"": string(cur.Status)}
		first := map[string]int64{"": ms(cur.StatusFirstSeenTime)}
		for _, ac := range cur.Accounts {
			want[ac.ID] = string(ac.Status)
			first[ac.ID] = ms(ac.StatusFirstSeenTime)
		}
		for subj, st := range want {
			name := id
			if subj != "" {
				name = id + " account " + subj
			}
			if !slices.Equal(hs[subj], es[subj]) {
				c.errorf("%s: history and change events disagree:\nhistory %v\nevents  %v", name, hs[subj], es[subj])
			}
			trs := hs[subj]
			if len(trs) == 0 {
				c.errorf("%s: no history", name)
				continue
			}
			for i, tr := range trs {
				prev := ""
				if i > 0 {
					prev = trs[i-1].to
				}
				if tr.from != prev {
					c.errorf("%s: history transition %d %s → %s does not follow %q: %v", name, i, tr.from, tr.to, prev, trs)
					break
				}
			}
			last := trs[len(trs)-1]
			if last.to != st {
				c.errorf("%s: newest history entry says %s (cause %s), status is %s", name, last.to, last.cause, st)
			}
			// The status is first seen at its newest transition, or before
			// when that restored it (reactivation keeps its since).
			restored := last.cause == CauseReactivated || last.cause == CauseCompanyReactivate
			if last.t != first[subj] && !(restored && first[subj] < last.t) {
				c.errorf("%s: newest transition to %s (%s) at %d, statusFirstSeenTime %d", name, last.to, last.cause, last.t, first[subj])
			}
		}
	}
}

// dumpLog prints the run's log, or the lines that mention id.
func (c *chaosRun) dumpLog(id string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	lines := c.log
	if len(lines) > 150 {
		lines = lines[len(lines)-150:]
	}
	var b strings.Builder
	for _, l := range lines {
		if id == "" || strings.Contains(l, id) {
			b.WriteString(l)
			b.WriteByte('\n')
		}
	}
	c.t.Logf("log (last %d operations):\n%s", len(lines), b.String())
}
