package store

import (
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/checkd/checkd/checks"
)

// histConn is a record for the compact-history unit tests: created at ca,
// with two accounts.
func histConn() *connRec {
	return &connRec{ID: "cn_0000000000000000", CreatedAt: ms(t0),
		Accounts: []acctRec{{ID: "ac_aaaaaaaaaa"}, {ID: "ac_bbbbbbbbbb"}}}
}

func TestHistoryCompactForm(t *testing.T) {
	ca := ms(t0)
	slot := ca + 60_000
	firstCheck := histRec{T: ca + 62_000, C: CauseCheck, A: ":" + strconv.FormatInt(slot, 10), Tr: [][4]string{
		{"", "PENDING", "CONNECTED", ""}, {"ac_aaaaaaaaaa", "", "DETECTED", ""}, {"ac_bbbbbbbbbb", "", "DETECTED", ""}}}
	cases := []struct {
		name  string
		elems []histRec // newest first
		want  string    // the stored form; "" to check the round trip only
	}{
		{"created", []histRec{{T: ca, C: CauseCreated, Tr: [][4]string{{"", "", "PENDING", ""}}}}, `[1]`},
		{"created under an inactive company", []histRec{{T: ca, C: CauseCreated, Tr: [][4]string{{"", "", "COMPANY_INACTIVE", ""}}}}, `[8]`},
		{"created at another time", []histRec{{T: ca + 5, C: CauseCreated, Tr: [][4]string{{"", "", "PENDING", ""}}}}, `[[5,1,[0,0,1]]]`},
		{"created with a detail", []histRec{{T: ca, C: CauseCreated, Tr: [][4]string{{"", "", "PENDING", "why"}}}}, `[[0,1,[0,0,1,"why"]]]`},
		{"first check with two accounts, then created", []histRec{firstCheck, {T: ca, C: CauseCreated, Tr: [][4]string{{"", "", "PENDING", ""}}}},
			`[[62000,0,2000,[0,1,2],[1,0,3],[2,0,3]],1]`},
		{"check finished before its slot", []histRec{{T: ca + 10, C: CauseCheck, A: ":" + strconv.FormatInt(ca+500, 10), Tr: [][4]string{{"", "PENDING", "WEBSITE_DOWN", "503"}}}},
			`[[10,0,-490,[0,1,6,"503"]]]`},
		{"admin write: no attempt", []histRec{{T: ca + 7, C: CauseConfirm, Tr: [][4]string{{"ac_bbbbbbbbbb", "DETECTED", "ONBOARDED", ""}}}}, `[[7,6,[2,3,4]]]`},
		{"attempts that are not a slot stay strings", []histRec{
			{T: ca, C: CauseCheck, A: "a1", Tr: [][4]string{{"", "A", "B", ""}}},
			{T: ca, C: CauseCheck, A: ":05", Tr: [][4]string{{"", "A", "B", ""}}},
			{T: ca, C: CauseCheck, A: ":+5", Tr: [][4]string{{"", "A", "B", ""}}},
			{T: ca, C: CauseCheck, A: ":", Tr: [][4]string{{"", "A", "B", ""}}},
			{T: ca, C: CauseCheck, A: ":-0", Tr: [][4]string{{"", "A", "B", ""}}},
			{T: ca, C: CauseCheck, A: ":99999999999999999999", Tr: [][4]string{{"", "A", "B", ""}}},
			{T: ca, C: CauseCheck, A: "check:cn_1111111111111111:5", Tr: [][4]string{{"", "A", "B", ""}}},
		}, `[[0,0,"a1",[0,"A","B"]],[0,0,":05",[0,"A","B"]],[0,0,":+5",[0,"A","B"]],[0,0,":",[0,"A","B"]],[0,0,":-0",[0,"A","B"]],` +
			`[0,0,":99999999999999999999",[0,"A","B"]],[0,0,"check:cn_1111111111111111:5",[0,"A","B"]]]`},
		{"negative slot and zero slot", []histRec{
			{T: ca, C: CauseCheck, A: ":-5", Tr: [][4]string{{"", "PENDING", "CONNECTED", ""}}},
			{T: ca, C: CauseCheck, A: ":0", Tr: [][4]string{{"", "PENDING", "CONNECTED", ""}}},
		}, ""},
		{"unknown account, status and cause", []histRec{{T: ca - 3, C: "admin:future", A: ":1", Tr: [][4]string{{"ac_zzzzzzzzzz", "NEW_STATUS", "", ""}}}},
			`[[-3,"admin:future",` + strconv.FormatInt(ca-4, 10) + `,["ac_zzzzzzzzzz","NEW_STATUS",0]]]`},
		{"details that need escaping", []histRec{{T: ca + 1, C: CauseCheck, Tr: [][4]string{{"", "CONNECTED", "OTHER_ERROR", "a \"quoted\" <b>&\\ é\n\u2028"}}}}, ""},
		{"no transition", []histRec{{T: ca + 1, C: CauseSettings}}, `[[1,8]]`},
		{"a change with an actor: [cause, actor]", []histRec{
			{T: ca + 9, C: "console:deactivate", B: "admin", Tr: [][4]string{{"", "CONNECTED", "DEACTIVATED", ""}}},
			{T: ca + 8, C: CauseCredentials, B: "ops \"lead\"", Tr: [][4]string{{"", "PASSWORD_INCORRECT", "PENDING", ""}}},
		}, `[[9,["console:deactivate","admin"],[0,2,9]],[8,[7,"ops \"lead\""],[0,10,1]]]`},
		{"a creation with an actor is no bare code", []histRec{{T: ca, C: CauseCreated, B: "ops", Tr: [][4]string{{"", "", "PENDING", ""}}}},
			`[[0,[1,"ops"],[0,0,1]]]`},
		{"every cause and status has a code", func() []histRec {
			var hs []histRec
			for _, c := range causeCodes {
				for _, st := range statusCodes {
					hs = append(hs, histRec{T: ca + 1, C: c, Tr: [][4]string{{"ac_aaaaaaaaaa", st, st, ""}}})
				}
			}
			return hs
		}(), ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r := histConn()
			got := string(r.appendHistory(nil, tc.elems))
			if tc.want != "" && got != tc.want {
				t.Errorf("stored form\n got %s\nwant %s", got, tc.want)
			}
			if !json.Valid([]byte(got)) {
				t.Fatalf("stored form is not JSON: %s", got)
			}
			r.Hist = json.RawMessage(got)
			back, err := r.history()
			if err != nil {
				t.Fatalf("decode %s: %v", got, err)
			}
			if !reflect.DeepEqual(back, tc.elems) {
				t.Errorf("round trip of %s\n got %+v\nwant %+v", got, back, tc.elems)
			}
		})
	}
}

