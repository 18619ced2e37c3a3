package store

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"
)

// DueItem is a connection whose check time has come; Slot is that time.
type DueItem struct {
	ConnectionID string
	Slot         time.Time
	// Reclaimed: an on-demand claim whose lease ended unacknowledged,
	// claimed again with its original slot; its check may well have run
	// already.
	Reclaimed bool
	batch     string      // on-demand: the in-flight record it belongs to
	week      *sweepBatch // weekly: the sweep batch it belongs to
}

// A Sweep walks one source of due connections for a scheduler's tick: the
// on-demand due index (SweepOnDemand) or the weekly schedule (BeginSweep).
// Next returns the next batch, none once the source is drained; Done
// reports, without asking Redis, that nothing is left to read; Ack
// acknowledges a batch once each of its tasks was tried (ok[i]: items[i]'s
// task is queued, or was already); End finishes the walk, releasing what
// it holds. What is not acknowledged comes due again: an on-demand claim
// when its lease ends, a weekly slot on the next sweep. A Sweep is safe
// for concurrent use: Ack may run while Next reads the next batch.
type Sweep struct {
	src dueSource
	// served: the connections this on-demand sweep claimed fresh (not
	// reclaimed); skip: another sweep's served, which this one passes over
	// (SkipServed).
	served, skip map[string]bool
}

// dueSource is the source a Sweep walks.
type dueSource interface {
	next(ctx context.Context, limit int) ([]DueItem, error)
	drained() bool
	ack(ctx context.Context, items []DueItem, ok []bool) error
	end(ctx context.Context) error
}

// Next returns the next batch of due connections, at most limit unless the
// source says otherwise (BeginSweep, SweepOnDemand); none means the source
// is drained.
func (sw *Sweep) Next(ctx context.Context, limit int) ([]DueItem, error) {
	for {
		items, err := sw.src.next(ctx, limit)
		if err != nil || len(sw.skip) == 0 || len(items) == 0 {
			return items, err
		}
		kept := items[:0:0]
		for _, it := range items {
			if !sw.skip[it.ConnectionID] {
				kept = append(kept, it)
			}
		}
		if len(kept) > 0 {
			return kept, nil // Ack needs only one item of a batch to know it
		}
		all := make([]bool, len(items)) // every one skipped: served, acknowledged at once
		for i := range all {
			all[i] = true
		}
		if err := sw.src.ack(ctx, items, all); err != nil {
			return nil, err
		}
	}
}

// Done reports whether the source has nothing left to read: a Next now
// would return none (without a round trip).
func (sw *Sweep) Done() bool { return sw.src.drained() }

// Ack acknowledges a batch from Next: ok[i] tells whether items[i]'s task
// is queued (a task that already existed under its ID counts).
func (sw *Sweep) Ack(ctx context.Context, items []DueItem, ok []bool) error {
	return sw.src.ack(ctx, items, ok)
}

// End finishes the sweep; it is safe to call twice. Next fails after it.
func (sw *Sweep) End(ctx context.Context) error { return sw.src.end(ctx) }

// SkipServed makes a weekly sweep pass over the connections that an
// on-demand sweep of the same tick, by, claimed fresh: their checks run
// after now, so each serves a weekly slot up to now too (it is
// acknowledged as enqueued). A reclaimed claim does not count: its check
// may have run before the weekly slot, and its task may be refused as
// already done. Call it before the first Next, once by has ended.
func (sw *Sweep) SkipServed(by *Sweep) { sw.skip = by.served }

// The on-demand due index ("P due": member → due time in ms) holds the
// connections due at a time other than their weekly slot: a new connection's
// first check, a reactivated one, a retry of a failed weekly enqueue. The
// weekly slots themselves are in the schedule (schedule.go). Claims are
// crash-safe:
//
//   - claimDue reads due connections, then atomically takes each (if still
//     at the score read) out of the index, marks its check queued, and
//     records the batch in flight: one string of member, slot pairs, listed
//     in the in-flight index by lease end. Concurrent schedulers never claim
//     the same connection.
//   - The caller enqueues each check with a task ID made of the connection
//     and the slot, then ackDue acknowledges the enqueued ones: they
//     leave the batch (the batch goes when empty).
//   - If the caller dies between claim and acknowledgement, the batch's
//     lease ends and a later claimDue hands it out again with the original
//     slots: the same task IDs, so asynq refuses duplicates of tasks it
//     still holds, and a re-run of a finished one is a duplicate attempt
//     the store ignores. Nothing is lost and nothing is checked twice.

