package groupcommit

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"

	"github.com/checkd/checkd/internal/testing/redistest"
)

// The shared client's tests: an asynq.Client over Batcher.Client, on
// miniredis and on a real redis-server (batchBackends). As in the group
// commit's tests, a gate holds the batcher's own lone call while the test
// queues enqueues behind it, so the round trip that follows is known
// exactly; waits poll with a deadline that only bounds a hang.

// sharedEnv is a batcher over a fresh Redis whose client has a gate, and an
// asynq client over the batcher's Client.
type sharedEnv struct {
	b      *Batcher
	g      *redistest.Gate
	forget *forgetter
	rdb    redis.UniversalClient
	mr     *miniredis.Miniredis // nil: a real Redis
	enq    *asynq.Client
	insp   *asynq.Inspector
}

func newSharedEnv(t *testing.T, be batchBackend, window time.Duration) *sharedEnv {
	t.Helper()
	rdb, mr := be.new(t)
	e := &sharedEnv{g: redistest.NewGate(), forget: &forgetter{}, rdb: rdb, mr: mr}
	rdb.AddHook(e.g)
	rdb.AddHook(e.forget)
	e.b = New(rdb, window)
	e.enq = asynq.NewClientFromRedisClient(e.b.Client())
	e.insp = asynq.NewInspectorFromRedisClient(rdb)
	// holdLead's call: cached, so it is one EVALSHA that never meets NOSCRIPT.
	if err := leadScript.Load(context.Background(), rdb).Err(); err != nil {
		t.Fatal(err)
	}
	return e
}

// enqueue enqueues a task of ID id with payload to queue q through the
// shared client, checking the TaskInfo asynq returns.
func (e *sharedEnv) enqueue(ctx context.Context, q, id, payload string) error {
	return enqueueWith(ctx, e.enq, q, id, payload)
}

func enqueueWith(ctx context.Context, c *asynq.Client, q, id, payload string) error {
	info, err := c.EnqueueContext(ctx, asynq.NewTask("check", []byte(payload)), asynq.TaskID(id), asynq.Queue(q))
	if err != nil {
		return err
	}
	if info.ID != id || info.Queue != q || info.State != asynq.TaskStatePending || string(info.Payload) != payload {
		return fmt.Errorf("enqueued %s to %s: info %+v", id, q, info)
	}
	return nil
}

// pending is the IDs in queue q's pending list, sorted.
func (e *sharedEnv) pending(t *testing.T, q string) []string {
	t.Helper()
	ids, err := e.rdb.LRange(context.Background(), "asynq:{"+q+"}:pending", 0, -1).Result()
	if err != nil {
		t.Fatal(err)
	}
	slices.Sort(ids)
	return ids
}

