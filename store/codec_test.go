package store

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"math"
	"math/rand/v2"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/checkd/checkd/internal/jsontext"
)

// The codec must agree with encoding/json on every value: the encoders
// byte for byte with json.Marshal, the decoder with json.Unmarshal (value,
// and whether it errs). These tests also check that the fast paths are
// taken where they should be, so a fallback cannot hide a regression.

// odd is a string with everything json.Marshal escapes or replaces.
const odd = "a\"b\\c/d<e>f&g\x00\x01\b\f\n\r\t\x1f\x7f é \u2028\u2029 \xff\xe2\x80 \xed\xa0\x80 😀 \ufffd"

// fullConn is a record with every field set.
func fullConn() *connRec {
	return &connRec{CompanyID: "co_0000000000000000", Datasource: "sandbox", Name: "Home", CreatedAt: 1772442000000,
		Inactive: true, Cred: []byte{0, 1, 2, 250, 251, 252, 253}, Status: "CONNECTED", FirstSeen: 1772442062000,
		LastUpdate: 1772442062001, Detail: odd, LastCheck: -5, LastSuccess: math.MaxInt64, Failures: -3,
		Attempt: ":1772442060000", Started: math.MinInt64, Gen: math.MaxUint64, PrevStatus: "PENDING", StartDate: "2026-01-01",
		Occupancy: 1.25, CredUpdated: 1, Joined: 1772442063000,
		Accounts: []acctRec{{ID: "ac_1", Number: "1234567801", Name: "Electric", Tracking: "TRACKED", Status: "DETECTED",
			FirstSeen: 7, LastUpdate: 8, Detail: odd, CreatedAt: 9, Prev: "X"}, {ID: "ac_2", Number: "", Status: ""}},
		Hist: json.RawMessage(`[[62000,0,2000,[0,1,2],[1,0,3,"a \"b\" \\u003c"],[2,0,3]],1]`)}
}

// checkConnEncode checks marshalConn(r) against json.Marshal(r) and
// returns whether the fast path wrote it.
func checkConnEncode(t *testing.T, r *connRec) bool {
	t.Helper()
	want, wantErr := json.Marshal(r)
	got, err := marshalConn(r)
	if (err != nil) != (wantErr != nil) || got != string(want) {
		t.Fatalf("marshalConn(%#v)\n= %q, %v\nwant %q, %v", r, got, err, want, wantErr)
	}
	f := r.fields()
	fast, ok := appendObject(nil, connFields, f[:])
	if ok && (wantErr != nil || !bytes.Equal(fast, want)) {
		t.Fatalf("appendObject(%#v)\n= %q\nwant %q, %v", r, fast, want, wantErr)
	}
	return ok
}

// checkConnDecode checks unmarshalConn(raw) against json.Unmarshal and
// returns whether the fast path read it.
func checkConnDecode(t *testing.T, raw string) bool {
	t.Helper()
	var want, got, fast connRec
	wantErr := json.Unmarshal([]byte(raw), &want)
	err := unmarshalConn(raw, &got)
	if (err != nil) != (wantErr != nil) || err == nil && !reflect.DeepEqual(got, want) {
		t.Fatalf("unmarshalConn(%q)\n= %#v, %v\nwant %#v, %v", raw, got, err, want, wantErr)
	}
	d := decoder{s: raw}
	f := fast.fields()
	ok := d.object(connFields, f[:]) && d.i == len(raw)
	if ok && (wantErr != nil || !reflect.DeepEqual(fast, want)) {
		t.Fatalf("fast decode of %q\n= %#v\nwant %#v, %v", raw, fast, want, wantErr)
	}
	return ok
}

