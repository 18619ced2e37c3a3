package metrics_test

import (
	"context"
	"testing"
	"time"

	"github.com/checkd/checkd/checks"
	"github.com/checkd/checkd/store"
)

// TestDatasourceGauges: the datasource gauges follow the health window, the
// breaker and the slots.
func TestDatasourceGauges(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	rules := store.HealthRules{Window: 15 * time.Minute, MinChecks: 20, DownRatio: 0.8, DegradedRatio: 0.3, ProbesPerMinute: 3}
	f.m.WatchDatasources(f.st, f.clk, func() []string { return []string{"sandbox", "quiet"} },
		func(string) (store.HealthRules, int) { return rules, 7 })
	ctx := context.Background()
	get := func(name string, labels map[string]string) float64 {
		t.Helper()
		m, ok := sample(f.scrape(t), name, labels)
		if !ok {
			t.Fatalf("no %s %v", name, labels)
		}
		return value(m)
	}
	if v := get("checkd_datasource_health", map[string]string{"datasource": "quiet", "health": "HEALTHY"}); v != 1 {
		t.Errorf("a datasource without checks: HEALTHY = %v, want 1", v)
	}
	for range 25 {
		if _, _, err := f.st.RecordOutcome(ctx, "sandbox", "cn_test", rules, checks.ConnWebsiteDown, time.Second, false, f.clk.Now()); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := f.st.AcquireSlot(ctx, "sandbox", "h1", 7, time.Minute, f.clk.Now()); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		name   string
		labels map[string]string
		want   float64
	}{
		{"checkd_datasource_health", map[string]string{"datasource": "sandbox", "health": "DOWN"}, 1},
		{"checkd_datasource_health", map[string]string{"datasource": "sandbox", "health": "HEALTHY"}, 0},
		{"checkd_datasource_breaker_open", map[string]string{"datasource": "sandbox"}, 1},
		{"checkd_datasource_window_checks", map[string]string{"datasource": "sandbox", "kind": "all"}, 25},
		{"checkd_datasource_window_checks", map[string]string{"datasource": "sandbox", "kind": "site_failure"}, 25},
		{"checkd_datasource_running", map[string]string{"datasource": "sandbox"}, 1},
		{"checkd_datasource_breaker_open", map[string]string{"datasource": "quiet"}, 0},
	} {
		if v := get(c.name, c.labels); v != c.want {
			t.Errorf("%s %v = %v, want %v", c.name, c.labels, v, c.want)
		}
	}
}
