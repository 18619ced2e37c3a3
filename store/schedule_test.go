package store

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/checkd/checkd/checks"
)

func TestSegments(t *testing.T) {
	t.Parallel()
	s := &Store{cfg: Config{Interval: time.Second}} // 1000 ms
	tests := []struct {
		name     string
		from, to int64
		want     []segment
	}{
		{"empty", 5000, 5000, nil},
		{"backwards", 5000, 4000, nil},
		{"inside one interval", 5100, 5300, []segment{{100, 300, 5000}}},
		{"up to the interval's last ms", 5100, 5999, []segment{{100, 999, 5000}}},
		{"wraps", 5900, 6100, []segment{{900, 999, 5000}, {-1, 100, 6000}}},
		{"starts at a boundary", 5999, 6050, []segment{{999, 999, 5000}, {-1, 50, 6000}}},
		{"one whole interval", 5200, 6200, []segment{{200, 999, 5000}, {-1, 200, 6000}}},
		{"longer: clamped to one interval", 1000, 6200, []segment{{200, 999, 5000}, {-1, 200, 6000}}},
		{"negative times", -1500, -1400, []segment{{500, 600, -2000}}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			got := s.segments(tc.from, tc.to)
			if len(got) != len(tc.want) {
				t.Fatalf("segments(%d, %d) = %+v, want %+v", tc.from, tc.to, got, tc.want)
			}
			for i := range got {
				if got[i] != tc.want[i] {
					t.Fatalf("segments(%d, %d) = %+v, want %+v", tc.from, tc.to, got, tc.want)
				}
			}
			// Every ms of the range maps to exactly one segment.
			covered := int64(0)
			for _, sg := range got {
				covered += sg.hi - sg.lo
			}
			if want := min(tc.to-tc.from, 1000); tc.to > tc.from && covered != want {
				t.Fatalf("segments cover %d ms, want %d", covered, want)
			}
		})
	}
}

func TestSweepMiniredis(t *testing.T) { runSweepConformance(t, miniBackend) }
func TestSweepRedis(t *testing.T)     { runSweepConformance(t, realBackend) }

// sweepAll runs a whole sweep up to now in batches of limit, acknowledging
// every batch as enqueued, and returns the items in the order read.
func (f *fixture) sweepAll(now time.Time, limit int) []DueItem {
	f.t.Helper()
	sw, err := f.s.BeginSweep(f.ctx, now, time.Minute)
	if err != nil || sw == nil {
		f.t.Fatalf("BeginSweep = %v, %v", sw, err)
	}
	var all []DueItem
	for {
		items, err := sw.Next(f.ctx, limit)
		if err != nil {
			f.t.Fatal(err)
		}
		if len(items) == 0 {
			break
		}
		if err := sw.Ack(f.ctx, items, allOK(len(items))); err != nil {
			f.t.Fatal(err)
		}
		all = append(all, items...)
	}
	if err := sw.End(f.ctx); err != nil {
		f.t.Fatal(err)
	}
	return all
}

