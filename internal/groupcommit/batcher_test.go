package groupcommit

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/redis/go-redis/v9"

	"github.com/checkd/checkd/internal/testing/poll"
	"github.com/checkd/checkd/internal/testing/redistest"
)

func TestMain(m *testing.M) { redistest.Main(m) }

// The group commit's tests. A gate (a go-redis hook) holds the lone call
// that leads while the test queues calls behind it, so the batch that
// follows is known exactly; waits poll with a deadline that only bounds a
// hang, and nothing asserts a time.

// waitFor polls cond until it holds; the deadline only turns a hang into a
// failure.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	poll.WaitFor(t, 20*time.Second, what, cond)
}

// idle fails the test unless nothing is in flight or queued: every call
// that returned left the batcher as it found it.
func (b *Batcher) requireIdle(t *testing.T) {
	t.Helper()
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.busy || len(b.queue) != 0 || len(b.stowed) != 0 {
		t.Fatalf("batcher not idle: busy=%v, %d queued, %d stowed", b.busy, len(b.queue), len(b.stowed))
	}
}

// batchBackend is a fresh Redis behind a client with a gate.
type batchBackend struct {
	name string
	new  func(t *testing.T) (redis.UniversalClient, *miniredis.Miniredis) // mini is nil for a real Redis
}

var batchBackends = []batchBackend{
	{"miniredis", func(t *testing.T) (redis.UniversalClient, *miniredis.Miniredis) {
		mr := miniredis.RunT(t)
		c := redis.NewClient(&redis.Options{Addr: mr.Addr(), MaxRetries: -1})
		t.Cleanup(func() { c.Close() })
		return c, mr
	}},
	{"redis", func(t *testing.T) (redis.UniversalClient, *miniredis.Miniredis) {
		return redistest.Start(t).Client(t), nil
	}},
}

// gated returns a batcher over a fresh Redis whose client has a gate.
func gated(t *testing.T, be batchBackend) (*Batcher, *redistest.Gate, redis.UniversalClient, *miniredis.Miniredis) {
	return gatedWindow(t, be, 0)
}

// gatedWindow is gated with a window for windowed calls.
func gatedWindow(t *testing.T, be batchBackend, window time.Duration) (*Batcher, *redistest.Gate, redis.UniversalClient, *miniredis.Miniredis) {
	t.Helper()
	rdb, mr := be.new(t)
	g := redistest.NewGate()
	rdb.AddHook(g)
	return New(rdb, window), g, rdb, mr
}

// batchCall is one call of a forced batch and, once it returned, its reply.
type batchCall struct {
	ctx    context.Context
	script *redis.Script
	keys   []string
	args   []any
	gets   []*redis.StringCmd // a plain call (script nil): GETs

	val any
	err error
}

// forceBatch runs lead alone, held at the gate until every call of batch is
// queued behind it, so the calls of batch go out together as the next
// round trip. It returns when every call returned.
func forceBatch(t *testing.T, b *Batcher, g *redistest.Gate, lead *batchCall, batch []*batchCall) {
	t.Helper()
	release := g.HoldNextSingle()
	defer release()
	var wg sync.WaitGroup
	run := func(c *batchCall) {
		defer wg.Done()
		if c.script == nil {
			cmds := make([]redis.Cmder, len(c.gets))
			for i, g := range c.gets {
				cmds[i] = g
			}
			c.err = b.DoWindowed(c.ctx, cmds...)
			c.val = getsResult(c.gets)
			return
		}
		c.val, c.err = b.Run(c.ctx, c.script, c.keys, c.args...).Result()
	}
	wg.Add(1)
	go run(lead)
	if got := <-g.Entered(); got != "single" {
		t.Fatalf("the lone call went out as a %s", got)
	}
	for i, c := range batch {
		wg.Add(1)
		go run(c)
		waitFor(t, fmt.Sprintf("call %d to queue", i), func() bool { return b.Queued() == i+1 })
	}
	release()
	wg.Wait()
}

// newGets returns a GET of each key, not yet run.
func newGets(ctx context.Context, keys ...string) []*redis.StringCmd {
	gets := make([]*redis.StringCmd, len(keys))
	for i, k := range keys {
		gets[i] = redis.NewStringCmd(ctx, "get", k)
	}
	return gets
}

// getsResult is each GET's value and error.
func getsResult(gets []*redis.StringCmd) string {
	var out []string
	for _, g := range gets {
		v, err := g.Result()
		out = append(out, fmt.Sprintf("%q %v", v, err))
	}
	return strings.Join(out, "; ")
}

var (
	pairScript  = redis.NewScript(`return {redis.call('GET', KEYS[1]), redis.call('HGET', KEYS[2], 'f')}`)
	echoScript  = redis.NewScript(`return ARGV[1]`)
	falseScript = redis.NewScript(`return false`)
	errScript   = redis.NewScript(`return redis.error_reply('BOOM ' .. ARGV[1])`)
	incrScript  = redis.NewScript(`return redis.call('INCRBY', KEYS[1], ARGV[1])`)
	wrongScript = redis.NewScript(`return redis.call('GET', KEYS[1])`) // on a hash: WRONGTYPE
	leadScript  = redis.NewScript(`return 'lead'`)
)