func TestHistoryCodesCoverStatuses(t *testing.T) {
	for _, st := range checks.ConnectionStatuses {
		if _, ok := statusIndex[string(st)]; !ok {
			t.Errorf("connection status %s has no history code", st)
		}
	}
	for _, st := range checks.AccountStatuses {
		if _, ok := statusIndex[string(st)]; !ok {
			t.Errorf("account status %s has no history code", st)
		}
	}
	for _, codes := range [][]string{statusCodes, causeCodes} {
		if len(indexOf(codes)) != len(codes) {
			t.Errorf("duplicate codes in %v", codes)
		}
	}
}

func TestHistoryDecodeErrors(t *testing.T) {
	for _, raw := range []string{
		`{}`, `[[]]`, `[[1]]`, `["x"]`, `[99]`, `[-1]`, `[[1.5,0]]`, `[[0,99]]`, `[[0,0,[3,1,2]]]`, `[[0,0,[-1,1,2]]]`,
		`[[0,0,[0,1]]]`, `[[0,0,[0,1,2,"d",5]]]`, `[[0,0,[0,1,99]]]`, `[[0,0,[0,1,2,5]]]`, `[[0,0,{},[0,1,2]]]`, `[[0,0,1.5,[0,1,2]]]`,
		`[1,]`, `[,1]`, `[[1]`, `[1]]`, `[1][2]`, `"x"`, `5`, `[{"a":1}]`, `[[0,0,"a",5]]`, `[[0,"\x"]]`,
	} {
		r := histConn()
		r.Hist = json.RawMessage(raw)
		if h, err := r.history(); err == nil {
			t.Errorf("%s decoded to %+v, want an error", raw, h)
		}
	}
}

