package worker_test

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
	"github.com/checkd/checkd/checks/sandbox"
	"github.com/checkd/checkd/configs"
	"github.com/checkd/checkd/internal/tasks"
	"github.com/checkd/checkd/store"
	"github.com/checkd/checkd/worker"
)

// Example runs a worker: it serves check tasks from Redis and records each
// result in the store.
func Example() {
	mr, err := miniredis.Run()
	if err != nil {
		panic(err)
	}
	defer mr.Close()
	rdb := redis.NewClient(&redis.Options{Addr: mr.Addr()})
	defer rdb.Close()
	ctx := context.Background()

	stCfg := configs.Default().StoreConfig() // checkd's defaults
	key, _ := store.GenerateKey()
	stCfg.Cipher, _ = store.NewCipher(key)
	st, _ := store.New(rdb, stCfg)
	reg := checks.NewRegistry()
	_ = reg.Register(sandbox.Datasource, sandbox.New(sandbox.Options{}))

	log := logrus.New()
	log.SetOutput(io.Discard)
	cfg := worker.ConfigFrom(configs.Default()) // checkd's defaults
	cfg.Logger = log
	w, err := worker.New(rdb, st, reg, cfg)
	if err != nil {
		panic(err)
	}
	if err := w.Start(ctx); err != nil {
		panic(err)
	}
	defer w.Stop(ctx)

	co, _ := st.CreateCompany(ctx, store.NewCompany{Name: "Acme"})
	cn, _ := st.CreateConnection(ctx, store.NewConnection{CompanyID: co.ID, Datasource: sandbox.Datasource,
		Credentials: checks.Credentials{Username: "user_good", Password: "pass_good"}})

	// The scheduler's side: one task per connection and slot.
	tk, _ := tasks.NewCheckTask(cn.ID, time.Now(), tasks.ReasonRefresh, asynq.Queue(tasks.QueueCritical))
	if _, err := asynq.NewClientFromRedisClient(rdb).EnqueueContext(ctx, tk); err != nil {
		panic(err)
	}

	deadline := time.Now().Add(20 * time.Second)
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	got, _ := st.GetConnection(ctx, cn.ID)
	for got.Status == checks.ConnPending && time.Now().Before(deadline) {
		<-tick.C
		got, _ = st.GetConnection(ctx, cn.ID)
	}
	fmt.Println(got.Status)
	for _, a := range got.Accounts {
		fmt.Println(a.AccountNumber != "", a.Status)
	}
	// Output:
	// CONNECTED
	// true DETECTED
	// true DETECTED
}

// ExampleWorker_HandleCheck calls the handler directly, as tests and
// benchmarks do; under a server, asynq calls it.
func ExampleWorker_HandleCheck() {
	mr, err := miniredis.Run()
	if err != nil {
		panic(err)
	}
	defer mr.Close()
	rdb := redis.NewClient(&redis.Options{Addr: mr.Addr()})
	defer rdb.Close()
	ctx := context.Background()

	stCfg := configs.Default().StoreConfig() // checkd's defaults
	key, _ := store.GenerateKey()
	stCfg.Cipher, _ = store.NewCipher(key)
	st, _ := store.New(rdb, stCfg)
	reg := checks.NewRegistry()
	_ = reg.Register(sandbox.Datasource, sandbox.New(sandbox.Options{}))
	log := logrus.New()
	log.SetOutput(io.Discard)
	cfg := worker.ConfigFrom(configs.Default()) // checkd's defaults
	cfg.Logger = log
	w, _ := worker.New(rdb, st, reg, cfg)

	co, _ := st.CreateCompany(ctx, store.NewCompany{Name: "Acme"})
	cn, _ := st.CreateConnection(ctx, store.NewConnection{CompanyID: co.ID, Datasource: sandbox.Datasource,
		Credentials: checks.Credentials{Username: "error_PASSWORD_INCORRECT", Password: "wrong"}})
	tk, _ := tasks.NewCheckTask(cn.ID, time.Now(), tasks.ReasonScheduled)
	fmt.Println("first:", w.HandleCheck(ctx, tk))
	got, _ := st.GetConnection(ctx, cn.ID)
	fmt.Println(got.Status)

	// Credential-blocked now: a later task is skipped without a write.
	tk, _ = tasks.NewCheckTask(cn.ID, time.Now().Add(time.Hour), tasks.ReasonScheduled)
	fmt.Println("second:", w.HandleCheck(ctx, tk))
	// Output:
	// first: <nil>
	// PASSWORD_INCORRECT
	// second: <nil>
}
