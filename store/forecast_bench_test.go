package store

import (
	"context"
	"strconv"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/checkd/checkd/internal/testing/redistest"
)

// BenchmarkDueForecastRedis is the console's forecast, a week of hourly
// windows, over a weekly schedule of n connections on a real redis-server
// (the schedule sets are filled directly: the forecast reads only them).
// Run with go test -run '^$' -bench DueForecast ./store/.
func BenchmarkDueForecastRedis(b *testing.B) {
	for _, n := range []int{10_000, 1_000_000} {
		b.Run(strconv.Itoa(n), func(b *testing.B) {
			rdb := redistest.Start(b).Client(b)
			s, err := New(rdb, testConfig(b))
			if err != nil {
				b.Fatal(err)
			}
			ctx := context.Background()
			const batch = 10_000
			for i := 0; i < n; i += batch {
				p := rdb.Pipeline()
				for j := i; j < min(i+batch, n); j++ {
					id := newID(ConnectionIDPrefix)
					key, off := s.kWeek(id)
					p.ZAdd(ctx, key, redis.Z{Score: float64(off), Member: id})
				}
				if _, err := p.Exec(ctx); err != nil {
					b.Fatal(err)
				}
			}
			now := time.Now()
			bounds := []time.Time{now}
			for end := now.Truncate(time.Hour).Add(time.Hour); len(bounds) <= 7*24; end = end.Add(time.Hour) {
				bounds = append(bounds, end)
			}
			b.ResetTimer()
			for b.Loop() {
				f, err := s.DueForecast(ctx, bounds)
				if err != nil || len(f) != 7*24 {
					b.Fatal(len(f), err)
				}
			}
		})
	}
}
