package store

import (
	"bytes"
	"encoding/json"
	"fmt"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/checkd/checkd/checks"
)

// The event tests compare each event with GET details before and after
// its write, through an implementation of their own: the JSON of the two
// connections, field by field.

// timestampFields are the fields of GET details whose change alone makes
// no event (each account's statusLastUpdateTime too), and nextCheckAt,
// which comes from the schedule and is never named.
var timestampFields = []string{"statusLastUpdateTime", "lastCheckAt", "lastSuccessAt", "nextCheckAt"}

// viewFields decodes c's JSON into its fields, in the order it writes them.
func viewFields(t testing.TB, c Connection) ([]string, map[string]json.RawMessage) {
	t.Helper()
	b, err := json.Marshal(c)
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]json.RawMessage
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	var order []string
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.Token() // {
	for dec.More() {
		k, _ := dec.Token()
		order = append(order, k.(string))
		var skip json.RawMessage
		dec.Decode(&skip)
	}
	return order, m
}

// viewDiff names the fields whose JSON differs between a and b (a field
// absent on one side differs from any value), nextCheckAt excepted, and
// says whether any of them is more than a timestamp a check moves.
func viewDiff(t testing.TB, a, b Connection) (changed []string, emits bool) {
	t.Helper()
	oa, ma := viewFields(t, a)
	ob, mb := viewFields(t, b)
	// GET details' order: the struct's (a field omitted when empty on one
	// side is placed as the struct places it).
	var order []string
	ct := reflect.TypeFor[Connection]()
	for i := range ct.NumField() {
		k, _, _ := strings.Cut(ct.Field(i).Tag.Get("json"), ",")
		if slices.Contains(oa, k) || slices.Contains(ob, k) {
			order = append(order, k)
		}
	}
	for _, k := range order {
		if k == "nextCheckAt" || bytes.Equal(ma[k], mb[k]) {
			continue
		}
		changed = append(changed, k)
		switch {
		case k == "accounts":
			emits = emits || !accountsTimestampsOnly(t, a.Accounts, b.Accounts)
		case !slices.Contains(timestampFields, k):
			emits = true
		}
	}
	return changed, emits
}

// accountsTimestampsOnly: the two lists differ at most in their accounts'
// statusLastUpdateTime.
func accountsTimestampsOnly(t testing.TB, a, b []Account) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		x, y := a[i], b[i]
		x.StatusLastUpdateTime, y.StatusLastUpdateTime = time.Time{}, time.Time{}
		if !reflect.DeepEqual(x, y) {
			return false
		}
	}
	return true
}

// sameButTimestamps: a and b are equal but for the timestamp fields.
func sameButTimestamps(t testing.TB, a, b Connection) bool {
	_, emits := viewDiff(t, a, b)
	return !emits
}

// eventTransitions are the status transitions an event tells: the
// connection's and its accounts', as the history records them.
func eventTransitions(ev Event) []chaosTr {
	t := ms(ev.Time)
	var out []chaosTr
	var old Connection
	if ev.Old != nil {
		old = *ev.Old
	}
	if old.Status != ev.Connection.Status {
		out = append(out, chaosTr{"", string(old.Status), string(ev.Connection.Status), ev.Cause, t})
	}
	was := map[string]Account{}
	for _, a := range old.Accounts {
		was[a.ID] = a
	}
	for _, a := range ev.Connection.Accounts {
		if p, ok := was[a.ID]; !ok || p.Status != a.Status {
			out = append(out, chaosTr{a.ID, string(p.Status), string(a.Status), ev.Cause, t})
		}
	}
	return out
}