func TestAddHistorySpillsTheOldest(t *testing.T) {
	ca := ms(t0)
	elem := func(i int) histRec {
		return histRec{T: ca + int64(i), C: CauseCheck, A: fmt.Sprintf(":%d", ca), Tr: [][4]string{
			{"", "PENDING", "CONNECTED", fmt.Sprint("d", i)}, {"ac_bbbbbbbbbb", "", "DETECTED", ""}}}
	}
	for have := 0; have <= 6; have++ {
		for _, keep := range []int{0, 1, 2, recordHistory, 6} {
			t.Run(fmt.Sprintf("%d held, keep %d", have, keep), func(t *testing.T) {
				r := histConn()
				var all []histRec // newest first
				for i := have; i >= 1; i-- {
					all = append(all, elem(i))
				}
				if have > 0 {
					r.Hist = r.appendHistory(nil, all)
				}
				add := elem(have + 1)
				all = append([]histRec{add}, all...)
				spill, err := r.addHistory(add, keep)
				if err != nil {
					t.Fatal(err)
				}
				held, err := r.history()
				if err != nil {
					t.Fatalf("decode %s: %v", r.Hist, err)
				}
				n := min(keep, len(all))
				if !reflect.DeepEqual(held, all[:n]) && !(n == 0 && len(held) == 0) {
					t.Errorf("held %+v, want %+v", held, all[:n])
				}
				if !reflect.DeepEqual(spill, all[n:]) && !(n == len(all) && len(spill) == 0) {
					t.Errorf("spilled %+v, want %+v", spill, all[n:])
				}
			})
		}
	}
}

// FuzzHistoryDecode: whatever "h" holds, decoding fails or succeeds, and
// never panics.
func FuzzHistoryDecode(f *testing.F) {
	f.Add([]byte(`[[62000,0,2000,[0,1,2],[1,0,3,"x\"y"],[2,0,3]],1]`))
	f.Add([]byte(`[[0,"c","a",["ac_x","S",0]]]`))
	f.Add([]byte(`[1,[`))
	f.Fuzz(func(t *testing.T, b []byte) {
		r := histConn()
		r.Hist = b
		r.history()
		r.addHistory(histRec{T: 1, C: CauseCheck}, 2)
	})
}

// FuzzHistoryCompactForm: any element the store could write reads back
// the same.
func FuzzHistoryCompactForm(f *testing.F) {
	f.Add(int64(62000), "check", ":1772442060000", "", "PENDING", "CONNECTED", "", 1)
	f.Add(int64(0), "created", "", "", "", "PENDING", "", 0)
	f.Add(int64(-5), "x", ":05", "ac_zzzzzzzzzz", "\"", "\x00", "<é>", 2)
	f.Fuzz(func(t *testing.T, dt int64, cause, attempt, acct, from, to, detail string, n int) {
		r := histConn()
		h := histRec{T: r.CreatedAt + dt%(1<<45), C: cause, A: attempt}
		for i := 0; i < n%4; i++ {
			h.Tr = append(h.Tr, [4]string{acct, from, to, detail})
		}
		for _, s := range []string{cause, attempt, acct, from, to, detail} {
			if !utf8.ValidString(s) {
				t.Skip("JSON keeps valid UTF-8 only, in the list as in the record")
			}
		}
		stored := r.appendHistory(nil, []histRec{h})
		r.Hist = stored
		back, err := r.history()
		if err != nil {
			t.Fatalf("decode %s: %v", stored, err)
		}
		if len(back) != 1 || !reflect.DeepEqual(back[0], h) {
			t.Fatalf("round trip of %s: %+v, want %+v", stored, back, h)
		}
	})
}

