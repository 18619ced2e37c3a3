package scheduler

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"

	"github.com/checkd/checkd/checks"
	"github.com/checkd/checkd/internal/tasks"
	"github.com/checkd/checkd/internal/testing/poll"
	"github.com/checkd/checkd/internal/testing/redistest"
	"github.com/checkd/checkd/internal/testing/testenv"
	"github.com/checkd/checkd/store"
)

// Fault injection for the sweep's enqueues through Store.SharedClient: a
// real redis-server, an asynq client over the store's group commit as the
// daemon builds it, and faults injected into the round trips that carry
// the enqueues, at the wire (a connection wrapper under go-redis, so
// go-redis's own error handling and retries run) or around a pipeline (a
// hook, outside go-redis's retries). Each test checks the scheduler's
// promise against Redis itself: after a faulty tick every due connection
// has exactly one pending task for its slot or is where a later tick
// retries it (the due index or an in-flight claim at that slot, or beyond
// the sweep cursor), and after recovery ticks every one has exactly one.

// enqueueMark occurs once in each asynq enqueue command on the wire: the
// task's key (asynq:{<queue>}:t:<task ID>, the IDs being check:...).
var enqueueMark = []byte(":t:check:")

// evalshaMark starts the name of an EVALSHA command on the wire.
var evalshaMark = []byte("\r\n$7\r\nevalsha\r\n")

// commandStarts returns where each EVALSHA command of a written pipeline
// begins (its "*<n>" array header).
func commandStarts(b []byte) []int {
	var out []int
	for off := 0; ; {
		i := bytes.Index(b[off:], evalshaMark)
		if i < 0 {
			return out
		}
		out = append(out, bytes.LastIndexByte(b[:off+i], '*'))
		off += i + len(evalshaMark)
	}
}

// wireFault is what a faulty connection does to a round trip of enqueues.
type wireFault int

const (
	// cutWrite: Redis receives only the first keep commands (and runs
	// them), then the connection breaks while writing.
	cutWrite wireFault = iota + 1
	// cutRead: Redis runs every command; the client reads keep replies,
	// then the connection breaks.
	cutRead
	// readTimeout: Redis runs every command; the client's read times out
	// before any reply.
	readTimeout
	// clientKill: CLIENT KILL of the connection right after the pipeline
	// was written (Redis may or may not have run it by then).
	clientKill
	// crashAfterWrite: redis-server is killed (SIGKILL) right after the
	// pipeline was written, and restarted: Redis may have run some of it
	// (and made it durable: AOF, fsync before reply) or none; no reply
	// comes, and the script cache is empty afterwards.
	crashAfterWrite
)

// wireFaults injects faults into the connections of a go-redis client
// (Options.Dialer): the next shots writes carrying at least minCmds
// enqueues get the fault.
type wireFaults struct {
	fault   wireFault
	keep    int
	minCmds int
	admin   *redis.Client // CLIENT KILL goes through it
	crash   func()        // crashAfterWrite: kill and restart the server
	shots   atomic.Int64
	fired   atomic.Int64
}

func (w *wireFaults) take() bool {
	for {
		n := w.shots.Load()
		if n <= 0 {
			return false
		}
		if w.shots.CompareAndSwap(n, n-1) {
			w.fired.Add(1)
			return true
		}
	}
}

func (w *wireFaults) dial(ctx context.Context, network, addr string) (net.Conn, error) {
	c, err := (&net.Dialer{}).DialContext(ctx, network, addr)
	if err != nil {
		return nil, err
	}
	return &faultConn{Conn: c, w: w}, nil
}

// faultConn is a connection that may break a round trip of enqueues.
type faultConn struct {
	net.Conn
	w *wireFaults

	mu       sync.Mutex
	read     wireFault // the fault waiting for the reply of the last write
	readLeft int       // cutRead: reply bytes still delivered
}

var errReset = &net.OpError{Op: "read", Net: "tcp", Err: syscall.ECONNRESET}