// claimScript takes the members still at the score read out of the due
// index, marks their checks queued (see MarkQueued), and records them as
// one claim in flight: one string, "<count>|<member> <slot> ...", written
// once and deleted once every member is acknowledged.
//
//	KEYS[1]   -> P due
//	KEYS[2]   -> P fl
//	KEYS[3]   -> P fl:<claim>, the new claim
//	KEYS[4]   -> P q
//	ARGV[1]   -> the claim's lease end (ms): its score in KEYS[2]
//	ARGV[2]   -> the queued marks' end (ms)
//	ARGV[3..] -> member, score read pairs
//
// Returns the members claimed.
var claimScript = redis.NewScript(`
local members = {}
for i = 3, #ARGV, 2 do members[#members + 1] = ARGV[i] end
if #members == 0 then return {} end
local scores = redis.call('ZMSCORE', KEYS[1], unpack(members))
local fly, marks, out = {}, {}, {}
for j = 1, #members do
  local i = 3 + (j - 1) * 2
  if scores[j] and tonumber(scores[j]) == tonumber(ARGV[i + 1]) then
    fly[#fly + 1] = members[j] .. ' ' .. ARGV[i + 1]
    marks[#marks + 1] = members[j]
    marks[#marks + 1] = ARGV[2]
    out[#out + 1] = members[j]
  end
end
if #out > 0 then
  redis.call('ZREM', KEYS[1], unpack(out))
  redis.call('HSET', KEYS[4], unpack(marks))
  redis.call('SET', KEYS[3], #out .. '|' .. table.concat(fly, ' '))
  redis.call('ZADD', KEYS[2], ARGV[1], KEYS[3])
end
return out
`)

// reclaimScript leases a claim whose lease ended again; a claim gone is
// dropped from the in-flight index.
//
//	KEYS[1] -> P fl
//	KEYS[2] -> P fl:<claim>
//	ARGV[1] -> the lease end read (ms): the claim must still be at it
//	ARGV[2] -> the new lease end (ms)
//
// Returns the claim's string, "" when another scheduler took it or it is gone.
var reclaimScript = redis.NewScript(`
local s = redis.call('ZSCORE', KEYS[1], KEYS[2])
if (not s) or tonumber(s) ~= tonumber(ARGV[1]) then return '' end
local b = redis.call('GET', KEYS[2])
if not b then
  redis.call('ZREM', KEYS[1], KEYS[2])
  return ''
end
redis.call('ZADD', KEYS[1], ARGV[2], KEYS[2])
return b
`)

// ackScript removes enqueued members from a claim, dropping the claim and
// its entry in the in-flight index once empty.
//
//	KEYS[1]   -> P fl
//	KEYS[2]   -> P fl:<claim>
//	ARGV[1..] -> the members enqueued
//
// Returns how many members it removed.
var ackScript = redis.NewScript(`
local b = redis.call('GET', KEYS[2])
if not b then return 0 end
local acked = {}
for i = 1, #ARGV do acked[ARGV[i]] = true end
local keep, removed = {}, 0
for m, slot in string.gmatch(string.sub(b, string.find(b, '|', 1, true) + 1), '(%S+) (%S+)') do
  if acked[m] then removed = removed + 1 else keep[#keep + 1] = m .. ' ' .. slot end
end
if #keep == 0 then
  redis.call('DEL', KEYS[2])
  redis.call('ZREM', KEYS[1], KEYS[2])
elseif removed > 0 then
  redis.call('SET', KEYS[2], #keep .. '|' .. table.concat(keep, ' '))
end
return removed
`)

// SweepOnDemand starts a sweep of the on-demand due index up to now, each
// claim leased for lease. Next returns first any claim whose lease ended
// unacknowledged, with its original slots (Reclaimed: often the short rest
// of a batch, it is not the end of the index), then fresh due connections:
// limit of them, fewer only when none are left. Its End releases nothing:
// an unacknowledged claim's lease runs out by itself.
func (s *Store) SweepOnDemand(now time.Time, lease time.Duration) *Sweep {
	sw := &Sweep{served: map[string]bool{}}
	sw.src = &onDemand{s: s, now: now, leaseUntil: now.Add(lease), served: sw.served}
	return sw
}

