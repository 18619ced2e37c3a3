package store

import (
	"context"
	"fmt"
	"strconv"
	"strings"
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

// The on-demand due index ("P due": member → due time in ms) holds the
// connections due at a time other than their weekly slot: a new connection's
// first check, a reactivated one, a retry of a failed weekly enqueue. The
// weekly slots themselves are in the schedule (schedule.go). Claims are
// crash-safe:
//
//   - ClaimDue reads due connections, then atomically takes each (if still
//     at the score read) out of the index, marks its check queued, and
//     records the batch in flight: one string of member, slot pairs, listed
//     in the in-flight index by lease end. Concurrent schedulers never claim
//     the same connection.
//   - The caller enqueues each check with a task ID made of the connection
//     and the slot, then AdvanceDue acknowledges the enqueued ones: they
//     leave the batch (the batch goes when empty).
//   - If the caller dies between claim and acknowledgement, the batch's
//     lease ends and a later ClaimDue hands it out again with the original
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

// ClaimDue claims up to limit connections of the on-demand due index due at
// now, taking each out of it, with a lease until leaseUntil on the claim itself (see above):
// first any batch whose lease ended unacknowledged, with its original
// slots, else fresh due connections. Fewer than limit means none are left.
// Cost O(log N + limit).
func (s *Store) ClaimDue(ctx context.Context, now, leaseUntil time.Time, limit int) ([]DueItem, error) {
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

// AdvanceDue acknowledges claimed connections whose checks were enqueued
// (they already left the due index, their checks marked queued by the
// claim: see MarkQueued). Connections claimed but not acknowledged come back
// from ClaimDue when the claim's lease ends. It returns how many it
// acknowledged.
func (s *Store) AdvanceDue(ctx context.Context, items []DueItem, _ time.Time, _ time.Time) (int, error) {
	byBatch := map[string][]any{}
	for _, it := range items {
		if it.batch == "" {
			return 0, fmt.Errorf("%w: AdvanceDue takes items returned by ClaimDue", ErrInvalid)
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
func (s *Store) ServeDue(ctx context.Context, id string, slot, _ time.Time) (bool, error) {
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