func (c *faultConn) Write(b []byte) (int, error) {
	n := bytes.Count(b, enqueueMark)
	if n == 0 || n < c.w.minCmds || c.w.keep >= n || !c.w.take() {
		return c.Conn.Write(b)
	}
	switch c.w.fault {
	case cutWrite:
		cut := commandStarts(b)[c.w.keep]
		m, _ := c.Conn.Write(b[:cut])
		_ = c.Conn.Close()
		return m, &net.OpError{Op: "write", Net: "tcp", Err: syscall.ECONNRESET}
	case clientKill:
		m, err := c.Conn.Write(b)
		if err == nil {
			_ = c.w.admin.ClientKillByFilter(context.Background(), "ADDR", c.LocalAddr().String()).Err()
		}
		return m, err
	case crashAfterWrite:
		m, err := c.Conn.Write(b)
		c.w.crash()
		return m, err
	default:
		c.mu.Lock()
		c.read, c.readLeft = c.w.fault, 4*c.w.keep // an enqueue's reply is ":0\r\n" or ":1\r\n"
		c.mu.Unlock()
		return c.Conn.Write(b)
	}
}

func (c *faultConn) Read(p []byte) (int, error) {
	c.mu.Lock()
	fault, left := c.read, c.readLeft
	c.mu.Unlock()
	switch {
	case fault == readTimeout || (fault == cutRead && left <= 0):
		_ = c.Conn.Close()
		if fault == readTimeout {
			return 0, &net.OpError{Op: "read", Net: "tcp", Err: os.ErrDeadlineExceeded}
		}
		return 0, errReset
	case fault == cutRead:
		n, err := c.Conn.Read(p[:min(len(p), left)])
		c.mu.Lock()
		c.readLeft -= n
		c.mu.Unlock()
		return n, err
	}
	return c.Conn.Read(p)
}

// pipeFault is what a hook does to a pipeline of enqueues.
type pipeFault int

const (
	// lostReplies: Redis runs the whole pipeline, and the replies of the
	// commands after the first keep are lost (they fail with a network
	// error): executed, but the caller is told it failed.
	lostReplies pipeFault = iota + 1
	// aborted: only the first keep commands reach Redis; the rest fail.
	aborted
	// after: the pipeline runs, then the hook's action does (SCRIPT
	// FLUSH, a Redis restart, CLIENT PAUSE).
	after
)

var errInjected = fmt.Errorf("injected: %w", errReset)

// pipeFaults is a hook giving the next shots pipelines of at least
// minCmds enqueues a fault. It counts the enqueues Redis ran whose caller
// got an error (executedLost) and those it never saw (notRun).
type pipeFaults struct {
	fault   pipeFault
	keep    int
	minCmds int
	action  func()
	shots   atomic.Int64
	fired   atomic.Int64

	executedLost, notRun atomic.Int64
	// evals counts enqueues run by the script's source (EVAL, go-redis's
	// fallback after NOSCRIPT), which bypass the group commit.
	evals atomic.Int64
}

func isEnqueue(c redis.Cmder) bool {
	a := c.Args()
	if c.Name() != "evalsha" || len(a) < 4 {
		return false
	}
	k, _ := a[3].(string)
	return strings.Contains(k, string(enqueueMark))
}

func (h *pipeFaults) DialHook(next redis.DialHook) redis.DialHook { return next }
func (h *pipeFaults) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		if a := cmd.Args(); cmd.Name() == "eval" && len(a) > 3 {
			if k, _ := a[3].(string); strings.Contains(k, string(enqueueMark)) {
				h.evals.Add(1)
			}
		}
		return next(ctx, cmd)
	}
}
func (h *pipeFaults) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		n := 0
		for _, c := range cmds {
			if isEnqueue(c) {
				n++
			}
		}
		if n == 0 || n != len(cmds) || n < h.minCmds || h.keep >= n {
			return next(ctx, cmds)
		}
		for {
			s := h.shots.Load()
			if s <= 0 {
				return next(ctx, cmds)
			}
			if h.shots.CompareAndSwap(s, s-1) {
				break
			}
		}
		h.fired.Add(1)
		switch h.fault {
		case lostReplies:
			_ = next(ctx, cmds)
			for _, c := range cmds[h.keep:] {
				if c.Err() == nil {
					h.executedLost.Add(1)
				}
				c.SetErr(errInjected)
			}
			return errInjected
		case aborted:
			_ = next(ctx, cmds[:h.keep])
			for _, c := range cmds[h.keep:] {
				c.SetErr(errInjected)
				h.notRun.Add(1)
			}
			return errInjected
		default:
			err := next(ctx, cmds)
			h.action()
			return err
		}
	}
}

