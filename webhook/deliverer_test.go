package webhook

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"
	"github.com/sirupsen/logrus"
	standardwebhooks "github.com/standard-webhooks/standard-webhooks/libraries/go"

	"github.com/checkd/checkd/internal/clock"
	"github.com/checkd/checkd/internal/tasks"
	"github.com/checkd/checkd/store"
)

// deliverTask is the task of p, as the dispatcher, Admin or a recovery
// enqueue it.
func deliverTask(t testing.TB, p tasks.WebhookDeliverPayload) *asynq.Task {
	t.Helper()
	task, err := tasks.NewWebhookDeliverTask(p, "")
	if err != nil {
		t.Fatal(err)
	}
	return task
}

// dispatched creates one connection (its connection.created.v2), dispatches
// it and returns the delivery task for ep.
func (e *env) dispatched(ep string) tasks.WebhookDeliverPayload {
	e.t.Helper()
	e.conn("user_good")
	e.drain(e.dispatcher(nil, nil))
	for _, p := range deliverTasks(e.t, e.enq.take()) {
		if p.EndpointID == ep {
			return p
		}
	}
	e.t.Fatalf("no delivery task for %s", ep)
	return tasks.WebhookDeliverPayload{}
}

// verify checks a request with the reference library: the signature of
// its body under secret (the fake clock's timestamps are not now, so the
// tolerance check is left out), and the headers the specification names.
func verify(t testing.TB, r request, secret string) error {
	t.Helper()
	wh, err := standardwebhooks.NewWebhook(secret)
	if err != nil {
		t.Fatal(err)
	}
	if ct := r.header.Get("Content-Type"); ct != "application/json" {
		t.Fatalf("Content-Type %q", ct)
	}
	return wh.VerifyIgnoringTimestamp(r.body, r.header)
}

// TestRetriesOnSchedule: a receiver that fails the first three attempts
// gets the fourth at the schedule's delays (jitter included, on the fake
// clock), every attempt with the same webhook-id and body, signed at its
// own time; the message is then delivered, once.
func TestRetriesOnSchedule(t *testing.T) {
	t.Parallel()
	e := newEnv(t, miniClient(t))
	rcv := newReceiver(t, failFirst(3, http.StatusInternalServerError))
	ep, secret := e.endpoint(rcv.URL, nil)
	p := e.dispatched(ep.ID)
	rands := []float64{0, 0.999, 0.5, 0.25}
	var calls atomic.Int64
	d := e.deliverer(func(c *DelivererConfig) {
		c.Rand = func() float64 { return rands[int(calls.Add(1)-1)%len(rands)] }
	})
	task := deliverTask(t, p)
	var times []time.Time
	for i := range 4 {
		times = append(times, e.clk.Now())
		err := d.HandleDeliver(e.ctx, task)
		if i == 3 {
			if err != nil {
				t.Fatalf("attempt 4: %v", err)
			}
			break
		}
		var re *retryError
		if !errors.As(err, &re) || isFailure(err) {
			t.Fatalf("attempt %d: %v, want a retry that asynq does not count as a failure", i+1, err)
		}
		want := time.Duration(float64(schedule[i+1]) * (1 + 0.2*(2*rands[i]-1)))
		if re.after != want || retryDelay(0, err, task) != want {
			t.Fatalf("attempt %d: retry in %s, want %s (schedule %s, jitter draw %v)", i+1, re.after, want, schedule[i+1], rands[i])
		}
		if lo, hi := time.Duration(0.8*float64(schedule[i+1])), time.Duration(1.2*float64(schedule[i+1])); want < lo || want > hi {
			t.Fatalf("delay %s outside ±20%% of %s", want, schedule[i+1])
		}
		e.clk.Advance(re.after)
	}
	reqs := rcv.requests()
	if len(reqs) != 4 {
		t.Fatalf("%d requests, want 4", len(reqs))
	}
	for i, r := range reqs {
		if r.header.Get(HeaderID) != p.MessageID || string(r.body) != string(reqs[0].body) {
			t.Fatalf("request %d: webhook-id %q body %q; want %q and the first body", i, r.header.Get(HeaderID), r.body, p.MessageID)
		}
		if ts := r.header.Get(HeaderTimestamp); ts != strconv.FormatInt(times[i].Unix(), 10) {
			t.Fatalf("request %d: webhook-timestamp %s, want %d (the attempt's time)", i, ts, times[i].Unix())
		}
		if err := verify(t, r, secret); err != nil {
			t.Fatalf("request %d does not verify: %v", i, err)
		}
	}
	as, err := e.st.WebhookMessageAttempts(e.ctx, p.MessageID)
	if err != nil || len(as) != 4 {
		t.Fatalf("attempts %+v, %v", as, err)
	}
	for i, a := range as {
		trigger, status := store.TriggerRetry, store.DeliveryFailed
		if i == 0 {
			trigger = store.TriggerScheduled
		}
		if i == 3 {
			status = store.DeliverySuccess
		}
		if a.Trigger != trigger || a.Status != status || a.Attempt != i+1 || !a.Timestamp.Equal(times[i]) || a.URL != rcv.URL || a.EndpointID != ep.ID {
			t.Fatalf("attempt %d: %+v", i, a)
		}
		if i < 3 && (a.NextAttemptAt == nil || !a.NextAttemptAt.Equal(times[i+1]) || a.ResponseStatusCode != 500) {
			t.Fatalf("attempt %d: next %v, status %d; want next %v, 500", i, a.NextAttemptAt, a.ResponseStatusCode, times[i+1])
		}
		if i == 3 && (a.NextAttemptAt != nil || a.ResponseStatusCode != 204) {
			t.Fatalf("last attempt %+v", a)
		}
	}
	m, err := e.st.GetWebhookMessage(e.ctx, p.MessageID)
	if err != nil || m.DeliveryTo(ep.ID).Status != store.DeliverySuccess || m.DeliveryTo(ep.ID).Attempts != 4 || string(m.Payload) != string(reqs[0].body) {
		t.Fatalf("message %+v, %v", m, err)
	}
	// The same task again (dispatched twice): delivered already, nothing sent.
	if err := d.HandleDeliver(e.ctx, task); err != nil || len(rcv.requests()) != 4 {
		t.Fatalf("a finished delivery's task: %v, %d requests", err, len(rcv.requests()))
	}
	// The endpoint's run of failures ended with the success.
	if got, _ := e.st.WebhookEndpoint(e.ctx, ep.ID); got.FailingSince != nil || got.Disabled {
		t.Fatalf("endpoint after a success %+v", got)
	}
}

