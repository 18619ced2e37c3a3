package store

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/checkd/checkd/checks"
	"github.com/checkd/checkd/internal/clock"
	"github.com/checkd/checkd/internal/testing/redistest"
)

// Micro-benchmarks of the status record, the worker's hot path: the pure
// apply (status rules, history, event) and its encoding, and LoadCheck +
// RecordCheck on a real redis-server (redistest). Run with
//
//	go test -run '^$' -bench 'Record|Apply|Decode' -benchmem ./store
//
// Two results alternate per connection: "steady" records the same
// CONNECTED result again (no transition: record and due index only), and
// "transition" alternates CONNECTED and WEBSITE_DOWN, so every write also
// moves the status index and counters and appends history and an event.

var benchRecT0 = time.Date(2026, 3, 2, 9, 0, 0, 0, time.UTC)

// benchResults returns the user_good-like result (two accounts) and an
// error result.
func benchResults() (good, down checks.Result) {
	good = checks.Result{Status: checks.ConnConnected, Accounts: []checks.AccountResult{
		{Number: "1234567801", Name: "Electric 01"}, {Number: "1234567802", Name: "Gas 02"}}}
	down = checks.Result{Status: checks.ConnWebsiteDown, Detail: "sandbox: the website answered 503 Service Unavailable"}
	return good, down
}

// benchStoreOn returns a store over a fresh database of the shared real
// Redis with n connections that had their first check (two accounts
// discovered).
func benchStoreOn(b *testing.B, n int, window time.Duration) (*Store, []string) {
	b.Helper()
	rdb := redistest.Start(b).Client(b)
	cfg := testConfig(b)
	if window != 0 { // 0: the default window; negative: none
		cfg.CheckBatchWindow = max(window, 0)
	}
	s, err := New(rdb, cfg)
	if err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	co, err := s.CreateCompany(ctx, NewCompany{Name: "bench"})
	if err != nil {
		b.Fatal(err)
	}
	in := make([]NewConnection, n)
	for i := range in {
		in[i] = NewConnection{Datasource: "sandbox", Credentials: checks.Credentials{Username: "user_good", Password: "pw"}}
	}
	cs, err := s.CreateConnections(ctx, co.ID, in)
	if err != nil {
		b.Fatal(err)
	}
	good, _ := benchResults()
	ids := make([]string, n)
	for i, c := range cs {
		ids[i] = c.ID
		t, err := s.LoadCheck(ctx, c.ID)
		if err != nil {
			b.Fatal(err)
		}
		if _, err := s.RecordCheck(ctx, t, CheckResult{Attempt: fmt.Sprintf("check:%s:0", c.ID), StartedAt: benchRecT0,
			FinishedAt: benchRecT0, Result: good}); err != nil {
			b.Fatal(err)
		}
	}
	return s, ids
}

// BenchmarkRecordCheckRedis: one op is LoadCheck + RecordCheck of one
// connection (no checker), serially and from parallel goroutines. The
// parallel goroutines call back to back, a closed loop: with the store's
// default group-commit window each batch waits out the window, since
// nobody else can join it (Config.CheckBatchWindow); parallel-nowindow
// runs them with the window off.
func BenchmarkRecordCheckRedis(b *testing.B) {
	const conns = 1024
	good, down := benchResults()
	for _, mode := range []string{"steady", "transition"} {
		for _, run := range []struct {
			name   string
			par    bool
			window time.Duration
		}{{"serial", false, 0}, {"parallel", true, 0}, {"parallel-nowindow", true, -1}} {
			par := run.par
			b.Run(mode+"/"+run.name, func(b *testing.B) {
				s, ids := benchStoreOn(b, conns, run.window)
				ctx := context.Background()
				var seq atomic.Int64
				one := func() error {
					i := seq.Add(1)
					// Parallel ops take distinct connections; each connection's ops
					// are far apart, so they rarely race on one record.
					id := ids[i%conns]
					t, err := s.LoadCheck(ctx, id)
					if err != nil {
						return err
					}
					res := good
					if mode == "transition" && (i/conns)%2 == 0 {
						res = down
					}
					at := benchRecT0.Add(time.Duration(i) * time.Millisecond)
					rec, err := s.RecordCheck(ctx, t, CheckResult{Attempt: fmt.Sprintf("check:%s:%d", id, i), StartedAt: at, FinishedAt: at, Result: res})
					if err == nil && rec.Outcome != Applied && rec.Outcome != Stale {
						err = fmt.Errorf("outcome %s", rec.Outcome)
					}
					return err
				}
				b.ReportAllocs()
				b.ResetTimer()
				if par {
					b.RunParallel(func(pb *testing.PB) {
						for pb.Next() {
							if err := one(); err != nil {
								b.Error(err)
								return
							}
						}
					})
				} else {
					for b.Loop() {
						if err := one(); err != nil {
							b.Fatal(err)
						}
					}
				}
				b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "checks/s")
			})
		}
	}
}

