package store

import (
	"context"
	"errors"
	"fmt"
	"os"
	"slices"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/checkd/checkd/checks"
)

// FuzzOperations is a stateful fuzz test of the store: the input is decoded
// into a short sequence of operations over a few connections in two
// companies, applied through the store's public API as the API, the worker
// and the scheduler apply them. After every operation the indexes must
// agree with the records (fixture.invariants) and the status rules of
// docs/architecture.md and the methods' doc comments must hold, checked
// against a small reference model (opsModel).
func FuzzOperations(f *testing.F) {
	for _, seed := range opsSeeds() {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		runOps(t, data, os.Getenv("OPS_VERBOSE") != "")
	})
}

// Operation codes (the first byte of each operation, modulo opCount).
const (
	opCreate          = iota // a: company, b: username
	opRun                    // run a queued task through the worker path; a: task, b: result, c: duration
	opStart                  // load a queued task's check and keep it running; a: task
	opFinish                 // record a running check; a: which, b: result
	opCheckNow               // load + record at once (the fixture's record path); a: conn, b: result
	opDeactivate             // a: conn
	opReactivate             // a: conn
	opCompanyOff             // a: company
	opCompanyOn              // a: company
	opCredentials            // a: conn, b: username
	opRefresh                // a: conn
	opConfirm                // a: conn, b: decisions
	opPatchName              // a: conn, b: name
	opAdvance                // a: amount
	opTick                   // the scheduler's tick: claim due, then sweep the weekly schedule
	opRecordDuplicate        // record the last applied attempt of a conn again; a: conn, b: result
	// opCompanyOffRacing is SetCompanyActive(false) with a running check
	// recorded while it converts the company's connections: a: company,
	// b: how many status indexes it converted before the check lands,
	// c: the check's result.
	opCompanyOffRacing
	opCount
)

var opNames = [...]string{"create", "run", "start", "finish", "checkNow", "deactivate", "reactivate",
	"companyOff", "companyOn", "credentials", "refresh", "confirm", "patchName", "advance", "tick", "recordDuplicate",
	"companyOffRacing"}

const (
	maxOps   = 40
	maxConns = 4
)

// checker-returnable connection statuses (checks.Result.Validate).
var resultStatuses = []checks.ConnectionStatus{
	checks.ConnConnected, checks.ConnConnected, checks.ConnConnected, checks.ConnWebsiteDown,
	checks.ConnURLInaccessible, checks.ConnNoAccountsFound, checks.ConnOtherError, checks.ConnMFATokenExpired,
	checks.ConnPasswordIncorrect, checks.ConnNewPasswordNeeded, checks.ConnAdditionalCredentialsNeeded,
}

var pullOutcomes = []checks.AccountStatus{"", checks.AcctPullCompleted, checks.AcctNoDocumentsFound,
	checks.AcctPDFDownloadFailed, checks.AcctOtherError}

var acctNumbers = []string{"1000000001", "1000000002", "1000000003"}

var advances = []time.Duration{0, time.Millisecond, time.Second, time.Minute, 7 * time.Minute,
	time.Hour, 6 * time.Hour, 24 * time.Hour, 7 * 24 * time.Hour, 8 * 24 * time.Hour}

// opsReader hands out the input's bytes, zeros once it is exhausted.
type opsReader struct {
	b []byte
	i int
}

func (r *opsReader) more() bool { return r.i < len(r.b) }

func (r *opsReader) next() byte {
	if r.i >= len(r.b) {
		return 0
	}
	r.i++
	return r.b[r.i-1]
}

// decodeResult builds a check result from two bytes: the connection status,
// up to three accounts (a subset of acctNumbers), their pull outcomes and a
// detail.
func decodeResult(b, c byte) checks.Result {
	res := checks.Result{Status: resultStatuses[int(b)%len(resultStatuses)]}
	switch (b / 16) % 4 {
	case 1:
		res.Detail = "503 from portal"
	case 2:
		res.Detail = "quote \" backslash \\ <&> newline \n tab \t nul \x00"
	case 3:
		res.Detail = "é 😀 \u2028 invalid \xff UTF-8"
	}
	mask := c % 8
	for i, n := range acctNumbers {
		if mask&(1<<i) == 0 {
			continue
		}
		st := pullOutcomes[int(c/8+byte(i))%len(pullOutcomes)]
		a := checks.AccountResult{Number: n, Status: st}
		if st != "" && st != checks.AcctPullCompleted {
			a.Detail = "detail of " + string(st)
		}
		res.Accounts = append(res.Accounts, a)
	}
	return res
}

// task is a check task the test's queue holds (what asynq would hold).
type task struct {
	conn string
	slot time.Time
}

func (k task) id() string { return "check:" + k.conn + ":" + strconv.FormatInt(k.slot.UnixMilli(), 10) }

// running is a check loaded by the worker and not recorded yet.
type running struct {
	task    task
	target  *CheckTarget
	started time.Time
	gen     int // opsModel.conn.gen when loaded
}

// mConn is the reference model's view of a connection.
type mConn struct {
	id, company string
	status      checks.ConnectionStatus
	inactive    bool
	// saved is the status a system status (DEACTIVATED, COMPANY_INACTIVE)
	// replaced, to restore when it is lifted ("" none).
	saved checks.ConnectionStatus
	// savedFirst is the saved status's statusFirstSeenTime, which a
	// restore keeps; expectFirst is what the next status change must set
	// it to (zero: the change's time).
	savedFirst, expectFirst time.Time
	// savedAccts is each account's status before its company was
	// deactivated; savedAcctFirst, as checkTimes saw them, their
	// statusFirstSeenTime.
	savedAccts     map[string]checks.AccountStatus
	savedAcctFirst map[string]time.Time
	gen            int    // actions that void checks in flight
	started        int64  // start of the last applied check since the last voiding action
	attempt        string // last applied attempt
	history        []string
}

type opsModel struct {
	coActive map[string]bool
	conns    []*mConn
}

func (m *opsModel) conn(id string) *mConn {
	for _, c := range m.conns {
		if c.id == id {
			return c
		}
	}
	return nil
}

// restoreStatus is what lifting a system status restores: the saved status,
// PENDING when none (docs/architecture.md: reactivation restores every status; a
// connection that never had one is PENDING).
func (c *mConn) restoreStatus() checks.ConnectionStatus {
	if c.saved == "" || c.saved.Category() == checks.CategorySystem {
		return checks.ConnPending
	}
	return c.saved
}

// restore lifts a system status: the saved status with the
// statusFirstSeenTime it had (docs/architecture.md), or PENDING from now.
func (c *mConn) restore() {
	c.status = c.restoreStatus()
	c.expectFirst = time.Time{}
	if c.status == c.saved {
		c.expectFirst = c.savedFirst
	}
	c.saved = ""
}

