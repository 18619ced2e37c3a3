package store

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/checkd/checkd/checks"
)

// The weekly schedule. Every checkable connection has a fixed slot in the
// interval (checks.SlotOffset: a stable hash of its ID), so the set of
// connections due in any minute of the week never changes with time: it is
// kept as one small sorted set per minute of the interval ("P wk:<minute>",
// member → offset in ms), written only when a connection becomes checkable
// or stops being so. The sweep walks a cursor over the timeline: every slot
// up to the cursor has been enqueued. A sweep of N due connections therefore
// writes nothing per connection (it reads the minute sets and moves the
// cursor once per batch), and a minute set of ~100 members is stored as a
// compact listpack rather than as a skiplist node per connection.
//
// One scheduler at a time walks the cursor: BeginSweep takes a lock ("P
// sw:lock", leased, renewed by every acknowledgement). The cursor moves only
// over batches whose every task was tried; a connection whose enqueue failed
// goes to the on-demand due index at its original slot, so the next tick
// retries it with the same task ID. A scheduler that dies mid-sweep leaves
// the cursor at its last acknowledged batch; the next lock holder re-reads
// from there and asynq refuses the task IDs it already holds. Nothing is
// lost and nothing is enqueued twice.

// scheduleBucket is the width of one minute set of the weekly schedule.
const scheduleBucket = time.Minute

func (s *Store) intervalMS() int64 { return int64(s.cfg.Interval / time.Millisecond) }

// bucketMS is the width of one schedule set: a minute, or the whole
// interval when that is shorter.
func (s *Store) bucketMS() int64 {
	return max(1, min(int64(scheduleBucket/time.Millisecond), s.intervalMS()))
}

// slotOffset is the connection's slot within the interval, in ms.
func (s *Store) slotOffset(id string) int64 {
	return int64(checks.SlotOffset(id, s.cfg.Interval) / time.Millisecond)
}

// segment is a range (lo, hi] of slot offsets, and base, the time of offset
// 0 on the timeline: slot = base + offset.
type segment struct{ lo, hi, base int64 }

// segments splits the timeline range (from, to] (at most one interval long)
// into offset ranges that do not wrap around the interval.
func (s *Store) segments(from, to int64) []segment {
	iv := s.intervalMS()
	if to <= from || iv <= 0 {
		return nil
	}
	if to-from > iv {
		from = to - iv
	}
	lo := mod(from, iv)
	base := from - lo
	hi := lo + (to - from)
	if hi < iv {
		return []segment{{lo, hi, base}}
	}
	return []segment{{lo, iv - 1, base}, {-1, hi - iv, base + iv}}
}

func mod(a, b int64) int64 {
	m := a % b
	if m < 0 {
		m += b
	}
	return m
}

// countWeekScript counts the members of schedule sets within a range of
// slot offsets.
//
//	KEYS[1..] -> P wk:<minute>, the sets covering the range
//	ARGV[1]   -> the range's low end (ms, excluded)
//	ARGV[2]   -> the range's high end (ms, included)
//
// Returns the count.
var countWeekScript = redis.NewScript(`
local n = 0
for i = 1, #KEYS do
  n = n + redis.call('ZCOUNT', KEYS[i], '(' .. ARGV[1], ARGV[2])
end
return n
`)

// beginSweepScript takes the sweep lock and reads the cursor, setting it to
// now when there is none yet.
//
//	KEYS[1] -> P sw
//	KEYS[2] -> P sw:lock
//	ARGV[1] -> the sweep's token
//	ARGV[2] -> the lock's lease (ms)
//	ARGV[3] -> now (ms)
//
// Returns the cursor, or false when another scheduler holds the lock.
var beginSweepScript = redis.NewScript(`
if not redis.call('SET', KEYS[2], ARGV[1], 'NX', 'PX', ARGV[2]) then return false end
local c = redis.call('GET', KEYS[1])
if not c then
  redis.call('SET', KEYS[1], ARGV[3])
  c = ARGV[3]
end
return c
`)

