package bench

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"

	"github.com/checkd/checkd/internal/tasks"
)

// p4DB is the database of the asynq comparison (flushed afterwards).
const p4DB = 3

// prefix is the store's default key prefix; the layout is the one
// documented in store/store.go.
const prefix = "cd:"

// datasetMemory is used_memory less the clients' buffers, which depend on
// the pool, not on the data.
func datasetMemory(ctx context.Context, c *redis.Client) (int64, error) {
	info, err := c.Info(ctx, "memory").Result()
	if err != nil {
		return 0, err
	}
	used, err := strconv.ParseInt(infoField(info, "used_memory"), 10, 64)
	if err != nil {
		return 0, fmt.Errorf("used_memory: %w", err)
	}
	clients, _ := strconv.ParseInt(infoField(info, "mem_clients_normal"), 10, 64)
	return used - clients, nil
}

// runP4: memory. Every dataset connection gets its first check (user_good:
// CONNECTED, two accounts discovered) through LoadCheck/RecordCheck in
// goroutines (those P2 checked keep theirs); then used_memory less the
// memory before the load, less the change-event stream (capped globally),
// divided by the connections. MEMORY USAGE on sample keys attributes it.
func runP4(ctx context.Context, e *env) (r Result) {
	r = Result{ID: "P4", Name: "memory", Unit: "B/conn", Goal: "≤ 1024 B/conn (stream excluded)"}
	d := e.ds
	n := len(d.ids)
	if d.checked < n {
		e.logf("P4: recording the first check of %d connections (LoadCheck+RecordCheck, 16 goroutines)", n-d.checked)
		stopProf := e.startProfile("P4")
		m := startMeter(ctx, e.rdb, e.rt)
		applied, err := d.checkRange(ctx, d.checked, n, 16, time.Now().Truncate(time.Hour).Add(48*time.Hour))
		m.stop(ctx)
		stopProf()
		if err != nil {
			r.Err = err
			return r
		}
		if applied != n-d.checked {
			r.Err = fmt.Errorf("%d of %d checks applied", applied, n-d.checked)
			return r
		}
		k := n - d.checked
		r.Details = append(r.Details, fmt.Sprintf("recorded %d checks in %s (%.0f/s, LoadCheck+sandbox+RecordCheck, 16 goroutines, no asynq); %s",
			k, m.Wall.Round(time.Millisecond), float64(k)/m.Wall.Seconds(), m.perItem(k)))
		d.checked = n
	}
	if err := flushAsynq(ctx, e.rdb); err != nil {
		r.Err = err
		return r
	}
	queued, err := e.rdb.HLen(ctx, prefix+"q").Result()
	if err != nil {
		r.Err = err
		return r
	}
	mem1, err := datasetMemory(ctx, e.rdb)
	if err != nil {
		r.Err = err
		return r
	}
	total := mem1 - d.mem0
	stream, err := memoryUsage(ctx, e.rdb, prefix+"ev", 0)
	if err != nil {
		r.Err = err
		return r
	}
	xlen, _ := e.rdb.XLen(ctx, prefix+"ev").Result()

	// Attribution on sample keys.
	const samples = 1000
	step := max(1, n/samples)
	p := e.rdb.Pipeline()
	var recs, hists []*redis.Cmd
	var hlens []*redis.IntCmd
	var raws []*redis.StringCmd
	for i := 0; i < n; i += step {
		recs = append(recs, p.Do(ctx, "MEMORY", "USAGE", prefix+"c:"+d.ids[i], "SAMPLES", 0))
		raws = append(raws, p.Get(ctx, prefix+"c:"+d.ids[i]))
		hists = append(hists, p.Do(ctx, "MEMORY", "USAGE", prefix+"h:"+d.ids[i], "SAMPLES", 0))
		hlens = append(hlens, p.LLen(ctx, prefix+"h:"+d.ids[i]))
	}
	// MEMORY USAGE of a missing key (no history list) is nil: counted as 0.
	if _, err := p.Exec(ctx); err != nil && !errors.Is(err, redis.Nil) {
		r.Err = err
		return r
	}
	inRec, err := recordHistory(raws)
	if err != nil {
		r.Err = err
		return r
	}
	avg := func(cs []*redis.Cmd) float64 {
		var s int64
		for _, c := range cs {
			v, _ := c.Int64()
			s += v
		}
		return float64(s) / float64(len(cs))
	}
	var hl, lists int64
	for _, c := range hlens {
		hl += c.Val()
		if c.Val() > 0 {
			lists++
		}
	}
	rec, hist := avg(recs), avg(hists)
	due, err := memoryUsage(ctx, e.rdb, prefix+"due", 0)
	if err != nil {
		r.Err = err
		return r
	}
	week, weekKeys, err := scanUsage(ctx, e.rdb, prefix+"wk:*")
	if err != nil {
		r.Err = err
		return r
	}
	ix, ixKeys, err := scanUsage(ctx, e.rdb, prefix+"ix:*")
	if err != nil {
		r.Err = err
		return r
	}
	var globals int64
	for _, k := range []string{prefix + "n", prefix + "companies", prefix + "q"} {
		v, _ := memoryUsage(ctx, e.rdb, k, 0)
		globals += v
	}
	for _, co := range d.companies {
		v, _ := memoryUsage(ctx, e.rdb, prefix+"co:"+co, 0)
		globals += v
	}
	f := float64(n)
	perConn := float64(total-stream) / f
	indexes := float64(due+week+ix+globals) / f
	a := rec + indexes
	rest := perConn - a - hist

	// asynq comparison: one scheduled (ProcessIn) task.
	c3, _ := e.srv.client(p4DB, 32)
	defer c3.Close()
	if err := c3.FlushDB(ctx).Err(); err != nil {
		r.Err = err
		return r
	}
	k := e.sz.AsynqScheduled
	before, err := datasetMemory(ctx, c3)
	if err != nil {
		r.Err = err
		return r
	}
	aq3 := asynq.NewClientFromRedisClient(c3)
	base := time.Now().Truncate(time.Hour)
	if _, err := enqueueChecks(ctx, aq3, d.ids, k, func(i int) time.Time { return base.Add(time.Duration(i) * time.Millisecond) }, 16,
		asynq.Queue(tasks.QueueDefault), asynq.ProcessIn(24*time.Hour)); err != nil {
		r.Err = err
		return r
	}
	after, err := datasetMemory(ctx, c3)
	if err != nil {
		r.Err = err
		return r
	}
	perTask := float64(after-before) / float64(k)
	if err := c3.FlushDB(ctx).Err(); err != nil {
		r.Err = err
		return r
	}

	r.Value, r.Baseline, r.HasBase, r.Ratio, r.HasRatio = perConn, perTask, true, perConn/perTask, true
	r.Met = verdict(perConn <= 1024)
	r.Details = append(r.Details,
		fmt.Sprintf("used_memory (less client buffers) grew %.1f MB for %d connections; the change-event stream (%d entries, capped near %d globally) is %.1f MB of it and excluded",
			mb(total), n, xlen, 100000, mb(stream)),
		fmt.Sprintf("(a) record + indexes %.0f B/conn = record key %.0f (MEMORY USAGE of %d sampled cd:c:<id>, key and dict entry included; the value is %.0f B of JSON on average, %d–%d) + weekly schedule %.0f (%d minute sets) + on-demand due zset %.2f + %d status-index zsets %.0f + counters/companies/queued marks %.2f",
			a, rec, len(recs), inRec.recBytes, inRec.recMin, inRec.recMax, float64(week)/f, weekKeys, float64(due)/f, ixKeys, float64(ix)/f, float64(globals)/f),
		fmt.Sprintf("(b) history kept in the record: %.1f B/conn of its JSON (field h, %.2f elements each: created + first check), part of the record key in (a)",
			inRec.bytes, inRec.elems),
		fmt.Sprintf("(c) history lists %.0f B/conn (%d of %d sampled connections have a cd:h:<id>, %.2f elements each; elements past the newest the record keeps spill there, record + list bounded at the store's HistoryLimit, default 100)",
			hist, lists, len(hlens), float64(hl)/float64(len(hlens))),
		fmt.Sprintf("unattributed %.0f B/conn: main-dictionary buckets and allocator rounding that MEMORY USAGE does not see (queued marks left in cd:q: %d, expected 0 once every check is recorded)",
			rest, queued),
		fmt.Sprintf("baseline = one asynq task scheduled with ProcessIn (check task, task ID): %.0f B/task over %d tasks", perTask, k))
	r.Subs = append(r.Subs,
		Result{ID: "P4.a", Name: "memory-record-indexes", Value: a, Unit: "B/conn", Met: "-"},
		Result{ID: "P4.hrec", Name: "history-json-in-record", Value: inRec.bytes, Unit: "B/conn", Goal: "part of P4.a", Met: "-"},
		Result{ID: "P4.b", Name: "memory-history-lists", Value: hist, Unit: "B/conn", Met: "-"},
		Result{ID: "P4.stream", Name: "memory-event-stream", Value: float64(stream), Unit: "B", Goal: "global, capped", Met: "-"},
		Result{ID: "P4.asynq", Name: "asynq-scheduled-task", Value: perTask, Unit: "B/task", Met: "-"})
	return r
}