// TestScheduleRunsOut: after the schedule's last attempt the message is
// failed for the endpoint and nothing retries it.
func TestScheduleRunsOut(t *testing.T) {
	t.Parallel()
	e := newEnv(t, miniClient(t))
	rcv := newReceiver(t, failFirst(100, http.StatusBadGateway))
	ep, _ := e.endpoint(rcv.URL, nil)
	p := e.dispatched(ep.ID)
	d := e.deliverer(nil)
	task := deliverTask(t, p)
	for i := range len(schedule) {
		err := d.HandleDeliver(e.ctx, task)
		var re *retryError
		switch {
		case i < len(schedule)-1 && !errors.As(err, &re):
			t.Fatalf("attempt %d: %v, want a retry", i+1, err)
		case i == len(schedule)-1 && err != nil:
			t.Fatalf("last attempt: %v, want nil (no retry)", err)
		case re != nil:
			e.clk.Advance(re.after)
		}
	}
	m, _ := e.st.GetWebhookMessage(e.ctx, p.MessageID)
	if st := m.DeliveryTo(ep.ID); st.Status != store.DeliveryFailed || st.Attempts != len(schedule) {
		t.Fatalf("delivery %+v, want failed after %d attempts", st, len(schedule))
	}
	if n := len(rcv.requests()); n != len(schedule) {
		t.Fatalf("%d requests, want %d", n, len(schedule))
	}
	if err := d.HandleDeliver(e.ctx, task); err != nil || len(rcv.requests()) != len(schedule) {
		t.Fatal("a failed delivery was attempted again")
	}
}

// TestGoneDisables: a 410 disables the endpoint at once, with the reason;
// its pending deliveries then fail without a request.
func TestGoneDisables(t *testing.T) {
	t.Parallel()
	e := newEnv(t, miniClient(t))
	rcv := newReceiver(t, failFirst(1, http.StatusGone))
	ep, _ := e.endpoint(rcv.URL, nil)
	first := e.dispatched(ep.ID)
	second := e.dispatched(ep.ID)
	var disabled []string
	d := e.deliverer(func(c *DelivererConfig) {
		c.OnDisabled = func(id, reason string) { disabled = append(disabled, id+": "+reason) }
	})
	if err := d.HandleDeliver(e.ctx, deliverTask(t, first)); err != nil {
		t.Fatalf("a 410: %v, want no retry", err)
	}
	got, _ := e.st.WebhookEndpoint(e.ctx, ep.ID)
	if !got.Disabled || !strings.Contains(got.DisabledReason, "410") || got.DisabledAt == nil || len(disabled) != 1 {
		t.Fatalf("endpoint after a 410: %+v; callbacks %v", got, disabled)
	}
	if err := d.HandleDeliver(e.ctx, deliverTask(t, second)); err != nil || len(rcv.requests()) != 1 {
		t.Fatalf("a delivery to a disabled endpoint: %v, %d requests", err, len(rcv.requests()))
	}
	for _, p := range []tasks.WebhookDeliverPayload{first, second} {
		m, _ := e.st.GetWebhookMessage(e.ctx, p.MessageID)
		if st := m.DeliveryTo(ep.ID).Status; st != store.DeliveryFailed {
			t.Fatalf("%s: delivery %s, want failed", p.MessageID, st)
		}
	}
	if !strings.Contains(logText(e), "webhook endpoint disabled: the endpoint answered 410 Gone") {
		t.Fatalf("no log line says the endpoint was disabled:\n%s", logText(e))
	}
}

func logText(e *env) string {
	var b strings.Builder
	for _, en := range e.log.AllEntries() {
		s, _ := en.String()
		b.WriteString(s)
	}
	return b.String()
}