// TestBatchRepliesAsUnbatched sends a batch of calls with every kind of
// reply and checks that each call got what Script.Run gives it alone.
func TestBatchRepliesAsUnbatched(t *testing.T) {
	for _, be := range batchBackends {
		t.Run(be.name, func(t *testing.T) {
			b, g, rdb, _ := gated(t, be)
			ctx := context.Background()
			if err := rdb.HSet(ctx, "h", "f", "v").Err(); err != nil {
				t.Fatal(err)
			}
			if err := rdb.Set(ctx, "s", `{"co":"co_1"}`, 0).Err(); err != nil {
				t.Fatal(err)
			}
			cases := []struct {
				name   string
				script *redis.Script // nil: plain GETs of keys
				keys   []string
				args   []any
			}{
				{"value", echoScript, nil, []any{"hello"}},
				{"integer", incrScript, []string{"n"}, []any{5}},
				{"nil reply", falseScript, nil, nil},
				{"script error", errScript, nil, []any{"x"}},
				{"command error", wrongScript, []string{"h"}, nil},
				{"pair: missing key", pairScript, []string{"missing", "h"}, nil},
				{"pair", pairScript, []string{"s", "h"}, nil},
				{"plain: two GETs, one missing", nil, []string{"s", "missing"}, nil},
				{"plain: a GET of a hash", nil, []string{"h"}, nil},
				{"another value", echoScript, nil, []any{"world"}},
			}
			// Unbatched, one by one: what each call must get.
			want := make([]string, len(cases))
			sent := 0 // commands in the batch
			for i, c := range cases {
				if c.script == nil {
					gets := newGets(ctx, c.keys...)
					_, _ = rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
						for _, g := range gets {
							_ = p.Process(ctx, g)
						}
						return nil
					})
					want[i] = fmt.Sprintf("%v / %v", getsResult(gets), nil)
					sent += len(gets)
					continue
				}
				v, err := c.script.Run(ctx, rdb, c.keys, c.args...).Result()
				want[i] = fmt.Sprintf("%v / %v", v, err)
				sent++
			}
			if err := rdb.Set(ctx, "n", 0, 0).Err(); err != nil { // the same state again for INCRBY
				t.Fatal(err)
			}
			g.Reset()
			calls := make([]*batchCall, len(cases))
			for i, c := range cases {
				calls[i] = &batchCall{ctx: ctx, script: c.script, keys: c.keys, args: c.args}
				if c.script == nil {
					calls[i] = &batchCall{ctx: ctx, gets: newGets(ctx, c.keys...)}
				}
			}
			forceBatch(t, b, g, &batchCall{ctx: ctx, script: echoScript, args: []any{"lead"}}, calls)
			for i, c := range calls {
				if got := fmt.Sprintf("%v / %v", c.val, c.err); got != want[i] {
					t.Errorf("%s: batched %q, unbatched %q", cases[i].name, got, want[i])
				}
			}
			// One round trip for the batch. (miniredis does not cache a
			// script that failed, so there the failing call's EVALSHA gets
			// NOSCRIPT and an EVAL follows, as with Script.Run.)
			p := g.Pipelines()
			if len(p) == 0 || len(p[0]) != sent {
				t.Errorf("pipelines %v, want one of %d commands", p, sent)
			}
			for _, retry := range p[min(1, len(p)):] {
				for _, name := range retry {
					if name != "eval" {
						t.Errorf("pipeline after the batch: %v", retry)
					}
				}
			}
			if st := b.Stats(); st.Calls != int64(len(cases))+1 || st.Batches != 2 || st.Pipelined != int64(len(cases)) {
				t.Errorf("stats %+v", st)
			}
			b.requireIdle(t)
		})
	}
}

// TestBatchConcurrent runs many callers at once (run it with -race): each
// gets its own replies, in order, and the batcher ends idle.
func TestBatchConcurrent(t *testing.T) {
	for _, be := range batchBackends {
		t.Run(be.name, func(t *testing.T) {
			b, _, rdb, _ := gated(t, be)
			ctx := context.Background()
			const callers, calls = 24, 60
			var wg sync.WaitGroup
			errs := make(chan error, callers)
			for i := range callers {
				wg.Add(1)
				go func() {
					defer wg.Done()
					key := fmt.Sprintf("k%d", i)
					for j := 1; j <= calls; j++ {
						if v, err := b.Run(ctx, echoScript, nil, key).Text(); err != nil || v != key {
							errs <- fmt.Errorf("echo of %s: %q, %v", key, v, err)
							return
						}
						n, err := b.Run(ctx, incrScript, []string{key}, i+1).Int()
						if err != nil || n != j*(i+1) {
							errs <- fmt.Errorf("%s: INCRBY gave %d, %v; want %d", key, n, err, j*(i+1))
							return
						}
					}
				}()
			}
			wg.Wait()
			close(errs)
			for err := range errs {
				t.Error(err)
			}
			b.requireIdle(t)
			st := b.Stats()
			if st.Calls != 2*callers*calls || st.Batches > st.Calls || st.Batches == 0 {
				t.Errorf("stats %+v, want %d calls", st, 2*callers*calls)
			}
			t.Logf("%+v: %.2f calls per round trip", st, float64(st.Calls)/float64(st.Batches))
			for i := range callers {
				if n, err := rdb.Get(ctx, fmt.Sprintf("k%d", i)).Int(); err != nil || n != calls*(i+1) {
					t.Errorf("k%d = %d, %v", i, n, err)
				}
			}
		})
	}
}