// benchRecord returns a connection record as stored after a first
// user_good check (two accounts), its history included, and its raw JSON.
func benchRecord(b *testing.B) (*connRec, string) {
	b.Helper()
	cfg := testConfig(b)
	cfg.Prefix, cfg.HistoryLimit, cfg.Clock = "cd:", 100, clock.NewFake(benchRecT0)
	s := &Store{cfg: cfg}
	m, err := s.newConnMutation(NewConnection{Datasource: "sandbox", Credentials: checks.Credentials{Username: "user_good", Password: "pw"}},
		Company{ID: "co_0000000000000000", IsActive: true})
	if err != nil {
		b.Fatal(err)
	}
	if _, _, err := s.commitArgs(m); err != nil { // the creation element goes into the record
		b.Fatal(err)
	}
	good, _ := benchResults()
	n := 0
	ap := checkApply{attempt: ":1", started: ms(benchRecT0), finished: ms(benchRecT0), result: good,
		newID: func() string { n++; return fmt.Sprintf("ac_%016d", n) }}
	oc, trs := applyCheck(m.rec, ap)
	if oc != Applied {
		b.Fatalf("first check: %s", oc)
	}
	if _, _, err := s.commitArgs(&mutation{rec: m.rec, history: historyOf(trs, ap.finished, CauseCheck, ap.attempt)}); err != nil {
		b.Fatal(err)
	}
	raw, err := m.rec.encode()
	if err != nil {
		b.Fatal(err)
	}
	return m.rec, raw
}

// BenchmarkApplyCheck is the pure part of RecordCheck: decode the stored
// record, apply the status rules, build history and event, and encode the
// write's arguments (everything but the Redis round trip). It mirrors the
// mutation RecordCheck builds.
func BenchmarkApplyCheck(b *testing.B) {
	rec, raw := benchRecord(b)
	good, down := benchResults()
	cfg := testConfig(b)
	cfg.Prefix, cfg.HistoryLimit = "cd:", 100
	s := &Store{cfg: cfg}
	for _, mode := range []string{"steady", "transition"} {
		b.Run(mode, func(b *testing.B) {
			b.ReportAllocs()
			i := int64(0)
			for b.Loop() {
				i++
				r, err := decodeConn(rec.ID, raw)
				if err != nil {
					b.Fatal(err)
				}
				res := good
				if mode == "transition" {
					res = down
				}
				at := ms(benchRecT0) + i
				ap := checkApply{attempt: fmt.Sprintf(":b%d", i), started: at, finished: at, result: res}
				oldStatus := r.Status
				oc, trs := applyCheck(r, ap)
				if oc != Applied {
					b.Fatalf("outcome %s", oc)
				}
				m := &mutation{rec: r, oldRaw: raw, oldStatus: oldStatus, due: dueAfter, dueSince: at,
					dueAt: ms(checks.NextSlot(r.ID, fromMS(at), s.cfg.Interval)), clearQueued: true,
					history: historyOf(trs, at, CauseCheck, ap.attempt), change: newChange(EventConnectionUpdated, CauseCheck, at, trs)}
				if _, _, err := s.commitArgs(m); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkDecodeConn is the JSON decode every LoadCheck does.
func BenchmarkDecodeConn(b *testing.B) {
	rec, raw := benchRecord(b)
	b.ReportAllocs()
	b.SetBytes(int64(len(raw)))
	for b.Loop() {
		if _, err := decodeConn(rec.ID, raw); err != nil {
			b.Fatal(err)
		}
	}
}