// TestDisableAfter: an endpoint all of whose attempts fail for
// DisableAfter is disabled; a success meanwhile starts the count again.
func TestDisableAfter(t *testing.T) {
	t.Parallel()
	e := newEnv(t, miniClient(t))
	fail := atomic.Bool{}
	fail.Store(true)
	rcv := newReceiver(t, func(_ int, w http.ResponseWriter) {
		if fail.Load() {
			w.WriteHeader(http.StatusInternalServerError)
			return
		}
		w.WriteHeader(http.StatusOK)
	})
	ep, _ := e.endpoint(rcv.URL, nil)
	d := e.deliverer(func(c *DelivererConfig) {
		c.DisableAfter, c.Schedule, c.Jitter = time.Hour, []time.Duration{0, 40 * time.Minute, 40 * time.Minute, 40 * time.Minute}, 0
	})
	attempt := func(p tasks.WebhookDeliverPayload) error { return d.HandleDeliver(e.ctx, deliverTask(t, p)) }
	a := e.dispatched(ep.ID)
	attempt(a) // fails at t0
	e.clk.Advance(40 * time.Minute)
	attempt(a) // fails at 40m: failing for 40m
	if got, _ := e.st.WebhookEndpoint(e.ctx, ep.ID); got.Disabled || got.FailingSince == nil || !got.FailingSince.Equal(t0) {
		t.Fatalf("after 40 minutes of failures: %+v", got)
	}
	// A success resets the run.
	fail.Store(false)
	b := e.dispatched(ep.ID)
	if err := attempt(b); err != nil {
		t.Fatal(err)
	}
	if got, _ := e.st.WebhookEndpoint(e.ctx, ep.ID); got.FailingSince != nil {
		t.Fatalf("a success left failingSince %v", got.FailingSince)
	}
	fail.Store(true)
	start := e.clk.Now()
	e.clk.Advance(time.Minute)
	attempt(a)
	e.clk.Advance(59 * time.Minute)
	if got, _ := e.st.WebhookEndpoint(e.ctx, ep.ID); got.Disabled {
		t.Fatal("disabled before an hour of failures")
	}
	e.clk.Advance(time.Minute)
	c := e.dispatched(ep.ID)
	attempt(c) // an hour after the run's first failure
	got, _ := e.st.WebhookEndpoint(e.ctx, ep.ID)
	if !got.Disabled || !strings.Contains(got.DisabledReason, "every attempt failed since "+start.Add(time.Minute).Format(time.RFC3339)) {
		t.Fatalf("after an hour of failures: %+v", got)
	}
}

// TestRetryAfter: a 429 or 503's Retry-After puts the next attempt off
// when it asks for longer than the schedule; 3xx is a failure, not
// followed.
func TestRetryAfter(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		status int
		header string
		want   time.Duration
	}{
		{http.StatusTooManyRequests, "3600", time.Hour},
		{http.StatusServiceUnavailable, t0.Add(2 * time.Hour).Format(http.TimeFormat), 2 * time.Hour},
		{http.StatusServiceUnavailable, "1", 5 * time.Second}, // shorter than the schedule's
		{http.StatusInternalServerError, "3600", 5 * time.Second},
		{http.StatusTooManyRequests, "999999999", maxRetryAfter},
	} {
		e := newEnv(t, miniClient(t))
		rcv := newReceiver(t, func(_ int, w http.ResponseWriter) {
			w.Header().Set("Retry-After", tc.header)
			w.WriteHeader(tc.status)
		})
		ep, _ := e.endpoint(rcv.URL, nil)
		d := e.deliverer(func(c *DelivererConfig) { c.Jitter = 0 })
		var re *retryError
		if err := d.HandleDeliver(e.ctx, deliverTask(t, e.dispatched(ep.ID))); !errors.As(err, &re) || re.after != tc.want {
			t.Fatalf("%d Retry-After %q: %v, want a retry in %s", tc.status, tc.header, err, tc.want)
		}
	}
	e := newEnv(t, miniClient(t))
	target := newReceiver(t, nil)
	rcv := newReceiver(t, func(_ int, w http.ResponseWriter) {
		w.Header().Set("Location", target.URL)
		w.WriteHeader(http.StatusFound)
	})
	ep, _ := e.endpoint(rcv.URL, nil)
	var re *retryError
	if err := e.deliverer(nil).HandleDeliver(e.ctx, deliverTask(t, e.dispatched(ep.ID))); !errors.As(err, &re) {
		t.Fatalf("a 302: %v, want a retry", err)
	}
	if len(target.requests()) != 0 {
		t.Fatal("a redirect was followed")
	}
}

// TestAddressPolicyAtConnect: an endpoint whose host resolves to a
// loopback address is refused when connecting, with the policy on, even
// if it was stored (a DNS answer that changed since its creation).
func TestAddressPolicyAtConnect(t *testing.T) {
	t.Parallel()
	e := newEnv(t, miniClient(t))
	rcv := newReceiver(t, nil)
	ep, _ := e.endpoint(rcv.URL, nil)
	d := e.deliverer(func(c *DelivererConfig) { c.Policy = Policy{} })
	if err := d.HandleDeliver(e.ctx, deliverTask(t, e.dispatched(ep.ID))); err == nil {
		t.Fatal("a delivery to 127.0.0.1 succeeded with the policy on")
	}
	if len(rcv.requests()) != 0 {
		t.Fatal("the receiver on 127.0.0.1 got a request")
	}
	page, _ := e.st.WebhookEndpointAttempts(e.ctx, ep.ID, "", 10)
	if len(page.Attempts) != 1 || !strings.Contains(page.Attempts[0].Error, "refused") || !strings.Contains(page.Attempts[0].Error, EnvAllowPrivate) {
		t.Fatalf("attempts %+v", page.Attempts)
	}
}

// slotState is an endpoint's slots as the deliverer sees them: attempts
// holding one, attempts waiting for one, and whether the entry exists.
// Its users are the attempts holding a slot and those waiting, one of
// which may hold a token already (it counts itself out of the waiting
// once it has the lock again).
func slotState(t testing.TB, d *Deliverer, ep string) (held, waiting int, present bool) {
	d.slotsMu.Lock()
	defer d.slotsMu.Unlock()
	s, ok := d.slots[ep]
	if !ok {
		return 0, 0, false
	}
	if held, users := len(s.sem), s.users; users < held || users > held+s.waiting || users == 0 {
		t.Errorf("slots of %s: %d users, %d held, %d waiting", ep, s.users, len(s.sem), s.waiting)
	}
	return len(s.sem), s.waiting, true
}

