package checks

import (
	"fmt"
	"testing"
	"time"
)

// Micro-benchmarks of the scheduler's and worker's pure hot functions: the
// slot hash (every advanced or recorded connection computes one) and the
// eligibility rule (every load and every record applies it). Run with
//
//	go test -run '^$' -bench . -benchmem ./checks

// benchIDs are connection-shaped IDs ("cn_" + 16 base32 characters).
var benchIDs = func() []string {
	const alphabet = "0123456789abcdefghjkmnpqrstvwxyz"
	out := make([]string, 1024)
	x := uint64(0x9e3779b97f4a7c15)
	for i := range out {
		b := []byte("cn_0000000000000000")
		for j := 3; j < len(b); j++ {
			x ^= x << 13
			x ^= x >> 7
			x ^= x << 17
			b[j] = alphabet[x%32]
		}
		out[i] = string(b)
	}
	return out
}()

var sinkDuration time.Duration
var sinkTime time.Time
var sinkSkip Skip

func BenchmarkSlotOffset(b *testing.B) {
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		sinkDuration = SlotOffset(benchIDs[i&1023], 168*time.Hour)
		i++
	}
}

func BenchmarkNextSlot(b *testing.B) {
	now := time.Date(2026, 3, 4, 13, 37, 0, 0, time.UTC)
	for _, iv := range []time.Duration{168 * time.Hour, time.Minute} {
		b.Run(fmt.Sprintf("interval=%s", iv), func(b *testing.B) {
			b.ReportAllocs()
			i := 0
			for b.Loop() {
				sinkTime = NextSlot(benchIDs[i&1023], now, iv)
				i++
			}
		})
	}
}

func BenchmarkEligibility(b *testing.B) {
	type in struct {
		st             ConnectionStatus
		active, coActv bool
	}
	var cases []in
	for _, st := range ConnectionStatuses {
		for _, a := range []bool{true, false} {
			for _, c := range []bool{true, false} {
				cases = append(cases, in{st, a, c})
			}
		}
	}
	b.Run("all-cases", func(b *testing.B) {
		b.ReportAllocs()
		i := 0
		for b.Loop() {
			c := cases[i%len(cases)]
			sinkSkip = Eligibility(c.st, c.active, c.coActv)
			i++
		}
	})
	// The common case on the hot path: a healthy, active connection.
	b.Run("connected", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			sinkSkip = Eligibility(ConnConnected, true, true)
		}
	})
}
