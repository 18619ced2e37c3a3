package webhook

import (
	"context"
	"errors"
	"fmt"
	"os"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/hibiken/asynq"

	"github.com/checkd/checkd/checks"
	"github.com/checkd/checkd/internal/tasks"
	"github.com/checkd/checkd/store"
)

// TestDispatchRoutes: each change makes one message per event type that
// some endpoint receives (its filters, its companies, created before the
// change; disabled ones too, for a later recovery), and one task per
// enabled endpoint receiving it.
func TestDispatchRoutes(t *testing.T) {
	t.Parallel()
	e := newEnv(t, miniClient(t))
	other, err := e.st.CreateCompany(e.ctx, store.NewCompany{Name: "Other"})
	if err != nil {
		t.Fatal(err)
	}
	all, _ := e.endpoint("http://a.example/", nil)
	validated, _ := e.endpoint("http://b.example/", func(in *store.NewWebhookEndpoint) { in.FilterTypes = []string{store.EventConnectionValidated} })
	otherCo, _ := e.endpoint("http://c.example/", func(in *store.NewWebhookEndpoint) { in.CompanyIDs = []string{other.ID} })
	disabled, _ := e.endpoint("http://d.example/", func(in *store.NewWebhookEndpoint) { in.Disabled = true })
	c := e.conn("user_good")
	d := e.dispatcher(nil, nil)
	e.drain(d)
	e.clk.Advance(time.Minute)
	late, _ := e.endpoint("http://e.example/", nil)
	e.check(c.ID, checks.Result{Status: checks.ConnConnected, Accounts: []checks.AccountResult{{Number: "1"}}})
	e.drain(d)
	got := map[string][]string{} // message → endpoints with a task
	for _, p := range deliverTasks(t, e.enq.take()) {
		if p.Trigger != store.TriggerScheduled {
			t.Fatalf("task %+v", p)
		}
		got[p.MessageID] = append(got[p.MessageID], p.EndpointID)
	}
	created, updated, valid := MessageID(c.ID, 1, store.EventConnectionCreated), MessageID(c.ID, 2, store.EventConnectionUpdated),
		MessageID(c.ID, 2, store.EventConnectionValidated)
	want := map[string][]string{
		created: {all.ID},
		updated: {all.ID, late.ID},
		valid:   {all.ID, validated.ID, late.ID},
	}
	for id := range want {
		slices.Sort(want[id])
		slices.Sort(got[id])
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("tasks %v\nwant %v (endpoint %s receives another company's only)", got, want, otherCo.ID)
	}
	for id, eps := range want {
		m, err := e.st.GetWebhookMessage(e.ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		var pending []string
		for _, dl := range m.Deliveries {
			if dl.Status != store.DeliveryPending || dl.Attempts != 0 {
				t.Fatalf("%s: delivery %+v", id, dl)
			}
			pending = append(pending, dl.EndpointID)
		}
		if fmt.Sprint(pending) != fmt.Sprint(eps) || m.DeliveryTo(disabled.ID).Status != "" || m.ConnectionID != c.ID || m.CompanyID != e.co.ID {
			t.Fatalf("%s: deliveries %+v, want pending for %v", id, m.Deliveries, eps)
		}
	}
	page, _ := e.st.ListWebhookMessages(e.ctx, store.WebhookMessageFilter{ConnectionID: c.ID}, "", 10)
	if len(page.Messages) != 3 {
		t.Fatalf("messages of the connection %+v", page.Messages)
	}
	// A change nobody subscribes to keeps no message.
	oc, err := e.st.CreateConnection(e.ctx, store.NewConnection{CompanyID: other.ID, Datasource: "sandbox",
		Credentials: checks.Credentials{Username: "u"}})
	if err != nil {
		t.Fatal(err)
	}
	if err := e.st.DeleteWebhookEndpoint(e.ctx, all.ID); err != nil {
		t.Fatal(err)
	}
	for _, ep := range []string{disabled.ID, late.ID} {
		if err := e.st.DeleteWebhookEndpoint(e.ctx, ep); err != nil {
			t.Fatal(err)
		}
	}
	e.drain(d)
	tasksOfOther := deliverTasks(t, e.enq.take())
	if len(tasksOfOther) != 1 || tasksOfOther[0].EndpointID != otherCo.ID {
		t.Fatalf("another company's change: tasks %+v, want one for %s", tasksOfOther, otherCo.ID)
	}
	if err := e.st.DeleteWebhookEndpoint(e.ctx, otherCo.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := e.st.UpdateDetails(e.ctx, oc.ID, store.DetailsPatch{Name: new("renamed")}); err != nil {
		t.Fatal(err)
	}
	if n := e.drain(d); n != 1 {
		t.Fatalf("dispatched %d events, want 1", n)
	}
	if _, err := e.st.GetWebhookMessage(e.ctx, MessageID(oc.ID, 2, store.EventConnectionUpdated)); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("a message nobody receives was kept: %v", err)
	}
}

// countingEnqueuer fails after ok enqueues (a dispatcher that dies while
// enqueueing), or passes them to next.
type countingEnqueuer struct {
	mu   sync.Mutex
	ok   int
	next Enqueuer
}

var errDied = errors.New("the dispatcher died")

func (c *countingEnqueuer) EnqueueContext(ctx context.Context, t *asynq.Task, opts ...asynq.Option) (*asynq.TaskInfo, error) {
	c.mu.Lock()
	if c.ok <= 0 {
		c.mu.Unlock()
		return nil, errDied
	}
	c.ok--
	c.mu.Unlock()
	return c.next.EnqueueContext(ctx, t, opts...)
}

// pendingIDs lists the task IDs of the webhooks queue.
func pendingIDs(t testing.TB, ins *asynq.Inspector) []string {
	t.Helper()
	var ids []string
	for page := 1; ; page++ {
		ts, err := ins.ListPendingTasks(tasks.QueueWebhooks, asynq.Page(page), asynq.PageSize(1000))
		if err != nil && !errors.Is(err, asynq.ErrQueueNotFound) {
			t.Fatal(err)
		}
		for _, ti := range ts {
			ids = append(ids, ti.ID)
		}
		if len(ts) < 1000 {
			return ids
		}
	}
}

// TestDispatcherCrash (real Redis): dispatchers that die after reading
// (before enqueueing, or while enqueueing) and one that dies after
// enqueueing but before acknowledging, even after the deliveries finished,
// lose nothing and double nothing: another dispatcher takes their events
// over, every message is enqueued once, and the receiver gets each once.
// The stream, capped at 10 events while no dispatcher ran, keeps every
// undispatched one meanwhile.
func TestDispatcherCrash(t *testing.T) {
	t.Parallel()
	rdb := realClient(t)
	e := newEnv(t, rdb, func(c *store.Config) { c.EventsMaxLen = 10 })
	rcv := newReceiver(t, nil)
	e.endpoint(rcv.URL, nil)
	client := asynq.NewClientFromRedisClient(rdb)
	ins := asynq.NewInspectorFromRedisClient(rdb)
	const n = 150 // more than a stream node (100 entries), which MAXLEN ~ trims whole
	for range n {
		e.conn("user_good")
	}
	if l := rdb.XLen(e.ctx, "cd:ev").Val(); l >= n {
		t.Fatalf("before any dispatcher the stream holds %d of %d events, want about 10 (trimmed a node of 100 at a time)", l, n)
	}
	// The group and its floor from now on: later writes keep what is
	// undispatched.
	short := func(c *DispatcherConfig) { c.ClaimIdle, c.BatchSize = 100*time.Millisecond, 50 }
	beforeEnqueue := e.dispatcher(&countingEnqueuer{next: client}, func(c *DispatcherConfig) { short(c); c.Consumer = "dies-before-enqueue" })
	if _, err := beforeEnqueue.RunOnce(e.ctx); !errors.Is(err, errDied) { // reads what the cap kept, dies enqueueing it
		t.Fatalf("before enqueue: %v", err)
	}
	var conns []string
	for range n {
		conns = append(conns, e.conn("user_good").ID)
	}
	if l := rdb.XLen(e.ctx, "cd:ev").Val(); l < n {
		t.Fatalf("with a dispatcher's group the stream was trimmed to %d events with %d undispatched", l, n)
	}
	midEnqueue := e.dispatcher(&countingEnqueuer{ok: 20, next: client}, func(c *DispatcherConfig) { short(c); c.Consumer = "dies-mid-enqueue" })
	if _, err := midEnqueue.RunOnce(e.ctx); !errors.Is(err, errDied) {
		t.Fatalf("mid-enqueue: %v", err)
	}
	beforeAck := e.dispatcher(client, func(c *DispatcherConfig) {
		short(c)
		c.Consumer = "dies-before-ack"
		c.BeforeAck = func([]store.Event) error { return errDied }
	})
	if _, err := beforeAck.RunOnce(e.ctx); !errors.Is(err, errDied) {
		t.Fatalf("before ack: %v", err)
	}
	// The survivor takes over once their events are idle for ClaimIdle.
	survivor := e.dispatcher(client, func(c *DispatcherConfig) { short(c); c.Consumer = "survivor" })
	waitFor(t, 30*time.Second, "every event dispatched", func() bool {
		e.clk.Advance(time.Second) // the survivor claims every ClaimIdle/2 of its clock
		if _, err := survivor.RunOnce(e.ctx); err != nil {
			t.Fatal(err)
		}
		left, err := e.st.EventBacklog(e.ctx, Group)
		return err == nil && left == 0
	})
	ids := pendingIDs(t, ins)
	if len(ids) != len(slices.Compact(slices.Sorted(slices.Values(ids)))) {
		t.Fatalf("a delivery task was enqueued twice: %d tasks", len(ids))
	}
	// One task per message kept (what the cap left of the first n, and
	// every one of the n after the group began), none lost.
	var want []string
	msgs := map[string]bool{}
	for cursor := ""; ; {
		page, err := e.st.ListWebhookMessages(e.ctx, store.WebhookMessageFilter{}, cursor, store.MaxWebhookPage)
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range page.Messages {
			msgs[m.ID] = true
			want = append(want, tasks.WebhookDeliverTaskID(m.ID, m.Deliveries[0].EndpointID, "", ""))
		}
		if cursor = page.Next; cursor == "" {
			break
		}
	}
	for _, c := range conns {
		if !msgs[MessageID(c, 1, store.EventConnectionCreated)] {
			t.Fatalf("the creation of %s was lost", c)
		}
	}
	if !slices.Equal(slices.Sorted(slices.Values(ids)), slices.Sorted(slices.Values(want))) {
		t.Fatalf("%d tasks for %d messages", len(ids), len(want))
	}
	// Deliver them all; then a dispatcher reads new events, enqueues,
	// waits until they are delivered (their task IDs free again), and dies
	// before acknowledging: the survivor enqueues them again, and the
	// deliverer skips them.
	d := e.deliverer(nil)
	if err := d.Start(e.ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = d.Stop(context.Background()) })
	waitFor(t, 60*time.Second, "every message delivered", func() bool { return len(rcv.requests()) >= len(ids) })
	for range 20 {
		e.conn("user_good")
	}
	late := e.dispatcher(client, func(c *DispatcherConfig) {
		short(c)
		c.Consumer = "dies-after-delivery"
		c.BeforeAck = func(evs []store.Event) error {
			waitFor(t, 30*time.Second, "the late deliveries", func() bool { return len(rcv.requests()) >= len(ids)+20 })
			return errDied
		}
	})
	if _, err := late.RunOnce(e.ctx); !errors.Is(err, errDied) {
		t.Fatalf("late: %v", err)
	}
	waitFor(t, 30*time.Second, "the late events dispatched again", func() bool {
		e.clk.Advance(time.Second)
		if _, err := survivor.RunOnce(e.ctx); err != nil {
			t.Fatal(err)
		}
		left, err := e.st.EventBacklog(e.ctx, Group)
		q, qerr := ins.GetQueueInfo(tasks.QueueWebhooks)
		return err == nil && left == 0 && qerr == nil && q.Size == 0
	})
	seen := map[string]int{}
	for _, r := range rcv.requests() {
		seen[r.header.Get(HeaderID)]++
	}
	for id, k := range seen {
		if k != 1 {
			t.Fatalf("%s delivered %d times", id, k)
		}
	}
	if len(seen) != len(ids)+20 {
		t.Fatalf("%d messages delivered, want %d", len(seen), len(ids)+20)
	}
	// Everything is dispatched: the next writes trim the stream to its floor.
	for range 200 {
		e.conn("user_good")
	}
	e.drain(survivor)
	e.conn("user_good")
	if l := rdb.XLen(e.ctx, "cd:ev").Val(); l > 250 {
		t.Fatalf("after dispatching everything the stream still holds %d events", l)
	}
}

