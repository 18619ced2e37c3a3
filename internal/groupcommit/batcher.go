// Package groupcommit shares round trips to Redis among concurrent
// callers: a Batcher sends the script calls made while one is in flight
// together as the next pipeline, each call getting exactly the reply it
// would get alone, and its Client hands asynq (or any go-redis user) a
// client whose script calls go through the same batches.
package groupcommit

import (
	"context"
	"errors"
	"slices"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"
)

// Batcher is a group commit over one Redis client: the script calls (and
// plain commands) of concurrent callers go to Redis together, as one
// pipeline, when several are waiting. Calls made while a batch is in
// flight queue up, and when it returns everything queued goes as the next
// pipeline, so under load a round trip (a write and a read system call on
// each side, per call) is shared by the whole queue.
//
// A call made while nothing is in flight is sent at once, alone, exactly as
// an unbatched Script.Run, with one exception: a windowed call (RunWindowed,
// DoWindowed) waits up to the window for others to join it when the
// previous round trip had company (others queued during it or shared it).
// It suits callers that are not latency-bound but many at once, such as
// asynq handlers: a fraction of a millisecond costs them nothing, while
// sharing round trips cuts the CPU of both the caller's process and Redis
// per call. The condition keeps a lone or serial caller from ever waiting:
// with nobody around, the window is never opened. A window closes early
// once maxBatch calls wait, and once all but freeSlots of the callers'
// slots (AddSlots) do: when each waiting call holds a slot of a pool that
// hands out work only into free slots (asynq's concurrency), waiting on
// would stall the pool.
//
// It has no goroutine of its own, hence nothing to start or stop (but the
// timer of stowed calls, Stow): the caller that finds nothing in flight
// sends (it leads); when its batch is back it
// hands each waiter its reply and promotes the oldest queued call, whose
// goroutine then sends the next batch with everything queued by then. Each
// caller is woken once, as it would be by its own reply.
//
// Every call gets exactly what an unbatched Script.Run would give it: its
// own reply or error (a pipeline carries one reply per command, so one call's
// script error or nil reply never touches another's; a connection error
// fails the calls that were in that pipeline), and a script missing from
// Redis's cache (NOSCRIPT, after SCRIPT FLUSH or a restart) is run again
// with EVAL, which caches it. A context that is done before the call is
// sent fails that call alone with the context's error, and a call once sent
// waits for its reply, as go-redis does for a single command. A batch of
// several is sent under its leader's context values without its
// cancellation or deadline (its I/O is bounded by the client's read and
// write timeouts), so a leader giving up does not fail the calls it carries.
//
// The zero value is not usable; New makes one. It is safe for
// concurrent use.
type Batcher struct {
	rdb    redis.UniversalClient
	window time.Duration // how long a windowed call may wait for company; 0: never

	mu    sync.Mutex
	busy  bool          // a batch is in flight, about to be sent, or gathering in a window
	queue []*scriptCall // waiting for the next batch, oldest first
	spare []*scriptCall // the previous batch's backing array, reused for the next queue
	// company: the last round trip had others queue during it or share it,
	// so a windowed call arriving at an idle batcher waits for them.
	company bool
	// gathering is the leader waiting out a window (nil: none); it is
	// woken early when the window is full (fullLocked).
	gathering *scriptCall
	// slots is how many windowed callers may be in progress at once
	// (AddSlots); 0: unknown.
	slots int
	// stowed calls (Stow) wait for the next batch, ahead of its queue;
	// stowTimer sends them on their own if none comes within stowWait.
	stowed    []*scriptCall
	stowTimer *time.Timer
	stowWait  time.Duration
	stats     Stats
}

// maxBatch closes a window early: that many calls fill a round trip well
// enough, and a bigger pipeline only holds Redis longer for everyone else.
const maxBatch = 32

// freeSlots is how many slots a window leaves free: for an asynq worker,
// one for the task asynq is handing out, one for a task finishing. With
// fewer, the window closes: a worker of small concurrency would otherwise
// spend its windows waiting for company that cannot come (BENCHMARKS.md
// measured it).
const freeSlots = 2