// ackSweepScript moves the cursor and renews the lock, if the sweep's
// token still holds it; the connections whose enqueue failed go to the
// on-demand due index at their slot, if still in their schedule set
// (eligible: an admin may have deactivated one since the sweep read it).
//
//	KEYS[1]   -> P sw
//	KEYS[2]   -> P sw:lock
//	KEYS[3]   -> P due
//	KEYS[4..] -> P wk:<minute>, the schedule set of each failed connection
//	ARGV[1]   -> the sweep's token
//	ARGV[2]   -> the lock's lease (ms)
//	ARGV[3]   -> the new cursor (ms)
//	ARGV[4..] -> member, slot (ms) pairs of the failed connections, the
//	             j-th pair's schedule set in KEYS[3+j]
//
// Returns 1, or 0 when the lock was lost.
var ackSweepScript = redis.NewScript(`
if redis.call('GET', KEYS[2]) ~= ARGV[1] then return 0 end
for k = 4, #KEYS do
  local i = 4 + (k - 4) * 2
  if redis.call('ZSCORE', KEYS[k], ARGV[i]) then
    redis.call('ZADD', KEYS[3], 'NX', ARGV[i + 1], ARGV[i])
  end
end
redis.call('SET', KEYS[1], ARGV[3])
redis.call('PEXPIRE', KEYS[2], ARGV[2])
return 1
`)

// endSweepScript releases the lock if the sweep's token holds it, moving
// the cursor first unless given none.
//
//	KEYS[1] -> P sw:lock
//	KEYS[2] -> P sw
//	ARGV[1] -> the sweep's token
//	ARGV[2] -> the new cursor (ms), or "" to leave it
//
// Returns 1.
var endSweepScript = redis.NewScript(`
if redis.call('GET', KEYS[1]) == ARGV[1] then
  if ARGV[2] ~= '' then redis.call('SET', KEYS[2], ARGV[2]) end
  redis.call('DEL', KEYS[1])
end
return 1
`)

// ErrSweepLost reports that a sweep's lock ended (it was not renewed within
// its lease) and another scheduler may have taken over: stop sweeping.
var ErrSweepLost = errors.New("the sweep lock was lost to another scheduler; this tick stops sweeping")

// weekly is one scheduler's walk of the weekly schedule up to a time: the
// source of a Sweep from BeginSweep (which says how it walks) to End. It
// is safe for concurrent use.
type weekly struct {
	s          *Store
	token      string
	lease      time.Duration
	leaseUntil time.Time

	mu   sync.Mutex
	from int64     // timeline position the sweep started at
	segs []segment // left to read, the first partly
	read int64     // timeline position read up to
	// members and sets read so far: the density that sizes the next read
	membersRead, setsRead int64
	nextSeq               int
	ackedSeq              int              // batches below it are acknowledged and the cursor is past them
	done                  map[int]sweepAck // acknowledged out of order
	ended                 bool
}

// sweepBatch ties a weekly DueItem to its batch.
type sweepBatch struct {
	sw  *weekly
	seq int
	end int64 // timeline position after the batch
}

type sweepAck struct {
	end    int64
	failed []DueItem
}

// BeginSweep starts a sweep of the weekly schedule up to now, holding the
// sweep lock for lease at a time (every Ack renews it; End releases it). It
// returns nil and no error when another scheduler is sweeping. The range
// starts at the cursor, or one interval before now when the cursor is
// further behind (a scheduler down for longer than an interval checks each
// connection once, not once per missed slot). Next returns the connections
// whose weekly slot is due in slot order: limit of them (more only when the
// last millisecond read has more), fewer only when none are left after them
// or some were skipped (SkipServed). Batches may be acknowledged in any
// order: the cursor moves over the acknowledged prefix, and at End over the
// rest of what was read when nothing is left unread or unacknowledged;
// batches not acknowledged are read again by the next sweep.
func (s *Store) BeginSweep(ctx context.Context, now time.Time, lease time.Duration) (*Sweep, error) {
	if lease <= 0 {
		return nil, fmt.Errorf("%w: sweep lease %s must be positive", ErrInvalid, lease)
	}
	token := newID("sw")
	v, err := beginSweepScript.Run(ctx, s.rdb, []string{s.kCursor(), s.kSweepLock()},
		token, lease.Milliseconds(), ms(now)).Text()
	if errors.Is(err, redis.Nil) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("begin sweep: %w", err)
	}
	cursor, err := strconv.ParseInt(v, 10, 64)
	if err != nil {
		return nil, fmt.Errorf("begin sweep: stored cursor %q is not a time in ms (delete key %s to restart from now): %w", v, s.kCursor(), err)
	}
	from := max(cursor, ms(now)-s.intervalMS())
	return &Sweep{src: &weekly{s: s, token: token, lease: lease, segs: s.segments(from, ms(now)),
		from: from, read: from, done: map[int]sweepAck{}}}, nil
}