func TestCodecConnEncode(t *testing.T) {
	withHist := func(h string) *connRec { r := fullConn(); r.Hist = json.RawMessage(h); return r }
	withOcc := func(f float64) *connRec { r := fullConn(); r.Occupancy = f; return r }
	cases := []struct {
		name string
		r    *connRec
		fast bool
	}{
		{"zero", &connRec{}, true},
		{"full", fullConn(), true},
		{"empty, non-nil slices", &connRec{Cred: []byte{}, Accounts: []acctRec{}, Hist: json.RawMessage{}}, true},
		{"hist object", withHist(`{"a":[true,false,null,-1.5e3,"x"],"b":{}}`), true},
		{"hist string with invalid UTF-8", withHist("[\"\xff\"]"), true},
		{"hist with spaces", withHist(`[1, 2]`), false},
		{"hist with <", withHist(`["<"]`), false},
		{"hist with U+2028", withHist("[\"\u2028\"]"), false},
		{"hist invalid", withHist(`[1,`), false},
		{"hist two values", withHist(`[1][2]`), false},
		{"hist deep", withHist(strings.Repeat("[", 40) + strings.Repeat("]", 40)), false},
		{"tiny float", withOcc(1e-7), true},
		{"small float", withOcc(0.000001), true},
		{"huge float", withOcc(1e21), true},
		{"large float", withOcc(1e20), true},
		{"negative float", withOcc(-123456.789), true},
		{"denormal", withOcc(5e-324), true},
		{"max float", withOcc(math.MaxFloat64), true},
		{"negative zero", withOcc(math.Copysign(0, -1)), true},
		{"NaN", withOcc(math.NaN()), false},
		{"Inf", withOcc(math.Inf(-1)), false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if fast := checkConnEncode(t, c.r); fast != c.fast {
				t.Errorf("fast path %v, want %v", fast, c.fast)
			}
			if b, err := json.Marshal(c.r); err == nil {
				checkConnDecode(t, string(b))
			}
		})
	}
}

func TestCodecConnDecode(t *testing.T) {
	full, _ := json.Marshal(fullConn())
	cases := []struct {
		raw  string
		fast bool
	}{
		{string(full), true},
		{`{}`, true},
		{`{"s":"A","co":"c","ca":5,"ac":[{"s":"B","i":"x"}],"nm":"n"}`, true}, // any order
		{`{"co":"\"\\\/\b\f\n\r\t\u00e9\u003C\ud83d\ude00|\ud800x|\udc00|\ud800\u0041|\ud800"}`, true},
		{"{\"co\":\"\xff\xe2\x80\xed\xa0\x80\"}", true}, // invalid UTF-8
		{`{"c\u006f":"x"}`, true},
		{`{"co":"a","co":"b","cf":1,"cf":0}`, true}, // the last wins
		{`{"ac":[],"ac":[{"i":"x"}]}`, false},
		{`{"ac":[{"i":"x","i":"y"}]}`, true},
		{`{"CO":"x"}`, false}, // json.Unmarshal folds case
		{`{"id":"x"}`, false},
		{`{"ac":[]}`, true},
		{`{"ac":null}`, false},
		{`{"ac":[null]}`, false},
		{`{"ac":[{}]}`, true},
		{`{"co":null}`, false},
		{`{"co":5}`, false},
		{`{"x":true}`, true},
		{`{"x":false}`, true},
		{`{"x":tru}`, false},
		{`{"x":truex}`, false},
		{`{"ca":-0,"cf":-9223372036854775808,"g":18446744073709551615}`, true},
		{`{"ca":9223372036854775808}`, false},
		{`{"g":-1}`, false},
		{`{"g":-0}`, false},
		{`{"cf":1.0}`, false},
		{`{"ca":1e3}`, false},
		{`{"ca":01}`, false},
		{`{"ca":-}`, false},
		{`{"om":-0}`, true},
		{`{"om":1.5E-7}`, true},
		{`{"om":1e400}`, false},
		{`{"om":1.}`, false},
		{`{"om":.5}`, false},
		{`{"cr":""}`, true},
		{`{"cr":"AAEC"}`, true},
		{`{"cr":"YQ==\n"}`, true}, // base64 skips newlines
		{`{"cr":"!!"}`, false},
		{`{"h":[1,[2,{"a":"\u2028"}],null,true,false,-0.5e+3]}`, true},
		{`{"h":"x"}`, true},
		{`{"h":null}`, true}, // json.Unmarshal keeps the literal
		{`{"h":[1, 2]}`, false},
		{`{"h":[1,]}`, false},
		{`{"h":{"a"}}`, false},
		{`{"h":` + strings.Repeat("[", 40) + strings.Repeat("]", 40) + `}`, false},
		{` {}`, false},
		{`{} `, false},
		{`{}x`, false},
		{`{"co":"x",}`, false},
		{`null`, false},
		{`[]`, false},
		{``, false},
		{`{"co":"\x"}`, false},
		{`{"co":"\u12"}`, false},
		{"{\"co\":\"\n\"}", false},
	}
	for _, c := range cases {
		if fast := checkConnDecode(t, c.raw); fast != c.fast {
			t.Errorf("%q: fast path %v, want %v", c.raw, fast, c.fast)
		}
	}
}