// onDemand is the source of a Sweep of the on-demand due index.
type onDemand struct {
	s               *Store
	now, leaseUntil time.Time
	served          map[string]bool // fresh claims, written by next only
	empty, ended    atomic.Bool     // empty: a fresh claim came back short
}

func (o *onDemand) next(ctx context.Context, limit int) ([]DueItem, error) {
	if o.ended.Load() {
		return nil, fmt.Errorf("%w: sweep already ended", ErrInvalid)
	}
	if o.empty.Load() {
		return nil, nil
	}
	items, err := o.s.claimDue(ctx, o.now, o.leaseUntil, limit)
	reclaimed := len(items) > 0 && items[0].Reclaimed
	for _, it := range items {
		if !it.Reclaimed {
			o.served[it.ConnectionID] = true
		}
	}
	if err == nil && !reclaimed && len(items) < limit {
		o.empty.Store(true)
	}
	return items, err
}

func (o *onDemand) drained() bool { return o.empty.Load() }

func (o *onDemand) ack(ctx context.Context, items []DueItem, ok []bool) error {
	if len(items) == 0 {
		return nil
	}
	if len(ok) != len(items) {
		return fmt.Errorf("%w: Ack takes one ok flag per item", ErrInvalid)
	}
	var queued []DueItem
	for i, it := range items {
		if ok[i] {
			queued = append(queued, it)
		}
	}
	if len(queued) == 0 {
		return nil
	}
	_, err := o.s.ackDue(ctx, queued)
	return err
}

func (o *onDemand) end(context.Context) error {
	o.ended.Store(true)
	return nil
}

// claimDue claims up to limit connections of the on-demand due index due at
// now, taking each out of it, with a lease until leaseUntil on the claim
// itself (see above): first any batch whose lease ended unacknowledged,
// with its original slots, else fresh due connections. Fewer than limit
// fresh ones means none are left. Cost O(log N + limit).
func (s *Store) claimDue(ctx context.Context, now, leaseUntil time.Time, limit int) ([]DueItem, error) {
	p := s.rdb.Pipeline()
	expired := p.ZRangeByScoreWithScores(ctx, s.kInflight(), &redis.ZRangeBy{Min: "-inf", Max: strconv.FormatInt(ms(now), 10), Count: 1})
	due := p.ZRangeByScoreWithScores(ctx, s.kDue(), &redis.ZRangeBy{Min: "-inf", Max: strconv.FormatInt(ms(now), 10), Count: int64(limit)})
	if _, err := p.Exec(ctx); err != nil {
		return nil, fmt.Errorf("claim due connections: %w", err)
	}
	if len(expired.Val()) > 0 {
		if items, err := s.reclaim(ctx, expired.Val()[0], leaseUntil); err != nil || len(items) > 0 {
			return items, err
		}
	}
	var out []DueItem
	read := due.Val()
	for attempt := 0; len(read) > 0 && attempt < maxAttempts; attempt++ {
		got, err := s.claim(ctx, read, leaseUntil)
		if err != nil {
			return out, err
		}
		out = append(out, got...)
		if len(out) >= limit || len(read) < limit-len(out)+len(got) {
			break // enough, or the due index had no more than we read
		}
		// Another scheduler took some of what we read: read again.
		read, err = s.rdb.ZRangeByScoreWithScores(ctx, s.kDue(), &redis.ZRangeBy{Min: "-inf",
			Max: strconv.FormatInt(ms(now), 10), Count: int64(limit - len(out))}).Result()
		if err != nil {
			return out, fmt.Errorf("claim due connections: %w", err)
		}
	}
	return out, nil
}

func (s *Store) claim(ctx context.Context, read []redis.Z, leaseUntil time.Time) ([]DueItem, error) {
	batch := s.kNewClaim()
	args := make([]any, 0, 2+2*len(read))
	args = append(args, ms(leaseUntil), ms(s.cfg.Clock.Now().Add(s.cfg.QueuedTTL)))
	slots := make(map[string]int64, len(read))
	for _, z := range read {
		id, _ := z.Member.(string)
		slots[id] = int64(z.Score)
		args = append(args, id, int64(z.Score))
	}
	got, err := claimScript.Run(ctx, s.rdb, []string{s.kDue(), s.kInflight(), batch, s.kQueued()}, args...).StringSlice()
	if err != nil {
		return nil, fmt.Errorf("claim due connections: %w", err)
	}
	out := make([]DueItem, len(got))
	for i, id := range got {
		out[i] = DueItem{ConnectionID: id, Slot: fromMS(slots[id]), batch: batch}
	}
	return out, nil
}