func (sw *weekly) remaining() bool { return len(sw.segs) > 0 }

func (sw *weekly) drained() bool {
	sw.mu.Lock()
	defer sw.mu.Unlock()
	return !sw.remaining()
}

// next returns the next batch of connections whose weekly slot is due (see
// BeginSweep).
func (sw *weekly) next(ctx context.Context, limit int) ([]DueItem, error) {
	sw.mu.Lock()
	defer sw.mu.Unlock()
	if sw.ended {
		return nil, fmt.Errorf("%w: sweep already ended", ErrInvalid)
	}
	b := &sweepBatch{sw: sw, seq: sw.nextSeq}
	var out []DueItem
	for sw.remaining() && len(out) < limit {
		items, err := sw.read1(ctx, b, limit-len(out))
		if err != nil {
			return nil, err
		}
		out = append(out, items...)
	}
	if len(out) == 0 {
		return nil, nil
	}
	sw.nextSeq++
	b.end = sw.read
	return out, nil
}

// maxReadSets bounds the schedule sets one read pipelines.
const maxReadSets = 2048

// read1 reads whole schedule sets of the first segment in one pipeline, as
// many as should hold want members by the density seen so far, and returns
// up to want of their members in slot order (more only to finish the last
// millisecond taken). It moves the read position past what it returns.
func (sw *weekly) read1(ctx context.Context, b *sweepBatch, want int) ([]DueItem, error) {
	s, seg := sw.s, &sw.segs[0]
	w := s.bucketMS()
	first, last := (seg.lo+1)/w, seg.hi/w
	n := int64(maxReadSets)
	if sw.setsRead > 0 && sw.membersRead > 0 {
		n = int64(float64(want)*float64(sw.setsRead)/float64(sw.membersRead)) + 1
	}
	last = min(last, first+min(n, maxReadSets)-1)
	from, to := "("+strconv.FormatInt(seg.lo, 10), strconv.FormatInt(seg.hi, 10)
	p := s.rdb.Pipeline()
	cmds := make([]*redis.ZSliceCmd, 0, last-first+1)
	for i := first; i <= last; i++ {
		cmds = append(cmds, p.ZRangeByScoreWithScores(ctx, s.kWeekSet(i), &redis.ZRangeBy{Min: from, Max: to}))
	}
	if _, err := p.Exec(ctx); err != nil {
		return nil, fmt.Errorf("read the weekly schedule: %w", err)
	}
	var out []DueItem
	for ci, c := range cmds {
		for _, z := range c.Val() {
			off := int64(z.Score)
			if len(out) >= want && off != seg.lo {
				// Full, and a new millisecond: stop here; the rest of
				// this set is read again from seg.lo.
				sw.note(len(out), ci+1)
				sw.read = seg.base + seg.lo
				return out, nil
			}
			id, _ := z.Member.(string)
			out = append(out, DueItem{ConnectionID: id, Slot: fromMS(seg.base + off), week: b})
			seg.lo = off
		}
	}
	sw.note(len(out), len(cmds))
	if end := (last+1)*w - 1; end < seg.hi {
		seg.lo = end
		sw.read = seg.base + end
	} else {
		sw.read = seg.base + seg.hi
		sw.segs = sw.segs[1:]
	}
	return out, nil
}

// note records how many members a read found in how many sets.
func (sw *weekly) note(members, sets int) {
	sw.membersRead += int64(members)
	sw.setsRead += int64(sets)
}