func TestCodecTagFields(t *testing.T) {
	type rec struct {
		ID string `json:"-"`
		A  string `json:"a"`
		B  []byte `json:"b,omitempty"`
	}
	want := []codecField{{"a", `"a":`, false}, {"b", `"b":`, true}}
	if fs := tagFields(func(r *rec) []any { return []any{&r.A, &r.B} }); !reflect.DeepEqual(fs, want) {
		t.Errorf("tagFields = %v, want %v", fs, want)
	}
	for _, bad := range []func(r *rec) []any{
		func(r *rec) []any { return []any{&r.B, &r.A} },
		func(r *rec) []any { return []any{&r.A} },
		func(r *rec) []any { return []any{&r.A, &r.B, &r.ID} },
		func(r *rec) []any { return []any{&r.ID, &r.A, &r.B} },
	} {
		func() {
			defer func() { recover() }()
			tagFields(bad)
			t.Errorf("tagFields(%v) did not panic", bad(&rec{}))
		}()
	}
}

// fuzzData hands out values made of fuzz input.
type fuzzData []byte

func (f *fuzzData) byte() byte {
	if len(*f) == 0 {
		return 0
	}
	c := (*f)[0]
	*f = (*f)[1:]
	return c
}

func (f *fuzzData) str() string {
	n := min(int(f.byte()%32), len(*f))
	s := string((*f)[:n])
	*f = (*f)[n:]
	return s
}

// int64 is 0, a small number or any, each as likely.
func (f *fuzzData) int64() int64 {
	switch f.byte() % 3 {
	case 0:
		return 0
	case 1:
		return int64(int8(f.byte()))
	}
	var b [8]byte
	for i := range b {
		b[i] = f.byte()
	}
	return int64(binary.LittleEndian.Uint64(b[:]))
}

// fuzzSeeds returns inputs for fuzzData: random bytes, mostly of what
// JSON escapes.
func fuzzSeeds() [][]byte {
	rnd := rand.New(rand.NewPCG(1, 2))
	pieces := []string{"a", "Z", " ", "<", ">", "&", "\"", "\\", "/", "\x00", "\n", "\x1f", "\x7f", "é", "\u2028", "\u2029",
		"\xff", "\xe2\x80", "\xed\xa0\x80", "😀", "\ufffd", "\x00", "\x01", "\x02", "\x1f", "\x20", "\x80"}
	var out [][]byte
	for range 12 {
		var b []byte
		for range 20 + rnd.IntN(200) {
			b = append(b, pieces[rnd.IntN(len(pieces))]...)
		}
		out = append(out, b)
	}
	return out
}

