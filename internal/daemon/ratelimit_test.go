package daemon_test

import (
	"context"
	"net/http"
	"testing"

	"github.com/checkd/checkd/internal/clock"
	"github.com/checkd/checkd/internal/daemon"
)

// TestRateLimitConfigured: the daemon's API takes apiRateLimit from the
// configuration: past the burst a key is answered 429.
func TestRateLimitConfigured(t *testing.T) {
	t.Parallel()
	cfg := baseConfig()
	cfg.Roles = []string{"api"}
	cfg.APIKeys = []string{testAPIKey}
	cfg.APIRateLimit.PerSecond, cfg.APIRateLimit.Burst = 1, 2
	clk := clock.NewFake(clock.Real{}.Now()) // stands still: no token comes back during the test
	d, err := daemon.New(cfg, quietLogger(t), daemon.Options{Clock: clk})
	if err != nil {
		t.Fatal(err)
	}
	if err := d.Start(context.Background()); err != nil {
		t.Fatalf("Start: %v", err)
	}
	t.Cleanup(func() { _ = d.Stop(stopCtx(t)) })
	url := "http://" + d.API().Addr() + "/v1/statuses"
	for i, want := range []int{http.StatusOK, http.StatusOK, http.StatusTooManyRequests} {
		if got := getJSON(t, url, testAPIKey, nil); got != want {
			t.Errorf("request %d: %d, want %d", i+1, got, want)
		}
	}
}
