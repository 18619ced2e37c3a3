package testenv

import (
	"context"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/checkd/checkd/checks"
	"github.com/checkd/checkd/configs"
	"github.com/checkd/checkd/store"
)

func TestNew(t *testing.T) {
	t.Parallel()
	start := T0.Add(time.Hour)
	var poolSize int
	e := New(t, Options{Start: start,
		MiniOptions: func(o *redis.Options) { o.PoolSize = 3; poolSize = o.PoolSize },
		Store:       func(c *store.Config) { c.Interval = time.Hour }})
	if e.Mini == nil || poolSize != 3 || e.Redis.Options().PoolSize != 3 {
		t.Errorf("miniredis %v, pool size %d: want a fresh miniredis with the adjusted options", e.Mini, e.Redis.Options().PoolSize)
	}
	if !e.Clock.Now().Equal(start) {
		t.Errorf("clock at %s, want %s", e.Clock.Now(), start)
	}
	if e.Store.Interval() != time.Hour {
		t.Errorf("store interval %s, want the adjusted hour", e.Store.Interval())
	}
	if d := New(t, Options{}); d.Store.Interval() != configs.Default().CheckInterval || !d.Clock.Now().Equal(T0) {
		t.Errorf("zero Options: interval %s at %s, want checkd's default at T0", d.Store.Interval(), d.Clock.Now())
	}

	co := e.Company(t, "Acme")
	cn := e.Connection(t, store.NewConnection{CompanyID: co.ID, Datasource: "sandbox",
		Credentials: checks.Credentials{Username: "user_good", Password: "pw"}})
	if got := e.Get(t, cn.ID); got.Status != checks.ConnPending || got.CompanyID != co.ID || !got.CreatedAt.Equal(start) {
		t.Errorf("connection %+v, want PENDING in %s created at the fake clock's %s", got, co.ID, start)
	}
	cs := e.Connections(t, co.ID, 20)
	seen := map[string]bool{cn.ID: true}
	for _, c := range cs {
		if c.ID == "" || seen[c.ID] {
			t.Fatalf("Connections gave a missing or repeated connection: %+v", c)
		}
		seen[c.ID] = true
	}
	page, err := e.Store.ListConnections(context.Background(), co.ID, nil, "", 100)
	if err != nil || len(page.Connections) != 21 {
		t.Errorf("company lists %d connections (%v), want 21", len(page.Connections), err)
	}
}