func TestRecordImpliedTimes(t *testing.T) {
	base := func() *connRec {
		r := histConn()
		r.CompanyID, r.Status, r.FirstSeen = "co_0000000000000000", "CONNECTED", 100
		r.Accounts[0].Status, r.Accounts[0].FirstSeen = "DETECTED", 100
		r.Accounts[1].Status, r.Accounts[1].FirstSeen = "DETECTED", 100
		return r
	}
	cases := []struct {
		name                 string
		lc, ls, lu, lu0, lu1 int64
		failures             int
		omitted              []string // fields left out of the stored form
	}{
		{"never checked", 0, 0, 50, 0, 0, 0, nil},
		{"after a successful check", 200, 200, 200, 200, 200, 0, []string{`"ls"`, `"lu"`}},
		{"after a failed check", 200, 100, 200, 200, 200, 1, []string{`"lu"`}},
		{"admin write after the check", 200, 200, 300, 200, 250, 0, []string{`"ls"`}},
		{"account updated apart", 200, 200, 200, 150, 200, 0, []string{`"ls"`, `"lu"`}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r := base()
			r.LastCheck, r.LastSuccess, r.LastUpdate, r.Failures = tc.lc, tc.ls, tc.lu, tc.failures
			r.Accounts[0].LastUpdate, r.Accounts[1].LastUpdate = tc.lu0, tc.lu1
			if tc.lc == 0 {
				r.Accounts = nil
			}
			want := *r
			want.Accounts = append([]acctRec(nil), r.Accounts...)
			b, err := r.encode()
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(*r, want) {
				t.Fatalf("encode changed the record: %+v, want %+v", *r, want)
			}
			var top map[string]json.RawMessage
			if err := json.Unmarshal([]byte(b), &top); err != nil {
				t.Fatal(err)
			}
			for _, k := range tc.omitted {
				if _, ok := top[k[1:len(k)-1]]; ok {
					t.Errorf("%s stored in %s", k, b)
				}
			}
			got, err := decodeConn(r.ID, string(b))
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(*got, want) {
				t.Fatalf("round trip of %s:\n got %+v\nwant %+v", b, *got, want)
			}
		})
	}
	// A record stored before lastUpdate was implied has it explicitly.
	old := `{"co":"co_0000000000000000","ds":"sandbox","ca":1,"s":"CONNECTED","fs":2,"lu":3,"lc":3,` +
		`"ac":[{"i":"ac_aaaaaaaaaa","n":"1","s":"DETECTED","fs":2,"lu":3}]}`
	r, err := decodeConn("cn_0000000000000000", old)
	if err != nil || r.LastUpdate != 3 || r.LastSuccess != 3 || r.Accounts[0].LastUpdate != 3 || len(r.Hist) != 0 {
		t.Fatalf("old record: %+v, %v", r, err)
	}
}

// The store-level history tests, on miniredis and on a real Redis.
func TestHistoryMiniredis(t *testing.T) { runHistory(t, miniBackend) }
func TestHistoryRedis(t *testing.T)     { runHistory(t, realBackend) }

// histModel is what a connection's history must read: every element
// written, newest first, each with its transitions in write order.
type histModel struct{ elems [][]HistoryEntry }

func (m *histModel) add(es ...HistoryEntry) { m.elems = append([][]HistoryEntry{es}, m.elems...) }

// want is History(limit) when the newest kept elements are kept: every
// transition they hold for limit 0.
func (m *histModel) want(kept, limit int) []HistoryEntry {
	out := []HistoryEntry{}
	for _, es := range m.elems[:min(kept, len(m.elems))] {
		for i := len(es) - 1; i >= 0 && (limit == 0 || len(out) < limit); i-- {
			out = append(out, es[i])
		}
	}
	return out
}

// histScenario drives one connection: created, then checks that each make
// transitions (with two accounts: three per check, else one).
type histScenario struct {
	f        *fixture
	id       string
	accounts bool
	m        histModel
	checks   int
	acct     [2]string
}

func newHistScenario(f *fixture, accounts bool) *histScenario {
	c := f.conn("user_good")
	s := &histScenario{f: f, id: c.ID, accounts: accounts}
	s.m.add(HistoryEntry{Time: t0, To: "PENDING", Cause: CauseCreated, Actor: ActorSystem})
	return s
}