func (s *Store) reclaim(ctx context.Context, z redis.Z, leaseUntil time.Time) ([]DueItem, error) {
	batch, _ := z.Member.(string)
	v, err := reclaimScript.Run(ctx, s.rdb, []string{s.kInflight(), batch}, int64(z.Score), ms(leaseUntil)).Text()
	if err != nil {
		return nil, fmt.Errorf("reclaim unacknowledged checks: %w", err)
	}
	if v == "" {
		return nil, nil
	}
	_, list, ok := strings.Cut(v, "|")
	f := strings.Fields(list)
	if !ok || len(f)%2 != 0 {
		return nil, fmt.Errorf("reclaim unacknowledged checks: batch %s is malformed (delete it to drop it)", batch)
	}
	out := make([]DueItem, 0, len(f)/2)
	for i := 0; i+1 < len(f); i += 2 {
		slot, err := strconv.ParseInt(f[i+1], 10, 64)
		if err != nil {
			return nil, fmt.Errorf("reclaim unacknowledged checks: slot %q: %w", f[i+1], err)
		}
		out = append(out, DueItem{ConnectionID: f[i], Slot: fromMS(slot), Reclaimed: true, batch: batch})
	}
	return out, nil
}

// ackDue acknowledges claimed connections whose checks were enqueued
// (they already left the due index, their checks marked queued by the
// claim: see MarkQueued). Connections claimed but not acknowledged come back
// from claimDue when the claim's lease ends. It returns how many it
// acknowledged.
func (s *Store) ackDue(ctx context.Context, items []DueItem) (int, error) {
	byBatch := map[string][]any{}
	for _, it := range items {
		if it.batch == "" {
			return 0, fmt.Errorf("%w: an on-demand sweep's Ack takes items its Next returned", ErrInvalid)
		}
		byBatch[it.batch] = append(byBatch[it.batch], it.ConnectionID)
	}
	n := 0 // one batch per call from the scheduler: no pipeline needed
	for b, args := range byBatch {
		v, err := ackScript.Run(ctx, s.rdb, []string{s.kInflight(), b}, args...).Int()
		if err != nil {
			return n, fmt.Errorf("acknowledge enqueued checks: %w", err)
		}
		n += v
	}
	return n, nil
}

// ServeDue records that a check for the connection's on-demand due time
// slot was enqueued outside the sweep (an admin check): if the connection is
// still due at slot it leaves the due index, so the sweep does not check it
// a second time; its weekly slot stays. It reports whether it was due.
func (s *Store) ServeDue(ctx context.Context, id string, slot time.Time) (bool, error) {
	n, err := serveScript.Run(ctx, s.rdb, []string{s.kDue()}, id, ms(slot)).Int()
	if err != nil {
		return false, fmt.Errorf("take %s out of the due index: %w", id, err)
	}
	return n == 1, nil
}

// serveScript takes a connection out of the due index if it is still due
// at the slot given.
//
//	KEYS[1] -> P due
//	ARGV[1] -> the connection ID
//	ARGV[2] -> the slot (ms)
//
// Returns 1 when it took it out, 0 when it was not due at that slot.
var serveScript = redis.NewScript(`
local s = redis.call('ZSCORE', KEYS[1], ARGV[1])
if s and tonumber(s) == tonumber(ARGV[2]) then
  redis.call('ZREM', KEYS[1], ARGV[1])
  return 1
end
return 0
`)

// DueBacklog counts the checks whose time has passed and that are not
// enqueued yet: on-demand due times up to now (O(log N)) and weekly slots
// between the sweep cursor and now (O(minutes behind), at most one per
// connection). A new connection whose weekly slot also passed counts twice.
func (s *Store) DueBacklog(ctx context.Context, now time.Time) (int64, error) {
	n, err := s.rdb.ZCount(ctx, s.kDue(), "-inf", strconv.FormatInt(ms(now), 10)).Result()
	if err != nil {
		return 0, fmt.Errorf("due backlog: %w", err)
	}
	w, err := s.weeklyBacklog(ctx, now)
	if err != nil {
		return 0, err
	}
	return n + w, nil
}