func FuzzConnCodec(f *testing.F) {
	for i, seed := range fuzzSeeds() {
		hists := []string{"", `[1]`, `[[62000,0,2000,[0,1,2],[1,0,3,"x y"]],1]`, `[1, 2]`, `["<"]`, `{"a":null}`, `[`}
		f.Add(seed, []float64{0, 1.25, 1e-7, -1e21, 5e-324, math.NaN(), 123456789.123}[i%7], []byte(hists[i%len(hists)]))
	}
	f.Fuzz(func(t *testing.T, data []byte, occ float64, hist []byte) {
		d := fuzzData(data)
		r := &connRec{CompanyID: d.str(), Datasource: d.str(), Name: d.str(), CreatedAt: d.int64(), Inactive: d.byte()%2 == 0,
			Status: d.str(), FirstSeen: d.int64(), LastUpdate: d.int64(), Detail: d.str(), LastCheck: d.int64(),
			LastSuccess: d.int64(), Failures: int(d.int64()), Attempt: d.str(), Started: d.int64(), Gen: uint64(d.int64()),
			PrevStatus: d.str(), StartDate: d.str(), Occupancy: occ, CredUpdated: d.int64(), Hist: hist}
		if c := d.byte(); c%3 > 0 {
			r.Cred = []byte(d.str())
		}
		for range d.byte() % 4 {
			r.Accounts = append(r.Accounts, acctRec{ID: d.str(), Number: d.str(), Name: d.str(), Tracking: d.str(),
				Status: d.str(), FirstSeen: d.int64(), LastUpdate: d.int64(), Detail: d.str(), CreatedAt: d.int64(), Prev: d.str()})
		}
		fast := checkConnEncode(t, r)
		want, err := json.Marshal(r)
		if err != nil {
			return
		}
		// json.Marshal writes a RawMessage as is when it is plain.
		plain, _ := json.Marshal(json.RawMessage(hist))
		if !fast && (len(hist) == 0 || bytes.Equal(plain, hist) && nesting(hist) <= jsontext.MaxDepth) {
			t.Fatalf("appendObject(%#v) left it to json.Marshal", r)
		}
		if !checkConnDecode(t, string(want)) && nesting(want) <= jsontext.MaxDepth {
			t.Fatalf("the decoder left %q to json.Unmarshal", want)
		}
		checkConnDecode(t, string(data))
		checkConnDecode(t, string(hist))
	})
}

// nesting bounds how deep JSON nests (jsontext.ScanValue gives up past jsontext.MaxDepth).
func nesting(b []byte) int { return bytes.Count(b, []byte("[")) + bytes.Count(b, []byte("{")) - 1 }

func FuzzConnDecode(f *testing.F) {
	full, _ := json.Marshal(fullConn())
	f.Add(string(full))
	f.Add(`{"co":"\u00e9\ud83d\ude00\ud800x","ac":[{"i":"x","fs":-1}],"om":-1.5e-7,"cr":"AAEC","h":[1,"a",{"b":null}]}`)
	f.Add(`{"co":"a","CO":"b","ac":[],"g":18446744073709551615,"x":false}`)
	f.Fuzz(func(t *testing.T, raw string) {
		checkConnDecode(t, raw)
	})
}

func FuzzHistRec(f *testing.F) {
	for _, seed := range fuzzSeeds() {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		d := fuzzData(data)
		h := histRec{T: d.int64(), C: d.str(), A: d.str(), B: d.str()}
		if d.byte()%3 > 0 {
			h.Tr = [][4]string{}
			for range d.byte() % 4 {
				h.Tr = append(h.Tr, [4]string{d.str(), d.str(), d.str(), d.str()})
			}
		}
		want, _ := json.Marshal(h)
		if got := appendHist(nil, &h); !bytes.Equal(got, want) {
			t.Fatalf("appendHist(%#v)\n= %q\nwant %q", h, got, want)
		}
	})
}

// checkEvent checks marshalEvent(ev) against json.Marshal(ev) and returns
// whether the fast path wrote it.
func checkEvent(t *testing.T, ev *Event) bool {
	t.Helper()
	want, wantErr := json.Marshal(ev)
	got, err := marshalEvent([]byte("x"), ev)
	got = got[1:]
	if (err != nil) != (wantErr != nil) || !bytes.Equal(got, want) {
		t.Fatalf("marshalEvent(%#v)\n= %q, %v\nwant %q, %v", ev, got, err, want, wantErr)
	}
	fast, ok := appendEvent(nil, ev)
	if ok && (wantErr != nil || !bytes.Equal(fast, want)) {
		t.Fatalf("appendEvent(%#v)\n= %q\nwant %q, %v", ev, fast, want, wantErr)
	}
	return ok
}