// check records the next check: CONNECTED (discovering accounts A and B the
// first time; NO_ACCOUNTS_FOUND without them) and WEBSITE_DOWN alternately, every third one with an
// attempt that is not a check task ID.
func (s *histScenario) check() {
	s.f.t.Helper()
	i := s.checks
	s.checks++
	start := t0.Add(time.Duration(i+1) * time.Hour)
	attempt := fmt.Sprintf("check:%s:%d", s.id, ms(start.Add(-time.Minute)))
	if i%3 == 2 {
		attempt = fmt.Sprint("manual-", i)
	}
	// Without accounts, the login is recorded as NO_ACCOUNTS_FOUND.
	good, goodDetail := "NO_ACCOUNTS_FOUND", checks.NoAccountsDetail
	res := ok()
	if s.accounts {
		good, goodDetail, res = "CONNECTED", "", ok("A", "B")
	}
	conn := HistoryEntry{From: "WEBSITE_DOWN", To: good, Detail: goodDetail}
	acct := HistoryEntry{From: "WORKFLOW_NOT_ACCESSIBLE", To: "DETECTED"}
	switch {
	case i == 0:
		conn.From, acct.From = "PENDING", ""
	case i%2 == 1:
		res = fail(checks.ConnWebsiteDown, fmt.Sprint("down ", i))
		conn = HistoryEntry{From: good, To: "WEBSITE_DOWN", Detail: res.Detail}
		acct = HistoryEntry{From: "DETECTED", To: "WORKFLOW_NOT_ACCESSIBLE", Detail: "connection status WEBSITE_DOWN: " + res.Detail}
	}
	if r := s.f.record(s.id, attempt, start, res); r.Outcome != Applied {
		s.f.t.Fatalf("check %d: %s", i, r.Outcome)
	}
	es := []HistoryEntry{conn}
	if s.accounts {
		if i == 0 {
			c := s.f.get(s.id)
			s.acct = [2]string{c.Accounts[0].ID, c.Accounts[1].ID}
		}
		for _, id := range s.acct {
			a := acct
			a.AccountID = id
			es = append(es, a)
		}
	}
	for k := range es {
		es[k].Time, es[k].Cause, es[k].Actor, es[k].Attempt = start.Add(time.Second), CauseCheck, ActorCheck, attempt
	}
	s.m.add(es...)
}

// stored returns how many elements the record and the list hold.
func (s *histScenario) stored() (inRecord, inList int) {
	s.f.t.Helper()
	raw, err := s.f.rdb.Get(s.f.ctx, s.f.s.kConn(s.id)).Result()
	if err != nil {
		s.f.t.Fatal(err)
	}
	r, err := decodeConn(s.id, raw)
	if err != nil {
		s.f.t.Fatal(err)
	}
	elems, err := r.history()
	if err != nil {
		s.f.t.Fatal(err)
	}
	n, err := s.f.rdb.LLen(s.f.ctx, s.f.s.kHistory(s.id)).Result()
	if err != nil {
		s.f.t.Fatal(err)
	}
	return len(elems), int(n)
}

// verify compares History with the model for the given number of kept
// elements, for every limit up to all transitions and beyond.
func (s *histScenario) verify(kept int) {
	s.f.t.Helper()
	// Every limit up to past all kept transitions (three per check with
	// accounts), and 0: all of them, whatever HistoryLimit (which counts
	// elements) is.
	limits := []int{0, 3*kept + 5}
	for l := 1; l <= 3*kept+1; l++ {
		limits = append(limits, l)
	}
	for _, limit := range limits {
		got, err := s.f.s.History(s.f.ctx, s.id, limit)
		if err != nil {
			s.f.t.Fatal(err)
		}
		want := s.m.want(kept, limit)
		gb, _ := json.Marshal(got)
		wb, _ := json.Marshal(want)
		if string(gb) != string(wb) {
			s.f.t.Fatalf("after %d checks, History(limit %d):\n got %s\nwant %s", s.checks, limit, gb, wb)
		}
	}
}

