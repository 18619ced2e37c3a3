package daemon_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/checkd/checkd/api"
	"github.com/checkd/checkd/checks"
	"github.com/checkd/checkd/configs"
	"github.com/checkd/checkd/internal/daemon"
	"github.com/checkd/checkd/internal/testing/poll"
	"github.com/checkd/checkd/internal/testing/redistest"
	"github.com/checkd/checkd/store"
	"github.com/redis/go-redis/v9"
)

// TestSentinelFailover runs two checkd processes (scheduler+api+worker and
// a second worker) on a Redis that Sentinel manages — a primary, a replica
// and three sentinels, real processes on loopback — with clients creating
// companies and refreshing connections through the API, then fails the
// primary over (SENTINEL FAILOVER). Both processes follow the new primary
// unaided: the API answers again, and connections created afterwards
// are checked by the workers. The test reports what the failover cost:
// the API's unavailable window, and the acknowledged writes that are gone.
//
// With asynchronous replication (Redis's default) the old primary goes on
// taking writes after the sentinels promoted the replica, until they
// demote it and the clients switch: those writes are lost. With
// min-replicas-to-write 1 the old primary refuses writes once its replica
// left it (NOREPLICAS, a 503), so (nearly) nothing acknowledged is lost,
// at the cost of refusing writes until the old primary has rejoined as the
// new one's replica. The test fails when more than a few acknowledged
// writes are lost under min-replicas-to-write, when one sent after the old
// primary was seen demoted is lost either way (no timing bound: once it is
// a replica the old primary cannot acknowledge a write, so such a write
// went to the new primary), or when checks do not resume.
func TestSentinelFailover(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name     string
		args     []string
		lossless bool
	}{
		{"asynchronous replication", nil, false},
		{"min-replicas-to-write 1", []string{"--min-replicas-to-write", "1", "--min-replicas-max-lag", "10"}, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			failover(t, redistest.StartSentinel(t, tc.args...), tc.lossless)
		})
	}
}