func TestCodecEvent(t *testing.T) {
	r := &connRec{ID: "cn_1", CompanyID: "co_1"}
	at := ms(t0) + 1
	trs := []transition{{"", "PENDING", "CONNECTED", "", 0, "", 0}, {"ac_1", "", "DETECTED", "", 0, "", 0}, {"ac_2", "DETECTED", "ONBOARDED", odd, 0, "", 0}}
	withTime := func(tm time.Time) *Event {
		ev := newEvent(r, EventConnectionUpdated, CauseCheck, at, trs)
		ev.Time = tm
		return ev
	}
	withNew := func(k string, v any) *Event {
		ev := newEvent(r, EventConnectionUpdated, CauseCheck, at, trs)
		ev.New[k] = v
		return ev
	}
	cases := []struct {
		name string
		ev   *Event
		fast bool
	}{
		{"zero", &Event{}, true},
		{"created", newEvent(r, EventConnectionCreated, CauseCreated, at, trs[:1]), true},
		{"accounts only", newEvent(r, EventConnectionUpdated, CauseCheck, at, trs[1:]), true},
		{"all", newEvent(r, EventConnectionUpdated, CauseCheck, at, trs), true},
		{"with ID", &Event{ID: "1-0", Cause: odd, Actor: odd, ProtectedChanges: []string{odd, ""}, Old: map[string]any{odd: odd}}, true},
		{"nanoseconds", withTime(time.Unix(1, 123456789).UTC()), true},
		{"year 9999", withTime(time.Date(9999, 12, 31, 23, 59, 59, 999999999, time.UTC)), true},
		{"year 10000", withTime(time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC)), false},
		{"year -1", withTime(time.Date(-1, 1, 1, 0, 0, 0, 0, time.UTC)), false},
		{"zone", withTime(time.Date(2026, 1, 1, 0, 0, 0, 0, time.FixedZone("X", 3600))), false},
		{"zero offset zone", withTime(time.Date(2026, 1, 1, 0, 0, 0, 0, time.FixedZone("X", 0))), true},
		{"bad zone", withTime(time.Date(2026, 1, 1, 0, 0, 0, 0, time.FixedZone("X", 24*3600))), false},
		{"nil accounts", withNew("accounts", []map[string]string(nil)), true},
		{"empty accounts", withNew("accounts", []map[string]string{}), true},
		{"nil account", withNew("accounts", []map[string]string{nil, {}}), true},
		{"int value", withNew("n", 5), false},
		{"nil value", withNew("n", nil), false},
		{"many keys", withNew("accounts", []map[string]string{{"a": "1", "b": "2", "c": "3", "d": "4", "e": "5", "f": "6", "g": "7", "h": "8", "i": "9", "j": "10"}}), true},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if fast := checkEvent(t, c.ev); fast != c.fast {
				t.Errorf("fast path %v, want %v", fast, c.fast)
			}
		})
	}
}

func FuzzEvent(f *testing.F) {
	for i, seed := range fuzzSeeds() {
		f.Add(seed, int64(1772442062000+i*1013), int64(i*123457), []int{0, 0, 3600, -1, 90000}[i%5])
	}
	f.Fuzz(func(t *testing.T, data []byte, sec, nsec int64, zone int) {
		d := fuzzData(data)
		ev := &Event{ID: d.str(), Type: d.str(), ConnectionID: d.str(), CompanyID: d.str(), Time: time.Unix(sec, nsec).UTC(), Cause: d.str(), Actor: d.str()}
		if zone != 0 {
			ev.Time = ev.Time.In(time.FixedZone("Z", zone))
		}
		for range d.byte() % 4 {
			ev.ProtectedChanges = append(ev.ProtectedChanges, d.str())
		}
		odd := false
		fill := func() map[string]any {
			m := map[string]any{}
			for range d.byte() % 4 {
				switch k := d.str(); d.byte() % 6 {
				case 0:
					m[k] = d.int64()
					odd = true
				case 1:
					m[k] = []map[string]string(nil)
				case 2, 3:
					var v []map[string]string
					for range d.byte() % 3 {
						e := map[string]string{}
						for range d.byte() % 4 {
							e[d.str()] = d.str()
						}
						if d.byte()%5 == 0 {
							e = nil
						}
						v = append(v, e)
					}
					m[k] = v
				default:
					m[k] = d.str()
				}
			}
			return m
		}
		ev.Old, ev.New = fill(), fill()
		_, off := ev.Time.Zone()
		y := ev.Time.Year()
		if fast := checkEvent(t, ev); !fast && !odd && off == 0 && 0 <= y && y <= 9999 {
			t.Fatalf("appendEvent(%#v) left it to json.Marshal", ev)
		}
	})
}