// save keeps the status a system status replaces; before is the
// connection as it was.
func (c *mConn) save(before Connection) {
	if !isSystem(c.status) {
		c.saved, c.savedFirst = c.status, before.StatusFirstSeenTime
	}
}

func isSystem(s checks.ConnectionStatus) bool { return s.Category() == checks.CategorySystem }

type opsRun struct {
	t       *testing.T
	f       *fixture
	ctx     context.Context
	cos     []string
	m       opsModel
	queue   []task
	run     []running
	lastEv  string
	verbose bool
	step    int
	desc    string
	// before is every connection before the current operation (or its
	// last checkpoint).
	before map[string]Connection
	// converting is the company whose connections are being converted
	// at a checkpoint: its connections may not agree with its flag yet.
	converting string
	// lastRecorded is the check the current operation applied, if any.
	lastRecorded *recorded
}

func runOps(t *testing.T, data []byte, verbose bool) {
	f := newFixture(t, miniBackend, func(c *Config) {
		c.Interval = time.Hour // sweeps find weekly slots within the clock's jumps
		c.HistoryLimit = 100   // keep every element: the history is compared in full
		c.CheckBatchWindow = 0
	})
	co2, err := f.s.CreateCompany(f.ctx, NewCompany{Name: "Second Co"})
	if err != nil {
		t.Fatal(err)
	}
	o := &opsRun{t: t, f: f, ctx: f.ctx, cos: []string{f.co.ID, co2.ID}, verbose: verbose,
		m: opsModel{coActive: map[string]bool{f.co.ID: true, co2.ID: true}}}
	r := &opsReader{b: data}
	for o.step = 0; o.step < maxOps && r.more(); o.step++ {
		op := int(r.next()) % opCount
		a, b, c := r.next(), r.next(), r.next()
		o.before = o.observe()
		dump := o.dumpAll()
		o.desc = fmt.Sprintf("step %d %s(%d,%d,%d)", o.step, opNames[op], a, b, c)
		failed, wrote := o.apply(op, a, b, c)
		if o.verbose {
			var st []string
			for _, mc := range o.m.conns {
				st = append(st, string(mc.status))
			}
			t.Logf("%s failed=%v wrote=%v queue=%d running=%d %v", o.desc, failed, wrote, len(o.queue), len(o.run), st)
		}
		after := o.observe()
		if failed || !wrote {
			if d := o.dumpAll(); d != dump {
				t.Fatalf("%s: an operation that failed or was dropped wrote something:\nbefore %s\nafter  %s", o.desc, dump, d)
			}
		}
		o.check(o.before, after)
		if t.Failed() {
			t.FailNow()
		}
	}
}

func (o *opsRun) fatalf(format string, args ...any) {
	o.t.Helper()
	o.t.Fatalf(o.desc+": "+format, args...)
}

// observe reads every connection through the public API.
func (o *opsRun) observe() map[string]Connection {
	out := map[string]Connection{}
	for _, c := range o.m.conns {
		out[c.id] = o.f.get(c.id)
	}
	return out
}

// dumpAll renders every key but the queued marks (a dropped check clears
// its mark, as the worker does) and the company epoch.
func (o *opsRun) dumpAll() string {
	keys, err := o.f.rdb.Keys(o.ctx, "*").Result()
	if err != nil {
		o.t.Fatal(err)
	}
	sort.Strings(keys)
	ctx, rdb := o.ctx, o.f.rdb
	p := rdb.Pipeline()
	types := make([]*redis.StatusCmd, len(keys))
	for i, k := range keys {
		types[i] = p.Type(ctx, k)
	}
	if _, err := p.Exec(ctx); err != nil {
		o.t.Fatal(err)
	}
	p = rdb.Pipeline()
	vals := make([]redis.Cmder, len(keys))
	for i, k := range keys {
		switch types[i].Val() {
		case "string":
			vals[i] = p.Get(ctx, k)
		case "hash":
			vals[i] = p.HGetAll(ctx, k)
		case "zset":
			vals[i] = p.ZRangeWithScores(ctx, k, 0, -1)
		case "list":
			vals[i] = p.LRange(ctx, k, 0, -1)
		case "stream":
			vals[i] = p.XLen(ctx, k)
		default:
			o.t.Fatalf("key %s of type %s", k, types[i].Val())
		}
	}
	if _, err := p.Exec(ctx); err != nil {
		o.t.Fatal(err)
	}
	var b strings.Builder
	for i, k := range keys {
		if k == o.f.s.kQueued() || k == o.f.s.kCompanyEpoch() {
			continue
		}
		fmt.Fprintf(&b, "%s=%v\n", k, vals[i])
	}
	return b.String()
}

func (o *opsRun) pickConn(a byte) *mConn {
	if len(o.m.conns) == 0 {
		return nil
	}
	return o.m.conns[int(a)%len(o.m.conns)]
}

// enqueue adds a task unless one of the same ID is queued (asynq's TaskID).
func (o *opsRun) enqueue(k task) {
	for _, q := range o.queue {
		if q.id() == k.id() {
			return
		}
	}
	o.queue = append(o.queue, k)
}

// afterChange does what the API does after an admin write asking for a
// check: mark it queued, enqueue it at the due time, serve that due time.
func (o *opsRun) afterChange(ch Change) {
	if !ch.CheckNow {
		return
	}
	ok, err := o.f.s.MarkQueued(o.ctx, ch.Connection.ID)
	if err != nil {
		o.fatalf("MarkQueued: %v", err)
	}
	if !ok {
		return
	}
	o.enqueue(task{ch.Connection.ID, ch.DueAt})
	if _, err := o.f.s.ServeDue(o.ctx, ch.Connection.ID, ch.DueAt); err != nil {
		o.fatalf("ServeDue: %v", err)
	}
}

// void marks a connection's checks in flight as voided (model): they are
// fenced, and the last check's start and attempt are forgotten.
func (c *mConn) void() {
	c.gen++
	c.started = 0
	c.attempt = ""
}