// TestBatchFailingRedis: a Redis that answers errors, then one that is
// gone: every call gets the error, none hangs, and the batcher recovers.
func TestBatchFailingRedis(t *testing.T) {
	b, g, _, mr := gated(t, batchBackends[0])
	ctx := context.Background()
	calls := func() []*batchCall {
		cs := make([]*batchCall, 4)
		for i := range cs {
			cs[i] = &batchCall{ctx: ctx, script: echoScript, args: []any{fmt.Sprint(i)}}
		}
		return cs
	}

	mr.SetError("ERR the server is failing")
	lead, cs := &batchCall{ctx: ctx, script: echoScript, args: []any{"lead"}}, calls()
	forceBatch(t, b, g, lead, cs)
	for _, c := range append([]*batchCall{lead}, cs...) {
		if c.err == nil || !strings.Contains(c.err.Error(), "the server is failing") {
			t.Errorf("call %v: %v, %v; want the server's error", c.args, c.val, c.err)
		}
	}
	mr.SetError("")
	lead, cs = &batchCall{ctx: ctx, script: echoScript, args: []any{"lead"}}, calls()
	forceBatch(t, b, g, lead, cs)
	for i, c := range cs {
		if c.err != nil || c.val != fmt.Sprint(i) {
			t.Errorf("after recovery, call %d: %v, %v", i, c.val, c.err)
		}
	}

	mr.Close()
	lead, cs = &batchCall{ctx: ctx, script: echoScript, args: []any{"lead"}}, calls()
	forceBatch(t, b, g, lead, cs)
	for _, c := range append([]*batchCall{lead}, cs...) {
		if c.err == nil {
			t.Errorf("call %v to a closed server: %v, no error", c.args, c.val)
		}
	}
	b.requireIdle(t)
}

// TestBatchCancelled: a context done before its call is sent fails that
// call alone; one done after it was sent still gets its reply; a leader
// giving up does not fail the calls it carries.
func TestBatchCancelled(t *testing.T) {
	for _, be := range batchBackends {
		t.Run(be.name, func(t *testing.T) {
			ctx := context.Background()

			t.Run("before the call", func(t *testing.T) {
				b, g, _, _ := gated(t, be)
				cctx, cancel := context.WithCancel(ctx)
				cancel()
				if err := b.Run(cctx, echoScript, nil, "x").Err(); !errors.Is(err, context.Canceled) {
					t.Fatalf("got %v, want context.Canceled", err)
				}
				if len(g.Singles())+len(g.Pipelines()) != 0 {
					t.Fatalf("a cancelled call was sent: %v %v", g.Singles(), g.Pipelines())
				}
				b.requireIdle(t)
			})

			t.Run("while queued", func(t *testing.T) {
				b, g, _, _ := gated(t, be)
				release := g.HoldNextSingle()
				defer release()
				lead := make(chan error, 1)
				go func() { lead <- b.Run(ctx, echoScript, nil, "lead").Err() }()
				<-g.Entered()
				cctx, cancel := context.WithCancel(ctx)
				type reply struct {
					v   any
					err error
				}
				gone := make(chan reply, 1)
				go func() { v, err := b.Run(cctx, echoScript, nil, "gone").Result(); gone <- reply{v, err} }()
				waitFor(t, "the call to queue", func() bool { return b.Queued() == 1 })
				others := make([]chan reply, 3)
				for i := range others {
					others[i] = make(chan reply, 1)
					go func() {
						v, err := b.Run(ctx, echoScript, nil, fmt.Sprint(i)).Result()
						others[i] <- reply{v, err}
					}()
					waitFor(t, "the others to queue", func() bool { return b.Queued() == i+2 })
				}
				cancel()
				// It returns while the leader is still held: it never waited for it.
				if r := <-gone; !errors.Is(r.err, context.Canceled) {
					t.Fatalf("cancelled call: %v, %v; want context.Canceled", r.v, r.err)
				}
				release()
				if err := <-lead; err != nil {
					t.Fatal(err)
				}
				for i, ch := range others {
					if r := <-ch; r.err != nil || r.v != fmt.Sprint(i) {
						t.Errorf("call %d: %v, %v", i, r.v, r.err)
					}
				}
				if p := g.Pipelines(); len(p) != 1 || len(p[0]) != 3 {
					t.Errorf("pipelines %v, want one of the 3 live calls", p)
				}
				b.requireIdle(t)
			})

			// The promoted call's context ends before it starts its batch.
			// Whether it notices at once or at the start of its batch (the
			// select picks either), it fails alone and the next call goes.
			t.Run("promoted", func(t *testing.T) {
				b, _, _, _ := gated(t, be)
				for range 40 {
					b.mu.Lock()
					b.busy = true // the test holds the lead
					b.mu.Unlock()
					cctx, cancel := context.WithCancel(ctx)
					gone, next := make(chan error, 1), make(chan string, 2)
					go func() { gone <- b.Run(cctx, echoScript, nil, "gone").Err() }()
					waitFor(t, "the first call to queue", func() bool { return b.Queued() == 1 })
					for i := range 2 {
						go func() {
							v, err := b.Run(ctx, echoScript, nil, "next").Text()
							next <- fmt.Sprint(v, err)
						}()
						waitFor(t, "the others to queue", func() bool { return b.Queued() == 2+i })
					}
					cancel()
					b.release() // the test's turn ends: the first call is promoted
					if err := <-gone; !errors.Is(err, context.Canceled) {
						t.Fatalf("promoted, cancelled call: %v", err)
					}
					for range 2 {
						if got := <-next; got != "next<nil>" {
							t.Fatalf("next call: %s", got)
						}
					}
					b.requireIdle(t)
				}
			})

			t.Run("after it was sent", func(t *testing.T) {
				b, g, _, _ := gated(t, be)
				releaseSingle := g.HoldNextSingle()
				defer releaseSingle()
				go func() { _ = b.Run(ctx, echoScript, nil, "lead").Err() }()
				<-g.Entered()
				type reply struct {
					v   any
					err error
				}
				ctxs := make([]context.CancelFunc, 3)
				replies := make([]chan reply, 3)
				for i := range replies {
					cctx, cancel := context.WithCancel(ctx)
					ctxs[i], replies[i] = cancel, make(chan reply, 1)
					go func() {
						v, err := b.Run(cctx, echoScript, nil, fmt.Sprint(i)).Result()
						replies[i] <- reply{v, err}
					}()
					waitFor(t, "the calls to queue", func() bool { return b.Queued() == i+1 })
				}
				releasePipe := g.HoldNextPipeline()
				defer releasePipe()
				releaseSingle()
				if got := <-g.Entered(); got != "pipeline" {
					t.Fatalf("held a %s", got)
				}
				// In flight: the leader (call 0) and call 1 give up.
				ctxs[0]()
				ctxs[1]()
				releasePipe()
				for i, ch := range replies {
					if r := <-ch; r.err != nil || r.v != fmt.Sprint(i) {
						t.Errorf("call %d: %v, %v; want its reply", i, r.v, r.err)
					}
				}
				for _, cancel := range ctxs {
					cancel()
				}
				b.requireIdle(t)
			})
		})
	}
}