// requireTasks fails the test unless queue q holds exactly the pending tasks
// of want (ID to payload), each once, as the asynq Inspector reads them.
func (e *sharedEnv) requireTasks(t *testing.T, q string, want map[string]string) {
	t.Helper()
	ids := make([]string, 0, len(want))
	for id := range want {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	if got := e.pending(t, q); !slices.Equal(got, ids) {
		t.Fatalf("pending in %s: %v, want %v", q, got, ids)
	}
	for _, id := range ids {
		info, err := e.insp.GetTaskInfo(q, id)
		if err != nil {
			t.Fatalf("task %s: %v", id, err)
		}
		if info.State != asynq.TaskStatePending || string(info.Payload) != want[id] {
			t.Fatalf("task %s: %s with payload %q, want pending with %q", id, info.State, info.Payload, want[id])
		}
	}
}

// awaitEntered waits for the gate to hold a command (or a pipeline) and
// returns which.
func awaitEntered(t *testing.T, g *redistest.Gate) string {
	t.Helper()
	select {
	case got := <-g.Entered():
		return got
	case <-time.After(20 * time.Second):
		t.Fatal("nothing reached the gate")
		return ""
	}
}

// holdLead sends the batcher's own lone call (leadScript), held at the gate
// until release is called, so calls made meanwhile queue behind it and go
// out together as the next round trip. lead gets the call's error.
func (e *sharedEnv) holdLead(t *testing.T) (release func(), lead <-chan error) {
	t.Helper()
	release = e.g.HoldNextSingle()
	t.Cleanup(release)
	done := make(chan error, 1)
	go func() { done <- e.b.Run(context.Background(), leadScript, nil).Err() }()
	if got := awaitEntered(t, e.g); got != "single" {
		t.Fatalf("the lone call went out as a %s", got)
	}
	return release, done
}

// queue starts f, which makes one call through the batcher, and waits until
// that call is queued (the batcher then holds n calls).
func (e *sharedEnv) queue(t *testing.T, wg *sync.WaitGroup, n int, f func()) {
	t.Helper()
	wg.Go(f)
	waitFor(t, fmt.Sprintf("call %d to queue", n), func() bool { return e.b.Queued() == n })
}

// forceShared runs calls (each makes one call through the batcher first)
// as one round trip: each queues behind the held lead before the next
// starts. It returns when every call returned.
func (e *sharedEnv) forceShared(t *testing.T, calls []func()) {
	t.Helper()
	release, lead := e.holdLead(t)
	var wg sync.WaitGroup
	for i, f := range calls {
		e.queue(t, &wg, i+1, f)
	}
	release()
	wg.Wait()
	if err := <-lead; err != nil {
		t.Fatalf("the lead call: %v", err)
	}
}

// forgetter makes a real Redis answer NOSCRIPT to the EVALSHAs of the next
// pipeline of them, as after a SCRIPT FLUSH, by sending them with the digest
// of a script that no Redis has: a real SCRIPT FLUSH would empty the script
// cache of a redis-server that other packages' tests share (miniredis, each
// test's own, gets a real SCRIPT FLUSH). The caller then falls back to EVAL
// with the script's source, as it would after a flush.
type forgetter struct{ armed atomic.Bool }

const unknownSHA = "ffffffffffffffffffffffffffffffffffffffff"

func (f *forgetter) DialHook(next redis.DialHook) redis.DialHook          { return next }
func (f *forgetter) ProcessHook(next redis.ProcessHook) redis.ProcessHook { return next }
func (f *forgetter) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		if len(cmds) > 0 && cmds[0].Name() == "evalsha" && f.armed.CompareAndSwap(true, false) {
			for _, c := range cmds {
				if c.Name() == "evalsha" {
					c.Args()[1] = unknownSHA
				}
			}
		}
		return next(ctx, cmds)
	}
}

// loseScripts makes Redis forget the scripts, as a restart or SCRIPT FLUSH
// does, then caches leadScript again (holdLead's call, so only the calls
// under test meet NOSCRIPT).
func (e *sharedEnv) loseScripts(t *testing.T) {
	t.Helper()
	if e.mr == nil {
		e.forget.armed.Store(true)
		return
	}
	ctx := context.Background()
	if err := e.rdb.ScriptFlush(ctx).Err(); err != nil {
		t.Fatal(err)
	}
	if err := leadScript.Load(ctx, e.rdb).Err(); err != nil {
		t.Fatal(err)
	}
}