func runSweepConformance(t *testing.T, b backend) {
	t.Run("a week's sweep returns every eligible connection once at its slot", func(t *testing.T) {
		t.Parallel()
		f := newFixture(t, b, nil)
		want := map[string]time.Time{}
		for range 60 {
			c := f.conn("user_good")
			f.record(c.ID, "a1", t0, ok()) // its first check: no longer due on demand
			want[c.ID] = checks.NextSlot(c.ID, t0, DefaultInterval)
		}
		blocked := f.conn("user_good")
		f.record(blocked.ID, "a1", t0, fail(checks.ConnPasswordIncorrect, "bad password"))
		if got := f.sweepAll(t0, 10); len(got) != 0 {
			t.Fatalf("the first sweep starts the cursor at now; it returned %d", len(got))
		}
		got := f.sweepAll(t0.Add(DefaultInterval), 7)
		seen := map[string]bool{}
		for i, it := range got {
			if seen[it.ConnectionID] {
				t.Fatalf("%s returned twice", it.ConnectionID)
			}
			seen[it.ConnectionID] = true
			slot, ok := want[it.ConnectionID]
			if !ok {
				t.Fatalf("%s returned but not eligible", it.ConnectionID)
			}
			if !it.Slot.Equal(slot) {
				t.Fatalf("%s at %v, want its slot %v", it.ConnectionID, it.Slot, slot)
			}
			if i > 0 && it.Slot.Before(got[i-1].Slot) {
				t.Fatalf("not in slot order: %v after %v", it.Slot, got[i-1].Slot)
			}
		}
		if len(seen) != len(want) {
			t.Fatalf("swept %d connections, want %d", len(seen), len(want))
		}
		if n, err := f.s.DueBacklog(f.ctx, t0.Add(DefaultInterval)); err != nil || n != 0 {
			t.Fatalf("backlog after the sweep = %d, %v", n, err)
		}
		if got := f.sweepAll(t0.Add(DefaultInterval), 7); len(got) != 0 {
			t.Fatalf("a second sweep up to the same time returned %d", len(got))
		}
	})

	t.Run("the backlog counts weekly slots behind the cursor", func(t *testing.T) {
		t.Parallel()
		f := newFixture(t, b, nil)
		f.sweepAll(t0, 10)
		var ids []string
		for range 20 {
			c := f.conn("user_good")
			f.record(c.ID, "a1", t0, ok()) // served: no longer due on demand
			ids = append(ids, c.ID)
		}
		at := t0.Add(DefaultInterval / 2)
		want := int64(0)
		for _, id := range ids {
			if !checks.NextSlot(id, t0, DefaultInterval).After(at) {
				want++
			}
		}
		if n, err := f.s.DueBacklog(f.ctx, at); err != nil || n != want {
			t.Fatalf("backlog at half a week = %d, %v; want %d", n, err, want)
		}
		if n, err := f.s.DueBacklog(f.ctx, t0.Add(3*DefaultInterval)); err != nil || n != 20 {
			t.Fatalf("backlog three intervals behind = %d, %v; want each connection once (20)", n, err)
		}
	})

	t.Run("a millisecond is never split between batches", func(t *testing.T) {
		t.Parallel()
		f := newFixture(t, b, nil)
		f.sweepAll(t0, 10)
		// Five members sharing one offset, written straight into their set.
		off := int64(12345)
		key := f.s.kWeekPrefix() + "0"
		var zs []redis.Z
		for _, m := range []string{"cn_a", "cn_b", "cn_c", "cn_d", "cn_e"} {
			zs = append(zs, redis.Z{Score: float64(off), Member: m})
		}
		zs = append(zs, redis.Z{Score: float64(off + 1), Member: "cn_f"})
		if err := f.rdb.ZAdd(f.ctx, key, zs...).Err(); err != nil {
			t.Fatal(err)
		}
		got := f.sweepAll(t0.Add(DefaultInterval), 2)
		var names []string
		for _, it := range got {
			names = append(names, it.ConnectionID)
		}
		sort.Strings(names)
		if len(names) != 6 {
			t.Fatalf("swept %v, want the six members once each", names)
		}
		for i := 1; i < len(names); i++ {
			if names[i] == names[i-1] {
				t.Fatalf("%s swept twice: %v", names[i], names)
			}
		}
	})

	t.Run("one sweeper at a time; the lock ends with End", func(t *testing.T) {
		t.Parallel()
		f := newFixture(t, b, nil)
		a, err := f.s.BeginSweep(f.ctx, t0, time.Minute)
		if err != nil || a == nil {
			t.Fatalf("first BeginSweep = %v, %v", a, err)
		}
		if b2, err := f.s.BeginSweep(f.ctx, t0, time.Minute); err != nil || b2 != nil {
			t.Fatalf("second BeginSweep while the first sweeps = %v, %v; want nil, nil", b2, err)
		}
		if err := a.End(f.ctx); err != nil {
			t.Fatal(err)
		}
		if err := a.End(f.ctx); err != nil {
			t.Fatalf("End twice: %v", err)
		}
		if _, err := a.Next(f.ctx, 10); !errors.Is(err, ErrInvalid) {
			t.Fatalf("Next after End = %v, want ErrInvalid", err)
		}
		c, err := f.s.BeginSweep(f.ctx, t0, time.Minute)
		if err != nil || c == nil {
			t.Fatalf("BeginSweep after End = %v, %v", c, err)
		}
		if _, err := f.s.BeginSweep(f.ctx, t0, 0); !errors.Is(err, ErrInvalid) {
			t.Fatalf("zero lease: %v", err)
		}
	})

	t.Run("an acknowledgement that fails keeps its batches: no slot is lost", func(t *testing.T) {
		t.Parallel()
		f := newScheduled(t, b, 30)
		for k, then := range []string{"end", "ack again"} {
			end := t0.Add(time.Duration(k+1) * DefaultInterval) // each case sweeps an interval of its own
			sw, err := f.s.BeginSweep(f.ctx, end, time.Minute)
			if err != nil || sw == nil {
				t.Fatalf("BeginSweep = %v, %v", sw, err)
			}
			limit := 100 // "end": the whole sweep in one batch, so End has read everything
			if then == "ack again" {
				limit = 10
			}
			b0, _ := sw.Next(f.ctx, limit)
			ok0 := allOK(len(b0))
			ok0[2] = false // its enqueue failed, and then its acknowledgement (a Redis blip)
			// The acknowledgement: cursor, lock, due index, and the failed item's schedule set.
			h := &failScripts{keys: 4, key: f.s.kCursor()}
			h.left.Store(1)
			f.rdb.AddHook(h)
			if err := sw.Ack(f.ctx, b0, ok0); err == nil || h.left.Load() != 0 {
				t.Fatalf("%s: the injected failure did not happen: %v", then, err)
			}
			if then == "ack again" {
				// The next batch's acknowledgement carries the first one's too.
				b1, _ := sw.Next(f.ctx, 10)
				if err := sw.Ack(f.ctx, b1, allOK(len(b1))); err != nil {
					t.Fatal(err)
				}
				if c, _ := f.s.sweepCursor(f.ctx, end); c < ms(b1[len(b1)-1].Slot) {
					t.Fatalf("cursor at %v, want past batch 1", fromMS(c))
				}
				if due, err := f.rdb.ZScore(f.ctx, f.s.kDue(), b0[2].ConnectionID).Result(); err != nil || int64(due) != ms(b0[2].Slot) {
					t.Fatalf("the failed item is due at %v (%v), want its slot %v", due, err, b0[2].Slot)
				}
				if err := sw.End(f.ctx); err != nil {
					t.Fatal(err)
				}
				continue
			}
			if err := sw.End(f.ctx); err != nil {
				t.Fatal(err)
			}
			// The cursor stayed before the batch: the next sweep reads it again.
			again := map[string]time.Time{}
			for _, it := range f.sweepAll(end, 100) {
				again[it.ConnectionID] = it.Slot
			}
			if got, found := again[b0[2].ConnectionID]; !found || !got.Equal(b0[2].Slot) {
				t.Fatalf("the failed item's slot %v was not swept again (got %v, %v)", b0[2].Slot, got, found)
			}
		}
	})

	t.Run("the cursor moves only over acknowledged batches, failures come back", func(t *testing.T) {
		t.Parallel()
		f := newScheduled(t, b, 30)
		end := t0.Add(DefaultInterval)
		sw, err := f.s.BeginSweep(f.ctx, end, time.Minute)
		if err != nil || sw == nil {
			t.Fatalf("BeginSweep = %v, %v", sw, err)
		}
		b0, _ := sw.Next(f.ctx, 10)
		b1, _ := sw.Next(f.ctx, 10)
		b2, _ := sw.Next(f.ctx, 10)
		if len(b0) != 10 || len(b1) != 10 || len(b2) != 10 {
			t.Fatalf("batches of %d, %d, %d; want 10 each", len(b0), len(b1), len(b2))
		}
		// Batch 1 finishes first: the cursor must wait for batch 0.
		if err := sw.Ack(f.ctx, b1, allOK(10)); err != nil {
			t.Fatal(err)
		}
		if c, _ := f.s.sweepCursor(f.ctx, t0); c != ms(t0) {
			t.Fatalf("cursor moved to %v past an unacknowledged batch", fromMS(c))
		}
		okb0 := allOK(10)
		okb0[3] = false // this enqueue failed
		if err := sw.Ack(f.ctx, b0, okb0); err != nil {
			t.Fatal(err)
		}
		if c, _ := f.s.sweepCursor(f.ctx, t0); c < ms(b1[9].Slot) || c >= ms(b2[0].Slot) {
			t.Fatalf("cursor at %v, want past batch 1 (%v) and before batch 2 (%v)", fromMS(c), b1[9].Slot, b2[0].Slot)
		}
		// The failed one is due on demand at its slot, so the next tick
		// retries it with the same task ID.
		if s, err := f.rdb.ZScore(f.ctx, f.s.kDue(), b0[3].ConnectionID).Result(); err != nil || int64(s) != ms(b0[3].Slot) {
			t.Fatalf("failed enqueue due at %v, %v; want its slot %v", s, err, b0[3].Slot)
		}
		// The scheduler dies here without acknowledging batch 2 or ending:
		// once the lock's lease is over, the next sweep reads batch 2 again.
		if err := f.rdb.Del(f.ctx, f.s.kSweepLock()).Err(); err != nil { // the lease running out
			t.Fatal(err)
		}
		if err := sw.Ack(f.ctx, b2, allOK(10)); !errors.Is(err, ErrSweepLost) {
			t.Fatalf("ack after the lock was lost = %v, want ErrSweepLost", err)
		}
		again := f.sweepAll(end, 100)
		if len(again) != 10 || again[0].ConnectionID != b2[0].ConnectionID || !again[0].Slot.Equal(b2[0].Slot) {
			t.Fatalf("the next sweep read %d items starting %+v; want batch 2 again (%+v)", len(again), again[0], b2[0])
		}
	})

	t.Run("a sweep that read to its end moves the cursor there; one cut short does not", func(t *testing.T) {
		t.Parallel()
		f := newFixture(t, b, nil)
		f.sweepAll(t0, 10)
		cursor := func() time.Time {
			t.Helper()
			c, err := f.s.sweepCursor(f.ctx, t0)
			if err != nil {
				t.Fatal(err)
			}
			return fromMS(c)
		}
		// Nothing in the schedule: the sweep reads an hour of empty sets,
		// and the next one must not read them again.
		if got := f.sweepAll(t0.Add(time.Hour), 10); len(got) != 0 || !cursor().Equal(t0.Add(time.Hour)) {
			t.Fatalf("an empty sweep returned %d items and left the cursor at %v; want none and %v", len(got), cursor(), t0.Add(time.Hour))
		}
		for range 30 {
			f.record(f.conn("user_good").ID, "a1", t0, ok())
		}
		end := t0.Add(time.Hour + DefaultInterval)
		// Cut short: one batch read and acknowledged, then End. The cursor
		// stays at that batch, so the next sweep reads the rest.
		sw, err := f.s.BeginSweep(f.ctx, end, time.Minute)
		if err != nil || sw == nil {
			t.Fatalf("BeginSweep = %v, %v", sw, err)
		}
		first, err := sw.Next(f.ctx, 10)
		if err != nil || len(first) != 10 {
			t.Fatalf("Next = %d items, %v", len(first), err)
		}
		if err := sw.Ack(f.ctx, first, []bool{true, true, true, true, true, true, true, true, true, true}); err != nil {
			t.Fatal(err)
		}
		if err := sw.End(f.ctx); err != nil {
			t.Fatal(err)
		}
		if c := cursor(); c.Before(first[9].Slot) || !c.Before(end) {
			t.Fatalf("cursor at %v after a cut-short sweep; want at its batch (%v), before %v", c, first[9].Slot, end)
		}
		// Read to the end, its last batch unacknowledged (an enqueue still
		// under way when the tick gave up): End leaves the cursor alone.
		sw, err = f.s.BeginSweep(f.ctx, end, time.Minute)
		if err != nil || sw == nil {
			t.Fatalf("BeginSweep = %v, %v", sw, err)
		}
		rest, err := sw.Next(f.ctx, 100)
		if err != nil || len(rest) != 20 {
			t.Fatalf("Next = %d items, %v; want the other 20", len(rest), err)
		}
		before := cursor()
		if err := sw.End(f.ctx); err != nil {
			t.Fatal(err)
		}
		if !cursor().Equal(before) {
			t.Fatalf("End moved the cursor from %v to %v over an unacknowledged batch", before, cursor())
		}
		// The same, acknowledged: the cursor reaches the end of what was read.
		if rest = f.sweepAll(end, 100); len(rest) != 20 || !cursor().Equal(end) {
			t.Fatalf("full sweep: %d items, cursor %v; want 20 and %v", len(rest), cursor(), end)
		}
	})

	t.Run("a scheduler down for weeks checks each connection once", func(t *testing.T) {
		t.Parallel()
		f := newFixture(t, b, nil)
		f.sweepAll(t0, 10)
		for range 25 {
			f.record(f.conn("user_good").ID, "a1", t0, ok())
		}
		now := t0.Add(3*DefaultInterval + time.Hour)
		got := f.sweepAll(now, 1000)
		if len(got) != 25 {
			t.Fatalf("swept %d, want 25 (each once)", len(got))
		}
		for _, it := range got {
			if want := checks.NextSlot(it.ConnectionID, now, DefaultInterval).Add(-DefaultInterval); !it.Slot.Equal(want) {
				t.Fatalf("%s at %v, want its latest slot %v", it.ConnectionID, it.Slot, want)
			}
		}
	})

	t.Run("a swept slot counts as queued until its check is recorded", func(t *testing.T) {
		t.Parallel()
		f := newFixture(t, b, func(c *Config) { c.QueuedTTL = time.Hour })
		c := f.conn("user_good")
		f.record(c.ID, "a1", t0, ok())
		slot := checks.NextSlot(c.ID, t0.Add(time.Second), DefaultInterval)
		f.sweepAll(t0.Add(time.Second), 10)
		f.clk.Set(slot.Add(time.Minute))
		if got := f.sweepAll(slot.Add(time.Minute), 10); len(got) != 1 {
			t.Fatalf("swept %d, want the connection's slot", len(got))
		}
		if ok, err := f.s.MarkQueued(f.ctx, c.ID); err != nil || ok {
			t.Fatalf("MarkQueued while its swept check is pending = %v, %v; want false", ok, err)
		}
		f.record(c.ID, "weekly", slot.Add(2*time.Minute), ok())
		if ok, err := f.s.MarkQueued(f.ctx, c.ID); err != nil || !ok {
			t.Fatalf("MarkQueued after the check was recorded = %v, %v; want true", ok, err)
		}
		if err := f.s.ClearQueued(f.ctx, c.ID); err != nil {
			t.Fatal(err)
		}
		// A swept check never recorded stops counting after QueuedTTL.
		d := f.conn("user_good")
		f.record(d.ID, "a1", t0, ok())
		dslot := checks.NextSlot(d.ID, slot.Add(time.Minute), DefaultInterval)
		f.clk.Set(dslot.Add(time.Second))
		f.sweepAll(dslot.Add(time.Second), 1000)
		if ok, _ := f.s.MarkQueued(f.ctx, d.ID); ok {
			t.Fatal("MarkQueued right after the sweep = true; want false")
		}
		f.clk.Set(dslot.Add(time.Hour + time.Second))
		if ok, err := f.s.MarkQueued(f.ctx, d.ID); err != nil || !ok {
			t.Fatalf("MarkQueued after QueuedTTL = %v, %v; want true", ok, err)
		}
	})
}

