package demo_test

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/redis/go-redis/v9"

	"github.com/checkd/checkd/checks"
	"github.com/checkd/checkd/checks/sandbox"
	"github.com/checkd/checkd/configs"
	"github.com/checkd/checkd/internal/demo"
	"github.com/checkd/checkd/internal/testing/testenv"
	"github.com/checkd/checkd/store"
)

func newStore(t *testing.T) *store.Store {
	t.Helper()
	return testenv.New(t, testenv.Options{}).Store
}

func TestSeed(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	st := newStore(t)
	spec := configs.Demo{Enabled: true, Companies: []configs.DemoCompany{
		{Name: "Acme", Connections: map[string]int{"user_good": 3, "error_PASSWORD_INCORRECT": 2, "user_nodocs": 0}},
		{Name: "Globex", Connections: map[string]int{"error_WEBSITE_DOWN": 1}},
	}}
	sum, err := demo.Seed(ctx, st, spec)
	if err != nil {
		t.Fatalf("seed: %v", err)
	}
	if sum.Skipped || sum.Companies != 2 || sum.Connections != 6 {
		t.Fatalf("summary %+v, want 2 companies and 6 connections", sum)
	}
	want := map[string]int{"user_good": 3, "error_PASSWORD_INCORRECT": 2, "error_WEBSITE_DOWN": 1}
	if fmt.Sprint(sum.ByUsername) != fmt.Sprint(want) {
		t.Errorf("by username %v, want %v", sum.ByUsername, want)
	}

	cos, err := st.ListCompanies(ctx)
	if err != nil || len(cos) != 2 {
		t.Fatalf("companies %+v, %v", cos, err)
	}
	byName := map[string]store.Company{}
	for _, c := range cos {
		byName[c.Name] = c
	}
	acme, ok := byName["Acme"]
	if _, globex := byName["Globex"]; !ok || !globex || !acme.IsActive {
		t.Fatalf("companies %+v, want active Acme and Globex", cos)
	}
	page, err := st.ListConnections(ctx, acme.ID, nil, "", 100)
	if err != nil {
		t.Fatal(err)
	}
	users := map[string]int{}
	for _, c := range page.Connections {
		if c.Status != checks.ConnPending || c.Datasource.Name != sandbox.Datasource || !c.IsActive || c.NextCheckAt == nil {
			t.Errorf("seeded connection %+v: want an active PENDING sandbox connection due at once", c)
		}
		tg, err := st.LoadCheck(ctx, c.ID)
		if err != nil {
			t.Fatal(err)
		}
		users[tg.Request.Credentials.Username]++
	}
	if users["user_good"] != 3 || users["error_PASSWORD_INCORRECT"] != 2 || len(users) != 2 {
		t.Errorf("Acme's connections by username %v", users)
	}
	due, err := st.DueBacklog(ctx, time.Date(2026, 3, 2, 9, 0, 0, 0, time.UTC))
	if err != nil || due != 6 {
		t.Errorf("due backlog %d (%v), want all 6 due at once", due, err)
	}

	// A second seed leaves the store alone.
	again, err := demo.Seed(ctx, st, spec)
	if err != nil || !again.Skipped || again.Connections != 0 {
		t.Errorf("second seed: %+v, %v; want skipped", again, err)
	}
	if cos, _ := st.ListCompanies(ctx); len(cos) != 2 {
		t.Errorf("second seed created companies: %d", len(cos))
	}
}

func TestSeedDemoFile(t *testing.T) {
	t.Parallel()
	cfg := testenv.DemoConfig(t)
	st := newStore(t)
	sum, err := demo.Seed(context.Background(), st, cfg.Demo)
	if err != nil {
		t.Fatal(err)
	}
	want := 0
	for _, co := range cfg.Demo.Companies {
		for _, n := range co.Connections {
			want += n
		}
	}
	if sum.Companies != len(cfg.Demo.Companies) || sum.Connections != want || want < 200 {
		t.Errorf("seeded %+v, want %d companies and %d (a few hundred) connections", sum, len(cfg.Demo.Companies), want)
	}
	counts, err := st.StatusCounts(context.Background())
	if err != nil || counts[checks.ConnPending] != int64(want) {
		t.Errorf("PENDING count %d (%v), want %d", counts[checks.ConnPending], err, want)
	}
}

