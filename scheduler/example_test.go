package scheduler_test

import (
	"context"
	"fmt"
	"io"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"
	"github.com/sirupsen/logrus"

	"github.com/checkd/checkd/checks"
	"github.com/checkd/checkd/configs"
	"github.com/checkd/checkd/internal/clock"
	"github.com/checkd/checkd/internal/tasks"
	"github.com/checkd/checkd/scheduler"
	"github.com/checkd/checkd/store"
)

// A new connection is due at once: the next tick enqueues its first check,
// and moves it to its weekly slot so later ticks leave it alone.
func ExampleScheduler_Tick() {
	mr, err := miniredis.Run()
	if err != nil {
		panic(err)
	}
	defer mr.Close()
	rdb := redis.NewClient(&redis.Options{Addr: mr.Addr()})
	defer rdb.Close()

	ctx := context.Background()
	clk := clock.NewFake(time.Date(2026, 3, 2, 9, 0, 0, 0, time.UTC))
	stCfg := configs.Default().StoreConfig() // checkd's defaults
	key, _ := store.GenerateKey()
	stCfg.Cipher, _ = store.NewCipher(key)
	stCfg.Clock = clk
	st, err := store.New(rdb, stCfg)
	if err != nil {
		panic(err)
	}
	co, _ := st.CreateCompany(ctx, store.NewCompany{Name: "Acme"})
	if _, err := st.CreateConnection(ctx, store.NewConnection{CompanyID: co.ID, Datasource: "sandbox",
		Credentials: checks.Credentials{Username: "user_good", Password: "secret"}}); err != nil {
		panic(err)
	}

	client := asynq.NewClientFromRedisClient(rdb)
	quiet := logrus.New()
	quiet.SetOutput(io.Discard)
	cfg := scheduler.ConfigFrom(configs.Default()) // checkd's defaults
	cfg.Clock, cfg.Logger = clk, quiet
	s, err := scheduler.New(st, client, cfg)
	if err != nil {
		panic(err)
	}
	for range 2 {
		stats, err := s.Tick(ctx, clk.Now())
		if err != nil {
			panic(err)
		}
		fmt.Printf("claimed %d, enqueued %d, already queued %d, failed %d\n",
			stats.Claimed, stats.Enqueued, stats.AlreadyQueued, stats.Failed)
	}
	// Output:
	// claimed 1, enqueued 1, already queued 0, failed 0
	// claimed 0, enqueued 0, already queued 0, failed 0
}

// An API refresh (or an admin change, a webhook...) enqueues a check at
// once on the critical queue, without a running Scheduler; a second one
// while the first is queued enqueues nothing.
func ExampleOnDemand_EnqueueNow() {
	mr, err := miniredis.Run()
	if err != nil {
		panic(err)
	}
	defer mr.Close()
	rdb := redis.NewClient(&redis.Options{Addr: mr.Addr()})
	defer rdb.Close()

	ctx := context.Background()
	clk := clock.NewFake(time.Date(2026, 3, 2, 9, 0, 0, 0, time.UTC))
	stCfg := configs.Default().StoreConfig() // checkd's defaults
	key, _ := store.GenerateKey()
	stCfg.Cipher, _ = store.NewCipher(key)
	stCfg.Clock = clk
	st, err := store.New(rdb, stCfg)
	if err != nil {
		panic(err)
	}
	co, _ := st.CreateCompany(ctx, store.NewCompany{Name: "Acme"})
	cn, err := st.CreateConnection(ctx, store.NewConnection{CompanyID: co.ID, Datasource: "sandbox",
		Credentials: checks.Credentials{Username: "user_good", Password: "secret"}})
	if err != nil {
		panic(err)
	}

	od, err := scheduler.NewOnDemand(st, asynq.NewClientFromRedisClient(rdb), clk, asynq.MaxRetry(3))
	if err != nil {
		panic(err)
	}
	for range 2 {
		res, err := od.EnqueueNow(ctx, cn.ID, time.Time{}, tasks.ReasonRefresh)
		if err != nil {
			panic(err)
		}
		fmt.Printf("enqueued %v %q\n", res.Enqueued, res.Reason)
	}
	// Output:
	// enqueued true ""
	// enqueued false "a check is already queued or running"
}