func TestEnsureSchedule(t *testing.T) {
	t.Parallel()
	for name, b := range map[string]backend{"miniredis": miniBackend, "redis": realBackend} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			f := newFixture(t, b, nil)
			if n, err := f.s.EnsureSchedule(f.ctx); err != nil || n != 0 {
				t.Fatalf("empty store: %d, %v", n, err)
			}
			var ids []string
			for range 30 {
				ids = append(ids, f.conn("user_good").ID)
			}
			f.record(ids[0], "a1", t0, fail(checks.ConnPasswordIncorrect, "")) // blocked: not scheduled
			if _, err := f.s.UpdateDetails(f.ctx, ids[1], DetailsPatch{IsActive: ptr(false)}); err != nil {
				t.Fatal(err)
			}
			if n, err := f.s.EnsureSchedule(f.ctx); err != nil || n != 0 {
				t.Fatalf("same interval: %d, %v; want nothing to do", n, err)
			}

			// The operator changes the interval to a day: the same Redis, a
			// store with the new interval.
			cfg := f.s.cfg
			cfg.Interval = 24 * time.Hour
			day, err := New(f.rdb, cfg)
			if err != nil {
				t.Fatal(err)
			}
			n, err := day.EnsureSchedule(f.ctx)
			if err != nil || n != 28 {
				t.Fatalf("rebuild: %d, %v; want the 28 eligible connections", n, err)
			}
			g := &fixture{t: t, ctx: f.ctx, rdb: f.rdb, clk: f.clk, s: day, co: f.co}
			g.invariants() // every eligible one in its new set, at its new offset; nothing else
			keys, _ := f.rdb.Keys(f.ctx, day.kWeekPrefix()+"*").Result()
			for _, k := range keys {
				if m, _ := strconv.Atoi(strings.TrimPrefix(k, day.kWeekPrefix())); m >= 24*60 {
					t.Fatalf("set %s of the old interval left behind", k)
				}
			}
			if n, err := day.EnsureSchedule(f.ctx); err != nil || n != 0 {
				t.Fatalf("after the rebuild: %d, %v; want nothing to do", n, err)
			}
			// A day later every scheduled connection is swept once, at its
			// slot in the new interval.
			g.sweepAll(t0, 10)
			got := g.sweepAll(t0.Add(24*time.Hour), 10)
			if len(got) != 28 {
				t.Fatalf("swept %d a day on, want 28", len(got))
			}
			for _, it := range got {
				if want := checks.NextSlot(it.ConnectionID, t0, 24*time.Hour); !it.Slot.Equal(want) {
					t.Fatalf("%s at %v, want %v", it.ConnectionID, it.Slot, want)
				}
			}
		})
	}
}