// TestPerEndpointBound: with an endpoint's PerEndpoint slots taken, an
// attempt waits up to slotWait for one and makes its POST when one comes
// free; past slotWait, when PerEndpoint attempts wait already, or when
// its context ends, it gives up (a short retry asynq does not count)
// without a POST. Every way out leaves no entry behind.
func TestPerEndpointBound(t *testing.T) {
	t.Parallel()
	busy := func(t *testing.T, err error) {
		t.Helper()
		var re *retryError
		if !errors.As(err, &re) || isFailure(err) || re.after < time.Second || re.after > 3*time.Second {
			t.Fatalf("busy endpoint: %v, want a retry in 1 to 3 s that asynq does not count", err)
		}
	}
	for _, tc := range []struct {
		name string
		wait time.Duration // slotWait
		// run starts with the endpoint's one slot held by the test; it
		// returns after giving the slot back, with the deliveries it
		// expects the receiver to have.
		run func(t *testing.T, e *env, d *Deliverer, ep string) int
	}{
		{"a waiting attempt takes the slot given back", time.Hour, func(t *testing.T, e *env, d *Deliverer, ep string) int {
			task, done := deliverTask(t, e.dispatched(ep)), make(chan error, 1)
			go func() { done <- d.HandleDeliver(e.ctx, task) }()
			waitFor(t, 10*time.Second, "the attempt waiting", func() bool { _, w, _ := slotState(t, d, ep); return w == 1 })
			d.release(ep)
			if err := <-done; err != nil {
				t.Fatalf("the waiting attempt: %v", err)
			}
			return 1
		}},
		{"past slotWait the attempt is put off", time.Millisecond, func(t *testing.T, e *env, d *Deliverer, ep string) int {
			busy(t, d.HandleDeliver(e.ctx, deliverTask(t, e.dispatched(ep))))
			if held, w, ok := slotState(t, d, ep); held != 1 || w != 0 || !ok {
				t.Fatalf("after giving up: %d held, %d waiting, entry %v", held, w, ok)
			}
			d.release(ep)
			return 0
		}},
		{"with PerEndpoint waiting, the next is put off at once", time.Hour, func(t *testing.T, e *env, d *Deliverer, ep string) int {
			waiter := make(chan bool, 1)
			go func() { waiter <- d.acquire(e.ctx, ep) }()
			waitFor(t, 10*time.Second, "the first waiter", func() bool { _, w, _ := slotState(t, d, ep); return w == 1 })
			task, done := deliverTask(t, e.dispatched(ep)), make(chan error, 1)
			go func() { done <- d.HandleDeliver(e.ctx, task) }()
			var err error
			waitFor(t, 10*time.Second, "the second attempt put off without waiting", func() bool {
				select {
				case err = <-done:
					return true
				default:
					return false
				}
			})
			busy(t, err)
			d.release(ep)
			if !<-waiter {
				t.Fatal("the first waiter did not get the slot given back")
			}
			d.release(ep)
			return 0
		}},
		{"an ended context ends the wait", time.Hour, func(t *testing.T, e *env, d *Deliverer, ep string) int {
			ctx, cancel := context.WithCancel(e.ctx)
			waiter := make(chan bool, 1)
			go func() { waiter <- d.acquire(ctx, ep) }()
			waitFor(t, 10*time.Second, "the waiter", func() bool { _, w, _ := slotState(t, d, ep); return w == 1 })
			cancel()
			if <-waiter {
				t.Fatal("a waiter whose context ended got a slot")
			}
			d.release(ep)
			return 0
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			e := newEnv(t, miniClient(t))
			rcv := newReceiver(t, nil)
			ep, _ := e.endpoint(rcv.URL, nil)
			d := e.deliverer(func(c *DelivererConfig) { c.PerEndpoint = 1 })
			d.slotWait = tc.wait
			if !d.acquire(e.ctx, ep.ID) {
				t.Fatal("first slot refused")
			}
			want := tc.run(t, e, d, ep.ID)
			if n := len(rcv.requests()); n != want {
				t.Fatalf("the receiver got %d requests, want %d", n, want)
			}
			if held, w, ok := slotState(t, d, ep.ID); ok {
				t.Fatalf("with every slot given back the entry stays: %d held, %d waiting", held, w)
			}
		})
	}
}

// TestPerEndpointSlotsConcurrent: attempts to a few endpoints from many
// goroutines at once (run with -race) never hold more than PerEndpoint
// slots of an endpoint nor wait more than PerEndpoint at a time, and leave
// the map empty once they are done.
func TestPerEndpointSlotsConcurrent(t *testing.T) {
	t.Parallel()
	e := newEnv(t, miniClient(t))
	const per, workers, rounds = 3, 24, 200
	d := e.deliverer(func(c *DelivererConfig) { c.PerEndpoint, c.Concurrency = per, workers })
	d.slotWait = time.Hour // only a release or the waiter bound ends a wait
	eps := []string{"ep_a", "ep_b", "ep_c"}
	var inFlight [3]atomic.Int32
	var worst atomic.Int32
	var took, putOff atomic.Int64
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			for r := range rounds {
				i := (w + r) % len(eps)
				if !d.acquire(e.ctx, eps[i]) {
					putOff.Add(1)
					continue
				}
				took.Add(1)
				n := inFlight[i].Add(1)
				for {
					if m := worst.Load(); n <= m || worst.CompareAndSwap(m, n) {
						break
					}
				}
				if _, waiting, _ := slotState(t, d, eps[i]); waiting > per {
					t.Errorf("%d attempts wait for %s, PerEndpoint is %d", waiting, eps[i], per)
				}
				runtime.Gosched()
				inFlight[i].Add(-1)
				d.release(eps[i])
			}
		})
	}
	wg.Wait()
	if m := worst.Load(); m > per || m < 1 {
		t.Fatalf("at most %d attempts to one endpoint in flight, want 1 to %d", m, per)
	}
	if took.Load()+putOff.Load() != workers*rounds || took.Load() == 0 {
		t.Fatalf("%d slots taken, %d put off, of %d", took.Load(), putOff.Load(), workers*rounds)
	}
	d.slotsMu.Lock()
	defer d.slotsMu.Unlock()
	if len(d.slots) != 0 {
		t.Fatalf("entries left for %d endpoints after every slot was given back", len(d.slots))
	}
}

