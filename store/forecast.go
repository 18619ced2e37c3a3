package store

import (
	"context"
	"fmt"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/checkd/checkd/checks"
)

// DueCount is how many checks come due in one window of DueForecast.
type DueCount struct {
	// Start and End bound the window: (Start, End].
	Start, End time.Time
	// Weekly counts the weekly schedule's slots in the window: one per
	// eligible connection whose slot falls in it (more when the window is
	// longer than the check interval).
	Weekly int64
	// OnDemand counts the on-demand due times in the window (first checks,
	// reactivations, retries).
	OnDemand int64
}

// Total is every check due in the window.
func (d DueCount) Total() int64 { return d.Weekly + d.OnDemand }

// MaxForecastWindows bounds the windows of one DueForecast.
const MaxForecastWindows = 1000

// DueForecast counts the checks coming due in the windows (bounds[i],
// bounds[i+1]] (bounds increasing): the weekly schedule's slots and the
// on-demand due index's times. It reads counts only, never a member: a
// ZCARD per schedule set a window covers whole, a ZCOUNT per set it cuts
// and per window of the due index, all in one pipeline (a week of hourly
// windows over a weekly interval is one command per minute of the week).
// What is already due (DueBacklog) is not counted.
func (s *Store) DueForecast(ctx context.Context, bounds []time.Time) ([]DueCount, error) {
	if len(bounds) < 2 || len(bounds) > MaxForecastWindows+1 {
		return nil, fmt.Errorf("%w: a forecast takes 2 to %d window bounds, not %d", ErrInvalid, MaxForecastWindows+1, len(bounds))
	}
	iv, w := s.intervalMS(), s.bucketMS()
	out := make([]DueCount, len(bounds)-1)
	p := s.rdb.Pipeline()
	// weekly[i] are window i's counts, each counted mult times.
	type part struct {
		cmd  *redis.IntCmd
		mult int64
	}
	weekly := make([][]part, len(out))
	onDemand := make([]*redis.IntCmd, len(out))
	var cycles []int64 // whole intervals per window, when any
	for i := range out {
		a, b := ms(bounds[i]), ms(bounds[i+1])
		if b <= a {
			return nil, fmt.Errorf("%w: forecast bounds must increase (bound %d, %s, is not after %s)", ErrInvalid,
				i+1, bounds[i+1].Format(time.RFC3339), bounds[i].Format(time.RFC3339))
		}
		out[i] = DueCount{Start: bounds[i].UTC(), End: bounds[i+1].UTC()}
		onDemand[i] = p.ZCount(ctx, s.kDue(), "("+strconv.FormatInt(a, 10), strconv.FormatInt(b, 10))
		// A window of k whole intervals and a rest sees every slot k times,
		// plus those in the rest.
		if k := (b - a) / iv; k > 0 {
			if cycles == nil {
				cycles = make([]int64, len(out))
			}
			cycles[i], a = k, a+k*iv
		}
		for _, seg := range s.segments(a, b) {
			for set := (seg.lo + 1) / w; set <= seg.hi/w; set++ {
				key := s.kWeekSet(set)
				if seg.lo < set*w && seg.hi >= (set+1)*w-1 {
					weekly[i] = append(weekly[i], part{p.ZCard(ctx, key), 1})
				} else {
					weekly[i] = append(weekly[i], part{p.ZCount(ctx, key, "("+strconv.FormatInt(seg.lo, 10), strconv.FormatInt(seg.hi, 10)), 1})
				}
			}
		}
	}
	if cycles != nil { // every set once: the schedule's size
		var all []part
		for set := int64(0); set*w < iv; set++ {
			all = append(all, part{p.ZCard(ctx, s.kWeekSet(set)), 1})
		}
		for i, k := range cycles {
			for _, pt := range all {
				if k > 0 {
					weekly[i] = append(weekly[i], part{pt.cmd, k})
				}
			}
		}
	}
	if _, err := p.Exec(ctx); err != nil {
		return nil, fmt.Errorf("forecast the checks due: %w", err)
	}
	for i := range out {
		out[i].OnDemand = onDemand[i].Val()
		for _, pt := range weekly[i] {
			out[i].Weekly += pt.cmd.Val() * pt.mult
		}
	}
	return out, nil
}

// CompanyStatusCounts returns how many connections of each company are in
// each status, in the order of ids: the size of each of the company's
// status indexes (ZCARD), pipelined, never a scan. An unknown company
// counts nothing.
func (s *Store) CompanyStatusCounts(ctx context.Context, ids []string) ([]map[checks.ConnectionStatus]int64, error) {
	p := s.rdb.Pipeline()
	cmds := make([][]*redis.IntCmd, len(ids))
	n := 0
	for i, id := range ids {
		if !ValidID(CompanyIDPrefix, id) {
			continue // keeps user input out of key names
		}
		n++
		cmds[i] = make([]*redis.IntCmd, len(checks.ConnectionStatuses))
		for j, st := range checks.ConnectionStatuses {
			cmds[i][j] = p.ZCard(ctx, s.kIndex(id, string(st)))
		}
	}
	if n > 0 {
		if _, err := p.Exec(ctx); err != nil {
			return nil, fmt.Errorf("count the companies' connections: %w", err)
		}
	}
	out := make([]map[checks.ConnectionStatus]int64, len(ids))
	for i := range ids {
		out[i] = make(map[checks.ConnectionStatus]int64, len(checks.ConnectionStatuses))
		for j, st := range checks.ConnectionStatuses {
			if cmds[i] != nil {
				out[i][st] = cmds[i][j].Val()
			}
		}
	}
	return out, nil
}