// faultEnv is a store and an asynq client over its SharedClient on a
// real Redis whose client injects faults: the scheduler under test runs
// on them. A plain client on the same database looks at what Redis holds,
// and a store over it (same settings and key) writes the test's setup, so
// the faults, and the short read timeout some cases give the faulty
// client, only ever meet the scheduler's round trips.
type faultEnv struct {
	*env
	setup *env // the same store's data over the plain client
	raw   *redis.Client
	wire  *wireFaults
	pipe  *pipeFaults
	enq   *asynq.Client
	srv   *redistest.Own // nil: the shared redis-server
	// cancelTick cancels the faulty tick's context (a Stop mid-sweep).
	cancelTick context.CancelFunc
}

type faultOpts struct {
	private, aof bool
	maxRetries   int           // go-redis MaxRetries (0: its default, 3; -1: none)
	readTimeout  time.Duration // 0: go-redis's default
	interval     time.Duration
}

func newFaultEnv(t *testing.T, o faultOpts) *faultEnv {
	t.Helper()
	e := &faultEnv{wire: &wireFaults{}, pipe: &pipeFaults{}}
	var addr string
	var db int
	if o.private {
		e.srv = redistest.StartOwn(t, o.aof)
		addr = e.srv.Addr
		e.raw = redis.NewClient(&redis.Options{Addr: addr})
		t.Cleanup(func() { _ = e.raw.Close() })
	} else {
		s := redistest.Start(t)
		e.raw = s.Client(t)
		addr, db = s.Addr, e.raw.Options().DB
	}
	admin := redis.NewClient(&redis.Options{Addr: addr})
	t.Cleanup(func() { _ = admin.Close() })
	e.wire.admin = admin
	if e.srv != nil {
		e.wire.crash = e.srv.Crash
	}
	rdb := redis.NewClient(&redis.Options{Addr: addr, DB: db, PoolSize: 64, MaxRetries: o.maxRetries,
		ReadTimeout: o.readTimeout, Dialer: e.wire.dial})
	t.Cleanup(func() { _ = rdb.Close() })
	rdb.AddHook(e.pipe)
	var cfg store.Config
	e.setup = wrapEnv(testenv.New(t, testenv.Options{Redis: e.raw, Store: func(c *store.Config) {
		c.Interval = o.interval
		cfg = *c
	}}))
	st, err := store.New(rdb, cfg)
	if err != nil {
		t.Fatal(err)
	}
	e.env = &env{rdb: rdb, st: st, clk: e.setup.clk}
	e.enq = asynq.NewClientFromRedisClient(e.st.SharedClient())
	return e
}

// due is a connection and the slot its task is for.
type due struct {
	conn string
	slot time.Time
}

func (d due) taskID() string { return tasks.CheckTaskID(d.conn, d.slot) }

// seed creates n connections and returns them with the slot the tick at
// faultAt enqueues: weekly, their first weekly slot after a check at t0
// (the cursor started at t0); on demand, their creation (they are new).
func (e *faultEnv) seed(t *testing.T, n int, weekly bool) (items []due, faultAt time.Time) {
	t.Helper()
	ctx := context.Background()
	co := e.setup.company(t, "Acme")
	ins := make([]store.NewConnection, n)
	for i := range ins {
		ins[i] = store.NewConnection{Datasource: "sandbox", Credentials: checks.Credentials{Username: fmt.Sprintf("user_%d", i), Password: "pw"}}
	}
	cns, err := e.setup.st.CreateConnections(ctx, co.ID, ins)
	if err != nil {
		t.Fatal(err)
	}
	if !weekly {
		for _, cn := range cns {
			items = append(items, due{cn.ID, t0})
		}
		return items, t0.Add(time.Minute)
	}
	var wg sync.WaitGroup
	for w := range 8 {
		wg.Go(func() {
			for i := w; i < len(cns); i += 8 {
				e.setup.checkOnce(t, cns[i].ID, t0)
			}
		})
	}
	wg.Wait()
	iv := e.st.Interval()
	for _, cn := range cns {
		items = append(items, due{cn.ID, checks.NextSlot(cn.ID, t0, iv)})
	}
	return items, t0.Add(iv)
}

// redisState is what Redis holds for the invariants.
type redisState struct {
	pending  map[string]int            // task ID → times in the default queue's pending list (slots up to upTo)
	byConn   map[string]int            // connection → pending check tasks of it (slots up to upTo)
	later    int                       // pending tasks for slots after upTo
	hashes   map[string]bool           // task ID → its task hash exists
	due      map[string]int64          // due index: connection → ms
	inflight map[string]map[int64]bool // claims in flight: connection → slots (ms)
	cursor   int64                     // sweep cursor (ms); 0: none
}