// failScripts fails the next left script calls with keys keys whose first key
// is key, as a dropped connection would.
type failScripts struct {
	keys int
	key  string
	left atomic.Int32
}

func (h *failScripts) DialHook(next redis.DialHook) redis.DialHook { return next }

func (h *failScripts) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return next
}

func (h *failScripts) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		a := cmd.Args()
		if name, _ := a[0].(string); (name == "evalsha" || name == "eval") && len(a) > 3 &&
			fmt.Sprint(a[2]) == strconv.Itoa(h.keys) && a[3] == h.key && h.left.Add(-1) >= 0 {
			err := errors.New("injected: connection reset by peer")
			cmd.SetErr(err)
			return err
		}
		return next(ctx, cmd)
	}
}

// allOK is the ok flags of a batch of n whose every enqueue worked.
func allOK(n int) []bool {
	ok := make([]bool, n)
	for i := range ok {
		ok[i] = true
	}
	return ok
}

// newScheduled is a fixture whose sweep cursor is at t0, with n connections
// checked at t0: in the weekly schedule only.
func newScheduled(t *testing.T, b backend, n int) *fixture {
	f := newFixture(t, b, nil)
	f.sweepAll(t0, 10)
	for range n {
		f.record(f.conn("user_good").ID, "a1", t0, ok())
	}
	return f
}