// TestBatchNoScript: a batch whose scripts Redis does not have (after
// SCRIPT FLUSH on miniredis; a script never loaded on the shared real
// Redis, where a flush would disturb other packages' tests) runs them with
// EVAL, and the next batch finds them cached.
func TestBatchNoScript(t *testing.T) {
	for _, be := range batchBackends {
		t.Run(be.name, func(t *testing.T) {
			b, g, rdb, mr := gated(t, be)
			ctx := context.Background()
			fresh := redis.NewScript(fmt.Sprintf("-- %d\nreturn ARGV[1] .. '!'", time.Now().UnixNano()))
			batch := func() []*batchCall {
				return []*batchCall{
					{ctx: ctx, script: fresh, args: []any{"a"}},
					{ctx: ctx, script: echoScript, args: []any{"b"}},
					{ctx: ctx, script: fresh, args: []any{"c"}},
					{ctx: ctx, script: incrScript, keys: []string{"n"}, args: []any{1}},
				}
			}
			want := []string{"a!", "b", "c!"}
			check := func(round string, cs []*batchCall, n int64) {
				t.Helper()
				for i, w := range want {
					if cs[i].err != nil || cs[i].val != w {
						t.Errorf("%s: call %d: %v, %v; want %q", round, i, cs[i].val, cs[i].err, w)
					}
				}
				if cs[3].err != nil || cs[3].val != n {
					t.Errorf("%s: INCRBY: %v, %v; want %d", round, cs[3].val, cs[3].err, n)
				}
			}
			// Warm the other scripts so only fresh is missing at first.
			for _, s := range []*redis.Script{echoScript, incrScript} {
				if err := s.Load(ctx, rdb).Err(); err != nil {
					t.Fatal(err)
				}
			}
			g.Reset()
			cs := batch()
			forceBatch(t, b, g, &batchCall{ctx: ctx, script: leadScript}, cs)
			check("first", cs, 1)
			if p := g.Pipelines(); len(p) != 2 || strings.Join(p[1], ",") != "eval,eval" {
				t.Errorf("pipelines %v, want the batch, then EVAL of the two calls of the missing script", p)
			}

			g.Reset()
			cs = batch()
			forceBatch(t, b, g, &batchCall{ctx: ctx, script: leadScript}, cs)
			check("cached", cs, 2)
			if p := g.Pipelines(); len(p) != 1 {
				t.Errorf("pipelines %v, want the batch alone", p)
			}

			if mr == nil {
				return
			}
			if err := rdb.ScriptFlush(ctx).Err(); err != nil {
				t.Fatal(err)
			}
			g.Reset()
			cs = batch()
			forceBatch(t, b, g, &batchCall{ctx: ctx, script: leadScript}, cs)
			check("after SCRIPT FLUSH", cs, 3)
			if p := g.Pipelines(); len(p) != 2 || strings.Join(p[1], ",") != "eval,eval,eval,eval" {
				t.Errorf("pipelines %v, want the batch, then EVAL of all four", p)
			}
			b.requireIdle(t)
		})
	}
}