// Stats counts what a Batcher did since it was made: calls and the round
// trips that carried them.
type Stats struct {
	// Calls is the number of calls sent to Redis (a script call, or one
	// call's plain commands).
	Calls int64
	// Batches is the number of round trips that carried them (a retry with
	// EVAL after NOSCRIPT not included); Calls/Batches is the mean batch size.
	Batches int64
	// Pipelined is the number of calls that shared their round trip with
	// at least one other call.
	Pipelined int64
	// Windows is the number of round trips whose leader (a windowed call)
	// waited for others to join it.
	Windows int64
	// Slots is how many windowed callers may be in progress at once now
	// (AddSlots): a window closes once all but two wait in it.
	Slots int
}

// callState is where a scriptCall is; guarded by Batcher.mu.
type callState uint8

const (
	callQueued  callState = iota // in the queue, not sent
	callLeading                  // promoted: its goroutine sends the next batch
	callSent                     // in a batch in flight: it waits for its reply
	callDone                     // cmd holds the reply
)

// scriptCall is one caller's script call, or its plain commands (cmds set,
// script nil: they go in the batch as they are, in order, each with its own
// reply).
type scriptCall struct {
	ctx    context.Context
	script *redis.Script
	keys   []string
	args   []any
	cmds   []redis.Cmder
	cmd    *redis.Cmd       // the reply, set by the batch's leader (plain: nil unless the call failed)
	state  callState        // guarded by Batcher.mu
	wake   chan struct{}    // one signal: promoted (callLeading) or replied (callDone)
	then   func(*redis.Cmd) // a stowed call's reply goes here instead (nil wake)
}

// New returns a batcher over rdb whose windowed calls wait up to window
// for company (0 or negative: never).
func New(rdb redis.UniversalClient, window time.Duration) *Batcher {
	return &Batcher{rdb: rdb, window: max(window, 0), stowWait: stowWait}
}

// Stats returns the counts so far.
func (b *Batcher) Stats() Stats {
	b.mu.Lock()
	defer b.mu.Unlock()
	st := b.stats
	st.Slots = b.slots
	return st
}

// Queued is how many calls wait for the next round trip now (stowed ones
// not included).
func (b *Batcher) Queued() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return len(b.queue)
}

// Idle reports whether nothing is in flight, queued or stowed: every call
// that returned left the batcher as it found it.
func (b *Batcher) Idle() bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	return !b.busy && len(b.queue) == 0 && len(b.stowed) == 0
}

// stowWait is how long a stowed call waits for a batch to ride with before
// it is sent on its own.
const stowWait = 2 * time.Millisecond

// Stow queues a script call that nobody waits for: it rides with the next
// batch any caller sends (ahead of that batch's calls, so a call made after
// Stow returns runs after it in Redis, unless Redis had lost the stowed
// script (NOSCRIPT) and not the other's: it then runs again with EVAL,
// after), or is sent on its own after stowWait when none comes, and then
// passes its reply to then, once, from the goroutine that sent it, after
// that batch's waiters were woken: then must not block, nor call the
// Batcher. It saves its caller a round trip and a wake-up when another
// call is about to follow, as asynq's completion of a task follows its
// handler. The call is sent under ctx's values without its cancellation.
// then may be nil.
func (b *Batcher) Stow(ctx context.Context, script *redis.Script, then func(*redis.Cmd), keys []string, args ...any) {
	if then == nil {
		then = func(*redis.Cmd) {}
	}
	c := &scriptCall{ctx: context.WithoutCancel(ctx), script: script, keys: keys, args: args, then: then}
	b.mu.Lock()
	defer b.mu.Unlock()
	if len(b.stowed) == 0 {
		if b.stowTimer == nil {
			b.stowTimer = time.AfterFunc(b.stowWait, b.flushStowed)
		} else {
			b.stowTimer.Reset(b.stowWait)
		}
	}
	b.stowed = append(b.stowed, c)
}

