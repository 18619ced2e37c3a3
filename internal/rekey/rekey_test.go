package rekey_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/redis/go-redis/v9"
	"github.com/sirupsen/logrus"
	logtest "github.com/sirupsen/logrus/hooks/test"

	"github.com/checkd/checkd/checks"
	"github.com/checkd/checkd/internal/rekey"
	"github.com/checkd/checkd/internal/testing/poll"
	"github.com/checkd/checkd/internal/testing/storetest"
	"github.com/checkd/checkd/store"
)

// TestRunner: a runner in a process with an old key does a run once one is
// started, logs its end, and stops; Stop is safe before Start and twice.
func TestRunner(t *testing.T) {
	t.Parallel()
	mr := miniredis.RunT(t)
	rdb := redis.NewClient(&redis.Options{Addr: mr.Addr()})
	t.Cleanup(func() { _ = rdb.Close() })
	ctx := context.Background()
	k1, _ := store.GenerateKey()
	k2, _ := store.GenerateKey()
	c1, _ := store.NewCipher(k1)
	c2, _ := store.NewCipher(k2, k1)
	old := storetest.New(t, rdb, func(c *store.Config) { c.Cipher = c1 })
	co, err := old.CreateCompany(ctx, store.NewCompany{Name: "Acme"})
	if err != nil {
		t.Fatal(err)
	}
	for range 30 {
		if _, err := old.CreateConnection(ctx, store.NewConnection{CompanyID: co.ID, Datasource: "sandbox",
			Credentials: checks.Credentials{Username: "user_good"}}); err != nil {
			t.Fatal(err)
		}
	}
	st := storetest.New(t, rdb, func(c *store.Config) { c.Cipher = c2 })
	log, hook := logtest.NewNullLogger()
	r, err := rekey.New(st, rekey.Config{Logger: log, Batch: 7, Pause: time.Millisecond, Poll: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	if err := r.Stop(ctx); err != nil {
		t.Fatalf("Stop before Start: %v", err)
	}
	r, _ = rekey.New(st, rekey.Config{Logger: log, Batch: 7, Pause: time.Millisecond, Poll: time.Hour})
	if err := r.Start(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := st.StartRekey(ctx); err != nil {
		t.Fatal(err)
	}
	r.Wake() // the poll is an hour: only the wake starts it
	var ks store.KeyStatus
	poll.WaitFor(t, 20*time.Second, "the re-encryption done", func() bool {
		var err error
		ks, err = st.KeyStatus(ctx)
		return err == nil && ks.Rekey.Done
	})
	if len(ks.InUse) != 1 || ks.InUse[0] != store.KeyFingerprint(k2) || ks.Rekey.Rewritten != 30 {
		t.Fatalf("done: %+v", ks)
	}
	// The runner logs the end once its step returns, which may be a moment
	// after Redis says done.
	poll.WaitFor(t, 10*time.Second, "the run's end in the log", func() bool {
		for _, e := range hook.AllEntries() {
			if e.Level == logrus.InfoLevel && strings.HasPrefix(e.Message, "re-encryption done") && e.Data["rewritten"] == int64(30) {
				return true
			}
		}
		return false
	})
	for i := range 2 {
		if err := r.Stop(ctx); err != nil {
			t.Fatalf("Stop %d: %v", i+1, err)
		}
	}
	if err := r.Start(ctx); err == nil {
		t.Error("Start after Stop succeeded")
	}
}