// ack acknowledges a batch from next: ok[i] tells whether items[i]'s task
// is queued. The cursor moves past every batch acknowledged so far without
// a gap; failed items go to the on-demand due index at their slot.
func (sw *weekly) ack(ctx context.Context, items []DueItem, ok []bool) error {
	if len(items) == 0 {
		return nil
	}
	b := items[0].week
	if b == nil || b.sw != sw || len(ok) != len(items) {
		return fmt.Errorf("%w: Ack takes one batch returned by this sweep's Next, with one ok flag per item", ErrInvalid)
	}
	sw.mu.Lock()
	defer sw.mu.Unlock()
	s := sw.s
	a := sweepAck{end: b.end}
	for i, it := range items {
		if !ok[i] {
			a.failed = append(a.failed, it)
		}
	}
	sw.done[b.seq] = a
	keys := []string{s.kCursor(), s.kSweepLock(), s.kDue()}
	args := []any{sw.token, sw.lease.Milliseconds(), int64(0)}
	var end int64 = -1
	first := sw.ackedSeq
	for seq := first; ; seq++ {
		a, found := sw.done[seq]
		if !found {
			break
		}
		end = a.end
		for _, it := range a.failed {
			week, _ := s.kWeek(it.ConnectionID)
			keys = append(keys, week)
			args = append(args, it.ConnectionID, ms(it.Slot))
		}
	}
	if end < 0 {
		return nil // an earlier batch is still being enqueued
	}
	args[2] = end
	n, err := ackSweepScript.Run(ctx, s.rdb, keys, args...).Int()
	if err != nil {
		// The batches stay unacknowledged: the next Ack sends them again
		// (the script is idempotent), and End does not move the cursor
		// over them, so a failed item's slot is not lost with the reply.
		return fmt.Errorf("move the sweep cursor to %s: %w", fromMS(end).Format(time.RFC3339Nano), err)
	}
	for { // the batches just sent, held under sw.mu since
		if _, found := sw.done[sw.ackedSeq]; !found {
			break
		}
		delete(sw.done, sw.ackedSeq)
		sw.ackedSeq++
	}
	if n == 0 {
		return ErrSweepLost
	}
	return nil
}

// end releases the sweep lock; it is safe to call twice. Batches not
// acknowledged are read again by the next sweep.
func (sw *weekly) end(ctx context.Context) error {
	sw.mu.Lock()
	defer sw.mu.Unlock()
	if sw.ended {
		return nil
	}
	sw.ended = true
	// A sweep that read to its end with every batch acknowledged also moves
	// the cursor over what it read after its last batch (or over all it
	// read, when it found nothing): no slot there is due, and the next tick
	// would otherwise read those schedule sets again.
	cursor := ""
	if !sw.remaining() && sw.ackedSeq == sw.nextSeq && sw.read > sw.from {
		cursor = strconv.FormatInt(sw.read, 10)
	}
	if err := endSweepScript.Run(ctx, sw.s.rdb, []string{sw.s.kSweepLock(), sw.s.kCursor()}, sw.token, cursor).Err(); err != nil {
		return fmt.Errorf("end sweep: %w", err)
	}
	return nil
}

// sweepCursor is the weekly schedule's cursor (every slot up to it is
// enqueued), or now when no sweep has run yet.
func (s *Store) sweepCursor(ctx context.Context, now time.Time) (int64, error) {
	v, err := s.rdb.Get(ctx, s.kCursor()).Int64()
	if errors.Is(err, redis.Nil) {
		return ms(now), nil
	}
	if err != nil {
		return 0, fmt.Errorf("read the sweep cursor: %w", err)
	}
	return v, nil
}

// weeklyBacklog counts connections whose weekly slot in (cursor, now] is
// not yet enqueued (O(minutes behind)).
func (s *Store) weeklyBacklog(ctx context.Context, now time.Time) (int64, error) {
	cursor, err := s.sweepCursor(ctx, now)
	if err != nil {
		return 0, err
	}
	var n int64
	w := s.bucketMS()
	for _, seg := range s.segments(cursor, ms(now)) {
		var sets []string
		for b := (seg.lo + 1) / w; b <= seg.hi/w; b++ {
			sets = append(sets, s.kWeekSet(b))
		}
		c, err := countWeekScript.Run(ctx, s.rdb, sets, seg.lo, seg.hi).Int64()
		if err != nil {
			return 0, fmt.Errorf("count the weekly backlog: %w", err)
		}
		n += c
	}
	return n, nil
}

