package store

import (
	"context"
	"fmt"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/checkd/checkd/checks"
)

// DueItem is a connection whose check time has come; Slot is that time.
type DueItem struct {
	ConnectionID string
	Slot         time.Time
}

// claimScript leases up to ARGV[2] due members (score <= ARGV[1]) by moving
// them to ARGV[3] with one ZADD per chunk; it returns member, old score
// pairs. One script, so concurrent schedulers never claim the same member.
var claimScript = redis.NewScript(`
local items = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'WITHSCORES', 'LIMIT', 0, tonumber(ARGV[2]))
local args = {}
for i = 1, #items, 2 do
  args[#args + 1] = ARGV[3]
  args[#args + 1] = items[i]
  if #args >= 2000 then
    redis.call('ZADD', KEYS[1], 'XX', unpack(args))
    args = {}
  end
end
if #args > 0 then redis.call('ZADD', KEYS[1], 'XX', unpack(args)) end
return items
`)

// advanceScript moves leased members (still at ARGV[1]) to their next slot
// and marks their checks queued until ARGV[2] in the hash KEYS[2]; ARGV[3..]
// are member, next-slot pairs. A member removed or rescheduled since the
// claim is left where it is. Each step is one command per chunk.
var advanceScript = redis.NewScript(`
local lease = tonumber(ARGV[1])
local n = 0
for c = 3, #ARGV, 2000 do
  local members, marks, moves = {}, {}, {}
  for i = c, math.min(c + 1998, #ARGV - 1), 2 do
    members[#members + 1] = ARGV[i]
    marks[#marks + 1] = ARGV[i]
    marks[#marks + 1] = ARGV[2]
  end
  local scores = redis.call('ZMSCORE', KEYS[1], unpack(members))
  for j = 1, #members do
    if scores[j] and tonumber(scores[j]) == lease then
      moves[#moves + 1] = ARGV[c + 2 * j - 1]
      moves[#moves + 1] = members[j]
    end
  end
  if #moves > 0 then
    redis.call('ZADD', KEYS[1], unpack(moves))
    n = n + #moves / 2
  end
  redis.call('HSET', KEYS[2], unpack(marks))
end
return n
`)

// ClaimDue leases up to limit connections due at now until leaseUntil:
// another scheduler does not see them, and if this one dies before
// AdvanceDue they come due again when the lease ends. Cost O(log N + limit).
func (s *Store) ClaimDue(ctx context.Context, now, leaseUntil time.Time, limit int) ([]DueItem, error) {
	v, err := claimScript.Run(ctx, s.rdb, []string{s.kDue()}, ms(now), limit, ms(leaseUntil)).StringSlice()
	if err != nil {
		return nil, fmt.Errorf("claim due connections: %w", err)
	}
	out := make([]DueItem, 0, len(v)/2)
	for i := 0; i+1 < len(v); i += 2 {
		score, err := strconv.ParseFloat(v[i+1], 64)
		if err != nil {
			return nil, fmt.Errorf("claim due connections: score %q: %w", v[i+1], err)
		}
		out = append(out, DueItem{ConnectionID: v[i], Slot: fromMS(int64(score))})
	}
	return out, nil
}

// AdvanceDue moves claimed connections, whose checks were enqueued, from
// their lease to their next slot after now, and marks their checks queued
// (see MarkQueued). It returns how many moved.
func (s *Store) AdvanceDue(ctx context.Context, items []DueItem, leaseUntil, now time.Time) (int, error) {
	if len(items) == 0 {
		return 0, nil
	}
	args := make([]any, 0, 2+2*len(items))
	args = append(args, ms(leaseUntil), ms(s.cfg.Clock.Now().Add(s.cfg.QueuedTTL)))
	for _, it := range items {
		args = append(args, it.ConnectionID, ms(checks.NextSlot(it.ConnectionID, now, s.cfg.Interval)))
	}
	n, err := advanceScript.Run(ctx, s.rdb, []string{s.kDue(), s.kQueued()}, args...).Int()
	if err != nil {
		return 0, fmt.Errorf("advance due connections: %w", err)
	}
	return n, nil
}