// state reads what Redis holds; tasks for slots after upTo (the next
// weekly slot of a connection, which recovery ticks may reach) are only
// counted in later.
func (e *faultEnv) state(t *testing.T, items []due, upTo time.Time) redisState {
	t.Helper()
	ctx := context.Background()
	s := redisState{pending: map[string]int{}, byConn: map[string]int{}, hashes: map[string]bool{},
		due: map[string]int64{}, inflight: map[string]map[int64]bool{}}
	ids, err := e.raw.LRange(ctx, "asynq:{"+tasks.QueueDefault+"}:pending", 0, -1).Result()
	if err != nil {
		t.Fatal(err)
	}
	for _, id := range ids {
		parts := strings.Split(id, ":")
		if len(parts) != 3 {
			t.Fatalf("pending task ID %q is not a check's", id)
		}
		if slot, err := strconv.ParseInt(parts[2], 10, 64); err != nil || slot > upTo.UnixMilli() {
			s.later++
			continue
		}
		s.pending[id]++
		s.byConn[parts[1]]++
	}
	for _, it := range items {
		n, err := e.raw.Exists(ctx, "asynq:{"+tasks.QueueDefault+"}:t:"+it.taskID()).Result()
		if err != nil {
			t.Fatal(err)
		}
		s.hashes[it.taskID()] = n == 1
	}
	zs, err := e.raw.ZRangeWithScores(ctx, "cd:due", 0, -1).Result()
	if err != nil {
		t.Fatal(err)
	}
	for _, z := range zs {
		s.due[z.Member.(string)] = int64(z.Score)
	}
	batches, err := e.raw.ZRange(ctx, "cd:fl", 0, -1).Result()
	if err != nil {
		t.Fatal(err)
	}
	for _, b := range batches {
		v, err := e.raw.Get(ctx, b).Result()
		if errors.Is(err, redis.Nil) {
			continue
		}
		if err != nil {
			t.Fatal(err)
		}
		_, list, _ := strings.Cut(v, "|")
		f := strings.Fields(list)
		for i := 0; i+1 < len(f); i += 2 {
			ms, _ := strconv.ParseInt(f[i+1], 10, 64)
			if s.inflight[f[i]] == nil {
				s.inflight[f[i]] = map[int64]bool{}
			}
			s.inflight[f[i]][ms] = true
		}
	}
	if c, err := e.raw.Get(ctx, "cd:sw").Int64(); err == nil {
		s.cursor = c
	} else if !errors.Is(err, redis.Nil) {
		t.Fatal(err)
	}
	return s
}

// requireSafe fails the test unless every item has exactly one pending
// task for its slot, or none and is where a later tick retries it with
// that slot; and no connection has a task for another slot up to upTo
// (the faulty tick's time), or two. It returns how many have their task.
func (e *faultEnv) requireSafe(t *testing.T, when string, items []due, upTo time.Time) int {
	t.Helper()
	s := e.state(t, items, upTo)
	queued, lost, twice := 0, 0, 0
	for _, it := range items {
		id, slot := it.taskID(), it.slot.UnixMilli()
		switch n := s.pending[id]; {
		case n == 1 && s.hashes[id] && s.byConn[it.conn] == 1:
			queued++
		case n == 0 && !s.hashes[id] && s.byConn[it.conn] == 0:
			if s.due[it.conn] == slot || s.inflight[it.conn][slot] || slot > s.cursor {
				continue
			}
			lost++
			if lost <= 3 {
				t.Errorf("%s: %s has no task and nothing retries it (due %d, in flight %v, cursor %d, slot %d)",
					when, it.conn, s.due[it.conn], s.inflight[it.conn], s.cursor, slot)
			}
		default:
			twice++
			if twice <= 3 {
				t.Errorf("%s: %s: task %s in pending %d times (hash %v), %d tasks of the connection",
					when, it.conn, id, n, s.hashes[id], s.byConn[it.conn])
			}
		}
	}
	if total := len(s.pending); total != queued {
		t.Errorf("%s: %d task IDs pending, %d of them the due connections' (each once)", when, total, queued)
	}
	if s.later > 0 {
		t.Logf("%s: %d tasks pending for weekly slots after the faulty tick", when, s.later)
	}
	if lost > 0 || twice > 0 {
		t.Fatalf("%s: of %d due connections %d lost, %d with a wrong task count", when, len(items), lost, twice)
	}
	return queued
}