// apply runs one operation; it reports whether it failed with an error
// (expected ones: invalid input, not allowed) and whether it may have
// written.
func (o *opsRun) apply(op int, a, b, c byte) (failed, wrote bool) {
	s, ctx, clk := o.f.s, o.ctx, o.f.clk
	switch op {
	case opCreate:
		if len(o.m.conns) >= maxConns {
			return false, false
		}
		co := o.cos[int(a)%2]
		user := []string{"user_good", "bad", "", "user_" + strings.Repeat("x", 3)}[int(b)%4]
		cn, err := s.CreateConnection(ctx, NewConnection{CompanyID: co, Datasource: "sandbox", Name: "conn",
			Credentials: checks.Credentials{Username: user, Password: "pw"}})
		if user == "" {
			if !errors.Is(err, ErrInvalid) {
				o.fatalf("create without a username: %v, want ErrInvalid", err)
			}
			return true, false
		}
		if err != nil {
			o.fatalf("create: %v", err)
		}
		want := checks.ConnPending
		if !o.m.coActive[co] {
			want = checks.ConnCompanyInactive
		}
		if cn.Status != want {
			o.fatalf("created %s, want %s", cn.Status, want)
		}
		if want == checks.ConnPending && (cn.NextCheckAt == nil || cn.NextCheckAt.After(clk.Now())) {
			o.fatalf("a new connection is due at once; nextCheckAt %v", cn.NextCheckAt)
		}
		mc := &mConn{id: cn.ID, company: co, status: want}
		mc.history = append(mc.history, histLine(clk.Now(), "", "", string(want), "", CauseCreated, ""))
		o.m.conns = append(o.m.conns, mc)
		return false, true

	case opRun, opStart:
		if len(o.queue) == 0 {
			return false, false
		}
		i := int(a) % len(o.queue)
		k := o.queue[i]
		o.queue = slices.Delete(o.queue, i, i+1)
		tg, err := s.LoadCheck(ctx, k.conn)
		if err != nil {
			o.fatalf("LoadCheck: %v", err)
		}
		mc := o.m.conn(k.conn)
		wantSkip := checks.Eligibility(mc.status, !mc.inactive, o.m.coActive[mc.company])
		if tg.Skip != wantSkip {
			o.fatalf("LoadCheck skip %q, want %q (status %s inactive %v company active %v)", tg.Skip, wantSkip, mc.status, mc.inactive, o.m.coActive[mc.company])
		}
		if tg.Skip == checks.SkipNone && tg.Served(k.slot) {
			tg.Skip = checks.SkipServed
		}
		if tg.Skip != checks.SkipNone {
			if o.verbose {
				o.t.Logf("  task %s skipped: %s", k.id(), tg.Skip)
			}
			if err := s.ClearQueued(ctx, k.conn); err != nil {
				o.fatalf("ClearQueued: %v", err)
			}
			return false, false
		}
		rn := running{task: k, target: tg, started: clk.Now(), gen: mc.gen}
		if op == opStart {
			o.run = append(o.run, rn)
			return false, false
		}
		clk.Advance(time.Duration(c%4) * time.Second)
		return false, o.record(rn, decodeResult(b, c/4))

	case opFinish:
		if len(o.run) == 0 {
			return false, false
		}
		i := int(a) % len(o.run)
		rn := o.run[i]
		o.run = slices.Delete(o.run, i, i+1)
		return false, o.record(rn, decodeResult(b, c))

	case opCheckNow:
		mc := o.pickConn(a)
		if mc == nil {
			return false, false
		}
		tg, err := s.LoadCheck(ctx, mc.id)
		if err != nil {
			o.fatalf("LoadCheck: %v", err)
		}
		// As the fixture's record: no eligibility check before recording,
		// so a result for an ineligible connection reaches RecordCheck.
		return false, o.record(running{task: task{mc.id, clk.Now()}, target: tg, started: clk.Now(), gen: mc.gen}, decodeResult(b, c))

	case opRecordDuplicate:
		mc := o.pickConn(a)
		if mc == nil || mc.attempt == "" {
			return false, false
		}
		tg, err := s.LoadCheck(ctx, mc.id)
		if err != nil {
			o.fatalf("LoadCheck: %v", err)
		}
		rec, err := s.RecordCheck(ctx, tg, CheckResult{Attempt: mc.attempt, StartedAt: clk.Now(), FinishedAt: clk.Now(), Result: decodeResult(b, c)})
		if err != nil {
			o.fatalf("RecordCheck: %v", err)
		}
		if rec.Outcome != Duplicate {
			o.fatalf("the same attempt %s recorded again: %s, want duplicate", mc.attempt, rec.Outcome)
		}
		return false, false

	case opDeactivate, opReactivate:
		mc := o.pickConn(a)
		if mc == nil {
			return false, false
		}
		active := op == opReactivate
		ch, err := s.UpdateDetails(ctx, mc.id, DetailsPatch{IsActive: &active})
		if err != nil {
			o.fatalf("UpdateDetails(isActive=%v): %v", active, err)
		}
		if mc.inactive == !active {
			if ch.CheckNow {
				o.fatalf("a no-op isActive patch asked for a check")
			}
			return false, false // no change: no write
		}
		mc.void()
		mc.inactive = !active
		if !active {
			mc.save(o.before[mc.id])
			if mc.status != checks.ConnCompanyInactive {
				mc.status = checks.ConnDeactivated
			}
		} else if mc.status == checks.ConnDeactivated {
			mc.restore()
		}
		eligible := checks.Eligibility(mc.status, !mc.inactive, o.m.coActive[mc.company]) == checks.SkipNone
		if ch.CheckNow != (active && eligible) {
			o.fatalf("isActive=%v: CheckNow %v, eligible %v (status %s)", active, ch.CheckNow, eligible, mc.status)
		}
		if ch.CheckNow && (ch.Connection.NextCheckAt == nil || ch.Connection.NextCheckAt.After(clk.Now())) {
			o.fatalf("reactivated and checkable, but next check at %v", ch.Connection.NextCheckAt)
		}
		o.afterChange(ch)
		return false, true

	case opCompanyOff, opCompanyOn:
		co := o.cos[int(a)%2]
		active := op == opCompanyOn
		if _, err := s.SetCompanyActive(ctx, co, active); err != nil {
			o.fatalf("SetCompanyActive(%v): %v", active, err)
		}
		o.m.coActive[co] = active
		cur := o.observe()
		for _, mc := range o.m.conns {
			if mc.company != co {
				continue
			}
			if !active && mc.status != checks.ConnCompanyInactive {
				mc.void()
				mc.save(o.before[mc.id])
				mc.status = checks.ConnCompanyInactive
				continue
			}
			if active && mc.status == checks.ConnCompanyInactive {
				mc.void()
				if mc.inactive {
					mc.status = checks.ConnDeactivated
				} else {
					mc.restore()
				}
				for _, ac := range cur[mc.id].Accounts {
					if want, ok := mc.savedAccts[ac.ID]; ok && ac.Status != want {
						o.fatalf("%s: account %s is %s after its company's reactivation, was %s", mc.id, ac.ID, ac.Status, want)
					}
				}
				mc.savedAccts = nil
			}
		}
		return false, true

	case opCompanyOffRacing:
		// SetCompanyActive's steps (admin.go), with a check that was
		// loaded before the flag went down recorded between two of them, as
		// a worker running concurrently may record it.
		co := o.cos[int(a)%2]
		if err := s.setCompanyFlag(ctx, co, "0"); err != nil {
			o.fatalf("setCompanyFlag: %v", err)
		}
		o.m.coActive[co] = false
		var sources []string
		for _, st := range checks.ConnectionStatuses {
			if st != checks.ConnCompanyInactive {
				sources = append(sources, string(st))
			}
		}
		k := int(b) % (len(sources) + 1)
		moveModel := func(done []string) {
			for _, mc := range o.m.conns {
				if mc.company == co && slices.Contains(done, string(mc.status)) {
					mc.void()
					mc.save(o.before[mc.id])
					mc.status = checks.ConnCompanyInactive
				}
			}
		}
		for _, st := range sources[:k] {
			if _, err := s.moveCompany(ctx, co, st, "0"); err != nil {
				o.fatalf("moveCompany: %v", err)
			}
		}
		moveModel(sources[:k])
		var applied bool
		if len(o.run) > 0 {
			i := int(c) % len(o.run)
			rn := o.run[i]
			o.run = slices.Delete(o.run, i, i+1)
			applied = o.record(rn, decodeResult(c, c/16)) && o.m.conn(rn.task.conn).company == co
			o.converting = co
			o.checkpoint()
			o.converting = ""
		}
		for _, st := range sources[k:] {
			if _, err := s.moveCompany(ctx, co, st, "0"); err != nil {
				o.fatalf("moveCompany: %v", err)
			}
		}
		if applied {
			o.fatalf("a check of the company was applied while its deactivation was under way")
		}
		moveModel(sources[k:])
		return false, true

	case opCredentials:
		mc := o.pickConn(a)
		if mc == nil {
			return false, false
		}
		user := []string{"user_good", "", "bad", "user_new"}[int(b)%4]
		ch, err := s.UpdateCredentials(ctx, mc.id, checks.Credentials{Username: user, Password: "new"})
		if user == "" {
			if !errors.Is(err, ErrInvalid) {
				o.fatalf("credentials without a username: %v, want ErrInvalid", err)
			}
			return true, false
		}
		if err != nil {
			o.fatalf("UpdateCredentials: %v", err)
		}
		mc.void()
		if mc.status.CredentialBlocked() {
			mc.status = checks.ConnPending
		} else if isSystem(mc.status) && mc.saved.CredentialBlocked() {
			mc.saved, mc.savedFirst = checks.ConnPending, clk.Now().UTC().Truncate(time.Millisecond)
		}
		eligible := checks.Eligibility(mc.status, !mc.inactive, o.m.coActive[mc.company]) == checks.SkipNone
		if ch.CheckNow != eligible {
			o.fatalf("credentials updated: CheckNow %v, eligible %v (status %s)", ch.CheckNow, eligible, mc.status)
		}
		o.afterChange(ch)
		return false, true

	case opRefresh:
		mc := o.pickConn(a)
		if mc == nil {
			return false, false
		}
		cn, err := s.Refreshable(ctx, mc.id)
		in, _ := mc.status.Info()
		allowed := checks.Eligibility(mc.status, !mc.inactive, o.m.coActive[mc.company]) == checks.SkipNone && in.CanRefresh
		if allowed != (err == nil) {
			o.fatalf("Refreshable(%s, inactive %v, company active %v) = %v", mc.status, mc.inactive, o.m.coActive[mc.company], err)
		}
		if err != nil {
			if !errors.Is(err, ErrNotAllowed) {
				o.fatalf("Refreshable: %v, want ErrNotAllowed", err)
			}
			return true, false
		}
		ok, err := s.MarkQueued(ctx, cn.ID)
		if err != nil {
			o.fatalf("MarkQueued: %v", err)
		}
		if ok {
			o.enqueue(task{cn.ID, clk.Now()})
		}
		return false, false

	case opConfirm:
		mc := o.pickConn(a)
		if mc == nil {
			return false, false
		}
		cur := o.f.get(mc.id)
		var ds []AccountDecision
		for i, ac := range cur.Accounts {
			if b&(1<<i) == 0 {
				continue
			}
			ts := checks.TrackingEnabled
			if b&(1<<(4+i)) != 0 {
				ts = checks.TrackingDisabled
			}
			ds = append(ds, AccountDecision{AccountID: ac.ID, TrackingStatus: ts})
		}
		if c%5 == 4 { // an unknown account
			ds = append(ds, AccountDecision{AccountID: "ac_0000000000", TrackingStatus: checks.TrackingEnabled})
		}
		ch, err := s.ConfirmAccounts(ctx, mc.id, ds)
		wantErr := len(ds) == 0 || c%5 == 4 || mc.status == checks.ConnCompanyInactive
		for _, d := range ds {
			for _, ac := range cur.Accounts {
				if ac.ID == d.AccountID && ac.Status.Terminal() && ac.Status != checks.AcctCustomerNotTracked {
					wantErr = true
				}
			}
		}
		if wantErr != (err != nil) {
			o.fatalf("ConfirmAccounts(%+v) on %s with accounts %+v: err %v, want error %v", ds, mc.status, cur.Accounts, err, wantErr)
		}
		if err != nil {
			if !errors.Is(err, ErrInvalid) && !errors.Is(err, ErrNotAllowed) {
				o.fatalf("ConfirmAccounts: %v, want ErrInvalid or ErrNotAllowed", err)
			}
			return true, false
		}
		if ch.CheckNow {
			o.fatalf("a confirmation asked for a check")
		}
		for _, d := range ds {
			for _, ac := range ch.Connection.Accounts {
				if ac.ID != d.AccountID {
					continue
				}
				if ac.TrackingStatus != d.TrackingStatus {
					o.fatalf("account %s tracking %s after deciding %s", ac.ID, ac.TrackingStatus, d.TrackingStatus)
				}
				if d.TrackingStatus == checks.TrackingDisabled && ac.Status != checks.AcctCustomerNotTracked {
					o.fatalf("a rejected account is %s, want CUSTOMER_NOT_TRACKED", ac.Status)
				}
				if d.TrackingStatus == checks.TrackingEnabled && (ac.Status == checks.AcctDetected || ac.Status == checks.AcctCustomerNotTracked) {
					o.fatalf("a confirmed account is %s, want ONBOARDED", ac.Status)
				}
			}
		}
		return false, true

	case opPatchName:
		mc := o.pickConn(a)
		if mc == nil {
			return false, false
		}
		name := []string{"Electric", " Electric ", "bad\x1bname", strings.Repeat("n", MaxNameLen+1), ""}[int(b)%5]
		_, err := s.UpdateDetails(ctx, mc.id, DetailsPatch{Name: &name})
		bad := b%5 == 2 || b%5 == 3
		if bad != (err != nil) {
			o.fatalf("UpdateDetails(name %q): %v", name, err)
		}
		if err != nil {
			if !errors.Is(err, ErrInvalid) {
				o.fatalf("UpdateDetails(name): %v, want ErrInvalid", err)
			}
			return true, false
		}
		return false, true

	case opAdvance:
		clk.Advance(advances[int(a)%len(advances)])
		return false, false

	case opTick:
		now := clk.Now()
		lease := now.Add(5 * time.Minute)
		claimed := map[string]bool{}
		for range 10 {
			items, err := s.claimDue(ctx, now, lease, 3)
			if err != nil {
				o.fatalf("claimDue: %v", err)
			}
			for _, it := range items {
				claimed[it.ConnectionID] = true
				o.enqueue(task{it.ConnectionID, it.Slot})
			}
			if a%3 != 0 && len(items) > 0 { // a%3 == 0: the scheduler died before acknowledging
				if _, err := s.ackDue(ctx, items); err != nil {
					o.fatalf("ackDue: %v", err)
				}
			}
			if len(items) < 3 {
				break
			}
		}
		sw, err := s.BeginSweep(ctx, now, 5*time.Minute)
		if err != nil {
			o.fatalf("BeginSweep: %v", err)
		}
		if sw == nil {
			return false, true
		}
		for range 100 {
			items, err := sw.Next(ctx, 3)
			if err != nil {
				o.fatalf("Sweep.Next: %v", err)
			}
			if len(items) == 0 {
				break
			}
			okv := make([]bool, len(items))
			for i, it := range items {
				okv[i] = true
				if !claimed[it.ConnectionID] {
					o.enqueue(task{it.ConnectionID, it.Slot})
				}
			}
			if err := sw.Ack(ctx, items, okv); err != nil {
				o.fatalf("Sweep.Ack: %v", err)
			}
		}
		if err := sw.End(ctx); err != nil {
			o.fatalf("Sweep.End: %v", err)
		}
		return false, true
	}
	return false, false
}

