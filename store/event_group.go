package store

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
)

// The webhook dispatcher reads the change-event stream through a Redis
// consumer group: an entry read by a consumer stays pending until it is
// acknowledged, so a dispatcher that dies between reading and handing an
// entry on leaves it for another (ClaimEvents), and several dispatchers
// share the stream without reading an entry twice. The group's floor
// ("P ev:floor") is the oldest entry not yet acknowledged; writes trim the
// stream only before it (commitScript), so no entry is dropped before it
// was dispatched, however long the dispatchers are away.

// EventBatch is what a read of the change-event stream returned.
type EventBatch struct {
	Events []Event
	// Skipped are entries to acknowledge without dispatching: undecodable
	// ones (logged by the caller) and, from ClaimEvents, entries pending
	// but no longer in the stream.
	Skipped []string
	// Errors say why each undecodable entry was skipped.
	Errors []error
}

func (s *Store) decodeBatch(msgs []redis.XMessage) EventBatch {
	var b EventBatch
	for _, m := range msgs {
		ev, err := s.decodeEvent(m)
		if err != nil {
			b.Skipped, b.Errors = append(b.Skipped, m.ID), append(b.Errors, err)
			continue
		}
		b.Events = append(b.Events, ev)
	}
	return b
}

// EnsureEventGroup creates the consumer group group on the change-event
// stream, from its oldest entry, unless it exists; and starts the floor, so
// from now on writes trim the stream only before what the group has
// acknowledged.
func (s *Store) EnsureEventGroup(ctx context.Context, group string) error {
	err := s.rdb.XGroupCreateMkStream(ctx, s.kEvents(), group, "0").Err()
	if err != nil && !strings.HasPrefix(err.Error(), "BUSYGROUP") {
		return fmt.Errorf("create consumer group %s on the change-event stream: %w", group, err)
	}
	if err := s.rdb.SetNX(ctx, s.kEventsFloor(), "0-0", 0).Err(); err != nil {
		return fmt.Errorf("start the change-event stream's floor: %w", err)
	}
	return nil
}

// ReadEvents reads up to count new entries for consumer of group, waiting
// up to block for one (0: not at all). They stay pending for the consumer
// until AckEvents.
func (s *Store) ReadEvents(ctx context.Context, group, consumer string, count int64, block time.Duration) (EventBatch, error) {
	if block <= 0 {
		block = -1 // go-redis: no BLOCK argument
	}
	res, err := s.rdb.XReadGroup(ctx, &redis.XReadGroupArgs{Group: group, Consumer: consumer,
		Streams: []string{s.kEvents(), ">"}, Count: count, Block: block}).Result()
	if errors.Is(err, redis.Nil) {
		return EventBatch{}, nil
	}
	if err != nil {
		return EventBatch{}, fmt.Errorf("read the change-event stream: %w", err)
	}
	if len(res) == 0 {
		return EventBatch{}, nil
	}
	return s.decodeBatch(res[0].Messages), nil
}

// ReadPendingEvents reads up to count entries pending for consumer of
// group: read by it earlier but not acknowledged (a round that failed).
// Entries trimmed from the stream meanwhile come back as Skipped.
func (s *Store) ReadPendingEvents(ctx context.Context, group, consumer string, count int64) (EventBatch, error) {
	res, err := s.rdb.XReadGroup(ctx, &redis.XReadGroupArgs{Group: group, Consumer: consumer,
		Streams: []string{s.kEvents(), "0"}, Count: count, Block: -1}).Result()
	if errors.Is(err, redis.Nil) || err == nil && len(res) == 0 {
		return EventBatch{}, nil
	}
	if err != nil {
		return EventBatch{}, fmt.Errorf("read pending change events: %w", err)
	}
	var live []redis.XMessage
	var gone []string
	for _, m := range res[0].Messages {
		if len(m.Values) == 0 {
			gone = append(gone, m.ID)
			continue
		}
		live = append(live, m)
	}
	b := s.decodeBatch(live)
	b.Skipped = append(b.Skipped, gone...)
	return b, nil
}

