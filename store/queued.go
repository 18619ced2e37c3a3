package store

import (
	"context"
	"fmt"

	"github.com/redis/go-redis/v9"

	"github.com/checkd/checkd/checks"
)

// Queued marks: a connection whose check is queued or running (P q) gets
// no second one from a refresh or an admin action. The sweep writes no
// mark per connection; MarkQueued infers its checks from the sweep cursor.

// markScript sets the queued mark of ARGV[1] until ARGV[3] unless one runs
// past ARGV[2] (now), or its weekly slot ARGV[4] is swept (cursor KEYS[4],
// schedule set KEYS[3]), less than ARGV[5] ms ago, and the record KEYS[2]
// shows the connection in the schedule at that slot (created by then, and
// not back in it since: "sj") and no check since ("ca", "sj" and "lc" are
// number fields no user string can forge unescaped, and the connection's
// "ca" comes before its accounts').
var markScript = redis.NewScript(`
local e = redis.call('HGET', KEYS[1], ARGV[1])
if e and tonumber(e) > tonumber(ARGV[2]) then return 0 end
local slot = tonumber(ARGV[4])
if tonumber(ARGV[2]) < slot + tonumber(ARGV[5]) then
  local cur = redis.call('GET', KEYS[4])
  if cur and tonumber(cur) >= slot and redis.call('ZSCORE', KEYS[3], ARGV[1]) then
    local c = redis.call('GET', KEYS[2])
    local lc = c and tonumber(string.match(c, '"lc":(%d+)') or '0') or 0
    local ca = c and tonumber(string.match(c, '"ca":(%d+)') or '0') or 0
    local sj = c and tonumber(string.match(c, '"sj":(%d+)') or '0') or 0
    if lc < slot and ca <= slot and sj <= slot then return 0 end
  end
end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[3])
return 1
`)

// MarkQueued records that a check of the connection is queued or running,
// unless one already is: it returns false then, and the caller enqueues
// nothing. A check counts as queued while it holds a mark (ended when the
// check is recorded, by ClearQueued, or after Config.QueuedTTL, so a lost
// task never blocks refreshes for long), and while the connection's latest
// weekly slot was swept less than QueuedTTL ago and no check was recorded
// since (the sweep writes no mark per connection).
func (s *Store) MarkQueued(ctx context.Context, id string) (bool, error) {
	now := s.cfg.Clock.Now()
	week, _ := s.kWeek(id)
	slot := checks.NextSlot(id, now, s.cfg.Interval).Add(-s.cfg.Interval)
	n, err := markScript.Run(ctx, s.rdb, []string{s.kQueued(), s.kConn(id), week, s.kCursor()},
		id, ms(now), ms(now.Add(s.cfg.QueuedTTL)), ms(slot), s.cfg.QueuedTTL.Milliseconds()).Int()
	if err != nil {
		return false, fmt.Errorf("mark check of %s queued: %w", id, err)
	}
	return n == 1, nil
}

// ClearQueued ends the queued mark of a connection whose check ended
// without a write (skipped, stale) or could not be enqueued.
func (s *Store) ClearQueued(ctx context.Context, id string) error {
	if err := s.rdb.HDel(ctx, s.kQueued(), id).Err(); err != nil {
		return fmt.Errorf("clear queued mark of %s: %w", id, err)
	}
	return nil
}