// record records a loaded check with res, as the worker does, and checks
// the outcome against the model. It reports whether it was applied.
func (o *opsRun) record(rn running, res checks.Result) bool {
	s, clk := o.f.s, o.f.clk
	mc := o.m.conn(rn.task.conn)
	attempt := rn.task.id()
	rec, err := s.RecordCheck(o.ctx, rn.target, CheckResult{Attempt: attempt, StartedAt: rn.started, FinishedAt: clk.Now(), Result: res})
	if err != nil {
		o.fatalf("RecordCheck: %v", err)
	}
	if o.verbose {
		o.t.Logf("  record %s started %s: %+v → %+v", attempt, rn.started.Format(time.RFC3339Nano), res, rec)
	}
	var want Outcome
	switch {
	case attempt == mc.attempt:
		want = Duplicate
	case rn.gen != mc.gen:
		want = Fenced
	case ms(rn.started) < mc.started:
		want = Stale
	case checks.Eligibility(mc.status, !mc.inactive, o.m.coActive[mc.company]) != checks.SkipNone:
		want = Ineligible // the company's flag as it is now: its deactivation may be under way
	default:
		want = Applied
	}
	if rec.Outcome != want {
		o.fatalf("RecordCheck(%s, started %s) on %s: outcome %s, want %s (model gen %d/%d started %d)", attempt,
			rn.started.Format(time.RFC3339Nano), mc.status, rec.Outcome, want, rn.gen, mc.gen, mc.started)
	}
	if rec.Outcome != Applied {
		// From/To of a dropped check are the status as it is, not as
		// loaded (TestDroppedCheckReportsStatusAsLoaded).
		if rec.From != mc.status || rec.To != mc.status {
			o.fatalf("a dropped check reports %s → %s, connection is %s", rec.From, rec.To, mc.status)
		}
		if err := s.ClearQueued(o.ctx, mc.id); err != nil {
			o.fatalf("ClearQueued: %v", err)
		}
		return false
	}
	mc.attempt, mc.started = attempt, ms(rn.started)
	mc.status = res.Normalized().Status
	if rec.From == "" || rec.To != mc.status {
		o.fatalf("applied check reports %s → %s, want → %s", rec.From, rec.To, mc.status)
	}
	o.lastRecorded = &recorded{conn: mc.id, res: res.Normalized(), at: clk.Now(), attempt: attempt}
	return true
}

