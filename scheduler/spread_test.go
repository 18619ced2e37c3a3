package scheduler

import (
	"fmt"
	"math/rand"
	"testing"
	"time"

	"github.com/checkd/checkd/checks"
)

// randomIDs returns n connection-shaped IDs ("cn_" + 16 base32 characters,
// like the store's), deterministic for a seed.
func randomIDs(n int, seed int64) []string {
	const alphabet = "0123456789abcdefghjkmnpqrstvwxyz"
	r := rand.New(rand.NewSource(seed))
	out := make([]string, n)
	b := []byte("cn_0000000000000000")
	for i := range out {
		for j := 3; j < len(b); j++ {
			b[j] = alphabet[r.Intn(len(alphabet))]
		}
		out[i] = string(b)
	}
	return out
}

// TestSpread: connections created at the same moment get their weekly slots
// spread evenly over the week (hourly buckets), so a bulk import does not
// make one hour of every week a thundering herd.
//
// The bound is statistical: with n IDs in 168 buckets a perfectly uniform
// hash still has binomial noise of sqrt(n/168) per bucket and a maximum
// about 2.7 standard deviations above the mean. At 100k IDs that is about
// +9% (so "max ≤ 1.05 × mean" would fail for any good hash); at 1M it is
// about +3.5%. So 1M IDs check the 5% bound, and 100k IDs check that the
// buckets are as even as chance allows (chi-square, 167 degrees of freedom:
// mean 167, sd 18.3; 260 is 5 sd out).
func TestSpread(t *testing.T) {
	t.Parallel()
	const interval = 168 * time.Hour
	created := time.Date(2026, 3, 4, 13, 37, 0, 0, time.UTC) // one bulk import
	tests := []struct {
		n        int
		maxRatio float64 // max bucket / mean bucket
		maxChi2  float64
	}{
		{n: 100_000, maxRatio: 1.20, maxChi2: 260},
		{n: 1_000_000, maxRatio: 1.05, maxChi2: 260},
	}
	for _, tc := range tests {
		t.Run(fmt.Sprintf("%d IDs", tc.n), func(t *testing.T) {
			t.Parallel()
			if testing.Short() && tc.n > 100_000 {
				t.Skip("1M IDs: skipped in -short mode")
			}
			buckets := make([]int, int(interval/time.Hour))
			for _, id := range randomIDs(tc.n, int64(tc.n)) {
				d := checks.NextSlot(id, created, interval).Sub(created)
				if d <= 0 || d > interval {
					t.Fatalf("slot of %s is %s after creation, want within (0, %s]", id, d, interval)
				}
				buckets[min(int(d/time.Hour), len(buckets)-1)]++
			}
			mean := float64(tc.n) / float64(len(buckets))
			var mx int
			var chi2 float64
			for _, c := range buckets {
				mx = max(mx, c)
				chi2 += (float64(c) - mean) * (float64(c) - mean) / mean
			}
			ratio := float64(mx) / mean
			t.Logf("%d IDs: max hourly bucket %d = %.3f × mean %.0f; chi-square %.1f", tc.n, mx, ratio, mean, chi2)
			if ratio > tc.maxRatio {
				t.Errorf("max bucket %.3f × mean, want ≤ %.2f", ratio, tc.maxRatio)
			}
			if chi2 > tc.maxChi2 {
				t.Errorf("chi-square %.1f over 167 degrees of freedom, want ≤ %.0f: slots are not uniform", chi2, tc.maxChi2)
			}
		})
	}
}