// sweepLock is the weekly sweep's lock (store.BeginSweep).
const sweepLock = "cd:sw:lock"

// endLeftLock ends a sweep lock that the last tick left held, as its
// lease running out would: recovery ticks come a lease apart on the test's
// clock, but the lock expires on Redis's, which a test cannot move. Only
// a tick that failed may leave it (End could not reach Redis); one that
// reported no error and left it fails the test.
func (e *faultEnv) endLeftLock(t *testing.T, tick string, tickErr error) {
	t.Helper()
	n, err := e.raw.Del(context.Background(), sweepLock).Result()
	if err != nil {
		t.Fatal(err)
	}
	if n == 0 {
		return
	}
	if tickErr == nil {
		t.Errorf("%s reported no error and left the sweep lock held", tick)
	}
	t.Logf("%s left the sweep lock held (%v); ended as its lease running out would", tick, tickErr)
}

// recover ticks with the faults off, a minute and a lease apart (ending a
// sweep lock a failed tick left: endLeftLock), until every due connection
// has its task and nothing is left to retry, or 30s pass. It returns the
// ticks' stats, and how many of the tasks they enqueued are for weekly
// slots after now (legitimately due in the ticks' range).
func (e *faultEnv) recover(t *testing.T, s *Scheduler, now time.Time, items []due, faultyErr error) ([]TickStats, int) {
	t.Helper()
	at := now
	ctx := context.Background()
	var (
		out     []TickStats
		queued  int
		backlog int64
		rs      redisState
		// the last tick, and its error
		prev, prevErr = "the faulty tick", faultyErr
	)
	recovered := poll.Until(30*time.Second, func() bool {
		e.endLeftLock(t, prev, prevErr)
		now = now.Add(time.Minute + s.cfg.Lease)
		e.clk.Set(now)
		st, err := s.Tick(ctx, now)
		if err != nil {
			t.Logf("recovery tick %d: %v", len(out)+1, err)
		}
		prev, prevErr = fmt.Sprintf("recovery tick %d", len(out)+1), err
		if st.Claimed != st.Enqueued+st.AlreadyQueued+st.Failed {
			t.Errorf("recovery tick %+v: claimed is not enqueued + already queued + failed", st)
		}
		out = append(out, st)
		queued = e.requireSafe(t, fmt.Sprintf("after recovery tick %d", len(out)), items, at)
		// Read through the plain client: the one under test may run
		// without retries, and after a crash each stale pooled connection
		// of it fails once.
		if backlog, err = e.setup.st.DueBacklog(ctx, now); err != nil {
			t.Fatalf("due backlog: %v", err)
		}
		rs = e.state(t, nil, at)
		return queued == len(items) && backlog == 0 && len(rs.due) == 0 && len(rs.inflight) == 0
	})
	if !recovered {
		t.Fatalf("after %d recovery ticks (%+v): %d of %d queued, backlog %d, %d due, %d in flight",
			len(out), out, queued, len(items), backlog, len(rs.due), len(rs.inflight))
	}
	e.endLeftLock(t, prev, prevErr)
	return out, rs.later
}