// flushStowed sends the stowed calls that no batch took, leading a batch
// of them when nothing is in flight, or waits once more for the batch in
// flight to end.
func (b *Batcher) flushStowed() {
	b.mu.Lock()
	switch {
	case len(b.stowed) == 0:
		b.mu.Unlock()
		return
	case b.busy:
		b.stowTimer.Reset(b.stowWait)
		b.mu.Unlock()
		return
	}
	b.busy = true
	b.mu.Unlock()
	b.lead(nil, false)
}

// Run runs script with keys and args as Script.Run would, sharing the round
// trip with concurrent calls when a batch is already in flight.
func (b *Batcher) Run(ctx context.Context, script *redis.Script, keys []string, args ...any) *redis.Cmd {
	return b.do(ctx, false, &scriptCall{script: script, keys: keys, args: args})
}

// RunWindowed is Run for a windowed call: at an idle batcher it waits up
// to the window for company when the last round trip had some.
func (b *Batcher) RunWindowed(ctx context.Context, script *redis.Script, keys []string, args ...any) *redis.Cmd {
	return b.do(ctx, true, &scriptCall{script: script, keys: keys, args: args})
}

// DoWindowed is RunWindowed for plain commands: they share a round trip
// with the other calls, in order (a pipeline, not a transaction). Each
// command holds its own reply or error; the error returned is the call's
// own (its context done before it was sent, its batch aborted), which each
// command then holds too.
func (b *Batcher) DoWindowed(ctx context.Context, cmds ...redis.Cmder) error {
	if cmd := b.do(ctx, true, &scriptCall{cmds: cmds}); cmd != nil {
		return cmd.Err()
	}
	return nil
}

// Do is DoWindowed for calls that never wait for company: sent at once
// when nothing is in flight, else with the next round trip.
func (b *Batcher) Do(ctx context.Context, cmds ...redis.Cmder) error {
	if cmd := b.do(ctx, false, &scriptCall{cmds: cmds}); cmd != nil {
		return cmd.Err()
	}
	return nil
}

func (b *Batcher) do(ctx context.Context, windowed bool, c *scriptCall) *redis.Cmd {
	if err := ctx.Err(); err != nil { // go-redis fails a command before sending it, too
		c.fail(ctx, err)
		return c.cmd
	}
	c.ctx = ctx
	b.mu.Lock()
	if !b.busy {
		b.busy = true
		if windowed && b.company && b.window > 0 {
			return b.gather(c) // unlocks
		}
		if len(b.stowed) > 0 { // nothing in flight: send at once, with the stowed calls
			c.wake, c.state = make(chan struct{}, 1), callLeading
			b.queue = append(b.queue, c)
			b.mu.Unlock()
			b.lead(c, false)
			return c.cmd
		}
		// Nothing in flight and nobody to wait for: send at once, alone.
		b.stats.Calls++
		b.stats.Batches++
		b.mu.Unlock()
		return b.runAlone(c)
	}
	c.wake = make(chan struct{}, 1)
	b.queue = append(b.queue, c)
	if g := b.gathering; g != nil && b.fullLocked() {
		b.gathering = nil
		g.wake <- struct{}{} // buffered, sent once per window: never blocks
	}
	b.mu.Unlock()

	select {
	case <-c.wake:
	case <-ctx.Done():
		b.mu.Lock()
		switch c.state {
		case callQueued: // not sent: leave the queue
			b.removeLocked(c)
			b.mu.Unlock()
			c.fail(ctx, ctx.Err())
			return c.cmd
		case callLeading: // promoted but not started: the next one leads
			b.removeLocked(c)
			b.promoteLocked()
			b.mu.Unlock()
			c.fail(ctx, ctx.Err())
			return c.cmd
		}
		b.mu.Unlock()
		<-c.wake // sent: the reply is on its way, as for a single command
	}
	// The signal orders the state (and the reply) written before it.
	if c.state == callLeading {
		b.lead(c, true)
	}
	return c.cmd
}