func failover(t *testing.T, sen *redistest.Sentinel, lossless bool) {
	start := func(roles ...string) *daemon.Daemon {
		cfg := baseConfig()
		cfg.RedisURL = sen.URL(0)
		cfg.EncryptionKey = testEncKey
		cfg.APIKeys = []string{testAPIKey}
		cfg.Tick = "@every 1s"
		cfg.CheckInterval = time.Hour
		cfg.Roles = roles
		d, err := daemon.New(cfg, quietLogger(t), daemon.Options{})
		if err != nil {
			t.Fatal(err)
		}
		if err := d.Start(context.Background()); err != nil {
			t.Fatalf("Start on Sentinel: %v", err)
		}
		t.Cleanup(func() {
			if err := d.Stop(stopCtx(t)); err != nil {
				t.Errorf("Stop: %v", err)
			}
		})
		return d
	}
	a := start(configs.RoleScheduler, configs.RoleWorker, configs.RoleAPI)
	start(configs.RoleWorker)
	base := "http://" + a.API().Addr()

	co := apiCompany(t, base, "Acme")
	ids := apiConnections(t, base, co.ID, 20)
	waitFor(t, base, ids, func(c api.Connection) bool { return c.Status == checks.ConnConnected })

	// Clients write throughout: companies created (each acknowledged one
	// must be there afterwards, unless the failover lost it) and refreshes.
	type write struct {
		id       string
		sent, at time.Time
	}
	var (
		mu       sync.Mutex
		acked    []write
		failures []time.Time
	)
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for w := range 2 {
		wg.Go(func() {
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				sent := time.Now()
				code, body := do(http.MethodPost, base+"/v1/company", fmt.Sprintf(`{"name":"w%d-%d"}`, w, i), false)
				if code/100 != 2 && code != http.StatusServiceUnavailable {
					t.Errorf("create company during the failover: %d %s", code, body)
				}
				mu.Lock()
				if code == http.StatusCreated {
					var c store.Company
					if json.Unmarshal([]byte(body), &c) == nil {
						acked = append(acked, write{c.ID, sent, time.Now()})
					}
				} else {
					failures = append(failures, time.Now())
				}
				mu.Unlock()
				if code != http.StatusCreated {
					select { // a client backing off, as Retry-After asks
					case <-stop:
					case <-time.After(10 * time.Millisecond):
					}
				}
				if i%5 == 0 {
					do(http.MethodPost, base+"/v1/connection/"+ids[fmt.Sprint(i%len(ids))]+"/refresh", "", false)
				}
			}
		})
	}
	stopWriters := sync.OnceFunc(func() { close(stop); wg.Wait() })
	defer stopWriters()

	wait(t, time.Second)
	ctx := context.Background()
	oldPrimary, _ := sen.MasterAddr(ctx)
	failAt := time.Now()
	newPrimary := sen.Failover(ctx)
	named := time.Since(failAt)
	old := redis.NewClient(&redis.Options{Addr: oldPrimary})
	defer old.Close()
	poll.WaitFor(t, 90*time.Second, "the old primary "+oldPrimary+" demoted to a replica", func() bool {
		role, err := old.Do(ctx, "ROLE").Slice()
		return err == nil && len(role) > 0 && role[0] == "slave"
	})
	demoted := time.Since(failAt)
	// Writes go on until they have succeeded for a while on the new primary.
	poll.WaitFor(t, 90*time.Second, "writes succeeding after the failover", func() bool {
		mu.Lock()
		defer mu.Unlock()
		n := 0
		for _, w := range acked {
			if w.at.After(failAt.Add(named)) {
				n++
			}
		}
		return n >= 20
	})
	wait(t, time.Second)
	stopWriters()

	// What the failover cost.
	var firstFail, lastFail time.Time
	for _, f := range failures {
		if f.After(failAt.Add(-time.Second)) {
			if firstFail.IsZero() {
				firstFail = f
			}
			lastFail = f
		}
	}
	lost, lostAfter := 0, 0
	var firstLost, lastLost time.Time
	for _, w := range acked {
		var c store.Company
		code := getJSON(t, base+"/v1/company/"+w.id, testAPIKey, &c)
		switch {
		case code == http.StatusNotFound:
			lost++
			if firstLost.IsZero() {
				firstLost = w.at
			}
			lastLost = w.at
			if w.sent.After(failAt.Add(demoted)) {
				lostAfter++
			}
		case code != http.StatusOK:
			t.Fatalf("read company %s after the failover: %d", w.id, code)
		}
	}
	window := "none"
	if !firstFail.IsZero() {
		window = fmt.Sprintf("%d failed writes from %s to %s after SENTINEL FAILOVER", len(failures),
			firstFail.Sub(failAt).Round(time.Millisecond), lastFail.Sub(failAt).Round(time.Millisecond))
	}
	lostAt := ""
	if lost > 0 {
		lostAt = fmt.Sprintf(" (acknowledged from %s to %s after SENTINEL FAILOVER)",
			firstLost.Sub(failAt).Round(time.Millisecond), lastLost.Sub(failAt).Round(time.Millisecond))
	}
	t.Logf("failover %s → %s: the sentinels named the new primary %s and the old one was seen demoted %s after SENTINEL FAILOVER; API unavailable: %s; "+
		"acknowledged company creations lost: %d of %d%s", oldPrimary, newPrimary, named.Round(time.Millisecond), demoted.Round(time.Millisecond),
		window, lost, len(acked), lostAt)
	if lostAfter > 0 {
		t.Errorf("%d companies sent after the old primary was seen demoted (%s after SENTINEL FAILOVER) are gone", lostAfter, demoted.Round(time.Millisecond))
	}
	// min-replicas-to-write is a bound, not a guarantee: the old primary
	// takes writes until it sees its replica gone, a moment after the
	// promotion began.
	if lossless && lost > 10 {
		t.Errorf("%d acknowledged companies lost under min-replicas-to-write, the last %s after SENTINEL FAILOVER", lost, lastLost.Sub(failAt))
	}

	// Checks continue: connections created now are swept and checked by
	// the workers (those refreshed during the failover may wait out
	// asynq's retry backoff, up to minutes, and are not waited for).
	fresh := apiConnections(t, base, co.ID, 10)
	waitFor(t, base, fresh, func(c api.Connection) bool { return c.Status == checks.ConnConnected })
}