// TestDispatcherReplicas (real Redis): dispatchers running at once hand
// every event on exactly once between them.
func TestDispatcherReplicas(t *testing.T) {
	t.Parallel()
	e := newEnv(t, realClient(t))
	e.endpoint("http://a.example/", nil)
	const n = 600
	for range n {
		e.conn("user_good")
	}
	var mu sync.Mutex
	seen := map[string]int{}
	var wg sync.WaitGroup
	for i := range 3 {
		d := e.dispatcher(nil, func(c *DispatcherConfig) {
			c.Consumer, c.BatchSize = "replica-"+strconv.Itoa(i), 25
			c.BeforeAck = func(evs []store.Event) error {
				mu.Lock()
				defer mu.Unlock()
				for _, ev := range evs {
					seen[ev.ID]++
				}
				return nil
			}
		})
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				k, err := d.RunOnce(e.ctx)
				if err != nil {
					t.Error(err)
					return
				}
				if k == 0 {
					return
				}
			}
		}()
	}
	wg.Wait()
	for id, k := range seen {
		if k != 1 {
			t.Fatalf("event %s dispatched %d times", id, k)
		}
	}
	ts := deliverTasks(t, e.enq.take())
	if len(seen) != n || len(ts) != n {
		t.Fatalf("%d events dispatched, %d tasks; want %d each", len(seen), len(ts), n)
	}
}