// TestBatchPanic: a panic while a batch is sent (in a hook, say) reaches
// the leader's caller; the calls it carried fail, script or plain, and the
// batcher goes on.
func TestBatchPanic(t *testing.T) {
	for _, tc := range []struct {
		name string
		// carry makes the carried call; it returns the call's error and
		// those its commands hold.
		carry func(ctx context.Context, b *Batcher) (error, []error)
	}{
		{"script call", func(ctx context.Context, b *Batcher) (error, []error) {
			return b.Run(ctx, echoScript, nil, "1").Err(), nil
		}},
		{"plain call", func(ctx context.Context, b *Batcher) (error, []error) {
			gets := newGets(ctx, "a", "b")
			err := b.DoWindowed(ctx, gets[0], gets[1])
			return err, []error{gets[0].Err(), gets[1].Err()}
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b, g, _, _ := gated(t, batchBackends[0])
			ctx := context.Background()
			release := g.HoldNextSingle()
			defer release()
			go func() { _ = b.Run(ctx, echoScript, nil, "lead").Err() }()
			<-g.Entered()
			panicked := make(chan any, 1)
			go func() {
				defer func() { panicked <- recover() }()
				_ = b.Run(ctx, echoScript, nil, "0").Err()
			}()
			waitFor(t, "the leader to queue", func() bool { return b.Queued() == 1 })
			errs := make(chan []error, 1)
			go func() {
				err, cmdErrs := tc.carry(ctx, b)
				errs <- append([]error{err}, cmdErrs...)
			}()
			waitFor(t, "the call to queue", func() bool { return b.Queued() == 2 })
			g.PanicNextPipeline()
			release()
			if v := <-panicked; v != "hook panics" {
				t.Fatalf("the leader's caller got %v, want the panic", v)
			}
			for _, err := range <-errs {
				if !errors.Is(err, errAborted) {
					t.Fatalf("the carried call (or one of its commands) got %v, want errAborted", err)
				}
			}
			b.requireIdle(t)
			if v, err := b.Run(ctx, echoScript, nil, "again").Text(); err != nil || v != "again" {
				t.Fatalf("after the panic: %q, %v", v, err)
			}
		})
	}
}

// company makes the batcher's last round trip a shared one (a call queued
// behind a lone one), so the next windowed call at an idle batcher opens a
// window.
func company(t *testing.T, b *Batcher, g *redistest.Gate) {
	t.Helper()
	forceBatch(t, b, g, &batchCall{ctx: context.Background(), script: leadScript},
		[]*batchCall{{ctx: context.Background(), script: echoScript, args: []any{"company"}}})
	b.mu.Lock()
	defer b.mu.Unlock()
	if !b.company {
		t.Fatal("a round trip with a call queued behind it left no company")
	}
}