// TestSharedClientConcurrentEnqueues proves that an asynq.Client over
// SharedClient, used as a sweep uses it (64 goroutines, 2000 distinct task
// IDs), enqueues every task exactly once, and that the enqueues went
// through the group commit and shared round trips: all 64 goroutines'
// first enqueues, queued behind a held call, go out as one pipeline, and no
// EVALSHA goes to Redis on its own.
func TestSharedClientConcurrentEnqueues(t *testing.T) {
	t.Parallel()
	for _, be := range batchBackends {
		t.Run(be.name, func(t *testing.T) {
			t.Parallel()
			e := newSharedEnv(t, be, 0)
			const tasks, goroutines, q = 2000, 64, "checks"
			ids := make(chan string, tasks)
			want := make(map[string]string, tasks)
			for i := range tasks {
				id := fmt.Sprintf("check:conn_%04d", i)
				ids <- id
				want[id] = "payload of " + id
			}
			close(ids)
			var errs sync.Map
			workers := make([]func(), goroutines)
			for i := range workers {
				workers[i] = func() {
					for id := range ids {
						if err := e.enqueue(context.Background(), q, id, want[id]); err != nil {
							errs.Store(id, err)
						}
					}
				}
			}
			e.forceShared(t, workers)
			errs.Range(func(id, err any) bool {
				t.Errorf("enqueue %s: %v", id, err)
				return true
			})

			p := e.g.Pipelines()
			if len(p) == 0 || len(p[0]) != goroutines || slices.ContainsFunc(p[0], func(n string) bool { return n != "evalsha" }) {
				t.Errorf("first pipeline %v, want the %d goroutines' first EVALSHAs", p[:min(len(p), 1)], goroutines)
			}
			if s := e.g.Singles(); slices.Index(s, "evalsha") != 0 || slices.Contains(s[1:], "evalsha") {
				t.Errorf("%d script commands sent alone, %d of them EVALSHA; want the lead's EVALSHA alone (the enqueues' go through the group commit)",
					len(s), len(slices.DeleteFunc(s, func(n string) bool { return n != "evalsha" })))
			}
			st := e.b.Stats()
			if st.Calls != tasks+1 || st.Batches >= st.Calls || st.Pipelined < goroutines {
				t.Errorf("stats %+v; want %d calls (the enqueues and the lead) sharing round trips", st, tasks+1)
			}
			t.Logf("%+v: %.1f calls per round trip", st, float64(st.Calls)/float64(st.Batches))
			e.b.requireIdle(t)

			// (The Inspector runs scripts of its own: after the gate's record.)
			e.requireTasks(t, q, want)
			qi, err := e.insp.GetQueueInfo(q)
			if err != nil {
				t.Fatal(err)
			}
			if qi.Pending != tasks || qi.Size != tasks {
				t.Errorf("queue info: %d pending, size %d; want %d", qi.Pending, qi.Size, tasks)
			}
		})
	}
}

// TestSharedClientErrorIsolation proves that in one shared round trip each
// call gets its own outcome: enqueues of task IDs that already exist get
// asynq.ErrTaskIDConflict and leave the existing task as it was, new ones
// are enqueued, a script error (a queue whose pending list is not a list)
// fails that enqueue alone, and the batcher's own call in the same pipeline
// gets its reply.
func TestSharedClientErrorIsolation(t *testing.T) {
	t.Parallel()
	for _, be := range batchBackends {
		t.Run(be.name, func(t *testing.T) {
			t.Parallel()
			e := newSharedEnv(t, be, 0)
			ctx := context.Background()
			const q, broken = "checks", "broken"
			// The existing tasks, enqueued unbatched.
			plain := asynq.NewClientFromRedisClient(e.rdb)
			for _, id := range []string{"dup-1", "dup-2", "dup-3"} {
				if err := enqueueWith(ctx, plain, q, id, "first"); err != nil {
					t.Fatal(err)
				}
			}
			if err := e.rdb.Set(ctx, "asynq:{"+broken+"}:pending", "not a list", 0).Err(); err != nil {
				t.Fatal(err)
			}
			if err := echoScript.Load(ctx, e.rdb).Err(); err != nil {
				t.Fatal(err)
			}

			type outcome int
			const (
				enqueued outcome = iota
				conflict
				wrongType
				storeReply
			)
			cases := []struct {
				q, id string
				want  outcome
			}{
				{q, "new-1", enqueued},
				{q, "dup-1", conflict},
				{q, "new-2", enqueued},
				{broken, "bad-1", wrongType},
				{q, "dup-2", conflict},
				{"", "", storeReply}, // the batcher's own call
				{q, "new-3", enqueued},
				{q, "dup-3", conflict},
				{q, "new-4", enqueued},
			}
			errs := make([]error, len(cases))
			vals := make([]any, len(cases))
			calls := make([]func(), len(cases))
			for i, c := range cases {
				calls[i] = func() {
					if c.want == storeReply {
						vals[i], errs[i] = e.b.Run(ctx, echoScript, nil, "store").Result()
						return
					}
					errs[i] = e.enqueue(ctx, c.q, c.id, "second")
				}
			}
			e.g.Reset()
			e.forceShared(t, calls)

			wantTasks := map[string]string{"dup-1": "first", "dup-2": "first", "dup-3": "first"}
			for i, c := range cases {
				err := errs[i]
				switch c.want {
				case enqueued:
					if err != nil {
						t.Errorf("%s: %v, want it enqueued", c.id, err)
					}
					wantTasks[c.id] = "second"
				case conflict:
					if !errors.Is(err, asynq.ErrTaskIDConflict) {
						t.Errorf("%s: %v, want asynq.ErrTaskIDConflict", c.id, err)
					}
				case wrongType:
					if err == nil || !strings.Contains(err.Error(), "WRONGTYPE") || errors.Is(err, asynq.ErrTaskIDConflict) {
						t.Errorf("%s: %v, want the script's WRONGTYPE error", c.id, err)
					}
				case storeReply:
					if err != nil || vals[i] != "store" {
						t.Errorf("the batcher's own call: %v, %v; want its reply", vals[i], err)
					}
				}
			}
			if p := e.g.Pipelines(); len(p) == 0 || len(p[0]) != len(cases) {
				t.Errorf("pipelines %v, want one carrying all %d calls", p, len(cases))
			}
			e.requireTasks(t, q, wantTasks)
			if got := e.rdb.Get(ctx, "asynq:{"+broken+"}:pending").Val(); got != "not a list" {
				t.Errorf("the broken queue's pending key: %q", got)
			}
			if st := e.b.Stats(); st.Pipelined != int64(len(cases)) {
				t.Errorf("stats %+v, want the %d calls pipelined", st, len(cases))
			}
			e.b.requireIdle(t)
		})
	}
}