// gather leads a batch that first waits for company: it opens a window
// of b.window (closed early when maxBatch calls queue), then sends
// whatever queued with it. b.mu is held on entry with b.busy set, and
// released.
func (b *Batcher) gather(c *scriptCall) *redis.Cmd {
	ctx := c.ctx
	c.wake, c.state = make(chan struct{}, 1), callLeading
	b.queue = append(b.queue, c)
	if b.fullLocked() { // too few slots to wait for anyone: send at once
		b.mu.Unlock()
		b.lead(c, false)
		return c.cmd
	}
	b.gathering = c
	b.stats.Windows++
	b.mu.Unlock()
	t := time.NewTimer(b.window)
	select {
	case <-t.C:
	case <-c.wake: // full
	case <-ctx.Done():
	}
	t.Stop()
	b.mu.Lock()
	if b.gathering == c {
		b.gathering = nil
	}
	if err := ctx.Err(); err != nil { // not sent: the next queued call leads at once
		b.removeLocked(c)
		b.promoteLocked()
		b.mu.Unlock()
		c.fail(ctx, err)
		return c.cmd
	}
	b.mu.Unlock()
	b.lead(c, false)
	return c.cmd
}

// fullLocked reports whether a window should close: maxBatch calls wait,
// or all but freeSlots of the slots do. b.mu must be held.
func (b *Batcher) fullLocked() bool {
	return len(b.queue) >= maxBatch || (b.slots > 0 && len(b.queue) >= max(b.slots-freeSlots, 1))
}

// AddSlots tells the batcher that n more windowed callers may be in
// progress at once (negative n: fewer). An asynq worker whose handlers make
// windowed calls adds its concurrency when it starts and takes it back when
// it stops.
func (b *Batcher) AddSlots(n int) {
	b.mu.Lock()
	b.slots = max(b.slots+n, 0)
	b.mu.Unlock()
}

// runAlone sends one call while it holds the lead, then passes the lead on.
func (b *Batcher) runAlone(c *scriptCall) *redis.Cmd {
	defer b.release()
	b.sendOne(c)
	return c.cmd
}

func (b *Batcher) release() {
	b.mu.Lock()
	b.company = len(b.queue) > 0
	b.promoteLocked()
	b.mu.Unlock()
}

// errAborted is the reply of calls whose batch was cut short by a
// panic in the sending goroutine (a hook, say); the panic goes on.
var errAborted = errors.New("groupcommit: the batch carrying this call was aborted")

// lead sends everything stowed and queued, with self among it (the
// promoted call, the one that gathered the batch in a window, or one that
// found stowed calls at an idle batcher; nil: the stowed calls' timer), as
// one batch; then it hands out the replies and promotes the next leader.
// promoted: self queued behind another batch.
func (b *Batcher) lead(self *scriptCall, promoted bool) {
	b.mu.Lock()
	batch := b.queue
	b.queue, b.spare = b.spare[:0], nil
	if len(b.stowed) > 0 { // ahead of the calls made after them
		batch = slices.Insert(batch, 0, b.stowed...)
		clear(b.stowed)
		b.stowed = b.stowed[:0]
	}
	sent := batch[:0] // filtered in place: the calls whose context is still live
	for _, c := range batch {
		if err := c.ctx.Err(); err != nil { // never a stowed call: no cancellation
			c.fail(c.ctx, err)
			c.state = callDone
			if c != self && c.wake != nil {
				c.wake <- struct{}{}
			}
			continue
		}
		c.state = callSent
		sent = append(sent, c)
	}
	b.stats.Calls += int64(len(sent))
	if len(sent) > 0 {
		b.stats.Batches++
	}
	if len(sent) > 1 {
		b.stats.Pipelined += int64(len(sent))
	}
	b.mu.Unlock()

	done := false
	var thens []*scriptCall
	defer func() {
		b.mu.Lock()
		waited := 0 // calls someone waits for: stowed ones are not company
		for _, c := range sent {
			if !done {
				c.fail(c.ctx, errAborted)
			}
			c.state = callDone
			switch {
			case c.then != nil:
				thens = append(thens, c)
			case c != self:
				c.wake <- struct{}{} // buffered, and each call is signalled once: never blocks
				fallthrough
			default:
				waited++
			}
		}
		// A promoted call queued behind another: company, even alone.
		b.company = promoted || waited > 1 || len(b.queue) > 0
		clear(batch)
		if b.spare == nil {
			b.spare = batch[:0]
		}
		b.promoteLocked()
		b.mu.Unlock()
		// Once the batcher is consistent again: a callback that panics
		// leaves it usable.
		for _, c := range thens {
			c.then(c.cmd)
		}
	}()
	b.send(self, sent)
	done = true
}

