package webhook

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/checkd/checkd/api/view"
	"github.com/checkd/checkd/checks"
	"github.com/checkd/checkd/store"
)

// fieldsJSON decodes a JSON object into its fields.
func fieldsJSON(t testing.TB, b []byte) map[string]json.RawMessage {
	t.Helper()
	var m map[string]json.RawMessage
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatalf("%s: %v", b, err)
	}
	return m
}

// TestRenderIsGETDetails: a message's data is, field by field and byte by
// byte, the connection as GET details answered right after the change,
// plus its sequence and, for connection.updated.v2, protectedChanges and
// the previous values of exactly those fields.
func TestRenderIsGETDetails(t *testing.T) {
	t.Parallel()
	e := newEnv(t, miniClient(t))
	c := e.conn("user_good")
	details := func() []byte { // what GET details answers now
		got, err := e.st.GetConnection(e.ctx, c.ID)
		if err != nil {
			t.Fatal(err)
		}
		b, err := json.Marshal(view.Of(got))
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	var states [][]byte // GET details after each write
	states = append(states, details())
	e.check(c.ID, checks.Result{Status: checks.ConnConnected, Accounts: []checks.AccountResult{{Number: "1", Name: "Main <meter> & co"}, {Number: "2"}}})
	states = append(states, details())
	e.clk.Advance(time.Hour)
	if _, err := e.st.UpdateDetails(e.ctx, c.ID, store.DetailsPatch{Name: new("Head office"), StartDate: new("2024-01-31")}); err != nil {
		t.Fatal(err)
	}
	states = append(states, details())
	e.clk.Advance(time.Hour)
	if _, err := e.st.UpdateCredentials(e.ctx, c.ID, checks.Credentials{Username: "user_good", Password: "new"}); err != nil {
		t.Fatal(err)
	}
	states = append(states, details())
	e.check(c.ID, checks.Result{Status: checks.ConnPasswordIncorrect, Detail: "rejected"})
	states = append(states, details())
	evs, err := e.st.Events(e.ctx, "", 100)
	if err != nil || len(evs) != len(states) {
		t.Fatalf("%d events, %d writes: %v", len(evs), len(states), err)
	}
	for i, ev := range evs {
		for _, typ := range ev.Types {
			body, err := Render(ev, typ)
			if err != nil {
				t.Fatal(err)
			}
			again, _ := Render(ev, typ)
			var compact bytes.Buffer
			json.Compact(&compact, body)
			if !bytes.Equal(body, again) || !bytes.Equal(body, compact.Bytes()) {
				t.Fatalf("%s: not compact or not deterministic: %s", typ, body)
			}
			top := fieldsJSON(t, body)
			if len(top) != 3 || string(top["type"]) != `"`+typ+`"` || string(top["timestamp"]) != `"`+ev.Time.Format(time.RFC3339Nano)+`"` {
				t.Fatalf("%s: envelope %s", typ, body)
			}
			data := fieldsJSON(t, top["data"])
			if string(data["sequence"]) != strings.TrimSpace(string(must(json.Marshal(ev.Sequence)))) || ev.Sequence != int64(i+1) {
				t.Fatalf("%s: sequence %s, want %d", typ, data["sequence"], i+1)
			}
			pc, old := data["protectedChanges"], data["old"]
			delete(data, "sequence")
			delete(data, "protectedChanges")
			delete(data, "old")
			want := fieldsJSON(t, states[i])
			if len(data) != len(want) {
				t.Fatalf("%s of write %d: data has %d fields, GET details %d", typ, i, len(data), len(want))
			}
			for k, v := range want {
				if !bytes.Equal(data[k], v) {
					t.Fatalf("%s of write %d: data.%s = %s, GET details %s", typ, i, k, data[k], v)
				}
			}
			if typ != store.EventConnectionUpdated {
				if pc != nil || old != nil {
					t.Fatalf("%s carries protectedChanges or old: %s", typ, body)
				}
				continue
			}
			var names []string
			if err := json.Unmarshal(pc, &names); err != nil || !slices.Equal(names, ev.ProtectedChanges) || len(names) == 0 {
				t.Fatalf("protectedChanges %s, event %v", pc, ev.ProtectedChanges)
			}
			prev := fieldsJSON(t, states[i-1])
			olds := fieldsJSON(t, old)
			for _, f := range names {
				if f == "credentials" {
					if _, ok := olds[f]; ok {
						t.Fatal("old carries credentials")
					}
					continue
				}
				w, ok := prev[f]
				if !ok {
					w = json.RawMessage("null")
				}
				if !bytes.Equal(olds[f], w) {
					t.Fatalf("old.%s = %s, GET details before %s", f, olds[f], w)
				}
			}
			if len(olds) != len(slices.DeleteFunc(slices.Clone(names), func(n string) bool { return n == "credentials" })) {
				t.Fatalf("old has fields besides protectedChanges: %s", old)
			}
		}
	}
	if bytes.Contains(must(Render(evs[3], store.EventConnectionUpdated)), []byte("new")) {
		t.Fatal("the credentials' value reached a message")
	}
}

func must(b []byte, err error) []byte {
	if err != nil {
		panic(err)
	}
	return b
}

// TestMessageIDs: a message ID is msg_ and characters of [A-Za-z0-9_],
// stable for a write and type, and distinct across types and writes.
func TestMessageIDs(t *testing.T) {
	t.Parallel()
	ok := regexp.MustCompile(`^msg_[A-Za-z0-9_]+$`)
	seen := map[string]bool{}
	for _, seq := range []int64{1, 2, 10, 1 << 40} {
		for _, typ := range store.EventTypes {
			id := MessageID("cn_0123456789abcdef", seq, typ)
			if !ok.MatchString(id) || !store.ValidWebhookMessageID(id) || seen[id] || id != MessageID("cn_0123456789abcdef", seq, typ) {
				t.Fatalf("message ID %q (seen %v)", id, seen[id])
			}
			seen[id] = true
		}
	}
}

// TestSecrets: whsec_ and the standard base64 of 24 random bytes.
func TestSecrets(t *testing.T) {
	t.Parallel()
	a, err := NewSecret()
	if err != nil {
		t.Fatal(err)
	}
	b, _ := NewSecret()
	k, err := base64.StdEncoding.DecodeString(strings.TrimPrefix(a, "whsec_"))
	if !strings.HasPrefix(a, "whsec_") || len(a) != len("whsec_")+32 || err != nil || len(k) != 24 || a == b {
		t.Fatalf("secrets %q, %q: %v", a, b, err)
	}
	if _, err := Sign("msg_x", t0, []byte("{}"), []string{"whsec_!!"}); err == nil {
		t.Fatal("a malformed secret signed")
	}
}

// TestExamples: the catalog has the three types, each example a valid
// message of its type.
func TestExamples(t *testing.T) {
	t.Parallel()
	ts, err := EventTypes()
	if err != nil || len(ts) != 3 {
		t.Fatalf("%+v %v", ts, err)
	}
	for _, et := range ts {
		var p Payload
		if err := json.Unmarshal(et.Example, &p); err != nil || p.Type != et.Name || p.Data.ID == "" || et.Description == "" {
			t.Fatalf("%s: %s %v", et.Name, et.Example, err)
		}
		if (et.Name == store.EventConnectionUpdated) != (len(p.Data.ProtectedChanges) > 0) {
			t.Fatalf("%s: protectedChanges %v", et.Name, p.Data.ProtectedChanges)
		}
	}
	if _, err := Render(ExampleEvent(store.EventConnectionCreated), "connection.deleted.v2"); err == nil {
		t.Fatal("an unknown type rendered")
	}
}