// TestSharedClientNoScript proves that enqueues still succeed, each exactly
// once, when Redis has lost asynq's script (SCRIPT FLUSH on miniredis; an
// unknown digest on the shared real Redis, see forgetter): the EVALSHA
// gets NOSCRIPT and go-redis's Script.Run runs the script with EVAL, alone
// or when several of them met NOSCRIPT in one shared round trip; and that
// EVAL caches the script again, so the next round trip needs no EVAL.
func TestSharedClientNoScript(t *testing.T) {
	t.Parallel()
	for _, be := range batchBackends {
		for _, tc := range []struct {
			name string
			n    int // enqueues in the round trip
		}{
			{"lone enqueue", 1},
			{"several in one round trip", 6},
		} {
			t.Run(be.name+"/"+tc.name, func(t *testing.T) {
				t.Parallel()
				e := newSharedEnv(t, be, 0)
				ctx := context.Background()
				const q = "checks"
				want := map[string]string{"warm": "w"}
				if err := e.enqueue(ctx, q, "warm", "w"); err != nil { // caches the script, publishes the queue
					t.Fatal(err)
				}
				// round sends the enqueues of ids as one round trip.
				round := func(ids []string) []error {
					errs := make([]error, len(ids))
					calls := make([]func(), len(ids))
					for i, id := range ids {
						calls[i] = func() { errs[i] = e.enqueue(ctx, q, id, "p-"+id) }
						want[id] = "p-" + id
					}
					if len(ids) == 1 {
						calls[0]()
					} else {
						e.forceShared(t, calls)
					}
					return errs
				}
				ids := func(round string) []string {
					out := make([]string, tc.n)
					for i := range out {
						out[i] = fmt.Sprintf("%s-%d", round, i)
					}
					return out
				}

				e.loseScripts(t)
				e.g.Reset()
				for i, err := range round(ids("lost")) {
					if err != nil {
						t.Errorf("enqueue %d after the script was lost: %v", i, err)
					}
				}
				p := e.g.Pipelines()
				if len(p) != 1 || len(p[0]) != tc.n {
					t.Errorf("pipelines %v, want one of the %d EVALSHAs", p, tc.n)
				}
				evals := slices.DeleteFunc(e.g.Singles(), func(n string) bool { return n != "eval" })
				if len(evals) != tc.n {
					t.Errorf("%d EVALs, want one per enqueue that met NOSCRIPT (%d)", len(evals), tc.n)
				}
				e.requireTasks(t, q, want)

				e.g.Reset()
				for i, err := range round(ids("again")) {
					if err != nil {
						t.Errorf("enqueue %d with the script cached again: %v", i, err)
					}
				}
				if evals := slices.DeleteFunc(e.g.Singles(), func(n string) bool { return n != "eval" }); len(evals) != 0 {
					t.Errorf("%d EVALs, want none: the script is cached again", len(evals))
				}
				e.requireTasks(t, q, want)
				e.b.requireIdle(t)
			})
		}
	}
}