func mb(b int64) float64 { return float64(b) / 1e6 }

// scanUsage sums MEMORY USAGE over the keys matching pattern.
func scanUsage(ctx context.Context, rdb *redis.Client, pattern string) (bytes, keys int64, err error) {
	var cursor uint64
	for {
		ks, next, err := rdb.Scan(ctx, cursor, pattern, 1000).Result()
		if err != nil {
			return 0, 0, fmt.Errorf("scan %s: %w", pattern, err)
		}
		for _, k := range ks {
			v, err := memoryUsage(ctx, rdb, k, 0)
			if err != nil {
				return 0, 0, err
			}
			bytes += v
			keys++
		}
		if cursor = next; cursor == 0 {
			return bytes, keys, nil
		}
	}
}

// inRecord sizes the sampled records and the history they keep.
type inRecord struct {
	recBytes       float64 // JSON of the record, average
	recMin, recMax int
	bytes          float64 // of it, the history field's JSON, average
	elems          float64 // history elements in the record, average
}

// recordHistory reads the history field ("h", see store/history.go) of
// sampled records.
func recordHistory(raws []*redis.StringCmd) (inRecord, error) {
	var out inRecord
	var n int
	for _, c := range raws {
		raw, err := c.Result()
		if err != nil {
			return out, fmt.Errorf("sampled record: %w", err)
		}
		var rec struct {
			H json.RawMessage `json:"h"`
		}
		if err := json.Unmarshal([]byte(raw), &rec); err != nil {
			return out, fmt.Errorf("sampled record: %w", err)
		}
		var elems []json.RawMessage
		if len(rec.H) > 0 {
			if err := json.Unmarshal(rec.H, &elems); err != nil {
				return out, fmt.Errorf("sampled record history: %w", err)
			}
		}
		if n == 0 || len(raw) < out.recMin {
			out.recMin = len(raw)
		}
		out.recMax = max(out.recMax, len(raw))
		out.recBytes += float64(len(raw))
		out.bytes += float64(len(rec.H))
		out.elems += float64(len(elems))
		n++
	}
	if n > 0 {
		out.recBytes /= float64(n)
		out.bytes /= float64(n)
		out.elems /= float64(n)
	}
	return out, nil
}