// TestSignaturesDuringRotation: during a rotation's grace both the new and
// the old secret verify a message (the reference library accepts either
// signature); after it, only the new one.
func TestSignaturesDuringRotation(t *testing.T) {
	t.Parallel()
	e := newEnv(t, miniClient(t))
	rcv := newReceiver(t, nil)
	ep, old := e.endpoint(rcv.URL, nil)
	admin, err := NewAdmin(e.st, e.enq, AdminConfig{RotationGrace: time.Hour, Timeout: time.Second, Retention: time.Hour, Clock: e.clk})
	if err != nil {
		t.Fatal(err)
	}
	fresh, err := admin.RotateSecret(e.ctx, ep.ID)
	if err != nil || fresh == old {
		t.Fatalf("rotate: %q, %v", fresh, err)
	}
	d := e.deliverer(nil)
	if err := d.HandleDeliver(e.ctx, deliverTask(t, e.dispatched(ep.ID))); err != nil {
		t.Fatal(err)
	}
	e.clk.Advance(time.Hour)
	if err := d.HandleDeliver(e.ctx, deliverTask(t, e.dispatched(ep.ID))); err != nil {
		t.Fatal(err)
	}
	reqs := rcv.requests()
	if len(reqs) != 2 {
		t.Fatalf("%d requests", len(reqs))
	}
	if n := len(strings.Fields(reqs[0].header.Get(HeaderSignature))); n != 2 {
		t.Fatalf("during the grace %d signatures, want 2", n)
	}
	for _, s := range []string{fresh, old} {
		if err := verify(t, reqs[0], s); err != nil {
			t.Fatalf("during the grace a secret does not verify: %v", err)
		}
	}
	if err := verify(t, reqs[1], fresh); err != nil {
		t.Fatalf("after the grace the new secret does not verify: %v", err)
	}
	if err := verify(t, reqs[1], old); !errors.Is(err, standardwebhooks.ErrNoMatchingSignature) {
		t.Fatalf("after the grace the old secret verifies: %v", err)
	}
}

// TestResendAndRecover: resend delivers a message once more with the same
// webhook-id and body; recover sends again, with their own webhook-ids,
// the messages whose delivery failed and those dispatched while the
// endpoint was disabled, and nothing it got already.
func TestResendAndRecover(t *testing.T) {
	t.Parallel()
	e := newEnv(t, miniClient(t))
	gone := atomic.Bool{}
	gone.Store(false)
	rcv := newReceiver(t, func(_ int, w http.ResponseWriter) {
		if gone.Load() {
			w.WriteHeader(http.StatusGone)
			return
		}
		w.WriteHeader(http.StatusNoContent)
	})
	ep, secret := e.endpoint(rcv.URL, nil)
	admin, err := NewAdmin(e.st, e.enq, AdminConfig{Policy: Policy{AllowPrivate: true}, RotationGrace: time.Hour, Timeout: time.Second,
		Retention: 30 * 24 * time.Hour, Clock: e.clk})
	if err != nil {
		t.Fatal(err)
	}
	d := e.deliverer(nil)
	run := func() {
		for _, task := range e.enq.take() {
			h := d.HandleDeliver
			if task.Type() == tasks.TypeWebhookRecover {
				h = d.HandleRecover
			}
			if err := h(e.ctx, task); err != nil {
				t.Fatal(err)
			}
		}
	}
	delivered := e.dispatched(ep.ID)
	if err := d.HandleDeliver(e.ctx, deliverTask(t, delivered)); err != nil {
		t.Fatal(err)
	}
	// Resend: once more, the same message.
	if err := admin.Resend(e.ctx, delivered.MessageID, ep.ID); err != nil {
		t.Fatal(err)
	}
	run()
	reqs := rcv.requests()
	if len(reqs) != 2 || reqs[1].header.Get(HeaderID) != delivered.MessageID || string(reqs[1].body) != string(reqs[0].body) {
		t.Fatalf("resend: %d requests, second id %q", len(reqs), reqs[len(reqs)-1].header.Get(HeaderID))
	}
	if err := verify(t, reqs[1], secret); err != nil {
		t.Fatal(err)
	}
	// A 410 disables the endpoint; a change meanwhile is kept for it.
	gone.Store(true)
	failed := e.dispatched(ep.ID)
	if err := d.HandleDeliver(e.ctx, deliverTask(t, failed)); err != nil {
		t.Fatal(err)
	}
	e.clk.Advance(time.Minute)
	e.conn("user_good")
	e.drain(e.dispatcher(nil, nil))
	if ts := e.enq.take(); len(ts) != 0 {
		t.Fatalf("a disabled endpoint got %d tasks", len(ts))
	}
	whileDisabled, err := e.st.ListWebhookMessages(e.ctx, store.WebhookMessageFilter{}, "", 1)
	if err != nil || len(whileDisabled.Messages) != 1 || whileDisabled.Messages[0].DeliveryTo(ep.ID).Status != "" {
		t.Fatalf("message dispatched while disabled: %+v %v", whileDisabled, err)
	}
	if err := admin.Recover(e.ctx, ep.ID, t0, e.clk.Now()); !errors.Is(err, ErrDisabled) {
		t.Fatalf("recover of a disabled endpoint: %v", err)
	}
	gone.Store(false)
	if _, err := admin.UpdateEndpoint(e.ctx, ep.ID, store.WebhookEndpointPatch{Disabled: new(false)}); err != nil {
		t.Fatal(err)
	}
	before := len(rcv.requests())
	if err := admin.Recover(e.ctx, ep.ID, t0, e.clk.Now()); err != nil {
		t.Fatal(err)
	}
	run() // the recovery's page
	run() // its deliveries
	got := map[string]int{}
	for _, r := range rcv.requests()[before:] {
		got[r.header.Get(HeaderID)]++
		if err := verify(t, r, secret); err != nil {
			t.Fatal(err)
		}
	}
	want := map[string]int{failed.MessageID: 1, whileDisabled.Messages[0].ID: 1}
	if len(got) != len(want) || got[failed.MessageID] != 1 || got[whileDisabled.Messages[0].ID] != 1 {
		t.Fatalf("recovered %v, want %v", got, want)
	}
	for id := range want {
		m, _ := e.st.GetWebhookMessage(e.ctx, id)
		if m.DeliveryTo(ep.ID).Status != store.DeliverySuccess {
			t.Fatalf("%s after recovery: %+v", id, m.DeliveryTo(ep.ID))
		}
	}
	as, _ := e.st.WebhookMessageAttempts(e.ctx, failed.MessageID)
	if len(as) != 2 || as[1].Trigger != store.TriggerRecover || as[1].Status != store.DeliverySuccess {
		t.Fatalf("attempts of the recovered message %+v", as)
	}
}