// TestSharedClientCancelled proves that an enqueue whose context is done
// before it is sent fails alone, at once, with exactly the error an
// unbatched asynq client gives it (asynq reports script errors as text, so
// it names context.Canceled without wrapping it; a Script.Run over the
// shared client does wrap it), and enqueues nothing; enqueues in flight
// with it succeed in one round trip without it.
func TestSharedClientCancelled(t *testing.T) {
	t.Parallel()
	for _, be := range batchBackends {
		for _, whileQueued := range []bool{false, true} {
			name := be.name + "/before the call"
			if whileQueued {
				name = be.name + "/while queued"
			}
			t.Run(name, func(t *testing.T) {
				t.Parallel()
				e := newSharedEnv(t, be, 0)
				ctx := context.Background()
				const q = "checks"
				want := map[string]string{"warm": "w", "warm-plain": "w"}
				// Both clients have published the queue (asynq's SADD), so
				// a cancelled enqueue fails at its script.
				if err := e.enqueue(ctx, q, "warm", "w"); err != nil {
					t.Fatal(err)
				}
				plain := asynq.NewClientFromRedisClient(e.rdb)
				if err := enqueueWith(ctx, plain, q, "warm-plain", "w"); err != nil {
					t.Fatal(err)
				}
				cctx, cancel := context.WithCancel(ctx)
				defer cancel()
				doneCtx, cancelNow := context.WithCancel(ctx)
				cancelNow()
				wantErr := enqueueWith(doneCtx, plain, q, "gone-plain", "x")
				if wantErr == nil || !strings.Contains(wantErr.Error(), context.Canceled.Error()) {
					t.Fatalf("unbatched, cancelled: %v", wantErr)
				}
				if err := echoScript.Load(ctx, e.rdb).Err(); err != nil {
					t.Fatal(err)
				}

				// The cancelled calls: an enqueue, and a Script.Run over the
				// shared client.
				goneEnq, goneRun := make(chan error, 1), make(chan error, 1)
				goneEnqueue := func() { goneEnq <- e.enqueue(cctx, q, "gone", "x") }
				goneScript := func() { goneRun <- echoScript.Run(cctx, e.b.Client(), nil, "gone").Err() }
				// checkGone waits for both (while a round trip is held, they
				// return only by leaving the queue).
				checkGone := func() {
					t.Helper()
					for _, ch := range []chan error{goneEnq, goneRun} {
						select {
						case err := <-ch:
							if ch == goneRun && !errors.Is(err, context.Canceled) {
								t.Errorf("cancelled Script.Run: %v, want context.Canceled", err)
							}
							if ch == goneEnq && (err == nil || err.Error() != wantErr.Error()) {
								t.Errorf("cancelled enqueue: %v; want %v, as unbatched", err, wantErr)
							}
						case <-time.After(20 * time.Second):
							t.Fatal("a cancelled call did not return while the round trip was held")
						}
					}
				}
				s0 := e.b.Stats()
				e.g.Reset()
				if !whileQueued {
					cancel()
					goneEnqueue()
					goneScript()
					checkGone()
					if p, s := e.g.Pipelines(), e.g.Singles(); len(p)+len(s) != 0 {
						t.Errorf("a cancelled call was sent: %v %v", p, s)
					}
					if st := e.b.Stats(); st.Calls != s0.Calls {
						t.Errorf("stats %+v, %d calls before: a cancelled call was counted as sent", st, s0.Calls)
					}
				} else {
					release, lead := e.holdLead(t)
					live := []string{"live-0", "live-1", "live-2"}
					liveErrs := make([]error, len(live))
					var wg sync.WaitGroup
					e.queue(t, &wg, 1, func() { liveErrs[0] = e.enqueue(ctx, q, live[0], "l") })
					e.queue(t, &wg, 2, goneEnqueue)
					e.queue(t, &wg, 3, func() { liveErrs[1] = e.enqueue(ctx, q, live[1], "l") })
					e.queue(t, &wg, 4, goneScript)
					e.queue(t, &wg, 5, func() { liveErrs[2] = e.enqueue(ctx, q, live[2], "l") })
					cancel()
					checkGone() // while the lead is still held: they never waited for it
					if n := e.b.Queued(); n != len(live) {
						t.Errorf("%d calls queued after the cancelled ones left, want %d", n, len(live))
					}
					release()
					wg.Wait()
					if err := <-lead; err != nil {
						t.Fatal(err)
					}
					for i, err := range liveErrs {
						if err != nil {
							t.Errorf("%s: %v", live[i], err)
						}
						want[live[i]] = "l"
					}
					if p := e.g.Pipelines(); len(p) != 1 || len(p[0]) != len(live) {
						t.Errorf("pipelines %v, want one of the %d live enqueues", p, len(live))
					}
				}
				e.requireTasks(t, q, want)
				if n, err := e.rdb.Exists(ctx, "asynq:{"+q+"}:t:gone").Result(); err != nil || n != 0 {
					t.Errorf("the cancelled task's hash: exists %d, %v", n, err)
				}
				e.b.requireIdle(t)
			})
		}
	}
}