// EnvBacklog sets the size of TestDispatchBacklog: 20,000 by default (20
// times the stream's cap, in a few seconds under -race); a day of changes
// at a million connections is about 1,000,000, which
// CHECKD_TEST_WEBHOOK_BACKLOG=1000000 runs.
const EnvBacklog = "CHECKD_TEST_WEBHOOK_BACKLOG"

// TestDispatchBacklog (real Redis): with the dispatchers away while a
// backlog of changes accumulates, none is trimmed (the stream's cap is
// 1,000 here), and a dispatcher that comes back hands every one on,
// once.
func TestDispatchBacklog(t *testing.T) {
	n := 20_000
	if v := os.Getenv(EnvBacklog); v != "" {
		var err error
		if n, err = strconv.Atoi(v); err != nil {
			t.Fatalf("%s=%q: %v", EnvBacklog, v, err)
		}
	}
	rdb := realClient(t)
	e := newEnv(t, rdb, func(c *store.Config) { c.EventsMaxLen = 1000 })
	other, err := e.st.CreateCompany(e.ctx, store.NewCompany{Name: "Other"})
	if err != nil {
		t.Fatal(err)
	}
	// An endpoint of another company: the events are read and dispatched,
	// and no message is kept (the test is about the stream).
	e.endpoint("http://a.example/", func(in *store.NewWebhookEndpoint) { in.CompanyIDs = []string{other.ID} })
	if err := e.st.EnsureEventGroup(e.ctx, Group); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	in := make([]store.NewConnection, 5000)
	for i := range in {
		in[i] = store.NewConnection{Datasource: "sandbox", Credentials: checks.Credentials{Username: "u"}}
	}
	for made := 0; made < n; made += len(in) {
		if _, err := e.st.CreateConnections(e.ctx, e.co.ID, in[:min(len(in), n-made)]); err != nil {
			t.Fatal(err)
		}
	}
	wrote := time.Since(start)
	if l := rdb.XLen(e.ctx, "cd:ev").Val(); l != int64(n) {
		t.Fatalf("the stream holds %d events, %d were written", l, n)
	}
	seen := make(map[string]struct{}, n)
	d := e.dispatcher(nil, func(c *DispatcherConfig) {
		c.BatchSize = 1000
		c.BeforeAck = func(evs []store.Event) error {
			for _, ev := range evs {
				if _, dup := seen[ev.ID]; dup {
					t.Errorf("event %s dispatched twice", ev.ID)
				}
				seen[ev.ID] = struct{}{}
			}
			return nil
		}
	})
	start = time.Now()
	e.drain(d)
	t.Logf("%d events: written in %s, dispatched in %s", n, wrote.Round(time.Millisecond), time.Since(start).Round(time.Millisecond))
	if len(seen) != n {
		t.Fatalf("dispatched %d of %d events", len(seen), n)
	}
	if left, err := e.st.EventBacklog(e.ctx, Group); err != nil || left != 0 {
		t.Fatalf("backlog after the drain: %d, %v", left, err)
	}
}
