package store

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/checkd/checkd/checks"
)

func TestActorMiniredis(t *testing.T) { runActor(t, miniBackend) }
func TestActorRedis(t *testing.T)     { runActor(t, realBackend) }

// runActor: every write's history entries and change event name who made
// it: the API key's name (WithActor), the link, the check, or the system
// for a write under no origin; the compact history stores only the actors
// a cause does not imply.
func runActor(t *testing.T, b backend) {
	t.Parallel()
	f := newFixture(t, b, nil)
	withActor := func(actor string) context.Context {
		t.Helper()
		ctx, err := WithActor(f.ctx, actor)
		if err != nil {
			t.Fatal(err)
		}
		if got := ActorOf(ctx); got != actor {
			t.Fatalf("ActorOf = %q, want %q", got, actor)
		}
		return ctx
	}
	ops := withActor("ops-team")
	c, err := f.s.CreateConnection(ops, NewConnection{CompanyID: f.co.ID, Datasource: "sandbox",
		Credentials: checks.Credentials{Username: "u", Password: "p"}})
	if err != nil {
		t.Fatal(err)
	}
	sys := f.conn("by_system")
	viaLink, err := f.s.CreateConnection(withActor(ActorLink), NewConnection{CompanyID: f.co.ID, Datasource: "sandbox",
		Credentials: checks.Credentials{Username: "v", Password: "p"}})
	if err != nil {
		t.Fatal(err)
	}
	f.clk.Advance(time.Minute)
	f.record(c.ID, "a1", f.clk.Now(), ok("A"))
	f.clk.Advance(time.Minute)
	off := false
	if _, err := f.s.UpdateDetails(ops, c.ID, DetailsPatch{IsActive: &off}); err != nil {
		t.Fatal(err)
	}
	f.clk.Advance(time.Minute)
	on := true
	if _, err := f.s.UpdateDetails(f.ctx, c.ID, DetailsPatch{IsActive: &on}); err != nil { // no origin: the system
		t.Fatal(err)
	}
	f.clk.Advance(time.Minute)
	if _, err := f.s.UpdateCredentials(withActor(ActorLink), c.ID, checks.Credentials{Username: "u2", Password: "p"}); err != nil {
		t.Fatal(err)
	}
	f.clk.Advance(time.Minute)
	if _, err := f.s.SetCompanyActive(withActor("ops-team"), f.co.ID, false); err != nil { // the batch path
		t.Fatal(err)
	}

	h, err := f.s.History(f.ctx, c.ID, 0)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, e := range h {
		if e.AccountID == "" {
			got = append(got, e.Cause+"/"+e.Actor)
		}
	}
	want := []string{"admin:company-deactivate/ops-team", "admin:reactivate/system",
		"admin:deactivate/ops-team", "check/check", "created/ops-team"}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("history cause/actor\n got %v\nwant %v", got, want)
	}
	for id, actor := range map[string]string{sys.ID: ActorSystem, viaLink.ID: ActorLink} {
		if h, err := f.s.History(f.ctx, id, 0); err != nil || len(h) == 0 || h[len(h)-1].Actor != actor {
			t.Errorf("history of %s: %+v, %v; want its creation by %s", id, h, err, actor)
		}
	}

	evs, err := f.s.Events(f.ctx, "", 100)
	if err != nil {
		t.Fatal(err)
	}
	got = got[:0]
	var others []string
	for _, ev := range evs {
		if ev.ConnectionID == c.ID {
			got = append(got, ev.Cause+"/"+ev.Actor)
		} else if ev.Type == EventConnectionCreated {
			others = append(others, ev.Cause+"/"+ev.Actor)
		}
	}
	if want := []string{"created/system", "created/link"}; fmt.Sprint(others) != fmt.Sprint(want) {
		t.Errorf("creation events of the other connections: %v, want %v", others, want)
	}
	want = []string{"created/ops-team", "check/check", "admin:deactivate/ops-team", "admin:reactivate/system",
		"credentials/link", "admin:company-deactivate/ops-team"}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("event cause/actor\n got %v\nwant %v", got, want)
	}

	// The implied actors take no room: the system's creation keeps its
	// compact form, a check's element stores none.
	raw, err := f.rdb.Get(f.ctx, f.s.kConn(sys.ID)).Result()
	if err != nil {
		t.Fatal(err)
	}
	r, err := decodeConn(sys.ID, raw)
	if err != nil {
		t.Fatal(err)
	}
	if want := `[[300000,[4,"ops-team"],[0,1,8]],1]`; string(r.Hist) != want {
		t.Errorf("the system's connection's history is %s, want %s", r.Hist, want)
	}
	if raw, err = f.rdb.Get(f.ctx, f.s.kConn(c.ID)).Result(); err != nil || strings.Contains(raw, `"check"`) {
		t.Errorf("the record stores a check's implied actor: %s, %v", raw, err)
	}
	f.invariants()
}

func TestWithActorRefuses(t *testing.T) {
	t.Parallel()
	for _, a := range []string{"", "a\x1b[2J", string(make([]byte, MaxActorLen+1))} {
		if _, err := WithActor(context.Background(), a); !errors.Is(err, ErrInvalid) {
			t.Errorf("WithActor(%q) = %v, want ErrInvalid", a, err)
		}
	}
	if got := ActorOf(context.Background()); got != "" {
		t.Errorf("ActorOf(no origin) = %q", got)
	}
}
