package store

import (
	"context"
	"errors"
	"slices"
	"sync"

	"github.com/redis/go-redis/v9"
)

// scriptBatcher is the store's group commit: the script calls of concurrent
// callers (LoadCheck's read, every write's commit) go to Redis together, as
// one pipeline, when several are waiting. It batches opportunistically and
// never waits on a timer: a call made while nothing is in flight is sent at
// once, alone, exactly as an unbatched Script.Run; calls made while a batch
// is in flight queue up, and when it returns everything queued goes as the
// next pipeline. So a lone caller pays no latency, and under load a round
// trip (a write and a read system call on each side, per call) is shared by
// the whole queue.
//
// It has no goroutine of its own, hence nothing to start or stop: the caller
// that finds nothing in flight sends (it leads); when its batch is back it
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
// The zero value is not usable; newScriptBatcher makes one. It is safe for
// concurrent use.
type scriptBatcher struct {
	rdb redis.UniversalClient

	mu    sync.Mutex
	busy  bool          // a batch is in flight or about to be sent by a promoted leader
	queue []*scriptCall // waiting for the next batch, oldest first
	spare []*scriptCall // the previous batch's backing array, reused for the next queue
	stats BatchStats
}

// BatchStats counts what the store's group commit did since the store was
// created: script calls (LoadCheck reads and writes) and the round trips
// that carried them.
type BatchStats struct {
	// Calls is the number of script calls sent to Redis.
	Calls int64
	// Batches is the number of round trips that carried them (a retry with
	// EVAL after NOSCRIPT not included); Calls/Batches is the mean batch size.
	Batches int64
	// Pipelined is the number of calls that shared their round trip with
	// at least one other call.
	Pipelined int64
}

// callState is where a scriptCall is; guarded by scriptBatcher.mu.
type callState uint8

const (
	callQueued  callState = iota // in the queue, not sent
	callLeading                  // promoted: its goroutine sends the next batch
	callSent                     // in a batch in flight: it waits for its reply
	callDone                     // cmd holds the reply
)

// scriptCall is one caller's script call.
type scriptCall struct {
	ctx    context.Context
	script *redis.Script
	keys   []string
	args   []any
	cmd    *redis.Cmd    // the reply, set by the batch's leader
	state  callState     // guarded by scriptBatcher.mu
	wake   chan struct{} // one signal: promoted (callLeading) or replied (callDone)
}

func newScriptBatcher(rdb redis.UniversalClient) *scriptBatcher {
	return &scriptBatcher{rdb: rdb}
}

// Stats returns the counts so far.
func (b *scriptBatcher) Stats() BatchStats {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.stats
}

// run runs script with keys and args as Script.Run would, sharing the round
// trip with concurrent calls when a batch is already in flight.
func (b *scriptBatcher) run(ctx context.Context, script *redis.Script, keys []string, args ...any) *redis.Cmd {
	if err := ctx.Err(); err != nil { // go-redis fails a command before sending it, too
		return errCmd(ctx, err)
	}
	b.mu.Lock()
	if !b.busy { // nothing in flight: send at once, alone
		b.busy = true
		b.stats.Calls++
		b.stats.Batches++
		b.mu.Unlock()
		return b.runAlone(ctx, script, keys, args)
	}
	c := &scriptCall{ctx: ctx, script: script, keys: keys, args: args, wake: make(chan struct{}, 1)}
	b.queue = append(b.queue, c)
	b.mu.Unlock()

	select {
	case <-c.wake:
	case <-ctx.Done():
		b.mu.Lock()
		switch c.state {
		case callQueued: // not sent: leave the queue
			b.removeLocked(c)
			b.mu.Unlock()
			return errCmd(ctx, ctx.Err())
		case callLeading: // promoted but not started: the next one leads
			b.removeLocked(c)
			b.promoteLocked()
			b.mu.Unlock()
			return errCmd(ctx, ctx.Err())
		}
		b.mu.Unlock()
		<-c.wake // sent: the reply is on its way, as for a single command
	}
	// The signal orders the state (and the reply) written before it.
	if c.state == callLeading {
		b.lead(c)
	}
	return c.cmd
}

// runAlone sends one call while it holds the lead, then passes the lead on.
func (b *scriptBatcher) runAlone(ctx context.Context, script *redis.Script, keys []string, args []any) *redis.Cmd {
	defer b.release()
	return script.Run(ctx, b.rdb, keys, args...)
}

func (b *scriptBatcher) release() {
	b.mu.Lock()
	b.promoteLocked()
	b.mu.Unlock()
}

// errBatchAborted is the reply of calls whose batch was cut short by a
// panic in the sending goroutine (a hook, say); the panic goes on.
var errBatchAborted = errors.New("store: the batch carrying this call was aborted")

// lead sends everything queued, with self (the promoted call) among it, as
// one batch; then it hands out the replies and promotes the next leader.
func (b *scriptBatcher) lead(self *scriptCall) {
	b.mu.Lock()
	batch := b.queue
	b.queue, b.spare = b.spare[:0], nil
	sent := batch[:0] // filtered in place: the calls whose context is still live
	for _, c := range batch {
		if err := c.ctx.Err(); err != nil {
			c.cmd, c.state = errCmd(c.ctx, err), callDone
			if c != self {
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
	defer func() {
		b.mu.Lock()
		for _, c := range sent {
			if !done {
				c.cmd = errCmd(c.ctx, errBatchAborted)
			}
			c.state = callDone
			if c != self {
				c.wake <- struct{}{} // buffered, and each call is signalled once: never blocks
			}
		}
		clear(batch)
		if b.spare == nil {
			b.spare = batch[:0]
		}
		b.promoteLocked()
		b.mu.Unlock()
	}()
	b.send(self, sent)
	done = true
}

// send runs calls in one round trip: alone as Script.Run under its own
// context, several as a pipeline of EVALSHA, then EVAL for those whose
// script Redis no longer has, under the leader's context values (the first
// call's when the leader's own context is done) without cancellation.
func (b *scriptBatcher) send(self *scriptCall, calls []*scriptCall) {
	switch len(calls) {
	case 0:
		return
	case 1:
		c := calls[0]
		c.cmd = c.script.Run(c.ctx, b.rdb, c.keys, c.args...)
		return
	}
	ctx := self.ctx
	if ctx.Err() != nil {
		ctx = calls[0].ctx
	}
	ctx = context.WithoutCancel(ctx)
	p := b.rdb.Pipeline()
	for _, c := range calls {
		c.cmd = c.script.EvalSha(ctx, p, c.keys, c.args...)
	}
	_, _ = p.Exec(ctx) // each call's outcome is on its own command
	var again redis.Pipeliner
	for _, c := range calls {
		if noScript(c.cmd.Err()) { // not run: run it with its source, which caches it
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

// promoteLocked makes the oldest queued call the next leader, or marks the
// batcher idle when nothing waits. b.mu must be held.
func (b *scriptBatcher) promoteLocked() {
	if len(b.queue) == 0 {
		b.busy = false
		return
	}
	c := b.queue[0]
	c.state = callLeading
	c.wake <- struct{}{}
}

// removeLocked takes c out of the queue. b.mu must be held.
func (b *scriptBatcher) removeLocked(c *scriptCall) {
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

// errCmd is a command that failed before it was sent.
func errCmd(ctx context.Context, err error) *redis.Cmd {
	cmd := redis.NewCmd(ctx)
	cmd.SetErr(err)
	return cmd
}