// checkEvents checks the events of one connection's writes between two
// reads of GET details: before (nil: the connection did not exist) and
// after. Each event holds the connection before and after its write and
// names exactly what changed between them ("credentials" exactly when
// credsReplaced); they chain (timestamp-only writes between them
// excepted); their sequence counts from seq; a check that changed the
// connection's status adds connection.validated.v2; and writes that moved
// only timestamps made none. It returns the last sequence.
func checkEvents(t testing.TB, before *Connection, after Connection, evs []Event, seq int64, credsReplaced bool) (int64, error) {
	t.Helper()
	prev := before
	creds := 0
	for i, ev := range evs {
		if ev.Sequence != seq+1 {
			return seq, fmt.Errorf("event %d of %s: sequence %d, want %d", i, ev.ConnectionID, ev.Sequence, seq+1)
		}
		seq = ev.Sequence
		if ev.ConnectionID != after.ID || ev.CompanyID != after.CompanyID || ev.Connection.ID != after.ID {
			return seq, fmt.Errorf("event %d names %s of %s, want %s of %s", i, ev.ConnectionID, ev.CompanyID, after.ID, after.CompanyID)
		}
		if prev == nil {
			if !slices.Equal(ev.Types, []string{EventConnectionCreated}) || ev.Old != nil || len(ev.ProtectedChanges) != 0 || ev.Sequence != 1 {
				return seq, fmt.Errorf("first event of %s is not its creation: %+v", after.ID, ev)
			}
			c := ev.Connection
			prev = &c
			continue
		}
		if ev.Old == nil || !sameButTimestamps(t, *ev.Old, *prev) {
			return seq, fmt.Errorf("event %d of %s: old %+v\ndoes not follow %+v", i, after.ID, ev.Old, prev)
		}
		if ev.Old.NextCheckAt != nil {
			return seq, fmt.Errorf("event %d of %s: old has a nextCheckAt", i, after.ID)
		}
		want, emits := viewDiff(t, *ev.Old, ev.Connection)
		pc := ev.ProtectedChanges
		if slices.Contains(pc, "credentials") {
			creds++
			pc = slices.DeleteFunc(slices.Clone(pc), func(s string) bool { return s == "credentials" })
			emits = true
		}
		if !slices.Equal(pc, want) || !emits {
			return seq, fmt.Errorf("event %d of %s (%s): protectedChanges %v, GET details changed %v (more than timestamps: %v)",
				i, after.ID, ev.Cause, ev.ProtectedChanges, want, emits)
		}
		types := []string{EventConnectionUpdated}
		if ev.Cause == CauseCheck && ev.Old.Status != ev.Connection.Status {
			types = append(types, EventConnectionValidated)
		}
		if !slices.Equal(ev.Types, types) {
			return seq, fmt.Errorf("event %d of %s (%s, %s → %s): types %v, want %v", i, after.ID, ev.Cause, ev.Old.Status, ev.Connection.Status, ev.Types, types)
		}
		c := ev.Connection
		prev = &c
	}
	if credsReplaced != (creds > 0) || creds > 1 {
		return seq, fmt.Errorf("%s: %d events name replaced credentials, credentials replaced: %v", after.ID, creds, credsReplaced)
	}
	if prev == nil || !sameButTimestamps(t, *prev, after) {
		return seq, fmt.Errorf("%s: the events end at %+v\nGET details shows %+v", after.ID, prev, after)
	}
	return seq, nil
}

// eventsOf reads every event after after, returning them by connection
// and the last ID read.
func (f *fixture) eventsOf(after string) (map[string][]Event, string) {
	f.t.Helper()
	out := map[string][]Event{}
	for {
		page, err := f.s.Events(f.ctx, after, 1000)
		if err != nil {
			f.t.Fatal(err)
		}
		if len(page) == 0 {
			return out, after
		}
		for _, ev := range page {
			out[ev.ConnectionID] = append(out[ev.ConnectionID], ev)
		}
		after = page[len(page)-1].ID
	}
}

// TestEventsExact: every kind of write that changes what GET details shows
// makes exactly one event, naming exactly the fields it changed, with the
// connection before and after as GET details showed it (nextCheckAt
// included); a write that moves only timestamps makes none.
func TestEventsExact(t *testing.T) {
	t.Run("miniredis", func(t *testing.T) { t.Parallel(); testEventsExact(t, miniBackend) })
	t.Run("redis", func(t *testing.T) { t.Parallel(); testEventsExact(t, realBackend) })
}

