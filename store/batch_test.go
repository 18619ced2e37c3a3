package store

import (
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/checkd/checkd/checks"
	"github.com/checkd/checkd/internal/testing/poll"
	"github.com/checkd/checkd/internal/testing/redistest"
)

// The store's check path through its group commit (internal/groupcommit,
// which has the batcher's own tests): a gate holds the lone call that
// leads while the test queues calls behind it, so the batch that follows
// is known exactly; waits poll with a deadline that only bounds a hang.

// waitFor polls cond until it holds; the deadline only turns a hang into a
// failure.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	poll.WaitFor(t, 20*time.Second, what, cond)
}

// requireIdle fails the test unless the store's batcher has nothing in
// flight or queued: every call that returned left it as it found it.
func (s *Store) requireIdle(t *testing.T) {
	t.Helper()
	if !s.batch.Idle() {
		t.Fatalf("batcher not idle: %d queued", s.batch.Queued())
	}
}

var echoScript = redis.NewScript(`return ARGV[1]`)

// TestBatchStore drives the store's check path through batches: loads and
// records of many connections at once, and two records of one connection
// in the same batch (the loser of the compare-and-set reads again).
func TestBatchStore(t *testing.T) {
	for _, be := range []struct {
		name string
		b    backend
	}{{"miniredis", miniBackend}, {"redis", realBackend}} {
		t.Run(be.name, func(t *testing.T) {
			g := redistest.NewGate()
			f := newFixture(t, func(t *testing.T) redis.UniversalClient {
				c := be.b(t)
				c.AddHook(g)
				return c
			}, nil)

			const n = 30
			ids := make([]string, n)
			for i := range ids {
				ids[i] = f.conn("user_good").ID
			}
			var wg sync.WaitGroup
			errs := make(chan error, n)
			for i, id := range ids {
				wg.Add(1)
				go func() {
					defer wg.Done()
					tg, err := f.s.LoadCheck(f.ctx, id)
					if err != nil {
						errs <- err
						return
					}
					if tg.Skip != checks.SkipNone || tg.Request.Credentials.Username != "user_good" {
						errs <- fmt.Errorf("%s: skip %q, request %+v", id, tg.Skip, tg.Request)
						return
					}
					r, err := f.s.RecordCheck(f.ctx, tg, CheckResult{Attempt: fmt.Sprintf("check:%s:%d", id, i),
						StartedAt: t0, FinishedAt: t0.Add(time.Second), Result: ok("1", "2")})
					if err != nil || r.Outcome != Applied || r.To != checks.ConnConnected || r.Transitions != 3 {
						errs <- fmt.Errorf("%s: %+v, %v", id, r, err)
					}
				}()
			}
			wg.Wait()
			close(errs)
			for err := range errs {
				t.Error(err)
			}
			for _, id := range ids {
				if c := f.get(id); c.Status != checks.ConnConnected || len(c.Accounts) != 2 {
					t.Errorf("%s: %s with %d accounts", id, c.Status, len(c.Accounts))
				}
			}
			f.invariants()
			f.s.requireIdle(t)

			// Two checks of one connection, loaded before either records,
			// recorded in one batch: both apply, one after reading again.
			id := ids[0]
			t1 := t0.Add(time.Hour)
			results := []checks.Result{fail(checks.ConnWebsiteDown, "503"), ok("1", "2")}
			targets := make([]*CheckTarget, 2)
			for i := range targets {
				tg, err := f.s.LoadCheck(f.ctx, id)
				if err != nil {
					t.Fatal(err)
				}
				targets[i] = tg
			}
			g.Reset()
			release := g.HoldNextSingle()
			lead := make(chan error, 1)
			go func() { lead <- f.s.batch.Run(f.ctx, echoScript, nil, "lead").Err() }()
			<-g.Entered()
			recs := make([]Recorded, 2)
			recErrs := make([]error, 2)
			for i := range targets {
				wg.Add(1)
				go func() {
					defer wg.Done()
					recs[i], recErrs[i] = f.s.RecordCheck(f.ctx, targets[i], CheckResult{Attempt: fmt.Sprintf("check:%s:x%d", id, i),
						StartedAt: t1.Add(time.Duration(i) * time.Minute), FinishedAt: t1.Add(time.Duration(i)*time.Minute + time.Second),
						Result: results[i]})
				}()
				waitFor(t, "the record to queue", func() bool { return f.s.batch.Queued() == i+1 })
			}
			release()
			wg.Wait()
			if err := <-lead; err != nil {
				t.Fatal(err)
			}
			for i := range recs {
				if recErrs[i] != nil || recs[i].Outcome != Applied {
					t.Errorf("record %d: %+v, %v", i, recs[i], recErrs[i])
				}
			}
			if p := g.Pipelines(); len(p) == 0 || len(p[0]) != 2 {
				t.Errorf("pipelines %v, want the two writes in one", p)
			}
			if c := f.get(id); c.Status != checks.ConnConnected || c.ConsecutiveFailures != 0 {
				t.Errorf("after both: %s, %d failures; want the later check's CONNECTED", c.Status, c.ConsecutiveFailures)
			}
			h, err := f.s.History(f.ctx, id, 0)
			if err != nil {
				t.Fatal(err)
			}
			var conn []string
			for _, e := range h {
				if e.AccountID == "" {
					conn = append(conn, e.To+" "+strings.TrimPrefix(e.Attempt, "check:"+id+":"))
				}
			}
			if got := strings.Join(conn, ", "); got != "CONNECTED x1, WEBSITE_DOWN x0, CONNECTED 0, PENDING " {
				t.Errorf("connection history, newest first: %s", got)
			}
			f.invariants()
			f.s.requireIdle(t)
		})
	}
}
