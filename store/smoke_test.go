package store

import (
	"context"
	"testing"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/redis/go-redis/v9"

	"github.com/checkd/checkd/checks"
	"github.com/checkd/checkd/clock"
)

func TestSmoke(t *testing.T) {
	mr := miniredis.RunT(t)
	rdb := redis.NewClient(&redis.Options{Addr: mr.Addr()})
	k, _ := GenerateKey()
	c, _ := NewCipher(k)
	clk := clock.NewFake(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC))
	s, err := New(rdb, Config{Cipher: c, Clock: clk})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	co, err := s.CreateCompany(ctx, NewCompany{Name: "Acme"})
	if err != nil {
		t.Fatal(err)
	}
	cn, err := s.CreateConnection(ctx, NewConnection{CompanyID: co.ID, Datasource: "sandbox", Credentials: checks.Credentials{Username: "user_good", Password: "x"}})
	if err != nil {
		t.Fatal(err)
	}
	items, err := s.ClaimDue(ctx, clk.Now(), clk.Now().Add(time.Minute), 10)
	if err != nil || len(items) != 1 {
		t.Fatal(items, err)
	}
	n, err := s.AdvanceDue(ctx, items, clk.Now().Add(time.Minute), clk.Now())
	if err != nil || n != 1 {
		t.Fatal(n, err)
	}
	tg, err := s.LoadCheck(ctx, cn.ID)
	if err != nil || tg.Skip != "" || tg.Request.Credentials.Username != "user_good" {
		t.Fatal(tg, err)
	}
	rec, err := s.RecordCheck(ctx, tg, CheckResult{Attempt: "a1", StartedAt: clk.Now(), FinishedAt: clk.Now().Add(time.Second),
		Result: checks.Result{Status: checks.ConnConnected, Accounts: []checks.AccountResult{{Number: "1"}, {Number: "2"}}}})
	if err != nil || rec.Outcome != Applied {
		t.Fatal(rec, err)
	}
	got, _ := s.GetConnection(ctx, cn.ID)
	t.Logf("%+v", got)
	h, err := s.History(ctx, cn.ID, 0)
	t.Logf("%+v %v", h, err)
	ev, err := s.Events(ctx, "", 10)
	t.Logf("%+v %v", ev, err)
	p, err := s.ListConnections(ctx, co.ID, nil, "", 10)
	t.Logf("%+v %v", p, err)
	raw, _ := mr.Get(s.kConn(cn.ID))
	t.Logf("raw %d bytes: %s", len(raw), raw)
}