// TestTestMessage: an endpoint test sends a signed example now, kept out of
// the listings.
func TestTestMessage(t *testing.T) {
	t.Parallel()
	e := newEnv(t, miniClient(t))
	rcv := newReceiver(t, nil)
	ep, secret := e.endpoint(rcv.URL, nil)
	admin, err := NewAdmin(e.st, e.enq, AdminConfig{RotationGrace: time.Hour, Timeout: time.Second, Retention: time.Hour, Clock: e.clk})
	if err != nil {
		t.Fatal(err)
	}
	id, err := admin.Test(e.ctx, ep.ID, store.EventConnectionValidated)
	if err != nil {
		t.Fatal(err)
	}
	for _, task := range e.enq.take() {
		if err := e.deliverer(nil).HandleDeliver(e.ctx, task); err != nil {
			t.Fatal(err)
		}
	}
	reqs := rcv.requests()
	if len(reqs) != 1 || reqs[0].header.Get(HeaderID) != id || verify(t, reqs[0], secret) != nil {
		t.Fatalf("test message: %d requests", len(reqs))
	}
	var p Payload
	if err := json.Unmarshal(reqs[0].body, &p); err != nil || p.Type != store.EventConnectionValidated || p.Data.ID != "cn_0123456789abcdef" {
		t.Fatalf("test body %s: %v", reqs[0].body, err)
	}
	if page, _ := e.st.ListWebhookMessages(e.ctx, store.WebhookMessageFilter{}, "", 10); len(page.Messages) != 0 {
		t.Fatalf("the test message is listed: %+v", page)
	}
	as, err := e.st.WebhookMessageAttempts(e.ctx, id)
	if err != nil || len(as) != 1 || as[0].Trigger != store.TriggerTest {
		t.Fatalf("test attempts %+v %v", as, err)
	}
}

// TestSlowEndpointDoesNotDelayOthers (real Redis, the deliverer's own
// asynq server): with an endpoint that never answers holding its one slot
// and its tasks queued ahead, another endpoint's messages all arrive, and
// the slow one never has more than PerEndpoint attempts at once.
func TestSlowEndpointDoesNotDelayOthers(t *testing.T) {
	t.Parallel()
	rdb := realClient(t)
	e := newEnv(t, rdb)
	release := make(chan struct{})
	slow := newReceiver(t, func(int, http.ResponseWriter) { <-release })
	fast := newReceiver(t, nil)
	e.endpoint(slow.URL, nil)
	client := asynq.NewClientFromRedisClient(rdb)
	disp := e.dispatcher(client, nil)
	const ahead, both = 20, 10
	for range ahead { // the slow endpoint's alone, first in the queue
		e.conn("user_good")
	}
	e.drain(disp)
	e.endpoint(fast.URL, nil)
	for range both {
		e.conn("user_good")
	}
	e.drain(disp)
	d := e.deliverer(func(c *DelivererConfig) {
		c.Clock, c.Concurrency, c.PerEndpoint, c.Timeout = clock.Real{}, 4, 1, time.Minute
	})
	if err := d.Start(e.ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = d.Stop(context.Background()) })
	t.Cleanup(func() { close(release) }) // first: the slow attempt ends, so Stop drains
	waitFor(t, 60*time.Second, "the fast endpoint's messages", func() bool { return len(fast.requests()) >= both })
	if n := len(slow.requests()); n != 1 {
		t.Fatalf("the slow endpoint got %d attempts while its first hung, want 1 (perEndpoint)", n)
	}
}