// send runs calls in one round trip: alone as Script.Run under its own
// context, several as a pipeline of EVALSHA, then EVAL for those whose
// script Redis no longer has, under the leader's context values (the first
// call's when the leader's own context is done, or when the stowed calls'
// timer leads: self nil) without cancellation.
func (b *Batcher) send(self *scriptCall, calls []*scriptCall) {
	switch len(calls) {
	case 0:
		return
	case 1:
		b.sendOne(calls[0])
		return
	}
	ctx := calls[0].ctx
	if self != nil && self.ctx.Err() == nil {
		ctx = self.ctx
	}
	ctx = context.WithoutCancel(ctx)
	p := b.rdb.Pipeline()
	for _, c := range calls {
		if c.script == nil {
			for _, cmd := range c.cmds {
				_ = p.Process(ctx, cmd)
			}
			continue
		}
		c.cmd = c.script.EvalSha(ctx, p, c.keys, c.args...)
	}
	_, _ = p.Exec(ctx) // each call's outcome is on its own command
	var again redis.Pipeliner
	for _, c := range calls {
		if c.script != nil && noScript(c.cmd.Err()) { // not run: run it with its source, which caches it
			if again == nil {
				again = b.rdb.Pipeline()
			}
			c.cmd = c.script.Eval(ctx, again, c.keys, c.args...)
		}
	}
	if again != nil {
		_, _ = again.Exec(ctx)
	}
}

// sendOne runs one call alone under its own context: a script as
// Script.Run, plain commands as one pipeline (each holds its outcome).
func (b *Batcher) sendOne(c *scriptCall) {
	if c.script != nil {
		c.cmd = c.script.Run(c.ctx, b.rdb, c.keys, c.args...)
		return
	}
	_, _ = b.rdb.Pipelined(c.ctx, func(p redis.Pipeliner) error {
		for _, cmd := range c.cmds {
			_ = p.Process(c.ctx, cmd)
		}
		return nil
	})
}

// promoteLocked makes the oldest queued call the next leader, or marks the
// batcher idle when nothing waits. b.mu must be held.
func (b *Batcher) promoteLocked() {
	if len(b.queue) == 0 {
		b.busy = false
		return
	}
	c := b.queue[0]
	c.state = callLeading
	c.wake <- struct{}{}
}

// removeLocked takes c out of the queue. b.mu must be held.
func (b *Batcher) removeLocked(c *scriptCall) {
	for i, q := range b.queue {
		if q == c {
			b.queue = slices.Delete(b.queue, i, i+1)
			return
		}
	}
}

func noScript(err error) bool {
	return err != nil && (errors.Is(err, redis.ErrNoScript) || redis.HasErrorPrefix(err, "NOSCRIPT"))
}

// fail ends c with err before (or instead of) its reply: its result, and
// each of its plain commands, hold err.
func (c *scriptCall) fail(ctx context.Context, err error) {
	c.cmd = errCmd(ctx, err)
	for _, cmd := range c.cmds {
		cmd.SetErr(err)
	}
}

// errCmd is a command that failed before it was sent.
func errCmd(ctx context.Context, err error) *redis.Cmd {
	cmd := redis.NewCmd(ctx)
	cmd.SetErr(err)
	return cmd
}