// validUTF8 is s as JSON stores it: each invalid byte becomes U+FFFD.
func validUTF8(s string) string {
	var b strings.Builder
	for _, r := range s {
		b.WriteRune(r) // an invalid byte ranges as utf8.RuneError
	}
	return b.String()
}

type recorded struct {
	conn    string
	res     checks.Result
	at      time.Time
	attempt string
}

func histLine(t time.Time, acct, from, to, detail, cause, attempt string) string {
	return strings.Join([]string{t.UTC().Format(time.RFC3339Nano), acct, from, to, detail, cause, attempt}, "|")
}

// checkpoint checks the writes of the current operation so far: an
// operation that interleaves two writers checks each in turn.
func (o *opsRun) checkpoint() {
	o.t.Helper()
	mid := o.observe()
	o.check(o.before, mid)
	o.before = mid
}

// check compares the state before and after one operation.
func (o *opsRun) check(before, after map[string]Connection) {
	o.t.Helper()
	if o.converting == "" {
		o.f.invariants()
	}
	if o.t.Failed() {
		o.fatalf("invariants broken (see above)")
	}
	counts, err := o.f.s.StatusCounts(o.ctx)
	if err != nil {
		o.fatalf("StatusCounts: %v", err)
	}
	for st, n := range counts {
		if n < 0 {
			o.fatalf("status counter %s = %d", st, n)
		}
	}
	evs, err := o.f.s.Events(o.ctx, o.lastEv, 1000)
	if err != nil {
		o.fatalf("Events: %v", err)
	}
	if len(evs) > 0 {
		o.lastEv = evs[len(evs)-1].ID
	}
	statusEvents := map[string][]Event{}
	for _, ev := range evs {
		if _, ok := ev.New["status"]; ok {
			statusEvents[ev.ConnectionID] = append(statusEvents[ev.ConnectionID], ev)
		}
	}
	lr := o.lastRecorded
	o.lastRecorded = nil
	for _, mc := range o.m.conns {
		cur := after[mc.id]
		old, existed := before[mc.id]
		o.checkConn(mc, cur)
		// Events: exactly one per status change, old status = previous.
		se := statusEvents[mc.id]
		switch {
		case !existed:
			if len(se) != 1 || se[0].Type != EventConnectionCreated || se[0].New["status"] != string(cur.Status) {
				o.fatalf("%s created: status events %+v", mc.id, se)
			}
		case old.Status != cur.Status:
			if len(se) != 1 || se[0].Type != EventConnectionUpdated || se[0].New["status"] != string(cur.Status) || se[0].Old["status"] != string(old.Status) {
				o.fatalf("%s: %s → %s made status events %+v, want one with old %s", mc.id, old.Status, cur.Status, se, old.Status)
			}
			stamp := func(x time.Time) string { return x.UTC().Format(time.RFC3339Nano) }
			if se[0].Old["statusFirstSeenTime"] != stamp(old.StatusFirstSeenTime) || se[0].New["statusFirstSeenTime"] != stamp(cur.StatusFirstSeenTime) {
				o.fatalf("%s: event statusFirstSeenTime %v → %v, want %s → %s", mc.id, se[0].Old["statusFirstSeenTime"], se[0].New["statusFirstSeenTime"], stamp(old.StatusFirstSeenTime), stamp(cur.StatusFirstSeenTime))
			}
			if se[0].Old["statusErrorDetail"] != old.StatusErrorDetail || se[0].New["statusErrorDetail"] != cur.StatusErrorDetail {
				o.fatalf("%s: event details %v → %v, want %q → %q", mc.id, se[0].Old["statusErrorDetail"], se[0].New["statusErrorDetail"], old.StatusErrorDetail, cur.StatusErrorDetail)
			}
		default:
			if len(se) != 0 {
				o.fatalf("%s kept status %s but status events were written: %+v", mc.id, cur.Status, se)
			}
		}
		if !existed {
			continue
		}
		o.checkTimes(mc, old, cur)
		// History: one element per write, with every transition it made.
		cause := o.causeOf(mc, lr)
		attempt := ""
		if cause == CauseCheck {
			attempt = lr.attempt
		}
		if old.Status != cur.Status {
			mc.history = append(mc.history, histLine(cur.StatusLastUpdateTime, "", string(old.Status), string(cur.Status), cur.StatusErrorDetail, cause, attempt))
		}
		oldAccts := map[string]Account{}
		for _, ac := range old.Accounts {
			oldAccts[ac.ID] = ac
		}
		for _, ac := range cur.Accounts {
			if p, ok := oldAccts[ac.ID]; !ok || p.Status != ac.Status {
				mc.history = append(mc.history, histLine(ac.StatusLastUpdateTime, ac.ID, string(p.Status), string(ac.Status), ac.StatusErrorDetail, cause, attempt))
			}
		}
		if lr != nil && lr.conn == mc.id {
			o.checkApplied(mc, old, cur, lr)
		}
	}
	for _, mc := range o.m.conns {
		h, err := o.f.s.History(o.ctx, mc.id, 0)
		if err != nil {
			o.fatalf("History: %v", err)
		}
		got := make([]string, len(h))
		for i, e := range h {
			got[len(h)-1-i] = histLine(e.Time, e.AccountID, e.From, e.To, e.Detail, e.Cause, e.Attempt)
		}
		want := slices.Clone(mc.history)
		sort.Strings(got)
		sort.Strings(want)
		if !slices.Equal(got, want) {
			o.fatalf("%s: history\n got %s\nwant %s", mc.id, strings.Join(got, "\n     "), strings.Join(want, "\n     "))
		}
		if len(h) > 0 {
			for _, e := range h {
				if e.AccountID == "" {
					if e.To != string(after[mc.id].Status) {
						o.fatalf("%s: newest history entry says %s, status is %s", mc.id, e.To, after[mc.id].Status)
					}
					break
				}
			}
		}
	}
}

