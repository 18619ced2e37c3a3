// Package storetest builds stores for tests: a store over the given Redis
// with a throwaway credential key, so tests say only what they care about.
package storetest

import (
	"testing"

	"github.com/redis/go-redis/v9"

	"github.com/checkd/checkd/store"
)

// New returns a store over rdb with cfg; a nil cfg.Cipher gets a fresh
// random key. Any failure fails the test.
func New(tb testing.TB, rdb redis.UniversalClient, cfg store.Config) *store.Store {
	tb.Helper()
	if cfg.Cipher == nil {
		key, err := store.GenerateKey()
		if err != nil {
			tb.Fatal(err)
		}
		if cfg.Cipher, err = store.NewCipher(key); err != nil {
			tb.Fatal(err)
		}
	}
	st, err := store.New(rdb, cfg)
	if err != nil {
		tb.Fatal(err)
	}
	return st
}
