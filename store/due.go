package store

import (
	"context"
	"fmt"
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
// them to ARGV[3]; it returns member, old score pairs. One script, so
// concurrent schedulers never claim the same member.
var claimScript = redis.NewScript(`
local items = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'WITHSCORES', 'LIMIT', 0, tonumber(ARGV[2]))
for i = 1, #items, 2 do
  redis.call('ZADD', KEYS[1], 'XX', ARGV[3], items[i])
end
return items
`)

// advanceScript moves leased members (still at ARGV[1]) to their next slot
// and marks their check queued for ARGV[3] ms (marker key prefix ARGV[2]):
// ARGV[4..] are member, score pairs. A member removed or rescheduled since
// the claim is left as it is.
var advanceScript = redis.NewScript(`
local lease = tonumber(ARGV[1])
local n = 0
for i = 4, #ARGV, 2 do
  local s = redis.call('ZSCORE', KEYS[1], ARGV[i])
  if s and tonumber(s) == lease then
    redis.call('ZADD', KEYS[1], ARGV[i + 1], ARGV[i])
    n = n + 1
  end
  redis.call('SET', ARGV[2] .. ARGV[i], '1', 'PX', ARGV[3])
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
		var score float64
		if _, err := fmt.Sscan(v[i+1], &score); err != nil {
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
	args := make([]any, 0, 3+2*len(items))
	args = append(args, ms(leaseUntil), s.cfg.Prefix+"q:", s.cfg.QueuedTTL.Milliseconds())
	for _, it := range items {
		args = append(args, it.ConnectionID, ms(checks.NextSlot(it.ConnectionID, now, s.cfg.Interval)))
	}
	n, err := advanceScript.Run(ctx, s.rdb, []string{s.kDue()}, args...).Int()
	if err != nil {
		return 0, fmt.Errorf("advance due connections: %w", err)
	}
	return n, nil
}