// TestSharedSweepFaults proves that a sweep whose enqueues share round
// trips through Store.SharedClient (EnqueueConcurrency 32, as the daemon
// runs it) neither loses nor duplicates a connection's check when Redis
// fails part-way through a shared round trip, from the weekly schedule and
// from the on-demand due index alike:
//
//   - at the wire, under go-redis (with its retries, which re-send the
//     whole pipeline, and without): the connection breaks after Redis got
//     only the first commands; Redis runs them all and the connection
//     breaks after some replies, or the read times out; CLIENT KILL of the
//     pipeline's connection;
//   - around the pipeline (after any retry): Redis runs it all and the
//     callers of all but the first command are told it failed; or only
//     the first commands reach Redis;
//   - on a redis-server of its own: SCRIPT FLUSH mid-sweep (the enqueues
//     meet NOSCRIPT and fall back to EVAL), a crash and restart mid-sweep
//     (AOF, appendfsync always) between round trips or right after a
//     pipeline was written (its replies never come), and CLIENT PAUSE
//     longer than the client's read timeout;
//   - the tick's context cancelled mid-sweep (Stop), with enqueues queued
//     in the group commit behind the round trip in flight.
//
// After the faulty tick every due connection has exactly one pending task
// for its slot, or none and sits where a later tick retries that slot
// (due index or in-flight claim at the slot, or past the cursor); after
// recovery ticks each has exactly one, and nothing is left due. Where the
// fault is exact (the hook), the retries account for it: every enqueue
// Redis ran but reported failed comes back as AlreadyQueued (a task ID
// conflict counted as queued), every one it never ran as Enqueued.
func TestSharedSweepFaults(t *testing.T) {
	t.Parallel()
	const n = 256
	type tc struct {
		name       string
		opts       faultOpts
		wire       wireFault
		pipe       pipeFault
		action     func(t *testing.T, e *faultEnv)
		keep       int
		shots      int
		wantFailed bool // the faulty tick must report failed enqueues
		// lone: one enqueuer (EnqueueConcurrency 1), so every enqueue is
		// sent alone, as an API refresh's is; the faults hit those.
		lone bool
		// noScript: the fault empties Redis's script cache, so enqueues
		// must fall back to EVAL.
		noScript bool
	}
	cases := []tc{
		{name: "write cut, retried", wire: cutWrite, keep: 3, shots: 3},
		{name: "write cut, no retries", opts: faultOpts{maxRetries: -1}, wire: cutWrite, keep: 3, shots: 3, wantFailed: true},
		{name: "reply cut, retried", wire: cutRead, keep: 3, shots: 3},
		{name: "reply cut, no retries", opts: faultOpts{maxRetries: -1}, wire: cutRead, keep: 3, shots: 3, wantFailed: true},
		{name: "read timeout, retried", wire: readTimeout, shots: 3},
		{name: "read timeout, no retries", opts: faultOpts{maxRetries: -1}, wire: readTimeout, shots: 3, wantFailed: true},
		{name: "client kill, retried", wire: clientKill, shots: 3},
		{name: "client kill, no retries", opts: faultOpts{maxRetries: -1}, wire: clientKill, shots: 3},
		{name: "executed, replies lost", pipe: lostReplies, keep: 1, shots: 2, wantFailed: true},
		{name: "aborted part-way", pipe: aborted, keep: 2, shots: 2, wantFailed: true},
		{name: "lone enqueue, reply cut, retried", wire: cutRead, shots: 3, lone: true},
		{name: "lone enqueue, reply cut, no retries", opts: faultOpts{maxRetries: -1}, wire: cutRead, shots: 3, lone: true, wantFailed: true},
		{name: "lone enqueue, executed, reply lost", pipe: lostReplies, shots: 3, lone: true, wantFailed: true},
		{name: "tick cancelled mid-sweep", pipe: after, shots: 1,
			action: func(t *testing.T, e *faultEnv) { e.cancelTick() }},
		{name: "script flush", opts: faultOpts{private: true}, pipe: after, shots: 1, noScript: true,
			action: func(t *testing.T, e *faultEnv) {
				if err := e.raw.ScriptFlush(context.Background()).Err(); err != nil {
					t.Errorf("SCRIPT FLUSH: %v", err)
				}
			}},
		{name: "crash and restart", opts: faultOpts{private: true, aof: true}, pipe: after, shots: 1, noScript: true,
			action: func(t *testing.T, e *faultEnv) { e.srv.Crash() }},
		{name: "crash after a pipeline was written, retried", opts: faultOpts{private: true, aof: true}, wire: crashAfterWrite, shots: 1, noScript: true},
		{name: "crash after a pipeline was written, no retries", opts: faultOpts{private: true, aof: true, maxRetries: -1}, wire: crashAfterWrite, shots: 1, wantFailed: true},
		// The pause (5 s) outlasts go-redis's four tries at the read
		// timeout (1 s), so enqueues in flight fail though Redis runs them
		// after it; a loaded machine alone never reaches that timeout
		// (100 ms did: the tick failed before the fault), and the plain
		// client's (3 s) sees the pause out with one retry.
		{name: "client pause beyond the read timeout", opts: faultOpts{private: true, readTimeout: time.Second},
			pipe: after, shots: 1,
			action: func(t *testing.T, e *faultEnv) {
				if err := e.raw.Do(context.Background(), "CLIENT", "PAUSE", 5000, "ALL").Err(); err != nil {
					t.Errorf("CLIENT PAUSE: %v", err)
				}
			}},
	}
	for _, c := range cases {
		for _, weekly := range []bool{true, false} {
			src := "on demand"
			if weekly {
				src = "weekly"
			}
			t.Run(c.name+"/"+src, func(t *testing.T) {
				t.Parallel()
				o := c.opts
				o.interval = longInterval
				if weekly {
					o.interval = defaultInterval
				}
				e := newFaultEnv(t, o)
				items, at := e.seed(t, n, weekly)
				enqueuers, minCmds := 0, 2 // 0: the default concurrency
				if c.lone {
					enqueuers, minCmds = 1, 1
				}
				// checkd's lease (minutes): no tick outlives it, however
				// loaded the machine. A lease shorter than a tick loses the
				// sweep lock mid-tick, and the next tick sweeps the range
				// again (all AlreadyQueued): safe, but not the fault under
				// test here (the store's sweep conformance tests lose it).
				s := mustNew(t, e.st, e.enq, func(cfg *Config) {
					cfg.BatchSize = 64
					if enqueuers > 0 {
						cfg.EnqueueConcurrency = enqueuers
					}
				})
				ctx := context.Background()
				if weekly { // starts the cursor at t0
					if st, err := s.Tick(ctx, t0); err != nil || st.Claimed != 0 {
						t.Fatalf("first tick: %+v, %v", st, err)
					}
				}

				e.wire.fault, e.wire.keep, e.wire.minCmds = c.wire, c.keep, minCmds
				e.pipe.fault, e.pipe.keep, e.pipe.minCmds = c.pipe, c.keep, minCmds
				if c.action != nil {
					e.pipe.action = func() { c.action(t, e) }
				}
				if c.wire != 0 {
					e.wire.shots.Store(int64(c.shots))
				} else {
					e.pipe.shots.Store(int64(c.shots))
				}
				e.clk.Set(at)
				b0 := e.st.BatchStats()
				tctx, cancel := context.WithCancel(ctx)
				defer cancel()
				e.cancelTick = cancel
				st, err := s.Tick(tctx, at)
				e.wire.shots.Store(0)
				e.pipe.shots.Store(0)
				fired := e.wire.fired.Load() + e.pipe.fired.Load()
				t.Logf("faulty tick: %+v, err %v; %d faults, %d executed with their replies lost, %d not run, %d EVAL fallbacks",
					st, err, fired, e.pipe.executedLost.Load(), e.pipe.notRun.Load(), e.pipe.evals.Load())
				if c.noScript && e.pipe.evals.Load() == 0 {
					t.Error("no enqueue met NOSCRIPT and fell back to EVAL")
				}
				if fired == 0 {
					t.Fatalf("no fault was injected: no round trip carried %d enqueues", minCmds)
				}
				if b := e.st.BatchStats(); c.lone && b.Pipelined != b0.Pipelined {
					t.Errorf("one enqueuer: %d calls pipelined, want every enqueue sent alone", b.Pipelined-b0.Pipelined)
				}
				if st.Claimed != st.Enqueued+st.AlreadyQueued+st.Failed {
					t.Errorf("faulty tick %+v: claimed is not enqueued + already queued + failed", st)
				}
				if c.wantFailed && st.Failed == 0 {
					t.Errorf("faulty tick %+v: want failed enqueues", st)
				}
				e.requireSafe(t, "after the faulty tick", items, at)

				rec, later := e.recover(t, s, at, items, err)
				enq, already := -later, 0 // only the retries of the faulty tick's slots
				for _, r := range rec {
					enq += r.Enqueued
					already += r.AlreadyQueued
				}
				t.Logf("recovered in %d ticks: %d enqueued, %d already queued (and %d next weekly slots)", len(rec), enq, already, later)
				// Each task was created by one enqueue (told so, or told it
				// failed); each connection's last try was told it is queued.
				if created, told := enq+st.Enqueued, enq+st.Enqueued+already+st.AlreadyQueued; created > n || told < n {
					t.Errorf("%d enqueues told they created a task, %d told it is queued, for %d connections", created, told, n)
				}
				if c.pipe == lostReplies || c.pipe == aborted {
					if int64(already) != e.pipe.executedLost.Load() || int64(enq) != e.pipe.notRun.Load() || st.Failed != already+enq {
						t.Errorf("recovery: %d enqueued, %d already queued for %d failed; want the %d executed with lost replies refused as already queued and the %d not run enqueued",
							enq, already, st.Failed, e.pipe.executedLost.Load(), e.pipe.notRun.Load())
					}
				}
			})
		}
	}
}