// TestBatchWindow: a windowed call waits for company only when the last round
// trip had some; the window closes when full, and a leader that gives up
// hands its batch on. The windows here are an hour long, so a call that
// waited when it must not, or a window that did not close early, hangs and
// fails by the test's deadline instead of passing by luck of timing.
func TestBatchWindow(t *testing.T) {
	const long = time.Hour
	for _, be := range batchBackends {
		t.Run(be.name, func(t *testing.T) {
			t.Run("a serial caller never waits", func(t *testing.T) {
				b, g, _, _ := gatedWindow(t, be, long)
				ctx := context.Background()
				done := make(chan error, 1)
				go func() {
					for i := range 50 {
						v, err := b.RunWindowed(ctx, echoScript, nil, i).Int()
						if err == nil && v != i {
							err = fmt.Errorf("call %d got %d", i, v)
						}
						if err != nil {
							done <- err
							return
						}
					}
					done <- nil
				}()
				waitFor(t, "50 serial check calls", func() bool { return len(done) == 1 })
				if err := <-done; err != nil {
					t.Fatal(err)
				}
				if st := b.Stats(); st.Windows != 0 || st.Batches != 50 || len(g.Pipelines()) != 0 {
					t.Fatalf("stats %+v, %d pipelines; want 50 lone round trips and no window", st, len(g.Pipelines()))
				}
				b.requireIdle(t)
			})

			t.Run("after a shared round trip a window gathers maxBatch calls", func(t *testing.T) {
				b, g, _, _ := gatedWindow(t, be, long)
				ctx := context.Background()
				company(t, b, g)
				g.Reset()
				w0 := b.Stats().Windows
				vals := make([]int, maxBatch)
				errs := make([]error, maxBatch)
				var wg sync.WaitGroup
				for i := range maxBatch {
					wg.Go(func() { vals[i], errs[i] = b.RunWindowed(ctx, echoScript, nil, i).Int() })
					if i == 0 {
						waitFor(t, "the first call to open a window", func() bool { return b.Queued() == 1 })
					}
				}
				wg.Wait()
				for i := range maxBatch {
					if errs[i] != nil || vals[i] != i {
						t.Errorf("call %d: %d, %v", i, vals[i], errs[i])
					}
				}
				if p := g.Pipelines(); len(p) != 1 || len(p[0]) != maxBatch {
					t.Fatalf("pipelines %v; want one of %d", p, maxBatch)
				}
				if w := b.Stats().Windows - w0; w != 1 {
					t.Fatalf("%d windows, want 1", w)
				}
				b.requireIdle(t)
			})

			t.Run("a window closes once all but two of the workers' check slots wait in it", func(t *testing.T) {
				for _, tc := range []struct {
					workers []int // each worker's slots
					calls   int
					windows int64 // windows opened
				}{
					{workers: []int{5}, calls: 3, windows: 1},    // the third call fills it
					{workers: []int{2, 7}, calls: 7, windows: 1}, // two workers' slots add up
					{workers: []int{3}, calls: 1, windows: 0},    // too few slots: a check's call never waits
					{workers: []int{1}, calls: 1, windows: 0},
				} {
					t.Run(fmt.Sprintf("slots %v", tc.workers), func(t *testing.T) {
						b, g, _, _ := gatedWindow(t, be, long) // only a full window ends
						ctx := context.Background()
						company(t, b, g)
						g.Reset()
						for _, n := range tc.workers {
							b.AddSlots(n)
						}
						w0 := b.Stats().Windows
						vals := make([]int, tc.calls)
						errs := make([]error, tc.calls)
						var wg sync.WaitGroup
						for i := range tc.calls {
							wg.Go(func() { vals[i], errs[i] = b.RunWindowed(ctx, echoScript, nil, i).Int() })
							if tc.windows > 0 && i < tc.calls-1 { // the last one fills the window, which is sent
								waitFor(t, fmt.Sprintf("call %d to queue", i), func() bool { return b.Queued() == i+1 })
							}
						}
						sent := make(chan struct{})
						go func() { wg.Wait(); close(sent) }()
						waitFor(t, "the window to close (it lasts an hour)", func() bool {
							select {
							case <-sent:
								return true
							default:
								return false
							}
						})
						for i := range tc.calls {
							if errs[i] != nil || vals[i] != i {
								t.Errorf("call %d: %d, %v", i, vals[i], errs[i])
							}
						}
						if w := b.Stats().Windows - w0; w != tc.windows {
							t.Fatalf("%d windows, want %d", w, tc.windows)
						}
						if tc.calls > 1 {
							if p := g.Pipelines(); len(p) != 1 || len(p[0]) != tc.calls {
								t.Fatalf("pipelines %v; want one of %d", p, tc.calls)
							}
						}
						b.requireIdle(t)
					})
				}
			})

			t.Run("slots taken back no longer close a window", func(t *testing.T) {
				b, g, _, _ := gatedWindow(t, be, long)
				company(t, b, g)
				b.AddSlots(3)
				b.AddSlots(-3)
				b.AddSlots(-1) // more than were added: no slots, not fewer than none
				if slots := b.Stats().Slots; slots != 0 {
					t.Fatalf("%d slots left, want 0", slots)
				}
				done := make(chan error, 1)
				go func() { done <- b.RunWindowed(context.Background(), echoScript, nil, "lead").Err() }()
				waitFor(t, "the call to open a window", func() bool { return b.Queued() == 1 })
				// With 3 slots it would have been sent at once; now it waits
				// (the window is an hour) until maxBatch calls join it.
				var wg sync.WaitGroup
				for range maxBatch - 1 {
					wg.Go(func() { _ = b.RunWindowed(context.Background(), echoScript, nil, "join").Err() })
				}
				wg.Wait()
				if err := <-done; err != nil {
					t.Fatal(err)
				}
				b.requireIdle(t)
			})

			t.Run("calls that are not a check's never open a window", func(t *testing.T) {
				b, g, _, _ := gatedWindow(t, be, long)
				ctx := context.Background()
				company(t, b, g)
				w0 := b.Stats().Windows
				if v, err := b.Run(ctx, echoScript, nil, "plain").Text(); err != nil || v != "plain" {
					t.Fatalf("%q, %v", v, err)
				}
				if w := b.Stats().Windows - w0; w != 0 {
					t.Fatalf("%d windows, want 0", w)
				}
			})

			t.Run("a leader that gives up hands its window on", func(t *testing.T) {
				b, g, _, _ := gatedWindow(t, be, long)
				company(t, b, g)
				lctx, cancel := context.WithCancel(context.Background())
				defer cancel()
				lead := make(chan error, 1)
				go func() { lead <- b.RunWindowed(lctx, echoScript, nil, "lead").Err() }()
				waitFor(t, "the leader to open a window", func() bool { return b.Queued() == 1 })
				other := make(chan string, 1)
				go func() {
					v, err := b.RunWindowed(context.Background(), echoScript, nil, "other").Text()
					if err != nil {
						v = err.Error()
					}
					other <- v
				}()
				waitFor(t, "a call to join the window", func() bool { return b.Queued() == 2 })
				cancel()
				if err := <-lead; !errors.Is(err, context.Canceled) {
					t.Fatalf("the leader got %v, want context.Canceled", err)
				}
				if v := <-other; v != "other" {
					t.Fatalf("the call in the window got %q", v)
				}
				b.requireIdle(t)
			})

			t.Run("a window that nobody joins ends and sends its call", func(t *testing.T) {
				b, g, _, _ := gatedWindow(t, be, time.Millisecond)
				company(t, b, g)
				w0 := b.Stats().Windows
				if v, err := b.RunWindowed(context.Background(), echoScript, nil, "alone").Text(); err != nil || v != "alone" {
					t.Fatalf("%q, %v", v, err)
				}
				if w := b.Stats().Windows - w0; w != 1 {
					t.Fatalf("%d windows, want 1", w)
				}
				b.mu.Lock()
				defer b.mu.Unlock()
				if b.company {
					t.Fatal("a round trip that nobody shared left company: the next windowed call would wait for nobody")
				}
			})
		})
	}
}