func runHistory(t *testing.T, b backend) {
	t.Run("record keeps the newest K, the list the rest up to HistoryLimit", func(t *testing.T) {
		t.Parallel()
		const K = recordHistory
		cases := []struct {
			limit, checks int
			accounts      bool
		}{
			{20, K - 2, false}, // K-1 elements with the creation
			{20, K - 1, false}, // K
			{20, K, false},     // K+1: the first spill
			{20, K + 1, true},
			{20, 3 * K, true},
			{20, 40, false}, // far past HistoryLimit
			{K + 1, 12, true},
			{K, 12, false}, // no room in the list: spilled elements are dropped
			{2, 6, true},   // HistoryLimit below K
			{1, 3, false},
		}
		for _, tc := range cases {
			t.Run(fmt.Sprintf("limit %d, %d checks, accounts %v", tc.limit, tc.checks, tc.accounts), func(t *testing.T) {
				f := newFixture(t, b, func(c *Config) { c.HistoryLimit = tc.limit })
				s := newHistScenario(f, tc.accounts)
				inRecord := min(K, tc.limit)
				check := func() {
					t.Helper()
					total := s.checks + 1
					rec, list := s.stored()
					if want := min(total, inRecord); rec != want {
						t.Fatalf("after %d checks the record holds %d elements, want %d", s.checks, rec, want)
					}
					if want := min(max(total-inRecord, 0), tc.limit-inRecord); list != want {
						t.Fatalf("after %d checks the list holds %d elements, want %d", s.checks, list, want)
					}
					s.verify(min(total, tc.limit))
				}
				check()
				for s.checks < tc.checks {
					s.check()
					check()
				}
				f.invariants()
			})
		}
	})

	t.Run("a record without history and its list read the same and migrate", func(t *testing.T) {
		t.Parallel()
		const limit = 8
		f := newFixture(t, b, func(c *Config) { c.HistoryLimit = limit })
		s := newHistScenario(f, true)
		for range 5 {
			s.check()
		}
		s.verify(6)
		f.toOldFormat(s.id)
		if rec, list := s.stored(); rec != 0 || list != 6 {
			t.Fatalf("old format: record %d, list %d elements", rec, list)
		}
		s.verify(6)
		// New elements go into the record; the list is left alone until the
		// first spill trims it to HistoryLimit − K.
		for k := 1; k <= recordHistory; k++ {
			s.check()
			if rec, list := s.stored(); rec != k || list != 6 {
				t.Fatalf("after %d new checks: record %d, list %d elements", k, rec, list)
			}
			s.verify(6 + k)
		}
		s.check()
		if rec, list := s.stored(); rec != recordHistory || list != limit-recordHistory {
			t.Fatalf("after the first spill: record %d, list %d elements, want %d and %d", rec, list, recordHistory, limit-recordHistory)
		}
		s.verify(limit)
		f.invariants()
	})

	t.Run("every kind of write keeps its history", func(t *testing.T) {
		t.Parallel()
		f := newFixture(t, b, nil)
		c := f.conn("user_good")
		f.record(c.ID, "check:"+c.ID+":1", t0, ok("A", "B"))
		a := f.get(c.ID).Accounts
		f.clk.Advance(time.Minute)
		if _, err := f.s.ConfirmAccounts(f.ctx, c.ID, []AccountDecision{{AccountID: a[0].ID, TrackingStatus: checks.TrackingEnabled},
			{AccountID: a[1].ID, TrackingStatus: checks.TrackingDisabled}}); err != nil {
			t.Fatal(err)
		}
		f.clk.Advance(time.Minute)
		if _, err := f.s.UpdateDetails(f.ctx, c.ID, DetailsPatch{IsActive: ptr(false)}); err != nil {
			t.Fatal(err)
		}
		if _, err := f.s.UpdateDetails(f.ctx, c.ID, DetailsPatch{Name: ptr("no transition")}); err != nil {
			t.Fatal(err)
		}
		f.clk.Advance(time.Minute)
		if _, err := f.s.UpdateDetails(f.ctx, c.ID, DetailsPatch{IsActive: ptr(true)}); err != nil {
			t.Fatal(err)
		}
		f.clk.Advance(time.Minute)
		if _, err := f.s.SetCompanyActive(f.ctx, f.co.ID, false); err != nil {
			t.Fatal(err)
		}
		f.clk.Advance(time.Minute)
		if _, err := f.s.SetCompanyActive(f.ctx, f.co.ID, true); err != nil {
			t.Fatal(err)
		}
		f.clk.Advance(time.Minute)
		if _, err := f.s.UpdateCredentials(f.ctx, c.ID, checks.Credentials{Username: "user_good", Password: "new"}); err != nil {
			t.Fatal(err) // no transition: CONNECTED is not credential-blocked
		}
		h, err := f.s.History(f.ctx, c.ID, 0)
		if err != nil {
			t.Fatal(err)
		}
		name := map[string]string{"": "-", a[0].ID: "A", a[1].ID: "B"}
		var got []string
		for _, e := range h {
			got = append(got, fmt.Sprintf("%s %s %s %s>%s %q %s", e.Time.Sub(t0), e.Cause, name[e.AccountID], e.From, e.To, e.Detail, e.Attempt))
		}
		want := []string{
			`5m0s admin:company-reactivate B COMPANY_INACTIVE>CUSTOMER_NOT_TRACKED "" `,
			`5m0s admin:company-reactivate A COMPANY_INACTIVE>ONBOARDED "" `,
			`5m0s admin:company-reactivate - COMPANY_INACTIVE>CONNECTED "" `,
			`4m0s admin:company-deactivate B CUSTOMER_NOT_TRACKED>COMPANY_INACTIVE "" `,
			`4m0s admin:company-deactivate A ONBOARDED>COMPANY_INACTIVE "" `,
			`4m0s admin:company-deactivate - CONNECTED>COMPANY_INACTIVE "" `,
			`3m0s admin:reactivate - DEACTIVATED>CONNECTED "" `,
			`2m0s admin:deactivate - CONNECTED>DEACTIVATED "" `,
			`1m0s admin:confirm-accounts B DETECTED>CUSTOMER_NOT_TRACKED "" `,
			`1m0s admin:confirm-accounts A DETECTED>ONBOARDED "" `,
			`1s check B >DETECTED "" check:` + c.ID + `:1`,
			`1s check A >DETECTED "" check:` + c.ID + `:1`,
			`1s check - PENDING>CONNECTED "" check:` + c.ID + `:1`,
			`0s created - >PENDING "" `,
		}
		if strings.Join(got, "\n") != strings.Join(want, "\n") {
			t.Fatalf("history:\n got %s\nwant %s", strings.Join(got, "\n     "), strings.Join(want, "\n     "))
		}
		// Seven writes made transitions: the newest four are in the record.
		if rec, list := (&histScenario{f: f, id: c.ID}).stored(); rec != recordHistory || list != 3 {
			t.Fatalf("record %d, list %d elements, want %d and 3", rec, list, recordHistory)
		}
		f.invariants()
	})

	t.Run("unknown connection", func(t *testing.T) {
		t.Parallel()
		f := newFixture(t, b, nil)
		for _, id := range []string{"cn_0000000000000000", "nope", ""} {
			if h, err := f.s.History(f.ctx, id, 0); !errors.Is(err, ErrNotFound) {
				t.Errorf("History(%q) = %+v, %v; want ErrNotFound", id, h, err)
			}
		}
	})
}

