package store

import (
	"strings"
	"testing"

	"github.com/redis/go-redis/v9"
)

// TestNewClients: New takes a client of one Redis, standalone or managed by
// Sentinel, and refuses what it cannot work with, saying what to use.
func TestNewClients(t *testing.T) {
	t.Parallel()
	k, err := GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	ci, err := NewCipher(k)
	if err != nil {
		t.Fatal(err)
	}
	// No client here connects: New does not talk to Redis.
	standalone := redis.NewClient(&redis.Options{Addr: "127.0.0.1:1"})
	failover := redis.NewFailoverClient(&redis.FailoverOptions{MasterName: "m", SentinelAddrs: []string{"127.0.0.1:1"}})
	cluster := redis.NewClusterClient(&redis.ClusterOptions{Addrs: []string{"127.0.0.1:1"}})
	ring := redis.NewRing(&redis.RingOptions{Addrs: map[string]string{"a": "127.0.0.1:1"}})
	t.Cleanup(func() { standalone.Close(); failover.Close(); cluster.Close(); ring.Close() })
	for _, c := range []struct {
		name string
		rdb  redis.UniversalClient
		ci   *Cipher
		want string // "" accepted, else in the error
	}{
		{"standalone", standalone, ci, ""},
		{"sentinel", failover, ci, ""},
		{"no client", nil, ci, "a redis client is required"},
		{"no cipher", standalone, nil, "cipher is required"},
		{"cluster", cluster, ci, "Redis Cluster is not supported"},
		{"ring", ring, ci, "Redis Cluster is not supported"},
	} {
		_, err := New(c.rdb, Config{Cipher: c.ci})
		if c.want == "" && err != nil || c.want != "" && (err == nil || !strings.Contains(err.Error(), c.want)) {
			t.Errorf("%s: New = %v, want %q", c.name, err, c.want)
		}
	}
}
