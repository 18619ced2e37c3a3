package store_test

import (
	"errors"
	"fmt"

	"github.com/alicebob/miniredis/v2"
	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"

	"github.com/checkd/checkd/configs"
	"github.com/checkd/checkd/store"
)

// An asynq client over SharedClient enqueues through the store's group
// commit: concurrent enqueues share round trips, while a lone one, as
// here, goes at once in a round trip of its own, and each enqueue gets its
// own outcome.
func ExampleStore_SharedClient() {
	mr, err := miniredis.Run()
	if err != nil {
		panic(err)
	}
	defer mr.Close()
	rdb := redis.NewClient(&redis.Options{Addr: mr.Addr()})
	defer rdb.Close()

	cfg := configs.Default().StoreConfig() // checkd's defaults
	key, _ := store.GenerateKey()
	cfg.Cipher, _ = store.NewCipher(key)
	st, err := store.New(rdb, cfg)
	if err != nil {
		panic(err)
	}
	client := asynq.NewClientFromRedisClient(st.SharedClient())

	task := asynq.NewTask("check", []byte(`{"connection":"conn_1"}`))
	info, err := client.Enqueue(task, asynq.TaskID("check:conn_1"), asynq.Queue("checks"))
	if err != nil {
		panic(err)
	}
	fmt.Println(info.ID, info.Queue, info.State)
	_, err = client.Enqueue(task, asynq.TaskID("check:conn_1"), asynq.Queue("checks"))
	fmt.Println("again:", errors.Is(err, asynq.ErrTaskIDConflict))

	stats := st.BatchStats()
	fmt.Printf("%d enqueues in %d round trips\n", stats.Calls, stats.Batches)
	// Output:
	// check:conn_1 checks pending
	// again: true
	// 2 enqueues in 2 round trips
}