// TestBatchPlainCalls: plain commands (the store's LoadCheck GETs) go alone or in a
// batch with their own replies, and fail as a script call would: a context
// done before the call, a failing server (an aborted batch: TestBatchPanic).
func TestBatchPlainCalls(t *testing.T) {
	ctx := context.Background()
	asCmders := func(gets []*redis.StringCmd) []redis.Cmder {
		cmds := make([]redis.Cmder, len(gets))
		for i, g := range gets {
			cmds[i] = g
		}
		return cmds
	}
	for _, be := range batchBackends {
		t.Run(be.name, func(t *testing.T) {
			b, _, rdb, _ := gated(t, be)
			if err := rdb.Set(ctx, "a", "1", 0).Err(); err != nil {
				t.Fatal(err)
			}
			gets := newGets(ctx, "a", "missing")
			if err := b.DoWindowed(ctx, asCmders(gets)...); err != nil {
				t.Fatalf("alone: %v", err)
			}
			if got, want := getsResult(gets), `"1" <nil>; "" redis: nil`; got != want {
				t.Errorf("alone: %s, want %s", got, want)
			}
			if st := b.Stats(); st.Calls != 1 || st.Batches != 1 {
				t.Errorf("alone: stats %+v", st)
			}
			gets = newGets(ctx, "missing", "a")
			if err := b.Do(ctx, asCmders(gets)...); err != nil { // never windowed
				t.Fatalf("Do: %v", err)
			}
			if got, want := getsResult(gets), `"" redis: nil; "1" <nil>`; got != want {
				t.Errorf("Do: %s, want %s", got, want)
			}

			cctx, cancel := context.WithCancel(ctx)
			cancel()
			gets = newGets(cctx, "a")
			if err := b.DoWindowed(cctx, asCmders(gets)...); !errors.Is(err, context.Canceled) || !errors.Is(gets[0].Err(), context.Canceled) {
				t.Errorf("cancelled: %v, GET %v; want context.Canceled for both", err, gets[0].Err())
			}
			b.requireIdle(t)
		})
	}

	t.Run("failing server", func(t *testing.T) {
		b, g, _, mr := gated(t, batchBackends[0])
		mr.SetError("ERR the server is failing")
		plain := &batchCall{ctx: ctx, gets: newGets(ctx, "a", "b")}
		forceBatch(t, b, g, &batchCall{ctx: ctx, script: echoScript, args: []any{"lead"}}, []*batchCall{plain})
		for _, get := range plain.gets {
			if err := get.Err(); err == nil || !strings.Contains(err.Error(), "the server is failing") {
				t.Errorf("GET %v: %v; want the server's error", get.Args(), err)
			}
		}
		b.requireIdle(t)
	})
}