func testEventsExact(t *testing.T, b backend) {
	f := newFixture(t, b, func(c *Config) { c.EventsMaxLen = 1 << 20 })
	other, err := f.s.CreateCompany(f.ctx, NewCompany{Name: "Other"})
	if err != nil {
		t.Fatal(err)
	}
	c := f.conn("user_good")
	at := t0
	check := func(attempt string, res checks.Result) func() {
		return func() {
			at = at.Add(time.Hour)
			f.clk.Set(at.Add(time.Second))
			f.record(c.ID, attempt, at, res)
		}
	}
	admin := func(fn func() error) func() {
		return func() {
			at = at.Add(time.Hour)
			f.clk.Set(at)
			if err := fn(); err != nil {
				t.Fatal(err)
			}
		}
	}
	accountID := func(i int) string { return f.get(c.ID).Accounts[i].ID }
	withName := func(r checks.Result, name string) checks.Result {
		r.Accounts[0].Name = name
		return r
	}
	cases := []struct {
		name  string
		write func()
		types []string // nil: no event
		pc    []string
	}{
		{"first check", check("c1", ok("A", "B")), []string{EventConnectionUpdated, EventConnectionValidated},
			[]string{"status", "statusFirstSeenTime", "statusLastUpdateTime", "lastCheckAt", "lastSuccessAt", "lastCheckStatus", "accounts"}},
		{"same result again: timestamps only", check("c2", ok("A", "B")), nil, nil},
		{"an account's name appears", check("c3", withName(ok("A", "B"), "Main meter")), []string{EventConnectionUpdated},
			[]string{"statusLastUpdateTime", "lastCheckAt", "lastSuccessAt", "accounts"}},
		{"a new account", check("c4", withName(ok("A", "B", "C"), "Main meter")), []string{EventConnectionUpdated},
			[]string{"statusLastUpdateTime", "lastCheckAt", "lastSuccessAt", "accounts"}},
		{"website down", check("c5", fail(checks.ConnWebsiteDown, "503")), []string{EventConnectionUpdated, EventConnectionValidated},
			[]string{"status", "statusFirstSeenTime", "statusLastUpdateTime", "statusErrorDetail", "lastCheckAt", "consecutiveFailures",
				"lastCheckStatus", "lastCheckDetail", "accounts"}},
		{"down again, same detail: a failure more", check("c6", fail(checks.ConnWebsiteDown, "503")), []string{EventConnectionUpdated},
			[]string{"statusLastUpdateTime", "lastCheckAt", "consecutiveFailures", "accounts"}},
		{"down again, another detail", check("c7", fail(checks.ConnWebsiteDown, "502")), []string{EventConnectionUpdated},
			[]string{"statusLastUpdateTime", "statusErrorDetail", "lastCheckAt", "consecutiveFailures", "lastCheckDetail", "accounts"}},
		{"recovered", check("c8", withName(ok("A", "B", "C"), "Main meter")), []string{EventConnectionUpdated, EventConnectionValidated},
			[]string{"status", "statusFirstSeenTime", "statusLastUpdateTime", "statusErrorDetail", "lastCheckAt", "lastSuccessAt", "consecutiveFailures",
				"lastCheckStatus", "lastCheckDetail", "accounts"}},
		{"rename", admin(func() error { _, err := f.s.UpdateDetails(f.ctx, c.ID, DetailsPatch{Name: ptr("Plant")}); return err }),
			[]string{EventConnectionUpdated}, []string{"name"}},
		{"start date and occupancy", admin(func() error {
			_, err := f.s.UpdateDetails(f.ctx, c.ID, DetailsPatch{StartDate: ptr("2024-01-31"), OccupancyMultiplier: ptr(1.5)})
			return err
		}), []string{EventConnectionUpdated}, []string{"startDate", "occupancyMultiplier"}},
		{"a patch that changes nothing", admin(func() error { _, err := f.s.UpdateDetails(f.ctx, c.ID, DetailsPatch{Name: ptr("Plant")}); return err }), nil, nil},
		{"confirm an account", admin(func() error {
			_, err := f.s.ConfirmAccounts(f.ctx, c.ID, []AccountDecision{{AccountID: accountID(0), TrackingStatus: checks.TrackingEnabled}})
			return err
		}), []string{EventConnectionUpdated}, []string{"accounts"}},
		{"reject an account", admin(func() error {
			_, err := f.s.ConfirmAccounts(f.ctx, c.ID, []AccountDecision{{AccountID: accountID(1), TrackingStatus: checks.TrackingDisabled}})
			return err
		}), []string{EventConnectionUpdated}, []string{"accounts"}},
		{"credentials replaced while connected", admin(func() error {
			_, err := f.s.UpdateCredentials(f.ctx, c.ID, checks.Credentials{Username: "user_good", Password: "new"})
			return err
		}), []string{EventConnectionUpdated}, []string{"credentialsUpdatedAt", "credentials"}},
		{"deactivated", admin(func() error { _, err := f.s.UpdateDetails(f.ctx, c.ID, DetailsPatch{IsActive: ptr(false)}); return err }),
			[]string{EventConnectionUpdated}, []string{"isActive", "status", "statusFirstSeenTime", "statusLastUpdateTime"}},
		{"reactivated", admin(func() error { _, err := f.s.UpdateDetails(f.ctx, c.ID, DetailsPatch{IsActive: ptr(true)}); return err }),
			[]string{EventConnectionUpdated}, []string{"isActive", "status", "statusFirstSeenTime", "statusLastUpdateTime"}},
		{"company deactivated", admin(func() error { _, err := f.s.SetCompanyActive(f.ctx, f.co.ID, false); return err }),
			[]string{EventConnectionUpdated}, []string{"status", "statusFirstSeenTime", "statusLastUpdateTime", "accounts"}},
		{"another company's change", admin(func() error { _, err := f.s.SetCompanyActive(f.ctx, other.ID, false); return err }), nil, nil},
		{"company reactivated", admin(func() error { _, err := f.s.SetCompanyActive(f.ctx, f.co.ID, true); return err }),
			[]string{EventConnectionUpdated}, []string{"status", "statusFirstSeenTime", "statusLastUpdateTime", "accounts"}},
		{"site assignments", admin(func() error {
			_, err := f.s.UpdateDetails(f.ctx, c.ID, DetailsPatch{SiteIDs: &[]string{"site-1", "site-2"}})
			return err
		}),
			[]string{EventConnectionUpdated}, []string{"siteIds"}},
		{"flagged for investigation", admin(func() error { _, err := f.s.FlagInvestigation(f.ctx, c.ID, "bills look wrong"); return err }),
			[]string{EventConnectionUpdated}, []string{"status", "statusFirstSeenTime", "statusLastUpdateTime", "statusErrorDetail", "investigation"}},
		{"a new investigation note", admin(func() error { _, err := f.s.FlagInvestigation(f.ctx, c.ID, "meter swapped"); return err }),
			[]string{EventConnectionUpdated}, []string{"statusLastUpdateTime", "statusErrorDetail", "investigation"}},
		{"investigation cleared", admin(func() error { _, err := f.s.ClearInvestigation(f.ctx, c.ID); return err }),
			[]string{EventConnectionUpdated}, []string{"status", "statusFirstSeenTime", "statusLastUpdateTime", "statusErrorDetail", "investigation"}},
		{"an account flagged OLD_ACCOUNT", admin(func() error {
			_, err := f.s.FlagAccount(f.ctx, c.ID, AccountFlag{AccountID: accountID(2), Status: checks.AcctOldAccount})
			return err
		}), []string{EventConnectionUpdated}, []string{"accounts"}},
		{"password rejected", check("c9", fail(checks.ConnPasswordIncorrect, "rejected")), []string{EventConnectionUpdated, EventConnectionValidated},
			[]string{"status", "statusFirstSeenTime", "statusLastUpdateTime", "statusErrorDetail", "lastCheckAt", "consecutiveFailures",
				"lastCheckStatus", "lastCheckDetail", "accounts"}},
		{"credentials replaced while blocked", admin(func() error {
			_, err := f.s.UpdateCredentials(f.ctx, c.ID, checks.Credentials{Username: "user_good", Password: "newer"})
			return err
		}), []string{EventConnectionUpdated},
			[]string{"status", "statusFirstSeenTime", "statusLastUpdateTime", "statusErrorDetail", "credentialsUpdatedAt", "credentials"}},
	}
	_, last := f.eventsOf("")
	seq := int64(1)
	for _, tc := range cases {
		before := f.get(c.ID)
		tc.write()
		after := f.get(c.ID)
		byConn, next := f.eventsOf(last)
		last = next
		evs := byConn[c.ID]
		if len(byConn) > len(evs) || len(byConn) > 1 {
			t.Fatalf("%s: events of other connections: %v", tc.name, byConn)
		}
		if tc.types == nil {
			if len(evs) != 0 {
				t.Fatalf("%s: events %+v, want none", tc.name, evs)
			}
			if !sameButTimestamps(t, before, after) {
				t.Fatalf("%s: changed GET details without an event", tc.name)
			}
			continue
		}
		if len(evs) != 1 {
			t.Fatalf("%s: %d events, want 1: %+v", tc.name, len(evs), evs)
		}
		ev := evs[0]
		if !slices.Equal(ev.Types, tc.types) || !slices.Equal(ev.ProtectedChanges, tc.pc) || ev.Sequence != seq+1 {
			t.Fatalf("%s: types %v protectedChanges %v sequence %d\nwant %v %v %d", tc.name, ev.Types, ev.ProtectedChanges, ev.Sequence, tc.types, tc.pc, seq+1)
		}
		seq = ev.Sequence
		before.NextCheckAt = nil
		if !reflect.DeepEqual(*ev.Old, before) || !reflect.DeepEqual(ev.Connection, after) {
			t.Fatalf("%s: event connections differ from GET details:\nold %+v\nwas %+v\nnew %+v\nnow %+v", tc.name, *ev.Old, before, ev.Connection, after)
		}
		if !ev.Time.Equal(after.StatusLastUpdateTime) && !ev.Time.Equal(f.clk.Now()) {
			t.Fatalf("%s: event time %v, want the write's", tc.name, ev.Time)
		}
		if _, err := checkEvents(t, &before, after, evs, seq-1, slices.Contains(tc.pc, "credentials")); err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
	}
	// The creation's event, from the start of the stream.
	all, _ := f.eventsOf("")
	first := all[c.ID][0]
	if !slices.Equal(first.Types, []string{EventConnectionCreated}) || first.Sequence != 1 || first.Old != nil ||
		first.Connection.Status != checks.ConnPending || first.Connection.NextCheckAt == nil || !first.Connection.NextCheckAt.Equal(t0) {
		t.Fatalf("creation event %+v", first)
	}
}