// checkChange: appendChange writes what json.Marshal writes for the Event
// newEvent builds from the same transitions (after whatever b held).
func checkChange(t *testing.T, r *connRec, typ, cause, actor string, at int64, trs []transition) {
	t.Helper()
	ev := newEvent(r, typ, cause, at, trs)
	if ev != nil {
		ev.Actor = actor
	}
	want, wantErr := json.Marshal(ev)
	ch := newChange(typ, cause, at, trs)
	if ch != nil {
		ch.actor = actor
	}
	got, err := appendChange([]byte("x"), r, ch)
	if (err != nil) != (wantErr != nil) || !bytes.Equal(got[1:], want) || got[0] != 'x' {
		t.Fatalf("appendChange(%v)\n= %q, %v\nwant x%q, %v", trs, got, err, want, wantErr)
	}
}

func TestCodecChange(t *testing.T) {
	r := &connRec{ID: "cn_1", CompanyID: odd}
	at := ms(t0) + 1
	for _, c := range []struct {
		name string
		at   int64
		trs  []transition
	}{
		{"first check", at, []transition{{"", "PENDING", "CONNECTED", "", 0, "", 0}, {"ac_1", "", "DETECTED", "", 0, "", 0}, {"ac_2", "", "ONBOARDED", "", 0, "", 0}}},
		{"connection only", at, []transition{{"", "CONNECTED", "WEBSITE_DOWN", odd, at - 3_600_000, "was down", 0}}},
		{"from nothing", at, []transition{{"", "", "PENDING", "", 0, "", 0}}},
		{"accounts only", at, []transition{{"ac_1", "DETECTED", "ONBOARDED", odd, 0, "", 0}, {"ac_2", "", "DETECTED", "", 0, "", 0}}},
		{"accounts first", at, []transition{{"ac_1", "DETECTED", "ONBOARDED", "", 0, "", 0}, {"", "PENDING", "CONNECTED", "", 0, "", 0}}},
		{"two connection transitions", at, []transition{{"", "PENDING", "CONNECTED", "a", at - 7_200_000, "p", 0}, {"", "CONNECTED", "WEBSITE_DOWN", "b", at, "a", 0}}},
		{"a later one from nothing", at, []transition{{"", "PENDING", "CONNECTED", "", at - 1, odd, 0}, {"", "", "WEBSITE_DOWN", "b", 0, "", 0}}},
		{"odd strings", at, []transition{{odd, odd, odd, odd, 0, "", 0}, {"", odd, odd, odd, 1772442062123, odd, 0}}},
		{"milliseconds", 1772442062123, []transition{{"", "A", "B", "", 0, "", 0}}},
		{"a restored status keeps its statusFirstSeenTime", at, []transition{{"", "DEACTIVATED", "WEBSITE_DOWN", "503", at - 60_000, "", at - 86_400_000}}},
		{"year 10000", time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC).UnixMilli(), []transition{{"", "A", "B", "", 0, "", 0}}},
		{"year -1", time.Date(-1, 1, 1, 0, 0, 0, 0, time.UTC).UnixMilli(), []transition{{"", "A", "B", "", 0, "", 0}}},
	} {
		t.Run(c.name, func(t *testing.T) {
			checkChange(t, r, EventConnectionUpdated, CauseCheck, ActorCheck, c.at, c.trs)
		})
	}
	if newChange(EventConnectionUpdated, CauseCheck, at, nil) != nil {
		t.Error("newChange of no transitions is not nil")
	}
}