// TestSharedClientLoneEnqueue proves that a lone enqueue at an idle
// batcher is sent at once, alone: one call, one round trip, no window,
// even when the last round trip was shared and windowed calls wait for
// company (an hour here: an enqueue that waited would hang until the
// deadline).
func TestSharedClientLoneEnqueue(t *testing.T) {
	t.Parallel()
	for _, be := range batchBackends {
		t.Run(be.name, func(t *testing.T) {
			t.Parallel()
			e := newSharedEnv(t, be, time.Hour)
			ctx := context.Background()
			const q = "checks"
			if err := e.enqueue(ctx, q, "warm", "w"); err != nil {
				t.Fatal(err)
			}
			company(t, e.b, e.g)
			e.g.Reset()
			s0 := e.b.Stats()
			done := make(chan error, 1)
			go func() { done <- e.enqueue(ctx, q, "lone", "l") }()
			waitFor(t, "the lone enqueue (a window would hold it for an hour)", func() bool { return len(done) == 1 })
			if err := <-done; err != nil {
				t.Fatal(err)
			}
			st := e.b.Stats()
			if d := (Stats{Calls: st.Calls - s0.Calls, Batches: st.Batches - s0.Batches,
				Pipelined: st.Pipelined - s0.Pipelined, Windows: st.Windows - s0.Windows}); d != (Stats{Calls: 1, Batches: 1}) {
				t.Errorf("the lone enqueue: %+v, want one call in one round trip", d)
			}
			if p := e.g.Pipelines(); len(p) != 1 || !slices.Equal(p[0], []string{"evalsha"}) {
				t.Errorf("pipelines %v, want the enqueue's EVALSHA alone", p)
			}
			e.requireTasks(t, q, map[string]string{"warm": "w", "lone": "l"})
			e.b.requireIdle(t)
		})
	}
}