// toOldFormat rewrites a connection as stored before records held history
// (tests only): every element in the list, no "h", lastUpdate explicit.
func (f *fixture) toOldFormat(id string) {
	f.t.Helper()
	raw, err := f.rdb.Get(f.ctx, f.s.kConn(id)).Result()
	if err != nil {
		f.t.Fatal(err)
	}
	r, err := decodeConn(id, raw)
	if err != nil {
		f.t.Fatal(err)
	}
	elems, err := r.history()
	if err != nil {
		f.t.Fatal(err)
	}
	for i := len(elems) - 1; i >= 0; i-- {
		b, _ := json.Marshal(elems[i])
		if err := f.rdb.LPush(f.ctx, f.s.kHistory(id), b).Err(); err != nil {
			f.t.Fatal(err)
		}
	}
	var m map[string]any
	d := json.NewDecoder(strings.NewReader(raw))
	d.UseNumber()
	if err := d.Decode(&m); err != nil {
		f.t.Fatal(err)
	}
	delete(m, "h")
	m["lu"] = r.LastUpdate
	for i, a := range m["ac"].([]any) {
		a.(map[string]any)["lu"] = r.Accounts[i].LastUpdate
	}
	b, _ := json.Marshal(m)
	if err := f.rdb.Set(f.ctx, f.s.kConn(id), b, 0).Err(); err != nil {
		f.t.Fatal(err)
	}
}
