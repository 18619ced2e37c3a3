package metrics

import (
	"context"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/checkd/checkd/internal/clock"
	"github.com/checkd/checkd/store"
)

var (
	dsHealthDesc = prometheus.NewDesc("checkd_datasource_health",
		"1 for the datasource's health (HEALTHY, DEGRADED, DOWN), 0 for the others (read at scrape).",
		[]string{"datasource", "health"}, nil)
	dsBreakerDesc = prometheus.NewDesc("checkd_datasource_breaker_open",
		"1 while the datasource's outage breaker is open: its checks are not attempted but for the probes.",
		[]string{"datasource"}, nil)
	dsChecksDesc = prometheus.NewDesc("checkd_datasource_window_checks",
		"Checks in the datasource's rolling health window, by kind (all, site_failure, success).",
		[]string{"datasource", "kind"}, nil)
	dsNotAttemptedDesc = prometheus.NewDesc("checkd_datasource_not_attempted",
		"Connections not attempted while the datasource was DOWN, waiting for their re-check.",
		[]string{"datasource"}, nil)
	dsRunningDesc = prometheus.NewDesc("checkd_datasource_running",
		"Concurrency slots of the datasource held now (capped datasources).",
		[]string{"datasource"}, nil)
)

// datasourceCollector reads every datasource's health at scrape time
// (store.DatasourceHealths: one pipeline).
type datasourceCollector struct {
	st    *store.Store
	clk   clock.Clock
	names func() []string
	rules func(ds string) (store.HealthRules, int)
}

// WatchDatasources adds the datasource gauges: health, breaker, window
// counts, connections not attempted and slots held, read from st at scrape
// for the datasources names lists (and any seen in checks) under rules.
func (m *Metrics) WatchDatasources(st *store.Store, clk clock.Clock, names func() []string, rules func(ds string) (store.HealthRules, int)) {
	if clk == nil {
		clk = clock.Real{}
	}
	m.reg.MustRegister(&datasourceCollector{st: st, clk: clk, names: names, rules: rules})
}

// Describe sends the descriptors.
func (c *datasourceCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{dsHealthDesc, dsBreakerDesc, dsChecksDesc, dsNotAttemptedDesc, dsRunningDesc} {
		ch <- d
	}
}

// Collect reads the datasources; a failed read becomes an invalid metric.
func (c *datasourceCollector) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), ScrapeTimeout)
	defer cancel()
	hs, err := c.st.DatasourceHealths(ctx, c.names(), c.rules, c.clk.Now())
	if err != nil {
		ch <- prometheus.NewInvalidMetric(dsHealthDesc, err)
		return
	}
	gauge := func(d *prometheus.Desc, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, labels...)
	}
	for _, h := range hs {
		for _, s := range []string{store.HealthHealthy, store.HealthDegraded, store.HealthDown} {
			gauge(dsHealthDesc, b2f(h.Health == s), h.Name, s)
		}
		gauge(dsBreakerDesc, b2f(h.Breaker == "open"), h.Name)
		gauge(dsChecksDesc, float64(h.Checks), h.Name, "all")
		gauge(dsChecksDesc, float64(h.SiteFailures), h.Name, "site_failure")
		gauge(dsChecksDesc, float64(h.Successes), h.Name, "success")
		gauge(dsNotAttemptedDesc, float64(h.NotAttempted), h.Name)
		gauge(dsRunningDesc, float64(h.Running), h.Name)
	}
}

func b2f(b bool) float64 {
	if b {
		return 1
	}
	return 0
}
