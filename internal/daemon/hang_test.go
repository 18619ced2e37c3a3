package daemon_test

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"runtime"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/checkd/checkd/api"
	"github.com/checkd/checkd/checks"
	"github.com/checkd/checkd/internal/daemon"
	"github.com/checkd/checkd/internal/testing/poll"
	"github.com/checkd/checkd/internal/testing/redistest"
)

// slack is how many times its documented bound the hang test lets an
// answer take (see TestRedisFrozen).
const slack = 3

// probe is one request the hang test sends while Redis is frozen.
type probe struct {
	method, path, body string
	basic              bool          // basic auth (the dashboard) instead of X-API-Key
	bound              time.Duration // the documented answer bound
}

// probeResult is what a probe got.
type probeResult struct {
	probe
	code int
	took time.Duration
	body string
	err  error
}

// TestRedisFrozen freezes the daemon's Redis (SIGSTOP, as a paused VM or a
// network black hole) with every role running, and checks that:
//   - every API route answers 503 within its documented bound (/readyz
//     within daemon.ReadyBound, every other route within api.AnswerBound
//     of the configured request deadline),
//     asserted at slack times the bound: a machine shared by several test
//     runs stalls a process for seconds at times, while the behaviour this
//     guards against took 5 to 40 s;
//   - the worker and scheduler do not pile up goroutines while it hangs
//     (ticks keep coming every second, asynq keeps polling);
//   - after SIGCONT everything resumes unaided: /readyz is ready again, a
//     connection created then is swept and checked, a refresh is checked.
//
// Before the deadlines were set (go-redis ignored context deadlines on the
// socket, its retries multiplied read timeouts, asynq's calls had no
// deadline at all), GET .../details answered after ~35 s and /readyz after
// ~5 s.
func TestRedisFrozen(t *testing.T) {
	// Not parallel: the package's other daemons would share the CPU with
	// the timings measured here.
	own := redistest.StartOwn(t, false)
	cfg := baseConfig()
	cfg.RedisURL = "redis://" + own.Addr + "/0"
	cfg.EncryptionKey = testEncKey
	cfg.APIKeys = []string{testAPIKey}
	cfg.Tick = "@every 1s"
	cfg.CheckInterval = time.Hour
	d, err := daemon.New(cfg, quietLogger(t), daemon.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if err := d.Start(context.Background()); err != nil {
		t.Fatalf("Start: %v", err)
	}
	t.Cleanup(func() {
		own.Resume() // a failed test must not leave the daemon's Stop waiting on a frozen Redis
		if err := d.Stop(stopCtx(t)); err != nil {
			t.Errorf("Stop: %v", err)
		}
	})
	base := "http://" + d.API().Addr()

	co := apiCompany(t, base, "Acme")
	ids := apiConnections(t, base, co.ID, 5)
	waitFor(t, base, ids, func(c api.Connection) bool { return c.Status == checks.ConnConnected })
	cn := ids["0"]
	settle := func() int {
		// Idle goroutines of the HTTP client and server go away with their
		// connections; count what the daemon itself runs.
		http.DefaultClient.CloseIdleConnections()
		runtime.GC()
		return runtime.NumGoroutine()
	}
	baseline := settle()

	probes := []probe{
		{method: "GET", path: "/readyz", bound: daemon.ReadyBound},
		{method: "GET", path: "/v1/company"},
		{method: "POST", path: "/v1/company", body: `{"name":"Frozen"}`},
		{method: "GET", path: "/v1/company/" + co.ID},
		{method: "PATCH", path: "/v1/company/" + co.ID, body: `{"isActive":true}`},
		{method: "GET", path: "/v1/connection/company/" + co.ID},
		{method: "POST", path: "/v1/connection/company/" + co.ID, body: `{"datasource":"sandbox","credentials":{"username":"user_good"}}`},
		{method: "GET", path: "/v1/connection/" + cn + "/details"},
		{method: "PATCH", path: "/v1/connection/" + cn + "/details", body: `{"name":"renamed"}`},
		{method: "GET", path: "/v1/connection/" + cn + "/history"},
		{method: "POST", path: "/v1/connection/" + cn + "/refresh"},
		{method: "PATCH", path: "/v1/connection/" + cn + "/credentials", body: `{"credentials":{"username":"user_good","password":"x"}}`},
		{method: "POST", path: "/v1/connection/" + cn + "/link"},
		{method: "GET", path: "/v1/queues"},
		{method: "POST", path: "/v1/queues/low/pause"},
		{method: "GET", path: "/metrics"},
		{method: "GET", path: "/monitoring/api/queues", basic: true},
		// The console answers an HTML page, not the API's JSON.
		{method: "GET", path: "/console/", basic: true},
		{method: "GET", path: "/console/companies/" + co.ID, basic: true},
		{method: "GET", path: "/console/connections/" + cn, basic: true},
	}
	own.Pause()
	frozeAt := time.Now()
	results := sendProbes(base, probes)
	for _, r := range results {
		bound := r.bound
		if bound == 0 {
			bound = api.AnswerBound(cfg.RequestTimeout)
		}
		note := ""
		if r.took > bound {
			note = fmt.Sprintf(" (over the documented %s: a stalled machine?)", bound)
		}
		t.Logf("frozen Redis: %-6s %-45s %d in %s%s", r.method, r.path, r.code, r.took.Round(time.Millisecond), note)
		switch {
		case r.err != nil:
			t.Errorf("%s %s: %v after %s", r.method, r.path, r.err, r.took)
		case r.took > slack*bound:
			t.Errorf("%s %s answered %d after %s; the documented bound is %s", r.method, r.path, r.code, r.took, bound)
		case r.code != http.StatusServiceUnavailable:
			t.Errorf("%s %s answered %d %s with Redis frozen; want 503", r.method, r.path, r.code, r.body)
		case strings.HasPrefix(r.path, "/console/"):
			if !strings.Contains(r.body, "<!doctype html>") || !strings.Contains(r.body, "database is not answering") {
				t.Errorf("%s %s: 503 without the console's HTML page: %.500s", r.method, r.path, r.body)
			}
		case !strings.Contains(r.body, `"unavailable"`) && !strings.Contains(r.body, "redis unreachable"):
			t.Errorf("%s %s: 503 without the unavailable code: %s", r.method, r.path, r.body)
		}
		if strings.Contains(r.body, own.Addr) {
			t.Errorf("%s %s: the answer names the Redis address: %s", r.method, r.path, r.body)
		}
	}
	// Stay frozen for longer than the Redis client's read timeout (3 s)
	// and its retries, so the worker's dequeues and the scheduler's ticks
	// (one a second) time out and go on, and watch the goroutines once the
	// probes' requests are over: they must not grow with the ticks and polls.
	probed := time.Now()
	wait(t, time.Second)
	var samples []int
	for time.Since(frozeAt) < 10*time.Second || time.Since(probed) < 5*time.Second {
		http.DefaultClient.CloseIdleConnections()
		samples = append(samples, runtime.NumGoroutine())
		wait(t, 100*time.Millisecond)
	}
	// The fewest in the first and in the last second: transient goroutines
	// (a dequeue's, an HTTP connection's) come and go, a pile-up stays.
	early, late := slices.Min(samples[:10]), slices.Min(samples[len(samples)-10:])
	t.Logf("goroutines: %d before the freeze; while frozen, after the probes: at least %d early, %d late, at most %d (frozen %s)",
		baseline, early, late, slices.Max(samples), time.Since(frozeAt).Round(100*time.Millisecond))
	if late > early+1 || late > baseline+10 {
		t.Errorf("goroutines grew while Redis was frozen: %d before, %d early, %d late", baseline, early, late)
	}

	own.Resume()
	thawed := time.Now()
	poll.WaitFor(t, 30*time.Second, "readyz ready after the thaw", func() bool {
		code, _ := get(base+"/readyz", nil)
		return code == http.StatusOK
	})
	t.Logf("ready %s after the thaw", time.Since(thawed).Round(time.Millisecond))
	// The scheduler and worker resume unaided: a connection created now is
	// swept and checked, and so is a refresh.
	fresh := apiConnections(t, base, co.ID, 1)
	waitFor(t, base, fresh, func(c api.Connection) bool { return c.Status == checks.ConnConnected })
	t.Logf("a new connection was checked %s after the thaw", time.Since(thawed).Round(time.Millisecond))
	if code, body := do(http.MethodPost, base+"/v1/connection/"+ids["1"]+"/refresh", "", false); code != http.StatusAccepted {
		t.Fatalf("refresh after the thaw: %d %s", code, body)
	}
	after := settle()
	if after > baseline+30 {
		t.Errorf("goroutines: %d before the freeze, %d after the thaw", baseline, after)
	}
}

// sendProbes sends every probe at once and returns what each got, in order.
func sendProbes(base string, probes []probe) []probeResult {
	out := make([]probeResult, len(probes))
	var wg sync.WaitGroup
	for i, p := range probes {
		wg.Go(func() {
			start := time.Now()
			code, body, err := doRaw(p.method, base+p.path, p.body, p.basic)
			out[i] = probeResult{probe: p, code: code, took: time.Since(start), body: body, err: err}
		})
	}
	wg.Wait()
	sort.SliceStable(out, func(i, j int) bool { return out[i].took > out[j].took })
	return out
}

// doRaw sends one request with the test's key, bounded at a minute.
func doRaw(method, url, body string, basic bool) (int, string, error) {
	req, err := http.NewRequest(method, url, strings.NewReader(body))
	if err != nil {
		return 0, "", err
	}
	if basic {
		req.SetBasicAuth("admin", testAPIKey)
	} else {
		req.Header.Set(api.HeaderAPIKey, testAPIKey)
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	client := &http.Client{Timeout: time.Minute}
	resp, err := client.Do(req)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b), nil
}

func do(method, url, body string, basic bool) (int, string) {
	code, b, err := doRaw(method, url, body, basic)
	if err != nil {
		return 0, err.Error()
	}
	return code, b
}

func get(url string, _ map[string]string) (int, string) { return do(http.MethodGet, url, "", false) }

// wait holds for d of real time: how long a fault lasts (never to order
// events: those are waited for with poll.WaitFor).
func wait(t *testing.T, d time.Duration) {
	t.Helper()
	select {
	case <-time.After(d):
	case <-t.Context().Done():
	}
}
