package store

import (
	"context"
	"errors"
	"fmt"

	"github.com/redis/go-redis/v9"

	"github.com/checkd/checkd/checks"
)

// Queued marks: a connection whose check is queued or running (P q) gets
// no second one from a refresh or an admin action. The sweep writes no
// mark per connection; MarkQueued infers its checks from the sweep cursor.

// markScript sets a connection's queued mark unless a check of it is
// queued or running: its mark runs past now, or the sweep enqueued its
// latest weekly slot and no check was recorded since. The sweep did when
// its cursor is past that slot and the connection is in its schedule set,
// and the record (which MarkQueued decodes, ARGV[5]) showed it in the
// schedule then; the record must still be the one decoded.
//
//	KEYS[1] -> P q
//	KEYS[2] -> P c:<conn>
//	KEYS[3] -> P wk:<minute>, the connection's schedule set
//	KEYS[4] -> P sw
//	ARGV[1] -> the connection ID
//	ARGV[2] -> now (ms)
//	ARGV[3] -> the mark's end (ms)
//	ARGV[4] -> the connection's latest weekly slot (ms)
//	ARGV[5] -> "1": the record says the sweep would have enqueued that
//	           slot and no check was recorded since; "0": it does not, or
//	           the slot is more than Config.QueuedTTL ago
//	ARGV[6] -> the record as read, with "1" ("" when there is none)
//
// Returns 1 when it set the mark, 0 when a check is queued or running, -1
// when the record changed since it was read (read it again).
var markScript = redis.NewScript(`
local e = redis.call('HGET', KEYS[1], ARGV[1])
if e and tonumber(e) > tonumber(ARGV[2]) then return 0 end
if ARGV[5] == '1' then
  local cur = redis.call('GET', KEYS[4])
  if cur and tonumber(cur) >= tonumber(ARGV[4]) and redis.call('ZSCORE', KEYS[3], ARGV[1]) then
    if (redis.call('GET', KEYS[2]) or '') ~= ARGV[6] then return -1 end
    return 0
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
	slot := ms(checks.NextSlot(id, now, s.cfg.Interval).Add(-s.cfg.Interval))
	for attempt := 0; attempt < maxAttempts; attempt++ {
		swept, raw := "0", ""
		if ms(now) < slot+s.cfg.QueuedTTL.Milliseconds() { // a sweep of the slot may still be queued
			var err error
			if raw, err = s.rdb.Get(ctx, s.kConn(id)).Result(); err != nil && !errors.Is(err, redis.Nil) {
				return false, fmt.Errorf("mark check of %s queued: read connection: %w", id, err)
			}
			if unchecked, err := s.uncheckedSince(id, raw, slot); err != nil {
				return false, fmt.Errorf("mark check of %s queued: %w", id, err)
			} else if unchecked {
				swept = "1"
			}
		}
		n, err := markScript.Run(ctx, s.rdb, []string{s.kQueued(), s.kConn(id), week, s.kCursor()},
			id, ms(now), ms(now.Add(s.cfg.QueuedTTL)), slot, swept, raw).Int()
		if err != nil {
			return false, fmt.Errorf("mark check of %s queued: %w", id, err)
		}
		if n >= 0 {
			return n == 1, nil
		}
		if err := backoff(ctx, attempt); err != nil {
			return false, err
		}
	}
	return false, fmt.Errorf("mark check of %s queued: %w", id, ErrConflict)
}

// uncheckedSince reports whether the stored record raw ("": none) shows
// the connection in the weekly schedule at slot (created by then, and not
// back in it since) and no check recorded since.
func (s *Store) uncheckedSince(id, raw string, slot int64) (bool, error) {
	if raw == "" {
		return true, nil
	}
	r, err := decodeConn(id, raw)
	if err != nil {
		return false, err
	}
	return r.LastCheck < slot && r.CreatedAt <= slot && r.Joined <= slot, nil
}

// ClearQueued ends the queued mark of a connection whose check ended
// without a write (skipped, stale) or could not be enqueued.
func (s *Store) ClearQueued(ctx context.Context, id string) error {
	if err := s.rdb.HDel(ctx, s.kQueued(), id).Err(); err != nil {
		return fmt.Errorf("clear queued mark of %s: %w", id, err)
	}
	return nil
}