// causeOf is the cause the current operation gives its history element.
func (o *opsRun) causeOf(mc *mConn, lr *recorded) string {
	if lr != nil && lr.conn == mc.id {
		return CauseCheck
	}
	d := o.desc
	switch {
	case strings.Contains(d, " deactivate("):
		return CauseDeactivated
	case strings.Contains(d, " reactivate("):
		return CauseReactivated
	case strings.Contains(d, " companyOff(") || strings.Contains(d, " companyOffRacing("):
		return CauseCompanyInactive
	case strings.Contains(d, " companyOn("):
		return CauseCompanyReactivate
	case strings.Contains(d, " confirm("):
		return CauseConfirm
	case strings.Contains(d, " credentials("):
		return CauseCredentials
	}
	return "?" + d
}

// checkConn checks one connection against the model and the static rules.
func (o *opsRun) checkConn(mc *mConn, cur Connection) {
	if cur.Status != mc.status {
		o.fatalf("%s is %s, the model says %s (inactive %v, saved %s)", mc.id, cur.Status, mc.status, mc.inactive, mc.saved)
	}
	if cur.IsActive == mc.inactive {
		o.fatalf("%s isActive %v, model inactive %v", mc.id, cur.IsActive, mc.inactive)
	}
	if !cur.IsActive && cur.Status != checks.ConnDeactivated && cur.Status != checks.ConnCompanyInactive {
		o.fatalf("%s is deactivated but %s", mc.id, cur.Status)
	}
	if cur.Status == checks.ConnDeactivated && cur.IsActive {
		o.fatalf("%s is DEACTIVATED with isActive true", mc.id)
	}
	coActive := o.m.coActive[mc.company]
	if mc.company == o.converting {
		return
	}
	if (cur.Status == checks.ConnCompanyInactive) == coActive {
		o.fatalf("%s is %s, its company active = %v", mc.id, cur.Status, coActive)
	}
	eligible := checks.Eligibility(cur.Status, cur.IsActive, coActive) == checks.SkipNone
	if !eligible && cur.NextCheckAt != nil {
		o.fatalf("%s (%s, isActive %v, company %v) is not checked but has a next check at %v", mc.id, cur.Status, cur.IsActive, coActive, cur.NextCheckAt)
	}
	if eligible && cur.NextCheckAt == nil {
		o.fatalf("%s (%s) is checkable but has no next check", mc.id, cur.Status)
	}
	if cur.Status.Category() == checks.CategoryHealthy && cur.StatusErrorDetail != "" {
		o.fatalf("%s: healthy status %s with detail %q", mc.id, cur.Status, cur.StatusErrorDetail)
	}
	if cur.StatusFirstSeenTime.After(cur.StatusLastUpdateTime) {
		o.fatalf("%s: statusFirstSeenTime %v after statusLastUpdateTime %v", mc.id, cur.StatusFirstSeenTime, cur.StatusLastUpdateTime)
	}
	if cur.ConsecutiveFailures < 0 {
		o.fatalf("%s: consecutiveFailures %d", mc.id, cur.ConsecutiveFailures)
	}
	if cur.LastSuccessAt != nil && (cur.LastCheckAt == nil || cur.LastSuccessAt.After(*cur.LastCheckAt)) {
		o.fatalf("%s: lastSuccessAt %v, lastCheckAt %v", mc.id, cur.LastSuccessAt, cur.LastCheckAt)
	}
	seen := map[string]bool{}
	for _, ac := range cur.Accounts {
		if seen[ac.AccountNumber] {
			o.fatalf("%s: account number %s twice", mc.id, ac.AccountNumber)
		}
		seen[ac.AccountNumber] = true
		if ac.StatusFirstSeenTime.After(ac.StatusLastUpdateTime) {
			o.fatalf("%s: account %s firstSeen %v after lastUpdate %v", mc.id, ac.ID, ac.StatusFirstSeenTime, ac.StatusLastUpdateTime)
		}
		if ac.Status.Category() == checks.CategoryHealthy && ac.StatusErrorDetail != "" {
			o.fatalf("%s: account %s healthy status %s with detail %q", mc.id, ac.ID, ac.Status, ac.StatusErrorDetail)
		}
		if !coActive && ac.Status != checks.AcctCompanyInactive {
			o.fatalf("%s: account %s is %s under an inactive company", mc.id, ac.ID, ac.Status)
		}
		if ac.TrackingStatus == checks.TrackingDisabled && coActive && ac.Status != checks.AcctCustomerNotTracked {
			o.fatalf("%s: rejected account %s is %s", mc.id, ac.ID, ac.Status)
		}
		if ac.CreatedAt.After(ac.StatusFirstSeenTime) {
			o.fatalf("%s: account %s created %v after its status was first seen %v", mc.id, ac.ID, ac.CreatedAt, ac.StatusFirstSeenTime)
		}
	}
}