// TestSharedClientPassThrough proves that the shared client's other
// methods are the underlying client's: commands (PING, SADD, a GET of a
// missing key, EVAL) reach Redis directly with their replies, outside the
// group commit.
func TestSharedClientPassThrough(t *testing.T) {
	t.Parallel()
	for _, be := range batchBackends {
		t.Run(be.name, func(t *testing.T) {
			t.Parallel()
			e := newSharedEnv(t, be, 0)
			sc := e.b.Client()
			ctx := context.Background()
			if v, err := sc.Ping(ctx).Result(); err != nil || v != "PONG" {
				t.Errorf("PING: %q, %v", v, err)
			}
			if n, err := sc.SAdd(ctx, "set", "a", "b").Result(); err != nil || n != 2 {
				t.Errorf("SADD: %d, %v", n, err)
			}
			if got, err := e.rdb.SMembers(ctx, "set").Result(); err != nil || !slices.Equal(slices.Sorted(slices.Values(got)), []string{"a", "b"}) {
				t.Errorf("SMEMBERS through the underlying client: %v, %v", got, err)
			}
			if _, err := sc.Get(ctx, "missing").Result(); !errors.Is(err, redis.Nil) {
				t.Errorf("GET of a missing key: %v, want redis.Nil", err)
			}
			if v, err := sc.Eval(ctx, "return ARGV[1]", nil, "direct").Result(); err != nil || v != "direct" {
				t.Errorf("EVAL: %v, %v", v, err)
			}
			if st := e.b.Stats(); st.Calls != 0 {
				t.Errorf("stats %+v: a command other than EVALSHA went through the group commit", st)
			}
			if len(e.g.Singles()) != 1 {
				t.Errorf("script commands sent alone: %v, want the EVAL", e.g.Singles())
			}
		})
	}
}

// TestSharedClientEvalShaAsClient proves that the shared client's EVALSHA
// gives what the underlying client's gives, for every kind of reply (a value,
// an array, a nil reply as redis.Nil, a script error, NOSCRIPT) and every
// way go-redis takes arguments (variadic, or one slice or map that it
// flattens), whether sent alone or together in one round trip with an
// asynq enqueue and the batcher's own call, which get their own replies.
func TestSharedClientEvalShaAsClient(t *testing.T) {
	t.Parallel()
	for _, be := range batchBackends {
		t.Run(be.name, func(t *testing.T) {
			t.Parallel()
			e := newSharedEnv(t, be, 0)
			sc := e.b.Client()
			ctx := context.Background()
			if err := e.rdb.HSet(ctx, "h", "f", "v").Err(); err != nil {
				t.Fatal(err)
			}
			if err := e.rdb.Set(ctx, "s", "value of s", 0).Err(); err != nil {
				t.Fatal(err)
			}
			for _, s := range []*redis.Script{echoScript, pairScript, falseScript, errScript, leadScript} {
				if err := s.Load(ctx, e.rdb).Err(); err != nil {
					t.Fatal(err)
				}
			}
			cases := []struct {
				name string
				sha  string
				keys []string
				args []any
			}{
				{"value", echoScript.Hash(), nil, []any{"hello"}},
				{"array", pairScript.Hash(), []string{"s", "h"}, nil},
				{"array with a missing key", pairScript.Hash(), []string{"missing", "h"}, nil},
				{"nil reply", falseScript.Hash(), nil, nil},
				{"script error", errScript.Hash(), nil, []any{"x"}},
				{"NOSCRIPT", unknownSHA, nil, []any{"x"}},
				{"one []string argument", echoScript.Hash(), nil, []any{[]string{"a", "b"}}},
				{"one []any argument", echoScript.Hash(), nil, []any{[]any{"c", "d"}}},
				{"one map argument", echoScript.Hash(), nil, []any{map[string]any{"k": "v"}}},
			}
			reply := func(v any, err error) string { return fmt.Sprintf("%v / %v", v, err) }
			want := make([]string, len(cases))
			for i, c := range cases {
				v, err := e.rdb.EvalSha(ctx, c.sha, c.keys, c.args...).Result()
				if c.name == "nil reply" && !errors.Is(err, redis.Nil) {
					t.Fatalf("the underlying client: nil reply gave %v", err)
				}
				want[i] = reply(v, err)
			}
			check := func(how string, got []string) {
				t.Helper()
				for i, c := range cases {
					if got[i] != want[i] {
						t.Errorf("%s: %s: %s, the underlying client gives %s", how, c.name, got[i], want[i])
					}
				}
			}

			got := make([]string, len(cases))
			for i, c := range cases {
				v, err := sc.EvalSha(ctx, c.sha, c.keys, c.args...).Result()
				if c.name == "nil reply" && !errors.Is(err, redis.Nil) {
					t.Errorf("alone: nil reply gave %v, want redis.Nil", err)
				}
				got[i] = reply(v, err)
			}
			check("alone", got)
			if st := e.b.Stats(); st.Calls != int64(len(cases)) || st.Batches != int64(len(cases)) {
				t.Errorf("alone: stats %+v, want each call its own round trip", st)
			}

			got = make([]string, len(cases))
			calls := make([]func(), 0, len(cases)+2)
			for i, c := range cases {
				calls = append(calls, func() { got[i] = reply(sc.EvalSha(ctx, c.sha, c.keys, c.args...).Result()) })
			}
			var enqErr, storeErr error
			var storeVal any
			calls = append(calls,
				func() { enqErr = e.enqueue(ctx, "checks", "task", "p") },
				func() { storeVal, storeErr = e.b.Run(ctx, echoScript, nil, "store").Result() })
			// The enqueue's first step (asynq publishes its queue) is not
			// a script call: do it first, so the forced round trip holds
			// exactly these calls.
			if err := e.enqueue(ctx, "checks", "warm", "w"); err != nil {
				t.Fatal(err)
			}
			e.g.Reset()
			e.forceShared(t, calls)
			check("in one round trip", got)
			if enqErr != nil {
				t.Errorf("the enqueue in the round trip: %v", enqErr)
			}
			if storeErr != nil || storeVal != "store" {
				t.Errorf("the batcher's own call in the round trip: %v, %v", storeVal, storeErr)
			}
			if p := e.g.Pipelines(); len(p) == 0 || len(p[0]) != len(calls) {
				t.Errorf("pipelines %v, want one of the %d calls", p, len(calls))
			}
			e.requireTasks(t, "checks", map[string]string{"warm": "w", "task": "p"})
			e.b.requireIdle(t)
		})
	}
}