// dueWeekly puts an eligible connection in the weekly schedule and leaves
// its on-demand due time alone (a schedule rebuild).
const dueWeekly dueOp = "wk"

// EnsureSchedule makes the weekly schedule match the store's interval. The
// schedule sets are keyed by slot offsets within the interval, so when the
// interval changes (CHECKD_CHECK_INTERVAL), or on a store written before
// the schedule existed, it rebuilds them: it drops every set, then puts
// each eligible connection back, each with the same atomic compare-and-set
// write as any other change (so a concurrent admin action is never undone).
// It returns how many connections it scheduled; with the schedule already
// matching it costs one read. Run it before sweeping (Scheduler.Start
// does); a run cut short is simply run again.
func (s *Store) EnsureSchedule(ctx context.Context) (int, error) {
	want := strconv.FormatInt(s.intervalMS(), 10)
	got, err := s.rdb.Get(ctx, s.kScheduleInterval()).Result()
	if err != nil && !errors.Is(err, redis.Nil) {
		return 0, fmt.Errorf("read the schedule's interval: %w", err)
	}
	if got == want {
		return 0, nil
	}
	// Drop the old sets first: a write racing the rebuild lands in a set
	// kept, and the scan below re-reads every record anyway.
	if err := s.deleteMatching(ctx, s.kWeekPattern()); err != nil {
		return 0, fmt.Errorf("rebuild the schedule: %w", err)
	}
	active := map[string]bool{}
	n := 0
	var cursor uint64
	for {
		keys, next, err := s.rdb.Scan(ctx, cursor, s.kConnPattern(), 1000).Result()
		if err != nil {
			return n, fmt.Errorf("rebuild the schedule: %w", err)
		}
		for _, k := range keys {
			id := s.connIDOf(k)
			if !ValidID(ConnectionIDPrefix, id) {
				continue
			}
			scheduled, err := s.reschedule(ctx, id, active)
			if errors.Is(err, ErrNotFound) {
				continue // deleted meanwhile
			}
			if err != nil {
				return n, fmt.Errorf("rebuild the schedule: %w", err)
			}
			if scheduled {
				n++
			}
		}
		if cursor = next; cursor == 0 {
			break
		}
	}
	if err := s.rdb.Set(ctx, s.kScheduleInterval(), want, 0).Err(); err != nil {
		return n, fmt.Errorf("rebuild the schedule: %w", err)
	}
	return n, nil
}

// reschedule puts one connection in the schedule when it is eligible, and
// out of it (and of the due index) otherwise; active caches companies' flags.
func (s *Store) reschedule(ctx context.Context, id string, active map[string]bool) (bool, error) {
	var scheduled bool
	attempt := 0
	err := s.update(ctx, id, "", func(r *connRec) (*mutation, error) {
		if attempt++; attempt > 1 {
			delete(active, r.CompanyID) // the company may have changed: read it again
		}
		on, ok := active[r.CompanyID]
		if !ok {
			co, err := s.GetCompany(ctx, r.CompanyID)
			if err != nil {
				return nil, err
			}
			on = co.IsActive
			active[r.CompanyID] = on
		}
		flag := "0"
		if on {
			flag = "1"
		}
		scheduled = checks.Eligibility(checks.ConnectionStatus(r.Status), !r.Inactive, on) == checks.SkipNone
		if scheduled {
			return &mutation{due: dueWeekly, companyActive: flag}, nil
		}
		return &mutation{due: dueRemove, companyActive: flag}, nil
	})
	return scheduled, err
}

// deleteMatching deletes the keys matching pattern, a batch at a time.
func (s *Store) deleteMatching(ctx context.Context, pattern string) error {
	var cursor uint64
	for {
		keys, next, err := s.rdb.Scan(ctx, cursor, pattern, 1000).Result()
		if err != nil {
			return err
		}
		if len(keys) > 0 {
			if err := s.rdb.Unlink(ctx, keys...).Err(); err != nil {
				return err
			}
		}
		if cursor = next; cursor == 0 {
			return nil
		}
	}
}