// checkTimes: statusFirstSeenTime changes iff status changes; times never
// go backwards; accounts are never lost and keep their creation time.
func (o *opsRun) checkTimes(mc *mConn, old, cur Connection) {
	now := o.f.clk.Now()
	if old.Status != cur.Status {
		if want := mc.expectFirst; !want.IsZero() { // a restored status keeps its since
			if !cur.StatusFirstSeenTime.Equal(want) || cur.StatusLastUpdateTime.After(now) {
				o.fatalf("%s: %s → %s restored with firstSeen %v lastUpdate %v, want firstSeen %v", mc.id, old.Status, cur.Status, cur.StatusFirstSeenTime, cur.StatusLastUpdateTime, want)
			}
		} else if !cur.StatusFirstSeenTime.Equal(cur.StatusLastUpdateTime) || cur.StatusFirstSeenTime.Before(old.StatusFirstSeenTime) || cur.StatusFirstSeenTime.After(now) {
			o.fatalf("%s: %s → %s with firstSeen %v lastUpdate %v (was %v)", mc.id, old.Status, cur.Status, cur.StatusFirstSeenTime, cur.StatusLastUpdateTime, old.StatusFirstSeenTime)
		}
		mc.expectFirst = time.Time{}
	} else if !cur.StatusFirstSeenTime.Equal(old.StatusFirstSeenTime) {
		o.fatalf("%s: status %s kept but statusFirstSeenTime moved %v → %v", mc.id, cur.Status, old.StatusFirstSeenTime, cur.StatusFirstSeenTime)
	}
	if cur.StatusLastUpdateTime.Before(old.StatusLastUpdateTime) {
		o.fatalf("%s: statusLastUpdateTime went back %v → %v", mc.id, old.StatusLastUpdateTime, cur.StatusLastUpdateTime)
	}
	if !cur.CreatedAt.Equal(old.CreatedAt) {
		o.fatalf("%s: createdAt moved", mc.id)
	}
	if old.LastCheckAt != nil && (cur.LastCheckAt == nil || cur.LastCheckAt.Before(*old.LastCheckAt)) {
		o.fatalf("%s: lastCheckAt went back %v → %v", mc.id, old.LastCheckAt, cur.LastCheckAt)
	}
	if old.LastSuccessAt != nil && (cur.LastSuccessAt == nil || cur.LastSuccessAt.Before(*old.LastSuccessAt)) {
		o.fatalf("%s: lastSuccessAt went back %v → %v", mc.id, old.LastSuccessAt, cur.LastSuccessAt)
	}
	if len(cur.Accounts) < len(old.Accounts) {
		o.fatalf("%s: accounts lost: %d → %d", mc.id, len(old.Accounts), len(cur.Accounts))
	}
	for i, p := range old.Accounts {
		ac := cur.Accounts[i]
		if ac.ID != p.ID || ac.AccountNumber != p.AccountNumber || !ac.CreatedAt.Equal(p.CreatedAt) {
			o.fatalf("%s: account %d changed identity: %+v → %+v", mc.id, i, p, ac)
		}
		if want, ok := mc.savedAcctFirst[ac.ID]; ok && p.Status == checks.AcctCompanyInactive && ac.Status != p.Status {
			if !ac.StatusFirstSeenTime.Equal(want) { // restored with its since
				o.fatalf("%s: account %s %s → %s restored with firstSeen %v, want %v", mc.id, ac.ID, p.Status, ac.Status, ac.StatusFirstSeenTime, want)
			}
		} else if p.Status != ac.Status {
			if !ac.StatusFirstSeenTime.Equal(ac.StatusLastUpdateTime) || ac.StatusFirstSeenTime.Before(p.StatusFirstSeenTime) {
				o.fatalf("%s: account %s %s → %s with firstSeen %v lastUpdate %v (was %v)", mc.id, ac.ID, p.Status, ac.Status, ac.StatusFirstSeenTime, ac.StatusLastUpdateTime, p.StatusFirstSeenTime)
			}
		} else if !ac.StatusFirstSeenTime.Equal(p.StatusFirstSeenTime) {
			o.fatalf("%s: account %s kept %s but firstSeen moved %v → %v", mc.id, ac.ID, ac.Status, p.StatusFirstSeenTime, ac.StatusFirstSeenTime)
		}
		if ac.StatusLastUpdateTime.Before(p.StatusLastUpdateTime) {
			o.fatalf("%s: account %s lastUpdate went back %v → %v", mc.id, ac.ID, p.StatusLastUpdateTime, ac.StatusLastUpdateTime)
		}
		if p.TrackingStatus != ac.TrackingStatus && !strings.Contains(o.desc, " confirm(") {
			o.fatalf("%s: account %s tracking %s → %s without a decision", mc.id, ac.ID, p.TrackingStatus, ac.TrackingStatus)
		}
	}
	// Company deactivation: remember the accounts' statuses to compare at
	// reactivation.
	if cur.Status == checks.ConnCompanyInactive && old.Status != checks.ConnCompanyInactive {
		mc.savedAccts = map[string]checks.AccountStatus{}
		mc.savedAcctFirst = map[string]time.Time{}
		for _, p := range old.Accounts {
			mc.savedAccts[p.ID] = p.Status
			if p.Status != checks.AcctCompanyInactive {
				mc.savedAcctFirst[p.ID] = p.StatusFirstSeenTime
			}
		}
	}
	if old.Status == checks.ConnCompanyInactive && cur.Status != checks.ConnCompanyInactive {
		mc.savedAcctFirst = nil
	}
}