// TestBatchStow: stowed calls ride with the next call's round trip, ahead
// of it, each getting its own reply (before the call that led returns);
// a stowed call with no call after it is sent on its own once its wait
// ends (the test ends it: the wait is an hour); one whose wait ends while
// a batch is in flight waits for that batch and then goes.
func TestBatchStow(t *testing.T) {
	ctx := context.Background()
	for _, be := range batchBackends {
		t.Run(be.name, func(t *testing.T) {
			b, g, _, _ := gated(t, be)
			b.stowWait = time.Hour // the test ends the waits
			got := make(chan string, 3)
			reply := func(cmd *redis.Cmd) { v, err := cmd.Result(); got <- fmt.Sprint(v, " ", err) }
			next := func(what string) string {
				t.Helper()
				select {
				case s := <-got:
					return s
				case <-time.After(20 * time.Second): // bounds a hang only
					t.Fatalf("no reply for %s", what)
					return ""
				}
			}

			b.Stow(ctx, incrScript, reply, []string{"n"}, 5)
			b.Stow(ctx, errScript, reply, nil, "stowed")
			if b.Idle() {
				t.Error("idle with two calls stowed")
			}
			v, err := b.Run(ctx, incrScript, []string{"n"}, 1).Int64()
			if err != nil || v != 6 {
				t.Fatalf("the call after two stowed ones: %d %v, want 6 (the stowed INCRBY 5 ran before it)", v, err)
			}
			if len(got) != 2 {
				t.Fatalf("%d stowed replies when the call after them returned, want 2", len(got))
			}
			if s := <-got; s != "5 <nil>" {
				t.Errorf("stowed INCRBY: %s, want 5", s)
			}
			if s := <-got; !strings.Contains(s, "BOOM stowed") {
				t.Errorf("stowed error script: %s, want its own BOOM", s)
			}
			if st := b.Stats(); st.Calls != 3 || st.Batches != 1 {
				t.Errorf("stats %+v, want 3 calls in 1 round trip", st)
			}
			b.requireIdle(t)

			b.Stow(ctx, incrScript, reply, []string{"n"}, 10) // nothing follows
			if len(got) != 0 || b.Idle() {
				t.Fatalf("a stowed call went before its wait ended (%d replies, idle %v)", len(got), b.Idle())
			}
			b.flushStowed() // its wait ends
			if s := next("a stowed call alone"); s != "16 <nil>" {
				t.Errorf("stowed alone: %s, want 16", s)
			}
			waitFor(t, "idle after the lone stowed call", b.Idle)
			if st := b.Stats(); st.Calls != 4 || st.Batches != 2 {
				t.Errorf("stats %+v, want 4 calls in 2 round trips", st)
			}

			release := g.HoldNextSingle()
			held := make(chan error, 1)
			go func() { held <- b.Run(ctx, echoScript, nil, "held").Err() }()
			<-g.Entered()
			b.Stow(ctx, incrScript, reply, []string{"n"}, 100)
			b.flushStowed() // its wait ends while the held call is in flight
			b.mu.Lock()
			stowed := len(b.stowed)
			b.mu.Unlock()
			if stowed != 1 || len(got) != 0 {
				t.Fatalf("with a batch in flight the flush sent it: %d stowed, %d replies", stowed, len(got))
			}
			release()
			if err := <-held; err != nil {
				t.Fatal(err)
			}
			b.flushStowed() // its wait ends again, the batch done
			if s := next("a stowed call after a batch in flight"); s != "116 <nil>" {
				t.Errorf("stowed behind a batch: %s, want 116", s)
			}
			waitFor(t, "idle at the end", b.Idle)
		})
	}
}

// TestBatchStowPromoted: stowed calls ride with a batch led by a call that
// queued behind another (the path asynq's completions take under load), a
// plain one here, and are not company: after a batch of one unpromoted
// call and a stowed one, the next windowed call does not wait.
func TestBatchStowPromoted(t *testing.T) {
	ctx := context.Background()
	for _, be := range batchBackends {
		t.Run(be.name, func(t *testing.T) {
			b, g, _, _ := gatedWindow(t, be, time.Hour)
			b.stowWait = time.Hour
			// Cached, so the stowed EVALSHA runs where it stands (a
			// NOSCRIPT would run it again after the GET).
			if err := b.Run(ctx, incrScript, []string{"n"}, 0).Err(); err != nil {
				t.Fatal(err)
			}
			got := make(chan string, 1)
			// A lone call leads, held; a stowed call waits; a plain call
			// queues; at release the plain call leads the next batch, with
			// the stowed call ahead of it.
			release := g.HoldNextSingle()
			held := make(chan error, 1)
			go func() { held <- b.Run(ctx, echoScript, nil, "lead").Err() }()
			<-g.Entered()
			b.Stow(ctx, incrScript, func(cmd *redis.Cmd) { v, err := cmd.Result(); got <- fmt.Sprint(v, " ", err) }, []string{"n"}, 8)
			gets := newGets(ctx, "n")
			queued := make(chan error, 1)
			go func() { queued <- b.Do(ctx, gets[0]) }()
			waitFor(t, "the plain call to queue", func() bool { return b.Queued() == 1 })
			release()
			if err := <-held; err != nil {
				t.Fatal(err)
			}
			if err := <-queued; err != nil {
				t.Fatal(err)
			}
			if v, err := gets[0].Result(); v != "8" || err != nil {
				t.Errorf("GET after the stowed INCRBY: %q %v, want 8", v, err)
			}
			if s := <-got; s != "8 <nil>" {
				t.Errorf("stowed behind the held batch: %s, want 8", s)
			}
			b.requireIdle(t)
			// The last batch: one promoted call and a stowed one. Promoted,
			// it counts as company; a lone windowed call after a lone
			// unpromoted one with a stowed call must not wait an hour.
			b.Stow(ctx, incrScript, nil, []string{"n"}, 1)
			if err := b.Run(ctx, echoScript, nil, "alone").Err(); err != nil { // leads with the stowed call, unpromoted
				t.Fatal(err)
			}
			b.mu.Lock()
			company := b.company
			b.mu.Unlock()
			if company {
				t.Error("a stowed call counted as company: the next windowed call would wait for nobody")
			}
			b.requireIdle(t)
		})
	}
}
