package httpcheck_test

import (
	"context"
	"testing"

	"github.com/checkd/checkd/checks"
	"github.com/checkd/checkd/checks/sandbox"
)

// BenchmarkRoundTrip is one check of two known accounts through the
// protocol, both sides in this process over loopback: what P2.http adds to
// a check (make bench measures it end to end).
func BenchmarkRoundTrip(b *testing.B) {
	srv := serveSandbox(b, quietLogger())
	c := newChecker(b, srv.URL, nil)
	known := sandbox.AccountNumbers("cn_test1", 2)
	req := request(sandbox.UserGood, checks.Account{ID: "ac_1", Number: known[0], Pull: true}, checks.Account{ID: "ac_2", Number: known[1]})
	ctx := context.Background()
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if res, err := c.Check(ctx, req); err != nil || res.Status != checks.ConnConnected {
				b.Fatalf("%+v %v", res, err)
			}
		}
	})
}