// TestClientExcept proves that ClientExcept's script calls go through the
// group commit but those whose keys the filter picks: while a round trip
// is held in flight, a picked call (keys "direct") reaches Redis at once,
// alone, with its reply, and another queues for the next round trip, which
// it shares with the calls queued with it.
func TestClientExcept(t *testing.T) {
	t.Parallel()
	for _, be := range batchBackends {
		t.Run(be.name, func(t *testing.T) {
			t.Parallel()
			e := newSharedEnv(t, be, 0)
			ctx := context.Background()
			if err := echoScript.Load(ctx, e.rdb).Err(); err != nil {
				t.Fatal(err)
			}
			sc := e.b.ClientExcept(func(keys []string) bool { return len(keys) == 1 && keys[0] == "direct" })
			release, lead := e.holdLead(t)
			picked := make(chan *redis.Cmd, 1)
			go func() { picked <- sc.EvalSha(ctx, echoScript.Hash(), []string{"direct"}, "alone") }()
			waitFor(t, "the picked call, a round trip in flight (through the group commit it would wait for it)", func() bool { return len(picked) == 1 })
			if v, err := (<-picked).Result(); err != nil || v != "alone" {
				t.Fatalf("the picked call: %v, %v; want its reply", v, err)
			}
			if n := e.b.Queued(); n != 0 {
				t.Fatalf("%d calls queued after the picked call; want none", n)
			}
			var wg sync.WaitGroup
			replies := make([]string, 2)
			for i := range replies {
				e.queue(t, &wg, i+1, func() {
					v, err := sc.EvalSha(ctx, echoScript.Hash(), []string{"batched"}, i).Result()
					replies[i] = fmt.Sprintf("%v / %v", v, err)
				})
			}
			release()
			wg.Wait()
			if err := <-lead; err != nil {
				t.Fatalf("the lead call: %v", err)
			}
			for i, got := range replies {
				if want := fmt.Sprintf("%d / <nil>", i); got != want {
					t.Errorf("queued call %d: %s, want %s", i, got, want)
				}
			}
			if p := e.g.Pipelines(); len(p) != 1 || !slices.Equal(p[0], []string{"evalsha", "evalsha"}) {
				t.Errorf("pipelines %v, want the two queued calls' EVALSHAs together", p)
			}
			if st := e.b.Stats(); st.Calls != 3 || st.Batches != 2 {
				t.Errorf("stats %+v, want 3 calls (the lead and the two queued) in 2 round trips", st)
			}
			e.b.requireIdle(t)
		})
	}
}