// TestDelivererThroughAsynq runs the deliverer's own asynq server on real
// Redis with a short schedule: asynq runs the schedule's retries (without
// counting them as failures) until the receiver accepts. The server's
// script calls (each attempt's completion, done or retry) go through the
// store's group commit with the attempts' reads and records, and the
// deliverer counts its concurrency among the group commit's slots while
// it runs.
func TestDelivererThroughAsynq(t *testing.T) {
	t.Parallel()
	rdb := realClient(t)
	e := newEnv(t, rdb)
	rcv := newReceiver(t, failFirst(2, http.StatusServiceUnavailable))
	e.endpoint(rcv.URL, nil)
	client := asynq.NewClientFromRedisClient(rdb)
	d := e.deliverer(func(c *DelivererConfig) {
		c.Clock, c.Schedule, c.Jitter = clock.Real{}, []time.Duration{0, 10 * time.Millisecond, 10 * time.Millisecond}, 0
	})
	if err := d.Start(e.ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = d.Stop(context.Background()) })
	if s := e.st.BatchStats().Slots; s != e.delivererConfig().Concurrency {
		t.Errorf("group commit slots %d while the deliverer runs, want its concurrency %d", s, e.delivererConfig().Concurrency)
	}
	e.conn("user_good")
	e.drain(e.dispatcher(client, nil))
	waitFor(t, 20*time.Second, "the third attempt", func() bool { return len(rcv.requests()) >= 3 })
	ins := asynq.NewInspectorFromRedisClient(rdb)
	waitFor(t, 10*time.Second, "the queue to empty", func() bool {
		q, err := ins.GetQueueInfo(tasks.QueueWebhooks)
		return err == nil && q.Size == 0
	})
	q, _ := ins.GetQueueInfo(tasks.QueueWebhooks)
	if q.Failed != 0 || q.Archived != 0 || len(rcv.requests()) != 3 {
		t.Fatalf("queue %+v, %d requests; want 3 attempts and no failure counted", q, len(rcv.requests()))
	}
	ids := map[string]bool{}
	for _, r := range rcv.requests() {
		ids[r.header.Get(HeaderID)] = true
	}
	if len(ids) != 1 {
		t.Fatalf("webhook-ids %v, want one", ids)
	}
	// Each attempt's record is stowed to ride with asynq's completion of its
	// task: all three are logged, the last a success, and at least one of
	// them shared its round trip (each alone would have needed asynq to
	// come more than 2 ms after its handler, three times; the attempts are
	// serial, so nothing else shares one).
	var msgID string
	for id := range ids {
		msgID = id
	}
	var as []store.WebhookAttempt
	waitFor(t, 10*time.Second, "the three attempts recorded", func() bool {
		as, _ = e.st.WebhookMessageAttempts(e.ctx, msgID)
		return len(as) == 3
	})
	if as[0].Status != store.DeliveryFailed || as[0].ResponseStatusCode != http.StatusServiceUnavailable || as[2].Status != store.DeliverySuccess || as[2].Attempt != 3 {
		t.Errorf("attempts %+v, want two 503 failures then a success", as)
	}
	if st := e.st.BatchStats(); st.Pipelined < 2 {
		t.Errorf("group commit %+v: no record rode with its completion", st)
	}
	page, err := e.st.ListWebhookMessages(e.ctx, store.WebhookMessageFilter{}, "", 10)
	if err != nil || len(page.Messages) != 1 || page.Messages[0].Deliveries[0].Status != store.DeliverySuccess || page.Messages[0].Deliveries[0].Attempts != 3 {
		t.Errorf("message %+v (%v), want its delivery a success after 3 attempts", page.Messages, err)
	}
	// Three loads and three records, and the server's completions of the
	// three attempts (two retries, one done): only those last go through
	// the group commit by way of the server's client.
	if st := e.st.BatchStats(); st.Calls < 9 {
		t.Errorf("group commit %+v: %d calls, want at least 9 (3 attempts' load, record and completion)", st, st.Calls)
	}
	if err := d.Stop(e.ctx); err != nil {
		t.Fatal(err)
	}
	if s := e.st.BatchStats().Slots; s != 0 {
		t.Errorf("group commit slots %d after the deliverer stopped, want 0", s)
	}
}

// TestDelivererServers (real Redis): the deliverer's concurrency is split
// over its asynq servers, which asynq lists while it runs (as asynqmon
// shows them) and no longer once it stopped; messages flow through them;
// a server count outside 1 to concurrency is refused.
func TestDelivererServers(t *testing.T) {
	t.Parallel()
	rdb := realClient(t)
	e := newEnv(t, rdb)
	for _, tt := range []struct{ concurrency, servers int }{{2, 3}, {4, 0}, {4, 5}, {4, -1}} {
		cfg := e.delivererConfig()
		cfg.Concurrency, cfg.Servers = tt.concurrency, tt.servers
		if _, err := NewDeliverer(rdb, e.st, e.enq, cfg); err == nil {
			t.Errorf("concurrency %d over %d servers: accepted, want an error", tt.concurrency, tt.servers)
		}
	}
	rcv := newReceiver(t, nil)
	e.endpoint(rcv.URL, nil)
	d := e.deliverer(func(c *DelivererConfig) { c.Clock, c.Concurrency, c.PerEndpoint, c.Servers = clock.Real{}, 5, 5, 3 })
	if err := d.Start(e.ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = d.Stop(context.Background()) })
	ins := asynq.NewInspectorFromRedisClient(rdb)
	var shares []int
	waitFor(t, 10*time.Second, "the deliverer's three servers in asynq", func() bool {
		srvs, err := ins.Servers()
		if err != nil {
			return false
		}
		shares = shares[:0]
		for _, s := range srvs {
			if _, ok := s.Queues[tasks.QueueWebhooks]; ok {
				shares = append(shares, s.Concurrency)
			}
		}
		return len(shares) == 3
	})
	slices.Sort(shares)
	if !slices.Equal(shares, []int{1, 2, 2}) {
		t.Errorf("servers' concurrency %v, want [1 2 2] (5 over 3)", shares)
	}
	const n = 30
	for range n {
		e.conn("user_good")
	}
	e.drain(e.dispatcher(asynq.NewClientFromRedisClient(rdb), nil))
	waitFor(t, 20*time.Second, "every message", func() bool { return len(rcv.requests()) >= n })
	if err := d.Stop(e.ctx); err != nil {
		t.Fatal(err)
	}
	if srvs, err := ins.Servers(); err != nil || len(srvs) != 0 {
		t.Errorf("after Stop asynq lists %d servers (%v), want none", len(srvs), err)
	}
	ids := map[string]bool{}
	for _, r := range rcv.requests() {
		ids[r.header.Get(HeaderID)] = true
	}
	if len(ids) != n || len(rcv.requests()) != n {
		t.Errorf("%d requests with %d distinct webhook-ids, want %d each (one attempt per message)", len(rcv.requests()), len(ids), n)
	}
}