// TestEventStreamKeepsUndispatched: once a dispatcher keeps a floor, writes
// trim the stream only before it, however long it gets; without one, to
// about Config.EventsMaxLen.
func TestEventStreamKeepsUndispatched(t *testing.T) {
	for name, b := range map[string]backend{"miniredis": miniBackend, "redis": realBackend} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			f := newFixture(t, b, func(c *Config) { c.EventsMaxLen = 50 })
			rename := func(n int) {
				c := f.conn("user_good")
				for i := range n {
					if _, err := f.s.UpdateDetails(f.ctx, c.ID, DetailsPatch{Name: ptr(fmt.Sprint("n", i))}); err != nil {
						t.Fatal(err)
					}
				}
			}
			rename(300)
			if n := f.rdb.XLen(f.ctx, f.s.kEvents()).Val(); n > 200 {
				t.Fatalf("without a floor the stream holds %d events, want about 50", n)
			}
			evs, _ := f.s.Events(f.ctx, "", 1<<20)
			floor := evs[len(evs)-1].ID
			if err := f.rdb.Set(f.ctx, f.s.kEventsFloor(), floor, 0).Err(); err != nil {
				t.Fatal(err)
			}
			rename(1000)
			kept, _ := f.s.Events(f.ctx, "", 1<<20)
			if streamIDLess(floor, kept[0].ID) || len(kept) < 1001 {
				t.Fatalf("with floor %s the stream starts at %s and holds %d events, want every one from the floor (1001+)", floor, kept[0].ID, len(kept))
			}
			if !strings.HasPrefix(kept[len(kept)-1].Connection.Name, "n999") {
				t.Fatalf("last event %+v", kept[len(kept)-1].Connection)
			}
		})
	}
}

// streamIDLess compares stream entry IDs (ms-seq); "" is less than any.
func streamIDLess(a, b string) bool {
	if a == "" || b == "" {
		return a == "" && b != ""
	}
	am, as := splitStreamID(a)
	bm, bs := splitStreamID(b)
	return am < bm || am == bm && as < bs
}

func splitStreamID(id string) (uint64, uint64) {
	m, sq, _ := strings.Cut(id, "-")
	a, _ := strconv.ParseUint(m, 10, 64)
	b, _ := strconv.ParseUint(sq, 10, 64)
	return a, b
}