// checkApplied checks an applied check result against the status rules.
func (o *opsRun) checkApplied(mc *mConn, old, cur Connection, lr *recorded) {
	t := lr.at.UTC().Truncate(time.Millisecond)
	if !cur.StatusLastUpdateTime.Equal(t) || cur.LastCheckAt == nil || !cur.LastCheckAt.Equal(t) {
		o.fatalf("%s: applied check at %v: lastUpdate %v lastCheck %v", mc.id, t, cur.StatusLastUpdateTime, cur.LastCheckAt)
	}
	wantDetail := lr.res.Detail
	if lr.res.Status == checks.ConnConnected {
		wantDetail = ""
	}
	if cur.StatusErrorDetail != validUTF8(wantDetail) {
		o.fatalf("%s: detail %q, want %q", mc.id, cur.StatusErrorDetail, wantDetail)
	}
	if lr.res.Status == checks.ConnConnected {
		if cur.ConsecutiveFailures != 0 || cur.LastSuccessAt == nil || !cur.LastSuccessAt.Equal(t) {
			o.fatalf("%s: after a success failures %d lastSuccess %v", mc.id, cur.ConsecutiveFailures, cur.LastSuccessAt)
		}
	} else if cur.ConsecutiveFailures != old.ConsecutiveFailures+1 {
		o.fatalf("%s: after a failure failures %d → %d", mc.id, old.ConsecutiveFailures, cur.ConsecutiveFailures)
	}
	listed := map[string]checks.AccountResult{}
	for _, a := range lr.res.Accounts {
		listed[a.Number] = a
	}
	oldBy := map[string]Account{}
	for _, p := range old.Accounts {
		oldBy[p.ID] = p
	}
	for _, ac := range cur.Accounts {
		p, known := oldBy[ac.ID]
		if !known {
			if _, ok := listed[ac.AccountNumber]; !ok || lr.res.Status.IsError() {
				o.fatalf("%s: account %s appeared without being listed", mc.id, ac.AccountNumber)
			}
			if ac.Status != checks.AcctDetected || ac.TrackingStatus != checks.TrackingUnset || !ac.CreatedAt.Equal(t) {
				o.fatalf("%s: new account %+v, want DETECTED/UNSET created %v", mc.id, ac, t)
			}
			continue
		}
		if p.Status.Terminal() {
			if ac != p {
				o.fatalf("%s: terminal account changed by a check: %+v → %+v", mc.id, p, ac)
			}
			continue
		}
		if !ac.StatusLastUpdateTime.Equal(t) {
			o.fatalf("%s: account %s lastUpdate %v after a check at %v", mc.id, ac.ID, ac.StatusLastUpdateTime, t)
		}
		got, ok := listed[ac.AccountNumber]
		switch {
		case lr.res.Status.IsError():
			if ac.Status != checks.AcctWorkflowNotAccessible || !strings.Contains(ac.StatusErrorDetail, string(lr.res.Status)) {
				o.fatalf("%s: account %s is %s %q after connection error %s", mc.id, ac.ID, ac.Status, ac.StatusErrorDetail, lr.res.Status)
			}
		case !ok:
			if ac.Status != checks.AcctAccountNotFound {
				o.fatalf("%s: account %s missing from the website is %s", mc.id, ac.ID, ac.Status)
			}
		case p.TrackingStatus != checks.TrackingEnabled:
			if ac.Status != checks.AcctDetected {
				o.fatalf("%s: untracked account %s is %s", mc.id, ac.ID, ac.Status)
			}
		case got.Status != "":
			if ac.Status != got.Status {
				o.fatalf("%s: pulled account %s is %s, pull said %s", mc.id, ac.ID, ac.Status, got.Status)
			}
		}
	}
}

// opsSeeds are meaningful sequences: each op is 4 bytes (code, a, b, c).
func opsSeeds() [][]byte {
	op := func(code int, args ...byte) []byte {
		b := []byte{byte(code), 0, 0, 0}
		copy(b[1:], args)
		return b
	}
	cat := func(ops ...[]byte) []byte { return slices.Concat(ops...) }
	good := byte(0)       // CONNECTED
	accts := byte(3)      // accounts 1 and 2, no pull outcome
	pulled := byte(3 | 8) // accounts 1 and 2 with pull outcomes
	pwBad := byte(8)      // PASSWORD_INCORRECT
	down := byte(25)      // WEBSITE_DOWN (25 % 11 == 3), with a detail
	return [][]byte{
		// create, tick, run: first check connects; confirm; tick a week later.
		cat(op(opCreate, 0, 0), op(opTick), op(opRun, 0, good, accts*4), op(opConfirm, 0, 0x13),
			op(opAdvance, 5), op(opTick), op(opRun, 0, good, pulled*4), op(opCheckNow, 0, down, accts)),
		// deactivate/reactivate around a blocked status, credentials in between.
		cat(op(opCreate, 0, 0), op(opCheckNow, 0, pwBad), op(opDeactivate, 0), op(opCredentials, 0, 0),
			op(opReactivate, 0), op(opRun, 0, good, accts*4), op(opRefresh, 0), op(opRun, 0, down)),
		// company off/on with a deactivated connection; a check in flight fenced.
		cat(op(opCreate, 0, 0), op(opCreate, 1, 0), op(opCheckNow, 0, good, accts), op(opTick),
			op(opStart, 0), op(opCompanyOff, 0), op(opFinish, 0, good, accts), op(opDeactivate, 0),
			op(opCompanyOn, 0), op(opReactivate, 0), op(opTick), op(opRun, 0, good, accts*4)),
		// stale and duplicate results, a rejected account, names.
		cat(op(opCreate, 0, 0), op(opRefresh, 0), op(opStart, 0), op(opAdvance, 2), op(opCheckNow, 0, good, 7),
			op(opFinish, 0, down), op(opRecordDuplicate, 0, pwBad), op(opConfirm, 0, 0x21), op(opPatchName, 0, 2),
			op(opPatchName, 0, 1), op(opCompanyOff, 0), op(opConfirm, 0, 1), op(opCompanyOn, 0)),
		// weekly sweeps over clock jumps.
		// a check in flight recorded while its company is deactivated.
		cat(op(opCreate, 0, 0), op(opCheckNow, 0, down, accts), op(opAdvance, 3), op(opRefresh, 0), op(opStart, 0),
			op(opCompanyOffRacing, 0, 3, 33), op(opCompanyOn, 0)),
		cat(op(opCreate, 0, 0), op(opCreate, 1, 0), op(opTick), op(opRun, 0), op(opRun, 0, down), op(opAdvance, 5),
			op(opTick), op(opAdvance, 6), op(opTick), op(opRun, 1, good, 1), op(opAdvance, 8), op(opTick, 1), op(opRun, 0)),
	}
}
