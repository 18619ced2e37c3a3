// Package storetest builds stores for tests: a store over the given Redis
// with checkd's default settings (configs.Default, the embedded
// configs/checkd.yaml) and a throwaway credential key, so tests say only
// what they change.
package storetest

import (
	"testing"

	"github.com/redis/go-redis/v9"

	"github.com/checkd/checkd/configs"
	"github.com/checkd/checkd/store"
)

// Config returns a complete store configuration: the embedded defaults
// with a fresh random credential key. Any failure fails the test.
func Config(tb testing.TB) store.Config {
	tb.Helper()
	cfg := configs.Default().StoreConfig()
	key, err := store.GenerateKey()
	if err != nil {
		tb.Fatal(err)
	}
	if cfg.Cipher, err = store.NewCipher(key); err != nil {
		tb.Fatal(err)
	}
	return cfg
}

// New returns a store over rdb with Config(tb), changed by each of mods in
// turn. Any failure fails the test.
func New(tb testing.TB, rdb redis.UniversalClient, mods ...func(*store.Config)) *store.Store {
	tb.Helper()
	cfg := Config(tb)
	for _, m := range mods {
		m(&cfg)
	}
	st, err := store.New(rdb, cfg)
	if err != nil {
		tb.Fatal(err)
	}
	return st
}