// ClaimEvents takes over up to count entries of group pending for longer
// than minIdle with any consumer (one that died), from start ("0-0" the
// oldest); next is where the following call starts ("0-0": the pending
// list was scanned through).
func (s *Store) ClaimEvents(ctx context.Context, group, consumer string, minIdle time.Duration, start string, count int64) (EventBatch, string, error) {
	cmd := redis.NewSliceCmd(ctx, "XAUTOCLAIM", s.kEvents(), group, consumer, minIdle.Milliseconds(), start, "COUNT", count)
	if err := s.rdb.Process(ctx, cmd); err != nil {
		return EventBatch{}, "", fmt.Errorf("claim pending change events: %w", err)
	}
	v := cmd.Val()
	if len(v) < 2 {
		return EventBatch{}, "", fmt.Errorf("claim pending change events: unexpected reply %v", v)
	}
	next, _ := v[0].(string)
	var msgs []redis.XMessage
	raw, _ := v[1].([]any)
	for _, e := range raw {
		pair, _ := e.([]any)
		if len(pair) != 2 {
			continue
		}
		id, _ := pair[0].(string)
		fields, _ := pair[1].([]any)
		m := redis.XMessage{ID: id, Values: map[string]any{}}
		for i := 0; i+1 < len(fields); i += 2 {
			k, _ := fields[i].(string)
			m.Values[k] = fields[i+1]
		}
		msgs = append(msgs, m)
	}
	b := s.decodeBatch(msgs)
	if len(v) > 2 { // Redis 7: entries pending but trimmed from the stream
		del, _ := v[2].([]any)
		for _, d := range del {
			if id, ok := d.(string); ok {
				b.Skipped = append(b.Skipped, id)
			}
		}
	}
	return b, next, nil
}

// eventAckScript acknowledges entries and raises the floor to the oldest
// entry of the group still pending or, with none, to the last entry
// delivered to the group (every entry up to it is acknowledged). A floor
// never moves back.
//
// KEYS: events, floor
// ARGV: group, ids...
var eventAckScript = redis.NewScript(`
if #ARGV > 1 then
  redis.call('XACK', KEYS[1], ARGV[1], unpack(ARGV, 2))
end
local floor = ''
local p = redis.call('XPENDING', KEYS[1], ARGV[1])
if p[1] > 0 then
  floor = p[2]
else
  for _, g in ipairs(redis.call('XINFO', 'GROUPS', KEYS[1])) do
    local f = {}
    for i = 1, #g, 2 do f[g[i]] = g[i+1] end
    if f['name'] == ARGV[1] then floor = f['last-delivered-id'] end
  end
end
if floor == '' or floor == '0-0' then return 0 end
local function parse(id)
  local ms, seq = string.match(id, '^(%d+)-(%d+)$')
  return tonumber(ms), tonumber(seq)
end
local cur = redis.call('GET', KEYS[2])
if cur then
  local fm, fs = parse(floor)
  local cm, cs = parse(cur)
  if fm < cm or (fm == cm and fs <= cs) then return 0 end
end
redis.call('SET', KEYS[2], floor)
return 1
`)

// AckEvents acknowledges entries of group, dispatched, and raises the
// stream's floor past every entry the group has acknowledged.
func (s *Store) AckEvents(ctx context.Context, group string, ids []string) error {
	for first := true; first || len(ids) > 0; first = false {
		n := min(len(ids), 1000)
		args := make([]any, 0, n+1)
		args = append(args, group)
		for _, id := range ids[:n] {
			args = append(args, id)
		}
		if err := eventAckScript.Run(ctx, s.rdb, []string{s.kEvents(), s.kEventsFloor()}, args...).Err(); err != nil {
			return fmt.Errorf("acknowledge change events: %w", err)
		}
		ids = ids[n:]
	}
	return nil
}

// maxBacklogCount bounds the count of EventBacklog when Redis cannot tell
// the group's lag.
const maxBacklogCount = 100000

// EventBacklog counts the change events group has not dispatched: entries
// read but not acknowledged, and entries after the last one read.
func (s *Store) EventBacklog(ctx context.Context, group string) (int64, error) {
	groups, err := s.rdb.XInfoGroups(ctx, s.kEvents()).Result()
	if err != nil {
		if strings.Contains(err.Error(), "no such key") {
			return 0, nil
		}
		return 0, fmt.Errorf("read the change-event stream's groups: %w", err)
	}
	for _, g := range groups {
		if g.Name != group {
			continue
		}
		if g.Lag >= 0 {
			return g.Pending + g.Lag, nil
		}
		// Lag unknown (entries deleted mid-way): count after the last
		// read, up to a bound.
		n, err := s.rdb.XRangeN(ctx, s.kEvents(), "("+g.LastDeliveredID, "+", maxBacklogCount).Result()
		if err != nil {
			return 0, fmt.Errorf("count undispatched change events: %w", err)
		}
		return g.Pending + int64(len(n)), nil
	}
	return 0, nil
}