// failRecords fails the record script's calls for one endpoint (a script
// call with its delivery field among the arguments), and the pipelines
// carrying one, while on.
type failRecords struct {
	field string
	on    atomic.Bool
}

func (f *failRecords) matches(cmd redis.Cmder) bool {
	if n := cmd.Name(); n != "evalsha" && n != "eval" {
		return false
	}
	for _, a := range cmd.Args() {
		if s, ok := a.(string); ok && s == f.field {
			return f.on.Load()
		}
	}
	return false
}

func (f *failRecords) DialHook(next redis.DialHook) redis.DialHook { return next }

func (f *failRecords) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		if f.matches(cmd) {
			cmd.SetErr(errors.New("ERR test: Redis refuses the record"))
			return cmd.Err()
		}
		return next(ctx, cmd)
	}
}

func (f *failRecords) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		for _, cmd := range cmds {
			if f.matches(cmd) {
				err := errors.New("ERR test: Redis refuses the record")
				for _, c := range cmds {
					c.SetErr(err)
				}
				return err
			}
		}
		return next(ctx, cmds)
	}
}

// TestStowedRecordRetried (real Redis, the deliverer's asynq servers):
// while Redis refuses an attempt's record (which took asynq's completion
// down with it) the attempt is not logged and is tried again in the
// background; once Redis takes it, it is. One Redis still refuses when the
// deliverer stops is tried once more and then logged whole, as unrecorded.
func TestStowedRecordRetried(t *testing.T) {
	t.Parallel()
	rdb := realClient(t)
	e := newEnv(t, rdb)
	rcv := newReceiver(t, nil)
	ep, _ := e.endpoint(rcv.URL, nil)
	fail := &failRecords{field: "d:" + ep.ID}
	rdb.AddHook(fail)
	d := e.deliverer(func(c *DelivererConfig) { c.Clock = clock.Real{} })
	d.recordRetry = 10 * time.Millisecond
	if err := d.Start(e.ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = d.Stop(context.Background()) })
	client := asynq.NewClientFromRedisClient(rdb)
	logged := func(level logrus.Level, msg string, n int) func() bool {
		return func() bool {
			c := 0
			for _, en := range e.log.AllEntries() {
				if en.Level == level && strings.Contains(en.Message, msg) {
					c++
				}
			}
			return c >= n
		}
	}
	deliver := func() string {
		t.Helper()
		before := len(rcv.requests())
		e.conn("user_good")
		e.drain(e.dispatcher(client, nil))
		waitFor(t, 20*time.Second, "the POST", func() bool { return len(rcv.requests()) > before })
		return rcv.requests()[before].header.Get(HeaderID)
	}

	fail.on.Store(true)
	first := deliver()
	waitFor(t, 20*time.Second, "a retry Redis refused", logged(logrus.WarnLevel, "webhook attempt still not recorded", 1))
	if as, err := e.st.WebhookMessageAttempts(e.ctx, first); err != nil || len(as) != 0 {
		t.Fatalf("attempts %+v (%v) while Redis refuses the record, want none", as, err)
	}
	fail.on.Store(false)
	waitFor(t, 20*time.Second, "the record to land", logged(logrus.InfoLevel, "webhook attempt recorded after a retry", 1))
	as, err := e.st.WebhookMessageAttempts(e.ctx, first)
	if err != nil || len(as) != 1 || as[0].Status != store.DeliverySuccess {
		t.Fatalf("attempts %+v (%v), want the one retried, a success", as, err)
	}

	fail.on.Store(true)
	second := deliver()
	waitFor(t, 20*time.Second, "the second record refused", logged(logrus.WarnLevel, "webhook attempt not recorded; trying again", 2))
	if err := d.Stop(e.ctx); err != nil {
		t.Fatal(err)
	}
	found := false
	for _, en := range e.log.AllEntries() {
		if en.Level == logrus.ErrorLevel && strings.Contains(en.Message, "the deliverer stopped before Redis took it") &&
			strings.Contains(fmt.Sprint(en.Data["attemptRecord"]), second) {
			found = true
		}
	}
	if !found {
		t.Error("no error log with the unrecorded attempt whole")
	}
	fail.on.Store(false)
	if as, _ := e.st.WebhookMessageAttempts(e.ctx, second); len(as) != 0 {
		t.Errorf("%d attempts logged for the refused record, want none", len(as))
	}
}