// TestDemoFileTracking: in make run, the accounts that checks discover are
// tracked at once, except at the company with autoTrack false, whose
// accounts wait DETECTED to be confirmed or rejected, as the docs show.
func TestDemoFileTracking(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	cfg := testenv.DemoConfig(t)
	env := testenv.New(t, testenv.Options{Store: func(c *store.Config) { c.AutoTrack = cfg.Store.AutoTrack }})
	st, clk := env.Store, env.Clock
	if _, err := demo.Seed(ctx, st, cfg.Demo); err != nil {
		t.Fatal(err)
	}
	cos, err := st.ListCompanies(ctx)
	if err != nil {
		t.Fatal(err)
	}
	checker := sandbox.New(sandbox.Options{})
	manual := 0
	for _, co := range cos {
		page, err := st.ListConnections(ctx, co.ID, nil, "", 1000)
		if err != nil {
			t.Fatal(err)
		}
		var tg *store.CheckTarget
		for _, c := range page.Connections {
			if tg, err = st.LoadCheck(ctx, c.ID); err != nil {
				t.Fatal(err)
			}
			if tg.Request.Credentials.Username == "user_good" {
				break
			}
		}
		res, err := checker.Check(ctx, tg.Request)
		if err != nil {
			t.Fatal(err)
		}
		start := clk.Now()
		if _, err := st.RecordCheck(ctx, tg, store.CheckResult{Attempt: "demo-" + co.ID, StartedAt: start, FinishedAt: clk.Advance(time.Second), Result: res}); err != nil {
			t.Fatal(err)
		}
		got, err := st.GetConnection(ctx, tg.Connection.ID)
		if err != nil || len(got.Accounts) == 0 {
			t.Fatalf("%s: %+v %v", co.Name, got, err)
		}
		wantManual := co.AutoTrack != nil && !*co.AutoTrack
		if wantManual {
			manual++
		}
		for _, a := range got.Accounts {
			if wantManual && (a.Status != checks.AcctDetected || a.TrackingStatus != checks.TrackingUnset) ||
				!wantManual && a.TrackingStatus != checks.TrackingEnabled {
				t.Errorf("%s (autoTrack %v): discovered account %s is %s/%s", co.Name, co.AutoTrack, a.ID, a.Status, a.TrackingStatus)
			}
		}
	}
	if manual != 1 {
		t.Errorf("%d demo companies leave accounts to confirm, want 1", manual)
	}
}

func TestSeedErrors(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		ctx  func() context.Context
		spec configs.Demo
		want func(error) bool
	}{
		{"cancelled", func() context.Context {
			ctx, cancel := context.WithCancel(context.Background())
			cancel()
			return ctx
		}, configs.Demo{Companies: []configs.DemoCompany{{Name: "A", Connections: map[string]int{"user_good": 1}}}},
			func(err error) bool { return errors.Is(err, context.Canceled) }},
		{"invalid company", context.Background,
			configs.Demo{Companies: []configs.DemoCompany{{Name: " "}}},
			func(err error) bool { return errors.Is(err, store.ErrInvalid) }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			_, err := demo.Seed(tt.ctx(), newStore(t), tt.spec)
			if err == nil || !tt.want(err) {
				t.Errorf("got %v", err)
			}
		})
	}
}

func ExampleSeed() {
	mr, err := miniredis.Run()
	if err != nil {
		fmt.Println(err)
		return
	}
	defer mr.Close()
	rdb := redis.NewClient(&redis.Options{Addr: mr.Addr()})
	defer rdb.Close()
	cfg := configs.Default().StoreConfig() // checkd's defaults
	key, _ := store.GenerateKey()
	cfg.Cipher, _ = store.NewCipher(key)
	st, _ := store.New(rdb, cfg)

	sum, err := demo.Seed(context.Background(), st, configs.Demo{Enabled: true, Companies: []configs.DemoCompany{
		{Name: "Acme", Connections: map[string]int{"user_good": 8, "error_PASSWORD_INCORRECT": 2}},
	}})
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(sum.Companies, "company,", sum.Connections, "connections,", sum.ByUsername["user_good"], "of them user_good")
	// Output: 1 company, 10 connections, 8 of them user_good
}
