package store

import (
	"context"
	"fmt"
	"time"

	"github.com/redis/go-redis/v9"
)

// Concurrency slots: datasources.<name>.maxConcurrent caps the checks of
// one datasource running at once across every worker process. A slot is a
// member of the datasource's sorted set, scored by its lease's end; a
// holder that dies (a killed worker) leaves its slot to expire with the
// lease, and whoever next asks for a slot drops expired ones first.

// acquireSlotScript takes a slot if one is free.
//
//	KEYS[1] -> P ds:<name>:sem
//	ARGV[1] -> now (ms)
//	ARGV[2] -> the lease's end (ms)
//	ARGV[3] -> the cap
//	ARGV[4] -> the holder (unique per check attempt)
//
// Returns 1 when the slot is taken, 0 when every slot is held.
var acquireSlotScript = redis.NewScript(`
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', '(' .. ARGV[1])
if redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[3]) then return 0 end
redis.call('ZADD', KEYS[1], ARGV[2], ARGV[4])
return 1
`)

// AcquireSlot takes one of datasource ds's max concurrency slots for
// holder until now+lease, reporting false when all are held. The holder
// must release it (ReleaseSlot) when its check ends.
func (s *Store) AcquireSlot(ctx context.Context, ds, holder string, max int, lease time.Duration, now time.Time) (bool, error) {
	n, err := s.batch.Run(ctx, acquireSlotScript, []string{s.kSlots(ds)}, ms(now), ms(now.Add(lease)), max, holder).Int()
	if err != nil {
		return false, fmt.Errorf("take a concurrency slot of %s: %w", ds, err)
	}
	return n == 1, nil
}

// releaseSlotScript gives a slot back.
//
//	KEYS[1] -> P ds:<name>:sem
//	ARGV[1] -> the holder
var releaseSlotScript = redis.NewScript(`return redis.call('ZREM', KEYS[1], ARGV[1])`)

// ReleaseSlot gives holder's slot of ds back.
func (s *Store) ReleaseSlot(ctx context.Context, ds, holder string) error {
	if err := s.batch.Run(ctx, releaseSlotScript, []string{s.kSlots(ds)}, holder).Err(); err != nil {
		return fmt.Errorf("release a concurrency slot of %s: %w", ds, err)
	}
	return nil
}

// RunningSlots counts ds's slots held at now (for the benchmark's sampling
// and GET /v1/datasources).
func (s *Store) RunningSlots(ctx context.Context, ds string, now time.Time) (int64, error) {
	n, err := s.rdb.ZCount(ctx, s.kSlots(ds), fmt.Sprint(ms(now)), "+inf").Result()
	if err != nil {
		return 0, fmt.Errorf("count the concurrency slots of %s: %w", ds, err)
	}
	return n, nil
}