func FuzzChange(f *testing.F) {
	for i, seed := range fuzzSeeds() {
		f.Add(seed, int64(1772442062000+i*1013))
	}
	f.Fuzz(func(t *testing.T, data []byte, at int64) {
		d := fuzzData(data)
		r := &connRec{ID: d.str(), CompanyID: d.str()}
		var trs []transition
		for range 1 + d.byte()%5 {
			tr := transition{from: d.str(), to: d.str(), detail: d.str(), oldFirst: at - int64(d.byte())*3_600_000, oldDetail: d.str()}
			if d.byte()%3 == 0 {
				tr.newFirst = at - int64(d.byte())*60_000
			}
			if d.byte()%2 == 0 {
				tr.acct = d.str()
			}
			trs = append(trs, tr)
		}
		checkChange(t, r, d.str(), d.str(), d.str(), at, trs)
	})
}

// FuzzSealedCreds holds the fast path of sealedCreds.UnmarshalJSON to the
// encoding/json path it short-cuts: same values, same acceptance.
func FuzzSealedCreds(f *testing.F) {
	for _, s := range []string{`["user_good","pw"]`, `["a\"b","\u00e9\ud800"]`, `[ "u" , "p" ]`, `["u","p",{"k":"v"}]`,
		`["u"]`, `["u","p","x","y"]`, `["u",1]`, `[]`, `["u","p"]x`, `"u"`, ` ["u","p"] `, `["u\x00","p"]`, "[\"u\xff\",\"p\"]"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, in string) {
		var fast sealedCreds
		errFast := json.Unmarshal([]byte(in), &fast) // calls UnmarshalJSON: the fast path first
		var slow sealedCreds
		var parts []json.RawMessage
		errSlow := json.Unmarshal([]byte(in), &parts)
		if errSlow == nil && (len(parts) < 2 || len(parts) > 3) {
			errSlow = fmt.Errorf("%d parts", len(parts))
		}
		if errSlow == nil {
			errSlow = json.Unmarshal(parts[0], &slow.U)
		}
		if errSlow == nil {
			errSlow = json.Unmarshal(parts[1], &slow.P)
		}
		if errSlow == nil && len(parts) == 3 {
			errSlow = json.Unmarshal(parts[2], &slow.X)
		}
		if (errFast == nil) != (errSlow == nil) {
			t.Fatalf("%q: fast path error %v, encoding/json %v", in, errFast, errSlow)
		}
		if errFast == nil && (fast.U != slow.U || fast.P != slow.P || !reflect.DeepEqual(fast.X, slow.X)) {
			t.Fatalf("%q: fast path %+v, encoding/json %+v", in, fast, slow)
		}
		var direct sealedCreds // as Store.open calls it, without json.Unmarshal's validating pass
		if errDirect := direct.UnmarshalJSON([]byte(in)); (errDirect == nil) != (errSlow == nil) {
			t.Fatalf("%q: direct error %v, encoding/json %v", in, errDirect, errSlow)
		} else if errDirect == nil && (direct.U != slow.U || direct.P != slow.P || !reflect.DeepEqual(direct.X, slow.X)) {
			t.Fatalf("%q: direct %+v, encoding/json %+v", in, direct, slow)
		}
	})
}

func TestDatasourceJSON(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		in   string
		want string
		ok   bool
	}{
		{`{"name":"sandbox"}`, "sandbox", true},
		{`"sandbox"`, "sandbox", true}, // the request form
		{`{}`, "", true},
		{`42`, "", false},
		{`["sandbox"]`, "", false},
	} {
		var d Datasource
		err := json.Unmarshal([]byte(c.in), &d)
		if (err == nil) != c.ok || d.Name != c.want {
			t.Errorf("%s: %+v, %v", c.in, d, err)
		}
	}
	if b, _ := json.Marshal(Datasource{Name: "sandbox"}); string(b) != `{"name":"sandbox"}` {
		t.Errorf("marshal: %s", b)
	}
}
