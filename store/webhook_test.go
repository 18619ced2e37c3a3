package store

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"testing"
	"time"
)

// TestWebhookStore runs the webhook persistence on both backends.
func TestWebhookStore(t *testing.T) {
	for name, b := range map[string]backend{"miniredis": miniBackend, "redis": realBackend} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			t.Run("endpoints", func(t *testing.T) { t.Parallel(); testWebhookEndpoints(t, b) })
			t.Run("messages", func(t *testing.T) { t.Parallel(); testWebhookMessages(t, b) })
			t.Run("attempts", func(t *testing.T) { t.Parallel(); testWebhookAttempts(t, b) })
			t.Run("target changes", func(t *testing.T) { t.Parallel(); testWebhookTargetChanges(t, b) })
			t.Run("connection listing", func(t *testing.T) { t.Parallel(); testWebhookConnListing(t, b) })
			t.Run("event group", func(t *testing.T) { t.Parallel(); testEventGroup(t, b, name == "redis") })
		})
	}
}

const testSecret = "whsec_MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3"

func testWebhookEndpoints(t *testing.T, b backend) {
	f := newFixture(t, b, nil)
	version := func() int64 {
		v, err := f.s.WebhookEndpointsVersion(f.ctx)
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
	v0 := version()
	e, err := f.s.CreateWebhookEndpoint(f.ctx, NewWebhookEndpoint{URL: "https://a.example/x", Description: "d",
		FilterTypes: []string{EventConnectionUpdated, EventConnectionCreated, EventConnectionUpdated}, CompanyIDs: []string{f.co.ID}, Secret: testSecret})
	if err != nil || !slices.Equal(e.FilterTypes, []string{EventConnectionCreated, EventConnectionUpdated}) || version() != v0+1 {
		t.Fatalf("create: %+v %v", e, err)
	}
	if got, err := f.s.WebhookEndpoint(f.ctx, e.ID); err != nil || got.URL != e.URL || !got.CreatedAt.Equal(e.CreatedAt) ||
		!slices.Equal(got.CompanyIDs, e.CompanyIDs) || !got.Receives(EventConnectionCreated, f.co.ID) || got.Receives(EventConnectionValidated, f.co.ID) ||
		got.Receives(EventConnectionCreated, "co_0000000000000000") {
		t.Fatalf("read back %+v, %v", got, err)
	}
	sec, err := f.s.WebhookSecrets(f.ctx, e.ID)
	if err != nil || sec.Current != testSecret || len(sec.At(f.clk.Now())) != 1 {
		t.Fatalf("secrets %+v, %v", sec, err)
	}
	raw, _ := f.rdb.HGet(f.ctx, f.s.kWebhookEndpoint(e.ID), "s").Result()
	if raw == "" || raw == testSecret {
		t.Fatalf("the secret is stored as %q: want it sealed", raw)
	}
	// Rotation: the old secret signs until the grace ends.
	if err := f.s.RotateWebhookSecret(f.ctx, e.ID, "whsec_bmV3bmV3bmV3bmV3bmV3bmV3bmV3bmV3", f.clk.Now().Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	sec, _ = f.s.WebhookSecrets(f.ctx, e.ID)
	if at := sec.At(f.clk.Now()); len(at) != 2 || at[1] != testSecret || len(sec.At(f.clk.Now().Add(time.Hour))) != 1 {
		t.Fatalf("after rotation %+v", sec)
	}
	// Refusals write nothing.
	before := f.snapshotAll()
	for _, in := range []NewWebhookEndpoint{
		{URL: "ftp://a.example", Secret: testSecret}, {URL: "https://a.example/#x", Secret: testSecret},
		{URL: "https://u:p@a.example", Secret: testSecret}, {URL: "https://a.example", FilterTypes: []string{"x"}, Secret: testSecret},
		{URL: "https://a.example", CompanyIDs: []string{"co_0000000000000000"}, Secret: testSecret},
		{URL: "https://a.example", Description: "a\x1b[2J", Secret: testSecret}, {URL: "https://a.example"},
	} {
		if _, err := f.s.CreateWebhookEndpoint(f.ctx, in); !errors.Is(err, ErrInvalid) {
			t.Fatalf("%+v: %v, want ErrInvalid", in, err)
		}
	}
	if _, err := f.s.UpdateWebhookEndpoint(f.ctx, e.ID, WebhookEndpointPatch{}); !errors.Is(err, ErrInvalid) {
		t.Fatalf("empty patch: %v", err)
	}
	if f.snapshotAll() != before {
		t.Fatal("a refused write changed Redis")
	}
	// Disable, then enable: the reason and the run of failures go.
	f.clk.Advance(time.Minute)
	off, err := f.s.UpdateWebhookEndpoint(f.ctx, e.ID, WebhookEndpointPatch{Disabled: ptr(true)})
	if err != nil || !off.Disabled || off.DisabledReason == "" || off.DisabledAt == nil || !off.UpdatedAt.Equal(f.clk.Now()) {
		t.Fatalf("disable: %+v %v", off, err)
	}
	f.rdb.HSet(f.ctx, f.s.kWebhookEndpoint(e.ID), "ff", ms(f.clk.Now()))
	on, err := f.s.UpdateWebhookEndpoint(f.ctx, e.ID, WebhookEndpointPatch{Disabled: ptr(false), FilterTypes: &[]string{}})
	got, _ := f.s.WebhookEndpoint(f.ctx, e.ID)
	if err != nil || on.Disabled || got.Disabled || got.DisabledReason != "" || got.FailingSince != nil || len(got.FilterTypes) != 0 {
		t.Fatalf("enable: %+v %+v %v", on, got, err)
	}
	// Listing pages by creation.
	for i := range 3 {
		f.clk.Advance(time.Second)
		if _, err := f.s.CreateWebhookEndpoint(f.ctx, NewWebhookEndpoint{URL: fmt.Sprint("https://b.example/", i), Secret: testSecret}); err != nil {
			t.Fatal(err)
		}
	}
	var seen []string
	for cursor := ""; ; {
		page, err := f.s.ListWebhookEndpoints(f.ctx, cursor, 2)
		if err != nil {
			t.Fatal(err)
		}
		for _, ep := range page.Endpoints {
			seen = append(seen, ep.URL)
		}
		if cursor = page.Next; cursor == "" {
			break
		}
	}
	if !slices.Equal(seen, []string{"https://a.example/x", "https://b.example/0", "https://b.example/1", "https://b.example/2"}) {
		t.Fatalf("listing %v", seen)
	}
	all, v, err := f.s.AllWebhookEndpoints(f.ctx)
	if err != nil || len(all) != 4 || v != version() {
		t.Fatalf("all %d at %d (version %d): %v", len(all), v, version(), err)
	}
	if err := f.s.DeleteWebhookEndpoint(f.ctx, e.ID); err != nil {
		t.Fatal(err)
	}
	for _, err := range []error{f.s.DeleteWebhookEndpoint(f.ctx, e.ID), func() error { _, err := f.s.WebhookEndpoint(f.ctx, e.ID); return err }(),
		func() error {
			_, err := f.s.UpdateWebhookEndpoint(f.ctx, e.ID, WebhookEndpointPatch{Description: ptr("x")})
			return err
		}(),
		f.s.RotateWebhookSecret(f.ctx, e.ID, testSecret, f.clk.Now())} {
		if !errors.Is(err, ErrNotFound) {
			t.Fatalf("deleted endpoint: %v, want ErrNotFound", err)
		}
	}
	if n, _ := f.rdb.Exists(f.ctx, f.s.kWebhookEndpoint(e.ID)).Result(); n != 0 {
		t.Fatal("an update after the deletion left a stub")
	}
}

// snapshotAll is every key and value of the fixture's Redis.
func (f *fixture) snapshotAll() string {
	f.t.Helper()
	keys, err := f.rdb.Keys(f.ctx, "*").Result()
	if err != nil {
		f.t.Fatal(err)
	}
	slices.Sort(keys)
	out := ""
	for _, k := range keys {
		v, _ := f.rdb.Dump(f.ctx, k).Result()
		out += k + "=" + v + "\n"
	}
	return out
}

func testWebhookMessages(t *testing.T, b backend) {
	f := newFixture(t, b, nil)
	ret := 24 * time.Hour
	at := f.clk.Now()
	var msgs []NewWebhookMessage
	for i := range 7 {
		typ := EventConnectionUpdated
		if i%3 == 0 {
			typ = EventConnectionCreated
		}
		conn := "cn_00000000000000a" + fmt.Sprint(i%2)
		// Three messages share a millisecond: pages must not lose or repeat them.
		msgs = append(msgs, NewWebhookMessage{ID: fmt.Sprintf("msg_%s_%d_x", conn, i), Type: typ, ConnectionID: conn, CompanyID: f.co.ID,
			Time: at.Add(time.Duration(max(i-2, 0)) * time.Minute), Body: []byte(fmt.Sprintf(`{"n":%d}`, i)), Endpoints: []string{"ep_0000000000000001"}})
	}
	if err := f.s.SaveWebhookMessages(f.ctx, msgs, ret); err != nil {
		t.Fatal(err)
	}
	// Saving again (a dispatcher that died before acknowledging) keeps the
	// first body and every state.
	if _, _, err := f.s.RecordWebhookAttempt(f.ctx, WebhookAttempt{MessageID: msgs[0].ID, EndpointID: "ep_0000000000000001", Timestamp: at, Status: DeliverySuccess},
		AttemptOutcome{Series: true, Success: true, Retention: ret, DisableAfter: time.Hour}); err != nil {
		t.Fatal(err)
	}
	again := slices.Clone(msgs)
	again[0].Body = []byte(`{"changed":true}`)
	if err := f.s.SaveWebhookMessages(f.ctx, again, ret); err != nil {
		t.Fatal(err)
	}
	m, err := f.s.GetWebhookMessage(f.ctx, msgs[0].ID)
	if err != nil || string(m.Payload) != `{"n":0}` || m.DeliveryTo("ep_0000000000000001").Status != DeliverySuccess || m.EventType != EventConnectionCreated {
		t.Fatalf("message after a second save %+v, %v", m, err)
	}
	if pttl, _ := f.rdb.PTTL(f.ctx, f.s.kWebhookMessage(msgs[0].ID)).Result(); pttl <= ret-time.Minute || pttl > ret {
		t.Fatalf("message TTL %s, want about %s", pttl, ret)
	}
	// Pages, newest first, with each filter.
	list := func(flt WebhookMessageFilter, limit int) []string {
		var ids []string
		for cursor := ""; ; {
			page, err := f.s.ListWebhookMessages(f.ctx, flt, cursor, limit)
			if err != nil {
				t.Fatal(err)
			}
			for _, m := range page.Messages {
				ids = append(ids, m.ID)
			}
			if cursor = page.Next; cursor == "" {
				return ids
			}
		}
	}
	want := func(keep func(NewWebhookMessage) bool) []string {
		var ids []string
		for i := len(msgs) - 1; i >= 0; i-- {
			if keep(msgs[i]) {
				ids = append(ids, msgs[i].ID)
			}
		}
		return ids
	}
	for _, tc := range []struct {
		flt  WebhookMessageFilter
		keep func(NewWebhookMessage) bool
	}{
		{WebhookMessageFilter{}, func(NewWebhookMessage) bool { return true }},
		{WebhookMessageFilter{EventType: EventConnectionCreated}, func(m NewWebhookMessage) bool { return m.Type == EventConnectionCreated }},
		{WebhookMessageFilter{ConnectionID: "cn_00000000000000a1"}, func(m NewWebhookMessage) bool { return m.ConnectionID == "cn_00000000000000a1" }},
		{WebhookMessageFilter{ConnectionID: "cn_00000000000000a0", EventType: EventConnectionUpdated},
			func(m NewWebhookMessage) bool {
				return m.ConnectionID == "cn_00000000000000a0" && m.Type == EventConnectionUpdated
			}},
	} {
		w := want(tc.keep)
		// Ties share a millisecond and come in reverse ID order.
		for _, limit := range []int{1, 2, 3, 100} {
			got := list(tc.flt, limit)
			slices.Sort(got)
			ws := slices.Clone(w)
			slices.Sort(ws)
			if !slices.Equal(got, ws) {
				t.Fatalf("%+v by %d: %v, want %v", tc.flt, limit, got, ws)
			}
		}
	}
	// The window of a recovery, oldest first, in pages.
	var between []string
	for cursor := ""; ; {
		page, next, err := f.s.WebhookMessagesBetween(f.ctx, at, at.Add(3*time.Minute), cursor, 2)
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range page {
			between = append(between, m.ID)
		}
		if cursor = next; cursor == "" {
			break
		}
	}
	if len(between) != 6 || slices.Contains(between, msgs[6].ID) {
		t.Fatalf("window: %v", between)
	}
	// Expired by the clock: a message older than the retention is not kept.
	old := NewWebhookMessage{ID: "msg_old", Type: EventConnectionCreated, ConnectionID: "cn_00000000000000a0", Time: at.Add(-2 * ret), Body: []byte("{}")}
	if err := f.s.SaveWebhookMessages(f.ctx, []NewWebhookMessage{old}, ret); err != nil {
		t.Fatal(err)
	}
	if _, err := f.s.GetWebhookMessage(f.ctx, "msg_old"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("an expired message was kept: %v", err)
	}
	for _, c := range []string{"garbage", "1.", "x.msg_1", "-1.msg_1"} {
		if _, err := f.s.ListWebhookMessages(f.ctx, WebhookMessageFilter{}, c, 1); !errors.Is(err, ErrInvalid) {
			t.Fatalf("cursor %q: %v", c, err)
		}
	}
}

func testWebhookAttempts(t *testing.T, b backend) {
	f := newFixture(t, b, nil)
	ep, err := f.s.CreateWebhookEndpoint(f.ctx, NewWebhookEndpoint{URL: "https://a.example/", Secret: testSecret})
	if err != nil {
		t.Fatal(err)
	}
	ret, after := 24*time.Hour, time.Hour
	msg := NewWebhookMessage{ID: "msg_a", Type: EventConnectionCreated, ConnectionID: "cn_00000000000000a0", Time: f.clk.Now(),
		Body: []byte("{}"), Endpoints: []string{ep.ID}}
	if err := f.s.SaveWebhookMessages(f.ctx, []NewWebhookMessage{msg}, ret); err != nil {
		t.Fatal(err)
	}
	state := func() WebhookDelivery {
		tg, err := f.s.LoadWebhookTarget(f.ctx, "msg_a", ep.ID)
		if err != nil {
			t.Fatal(err)
		}
		return tg.Delivery
	}
	record := func(o AttemptOutcome, trigger string) string {
		t.Helper()
		o.Retention, o.DisableAfter, o.GoneReason, o.StaleReason = ret, after, "gone", "stale"
		_, disabled, err := f.s.RecordWebhookAttempt(f.ctx, WebhookAttempt{MessageID: "msg_a", EndpointID: ep.ID, Timestamp: f.clk.Now(),
			Trigger: trigger}, o)
		if err != nil {
			t.Fatal(err)
		}
		return disabled
	}
	// The delivery's state through a schedule: pending, a resend that
	// fails leaves it pending, a success ends it, a failing resend after
	// that does not undo it.
	for _, step := range []struct {
		o       AttemptOutcome
		trigger string
		status  string
		n, ids  int
	}{
		{AttemptOutcome{Series: true}, TriggerScheduled, DeliveryPending, 1, 1},
		{AttemptOutcome{}, TriggerResend, DeliveryPending, 1, 2},
		{AttemptOutcome{Series: true}, TriggerRetry, DeliveryPending, 2, 3},
		{AttemptOutcome{Series: true, Success: true}, TriggerRetry, DeliverySuccess, 3, 4},
		{AttemptOutcome{}, TriggerResend, DeliverySuccess, 3, 5},
	} {
		f.clk.Advance(time.Second)
		if d := record(step.o, step.trigger); d != "" {
			t.Fatalf("%s disabled the endpoint: %s", step.trigger, d)
		}
		if d := state(); d.Status != step.status || d.Attempts != step.n || len(d.AttemptIDs()) != step.ids {
			t.Fatalf("after %s %+v: %+v", step.trigger, step.o, d)
		}
	}
	as, err := f.s.WebhookMessageAttempts(f.ctx, "msg_a")
	if err != nil || len(as) != 5 || as[0].Trigger != TriggerScheduled || as[4].Trigger != TriggerResend {
		t.Fatalf("message attempts %+v, %v", as, err)
	}
	// The endpoint's log pages newest first.
	var ids []string
	for cursor := ""; ; {
		page, err := f.s.WebhookEndpointAttempts(f.ctx, ep.ID, cursor, 2)
		if err != nil {
			t.Fatal(err)
		}
		for _, a := range page.Attempts {
			ids = append(ids, a.ID)
		}
		if cursor = page.Next; cursor == "" {
			break
		}
	}
	if len(ids) != 5 || ids[0] != as[4].ID || ids[4] != as[0].ID {
		t.Fatalf("endpoint log %v, message attempts %v", ids, as)
	}
	// Failures for DisableAfter disable the endpoint once; a 410 at once.
	record(AttemptOutcome{Series: true}, TriggerScheduled)
	f.clk.Advance(after - time.Second)
	if d := record(AttemptOutcome{Series: true}, TriggerRetry); d != "" {
		t.Fatalf("disabled before DisableAfter: %s", d)
	}
	f.clk.Advance(time.Second)
	if d := record(AttemptOutcome{Series: true}, TriggerRetry); d != "stale" {
		t.Fatalf("after DisableAfter of failures: %q", d)
	}
	if d := record(AttemptOutcome{Series: true, Gone: true, Final: true}, TriggerRetry); d != "" {
		t.Fatalf("disabled twice: %q", d)
	}
	e2, _ := f.s.CreateWebhookEndpoint(f.ctx, NewWebhookEndpoint{URL: "https://b.example/", Secret: testSecret})
	msg.ID, msg.Endpoints = "msg_b", []string{e2.ID}
	if err := f.s.SaveWebhookMessages(f.ctx, []NewWebhookMessage{msg}, ret); err != nil {
		t.Fatal(err)
	}
	_, d, err := f.s.RecordWebhookAttempt(f.ctx, WebhookAttempt{MessageID: "msg_b", EndpointID: e2.ID, Timestamp: f.clk.Now()},
		AttemptOutcome{Series: true, Gone: true, Final: true, Retention: ret, DisableAfter: after, GoneReason: "gone"})
	if err != nil || d != "gone" {
		t.Fatalf("a 410: %q %v", d, err)
	}
	if err := f.s.FailWebhookDelivery(f.ctx, "msg_b", e2.ID); err != nil {
		t.Fatal(err)
	}
	if tg, err := f.s.LoadWebhookTarget(f.ctx, "msg_b", e2.ID); err != nil || tg.Delivery.Status != DeliveryFailed || !tg.Endpoint.Disabled {
		t.Fatalf("after a 410: %+v %v", tg, err)
	}
	if _, err := f.s.LoadWebhookTarget(f.ctx, "msg_none", e2.ID); !errors.Is(err, ErrWebhookMessageGone) {
		t.Fatalf("unknown message: %v", err)
	}
	if _, err := f.s.LoadWebhookTarget(f.ctx, "msg_b", "ep_0000000000000009"); !errors.Is(err, ErrWebhookEndpointGone) {
		t.Fatalf("unknown endpoint: %v", err)
	}
}

func testEventGroup(t *testing.T, b backend, real bool) {
	f := newFixture(t, b, func(c *Config) { c.EventsMaxLen = 5 })
	if err := f.s.EnsureEventGroup(f.ctx, "g"); err != nil {
		t.Fatal(err)
	}
	if err := f.s.EnsureEventGroup(f.ctx, "g"); err != nil { // idempotent
		t.Fatalf("second EnsureEventGroup: %v", err)
	}
	for range 40 {
		f.conn("user_good")
	}
	if n, err := f.rdb.XLen(f.ctx, f.s.kEvents()).Result(); err != nil || n != 40 {
		t.Fatalf("stream %d, %v; want 40 (nothing trimmed)", n, err)
	}
	a, err := f.s.ReadEvents(f.ctx, "g", "a", 10, 0)
	if err != nil || len(a.Events) != 10 {
		t.Fatalf("read %d, %v", len(a.Events), err)
	}
	bb, _ := f.s.ReadEvents(f.ctx, "g", "b", 10, 0)
	if len(bb.Events) != 10 || bb.Events[0].ID == a.Events[0].ID {
		t.Fatal("two consumers read the same events")
	}
	// b acknowledges; a's stay pending: the floor stays before them.
	var ids []string
	for _, ev := range bb.Events {
		ids = append(ids, ev.ID)
	}
	if err := f.s.AckEvents(f.ctx, "g", ids); err != nil {
		t.Fatal(err)
	}
	floor, _ := f.rdb.Get(f.ctx, f.s.kEventsFloor()).Result()
	if floor != a.Events[0].ID {
		t.Fatalf("floor %s, want a's oldest pending %s", floor, a.Events[0].ID)
	}
	if n, _ := f.s.EventBacklog(f.ctx, "g"); n != 30 && real {
		t.Fatalf("backlog %d, want 30", n) // miniredis reports no lag
	}
	// a dies; c takes its events over once they are idle.
	c, next, err := f.s.ClaimEvents(f.ctx, "g", "c", 0, "0-0", 100)
	if err != nil || len(c.Events) != 10 || c.Events[0].ID != a.Events[0].ID || next != "0-0" {
		t.Fatalf("claimed %d, next %s: %v", len(c.Events), next, err)
	}
	pending, err := f.s.ReadPendingEvents(f.ctx, "g", "c", 100)
	if err != nil || len(pending.Events) != 10 {
		t.Fatalf("c's pending %d, %v", len(pending.Events), err)
	}
	ids = ids[:0]
	for _, ev := range c.Events {
		ids = append(ids, ev.ID)
	}
	if err := f.s.AckEvents(f.ctx, "g", ids); err != nil {
		t.Fatal(err)
	}
	floor, _ = f.rdb.Get(f.ctx, f.s.kEventsFloor()).Result()
	if last := bb.Events[len(bb.Events)-1].ID; floor != last { // nothing pending: up to the last delivered
		t.Fatalf("floor %s, want %s", floor, last)
	}
	// An acknowledgement with nothing pending does not move it back.
	if err := f.s.AckEvents(f.ctx, "g", nil); err != nil {
		t.Fatal(err)
	}
	if again, _ := f.rdb.Get(f.ctx, f.s.kEventsFloor()).Result(); again != floor {
		t.Fatalf("the floor moved to %s", again)
	}
	// A write now trims before the floor.
	f.conn("user_good")
	evs, _ := f.s.Events(f.ctx, "", 1000)
	if streamIDLess(evs[0].ID, a.Events[0].ID) {
		t.Fatalf("the stream still starts at %s, before the floor %s", evs[0].ID, floor)
	}
	if len(evs) < 21 {
		t.Fatalf("undispatched events were trimmed: %d left", len(evs))
	}
}

// testWebhookConnListing proves that a connection's listing of messages
// expires with its newest message (a later one extends it, an older one
// saved late does not shorten it) and drops the messages older than the
// retention when a new one comes.
func testWebhookConnListing(t *testing.T, b backend) {
	f := newFixture(t, b, nil)
	ret := 24 * time.Hour
	const conn = "cn_00000000000000c0"
	save := func(id string, at time.Time) {
		t.Helper()
		m := NewWebhookMessage{ID: id, Type: EventConnectionUpdated, ConnectionID: conn, CompanyID: f.co.ID, Time: at,
			Body: []byte("{}"), Endpoints: []string{"ep_0000000000000001"}}
		if err := f.s.SaveWebhookMessages(f.ctx, []NewWebhookMessage{m}, ret); err != nil {
			t.Fatal(err)
		}
	}
	check := func(what string, want []string, ttl time.Duration) {
		t.Helper()
		ids, err := f.rdb.ZRange(f.ctx, f.s.kWebhookConnMessages(conn), 0, -1).Result()
		if err != nil || !slices.Equal(ids, want) {
			t.Fatalf("%s: listing %v, %v; want %v", what, ids, err, want)
		}
		if pttl, err := f.rdb.PTTL(f.ctx, f.s.kWebhookConnMessages(conn)).Result(); err != nil || pttl <= ttl-time.Minute || pttl > ttl {
			t.Fatalf("%s: listing TTL %s, %v; want about %s", what, pttl, err, ttl)
		}
	}
	t0 := f.clk.Now()
	save("msg_c_1", t0)
	check("the first message", []string{"msg_c_1"}, ret)
	f.clk.Advance(2 * time.Hour)
	save("msg_c_2", f.clk.Now())
	check("a later message", []string{"msg_c_1", "msg_c_2"}, ret)
	save("msg_c_0", t0.Add(-time.Hour)) // an older change dispatched late
	check("an older message saved late", []string{"msg_c_0", "msg_c_1", "msg_c_2"}, ret)
	f.clk.Advance(23 * time.Hour) // msg_c_0 and msg_c_1 are past the retention
	save("msg_c_3", f.clk.Now())
	check("a message a retention later", []string{"msg_c_2", "msg_c_3"}, ret)
}

// testWebhookTargetChanges proves that an attempt's target follows every
// change of its endpoint from the next load on, though the store keeps
// the endpoint decoded between attempts: changes made by another store
// (another process: the API) to the URL, the secret (a rotation), the
// disabled flag, the run of failures, and the endpoint's deletion. It
// also proves that recording an attempt recreates neither a deleted
// endpoint nor an expired message.
func testWebhookTargetChanges(t *testing.T, b backend) {
	f := newFixture(t, b, nil)
	api, err := New(f.rdb, f.s.cfg) // another process's store over the same Redis
	if err != nil {
		t.Fatal(err)
	}
	ep, err := api.CreateWebhookEndpoint(f.ctx, NewWebhookEndpoint{URL: "https://a.example/", Secret: testSecret})
	if err != nil {
		t.Fatal(err)
	}
	ret := 24 * time.Hour
	msg := NewWebhookMessage{ID: "msg_a", Type: EventConnectionCreated, ConnectionID: "cn_00000000000000a0", Time: f.clk.Now(),
		Body: []byte(`{"a":1}`), Endpoints: []string{ep.ID}}
	if err := f.s.SaveWebhookMessages(f.ctx, []NewWebhookMessage{msg}, ret); err != nil {
		t.Fatal(err)
	}
	load := func(what string) WebhookTarget {
		t.Helper()
		tg, err := f.s.LoadWebhookTarget(f.ctx, "msg_a", ep.ID)
		if err != nil {
			t.Fatalf("%s: %v", what, err)
		}
		if string(tg.Body) != `{"a":1}` || tg.Delivery.EndpointID != ep.ID {
			t.Fatalf("%s: body %s, delivery %+v", what, tg.Body, tg.Delivery)
		}
		return tg
	}
	decoded := func() *decodedEndpoint {
		f.s.epDecodes.mu.Lock()
		defer f.s.epDecodes.mu.Unlock()
		return f.s.epDecodes.m[ep.ID]
	}
	var first *decodedEndpoint
	for i := range 2 { // the second load decodes nothing: the same answer
		if tg := load("first loads"); tg.Endpoint.URL != "https://a.example/" || tg.Endpoint.Disabled ||
			tg.Secrets.Current != testSecret || tg.Secrets.Previous != "" || tg.Endpoint.FailingSince != nil {
			t.Fatalf("load %d: %+v %+v", i+1, tg.Endpoint, tg.Secrets)
		}
		if i == 0 {
			first = decoded()
		} else if d := decoded(); d == nil || d != first {
			t.Fatalf("the second load of an unchanged endpoint decoded it again (%p, then %p)", first, d)
		}
	}
	const fresh = "whsec_bmV3bmV3bmV3bmV3bmV3bmV3bmV3bmV3"
	grace := f.clk.Now().Add(time.Hour)
	if err := api.RotateWebhookSecret(f.ctx, ep.ID, fresh, grace); err != nil {
		t.Fatal(err)
	}
	if s := load("after a rotation").Secrets; s.Current != fresh || s.Previous != testSecret || !s.PreviousUntil.Equal(grace) {
		t.Fatalf("after a rotation: %+v", s)
	}
	u := "https://b.example/hooks"
	if _, err := api.UpdateWebhookEndpoint(f.ctx, ep.ID, WebhookEndpointPatch{URL: &u}); err != nil {
		t.Fatal(err)
	}
	if e := load("after a new URL").Endpoint; e.URL != u || e.Disabled {
		t.Fatalf("after a new URL: %+v", e)
	}
	if _, err := api.UpdateWebhookEndpoint(f.ctx, ep.ID, WebhookEndpointPatch{Disabled: new(true)}); err != nil {
		t.Fatal(err)
	}
	if e := load("after disabling").Endpoint; !e.Disabled || e.DisabledReason != "disabled by an operator" {
		t.Fatalf("after disabling: %+v", e)
	}
	if _, err := api.UpdateWebhookEndpoint(f.ctx, ep.ID, WebhookEndpointPatch{Disabled: new(false)}); err != nil {
		t.Fatal(err)
	}
	if e := load("after enabling").Endpoint; e.Disabled || e.URL != u {
		t.Fatalf("after enabling: %+v", e)
	}
	// A failure starts the run of failures, a success ends it.
	rec := func(success bool) string {
		t.Helper()
		_, disabled, err := api.RecordWebhookAttempt(f.ctx, WebhookAttempt{MessageID: "msg_a", EndpointID: ep.ID, Timestamp: f.clk.Now()},
			AttemptOutcome{Series: true, Success: success, Retention: ret, DisableAfter: time.Hour, StaleReason: "stale"})
		if err != nil {
			t.Fatal(err)
		}
		return disabled
	}
	rec(false)
	if e := load("after a failure").Endpoint; e.FailingSince == nil || !e.FailingSince.Equal(f.clk.Now()) {
		t.Fatalf("after a failure: failing since %v, want %v", e.FailingSince, f.clk.Now())
	}
	rec(true)
	if e := load("after a success").Endpoint; e.FailingSince != nil {
		t.Fatalf("after a success: failing since %v", e.FailingSince)
	}
	// Failing for DisableAfter disables it (the attempt's own record).
	rec(false)
	f.clk.Advance(time.Hour)
	if d := rec(false); d != "stale" {
		t.Fatalf("failing for DisableAfter: disabled %q", d)
	}
	if e := load("after being disabled by failures").Endpoint; !e.Disabled || e.DisabledReason != "stale" {
		t.Fatalf("after being disabled by failures: %+v", e)
	}
	if err := api.DeleteWebhookEndpoint(f.ctx, ep.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := f.s.LoadWebhookTarget(f.ctx, "msg_a", ep.ID); !errors.Is(err, ErrWebhookEndpointGone) {
		t.Fatalf("after the endpoint's deletion: %v, want ErrWebhookEndpointGone", err)
	}
	// An attempt in flight when its endpoint was deleted, or its message
	// expired, records its log entry and recreates neither.
	for _, success := range []bool{true, false} {
		rec(success)
		if n, err := f.rdb.Exists(f.ctx, f.s.kWebhookEndpoint(ep.ID)).Result(); err != nil || n != 0 {
			t.Fatalf("a deleted endpoint after an attempt's record (success %v): exists %d, %v", success, n, err)
		}
	}
	if err := f.rdb.Del(f.ctx, f.s.kWebhookMessage("msg_a")).Err(); err != nil {
		t.Fatal(err)
	}
	rec(true)
	if n, err := f.rdb.Exists(f.ctx, f.s.kWebhookMessage("msg_a")).Result(); err != nil || n != 0 {
		t.Fatalf("an expired message after an attempt's record: exists %d, %v", n, err)
	}
}

// FuzzAppendAttempt holds appendAttempt to json.Marshal: the same bytes,
// or an error where json.Marshal fails (a time it cannot write).
func FuzzAppendAttempt(f *testing.F) {
	for _, seed := range fuzzSeeds() {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		d := fuzzData(data)
		at := func() time.Time {
			zones := []*time.Location{time.UTC, time.FixedZone("", 5*3600+30*60), time.FixedZone("", -7*3600-13),
				time.FixedZone("", 24*3600), time.FixedZone("", -99*3600)}
			return time.Unix(d.int64()%(400_000*365*86400), d.int64()%1e9).In(zones[int(d.byte())%len(zones)])
		}
		a := WebhookAttempt{ID: d.str(), MessageID: d.str(), EndpointID: d.str(), URL: d.str(), Timestamp: at(),
			Trigger: d.str(), Attempt: int(d.int64()), Status: d.str(), ResponseStatusCode: int(d.int64()), Error: d.str(),
			DurationMs: d.int64(), Response: d.str()}
		if d.byte()%2 == 1 {
			a.NextAttemptAt = new(at())
		}
		want, werr := json.Marshal(a)
		got, err := appendAttempt(nil, &a)
		if (err != nil) != (werr != nil) || !bytes.Equal(got, want) {
			t.Fatalf("appendAttempt(%#v)\n= %q, %v\nwant %q, %v", a, got, err, want, werr)
		}
	})
}
