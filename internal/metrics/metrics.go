// Package metrics exposes checkd's Prometheus metrics on a registry of its
// own (never the global one, so tests and several daemons in one process do
// not collide):
//
//	asynq_*                                   queue sizes, latency, processed/failed totals, paused
//	                                          (asynq's x/metrics QueueMetricsCollector, read at scrape)
//	checkd_checks_total{datasource,status,outcome}
//	                                          checks the worker recorded: status is what the check found,
//	                                          outcome what the store did (applied, duplicate, stale, ...)
//	checkd_check_duration_seconds{datasource} checker start to record
//	checkd_connections{status}                connections per status, read at scrape from the store's
//	                                          counters (one HGETALL, never a scan)
//	checkd_due_backlog                        connections whose check time has passed, read at scrape
//	                                          (one ZCOUNT)
//	checkd_scheduler_tick_duration_seconds    wall time of a scheduler tick
//	checkd_scheduler_enqueued_total           check tasks the scheduler's ticks enqueued
//	checkd_scheduler_enqueue_failures_total   enqueues that failed (those connections come due again)
//	checkd_webhook_deliveries_total{endpoint,outcome}
//	                                          webhook attempts by endpoint and outcome (success, failure, gone)
//	checkd_webhook_attempt_duration_seconds{outcome}
//	                                          one attempt: connect, POST, answer
//	checkd_webhook_messages_total             messages the dispatcher stored (each event type of a change
//	                                          that some endpoint receives)
//	checkd_webhook_endpoints_disabled_total{reason}
//	                                          endpoints disabled by their attempts (gone: a 410; failing:
//	                                          webhooks.disableAfter)
//	checkd_webhook_endpoints{state}           endpoints enabled and disabled (read at scrape)
//	checkd_webhook_messages_pending           deliveries waiting in the webhooks queue: pending, running,
//	                                          scheduled or awaiting a retry (read at scrape)
//	checkd_webhook_dispatch_backlog           change events no dispatcher has handed on yet (read at scrape)
//	go_*, process_*                           the Go runtime and the process
//
// ObserveCheck and ObserveTick plug into worker.Config.OnCheck and
// scheduler.Config.OnTick; Handler serves the registry.
package metrics

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"time"

	"github.com/hibiken/asynq"
	asynqmetrics "github.com/hibiken/asynq/x/metrics"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/checkd/checkd/checks"
	"github.com/checkd/checkd/internal/clock"
	"github.com/checkd/checkd/internal/tasks"
	"github.com/checkd/checkd/scheduler"
	"github.com/checkd/checkd/store"
	"github.com/checkd/checkd/webhook"
	"github.com/checkd/checkd/worker"
)

// ScrapeTimeout bounds the Redis reads one scrape makes for the store
// gauges; a scrape that exceeds it reports the gauges as errors instead of
// hanging.
const ScrapeTimeout = 5 * time.Second

// CheckDurationBuckets are the buckets of checkd_check_duration_seconds:
// from a fast sandbox check to the worker's default 2-minute check timeout.
var CheckDurationBuckets = []float64{0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120}

// TickDurationBuckets are the buckets of
// checkd_scheduler_tick_duration_seconds: an idle tick is one round trip, a
// catch-up tick enqueues up to MaxPerTick tasks.
var TickDurationBuckets = []float64{0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60}

// Metrics owns checkd's Prometheus registry and the collectors on it. It is
// safe for concurrent use.
type Metrics struct {
	reg         *prometheus.Registry
	checks      *prometheus.CounterVec
	checkDur    *prometheus.HistogramVec
	tickDur     prometheus.Histogram
	enqueued    prometheus.Counter
	enqueueFail prometheus.Counter
	whAttempts  *prometheus.CounterVec
	whDur       *prometheus.HistogramVec
	whMessages  prometheus.Counter
	whDisabled  *prometheus.CounterVec
}

// AttemptDurationBuckets are the buckets of
// checkd_webhook_attempt_duration_seconds: from a local receiver to the
// 15-second default timeout.
var AttemptDurationBuckets = []float64{0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 15, 30}

// New returns the metrics of one checkd process. st feeds the scrape-time
// gauges checkd_connections and checkd_due_backlog (evaluated at clk's now);
// inspector feeds asynq's queue collector. Either may be nil, which leaves
// its metrics out (a process without Redis access, or tests); clk nil is the
// real clock. Registration touches neither Redis nor the network: every read
// happens at scrape time.
func New(st *store.Store, inspector *asynq.Inspector, clk clock.Clock) *Metrics {
	if clk == nil {
		clk = clock.Real{}
	}
	m := &Metrics{
		reg: prometheus.NewRegistry(),
		checks: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "checkd_checks_total",
			Help: "Checks the worker ran and recorded, by datasource, status found and store outcome (applied, duplicate, stale, fenced, ineligible).",
		}, []string{"datasource", "status", "outcome"}),
		checkDur: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "checkd_check_duration_seconds",
			Help:    "Time from a checker's start to the recorded result, by datasource.",
			Buckets: CheckDurationBuckets,
		}, []string{"datasource"}),
		tickDur: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "checkd_scheduler_tick_duration_seconds",
			Help:    "Wall time of one scheduler tick (claim due connections, enqueue, advance).",
			Buckets: TickDurationBuckets,
		}),
		enqueued: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "checkd_scheduler_enqueued_total",
			Help: "Check tasks the scheduler enqueued (new tasks asynq accepted).",
		}),
		enqueueFail: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "checkd_scheduler_enqueue_failures_total",
			Help: "Check enqueues that failed; those connections come due again when their lease ends.",
		}),
	}
	m.whAttempts = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "checkd_webhook_deliveries_total",
		Help: "Webhook delivery attempts, by endpoint and outcome (success: a 2xx; failure; gone: a 410, which disables the endpoint).",
	}, []string{"endpoint", "outcome"})
	m.whDur = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name:    "checkd_webhook_attempt_duration_seconds",
		Help:    "Time of one webhook attempt, from connecting to the end of the answer, by outcome.",
		Buckets: AttemptDurationBuckets,
	}, []string{"outcome"})
	m.whMessages = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "checkd_webhook_messages_total",
		Help: "Webhook messages the dispatcher stored: each event type of a change that some endpoint receives.",
	})
	m.whDisabled = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "checkd_webhook_endpoints_disabled_total",
		Help: "Webhook endpoints disabled by their attempts (gone: a 410 Gone; failing: every attempt failed for webhooks.disableAfter).",
	}, []string{"reason"})
	m.reg.MustRegister(m.checks, m.checkDur, m.tickDur, m.enqueued, m.enqueueFail, m.whAttempts, m.whDur, m.whMessages, m.whDisabled,
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	if st != nil {
		m.reg.MustRegister(&storeCollector{st: st, clk: clk})
		m.reg.MustRegister(&webhookCollector{st: st, insp: inspector})
	}
	if inspector != nil {
		m.reg.MustRegister(unchecked{asynqmetrics.NewQueueMetricsCollector(inspector)})
	}
	return m
}

// Registry returns the registry, e.g. to register more collectors or to
// gather in tests.
func (m *Metrics) Registry() *prometheus.Registry { return m.reg }

// Handler serves the registry in the Prometheus exposition formats. A
// collector that fails (Redis unreachable) is reported in the scrape's log
// and leaves its metrics out; the others are still served.
func (m *Metrics) Handler() http.Handler {
	return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{
		Registry:      m.reg, // promhttp_metric_handler_errors_total
		ErrorHandling: promhttp.ContinueOnError,
	})
}

// ObserveCheck records one check the worker ran; pass it as
// worker.Config.OnCheck. It only updates in-memory counters.
func (m *Metrics) ObserveCheck(ev worker.CheckEvent) {
	m.checks.WithLabelValues(ev.Datasource, string(ev.Status), string(ev.Outcome)).Inc()
	m.checkDur.WithLabelValues(ev.Datasource).Observe(ev.Duration.Seconds())
}

// ObserveTick records one scheduler tick; pass it as scheduler.Config.OnTick.
func (m *Metrics) ObserveTick(s scheduler.TickStats) {
	m.tickDur.Observe(s.Duration.Seconds())
	m.enqueued.Add(float64(s.Enqueued))
	m.enqueueFail.Add(float64(s.Failed))
}

// ObserveWebhookAttempt records one webhook attempt; pass it as
// webhook.DelivererConfig.OnAttempt.
func (m *Metrics) ObserveWebhookAttempt(a webhook.Attempt) {
	m.whAttempts.WithLabelValues(a.EndpointID, a.Outcome).Inc()
	m.whDur.WithLabelValues(a.Outcome).Observe(a.Duration.Seconds())
}

// ObserveWebhookDisabled records an endpoint its attempts disabled; pass it
// as webhook.DelivererConfig.OnDisabled.
func (m *Metrics) ObserveWebhookDisabled(_, reason string) {
	kind := "failing"
	if strings.Contains(reason, "410") {
		kind = "gone"
	}
	m.whDisabled.WithLabelValues(kind).Inc()
}

// ObserveWebhookDispatch records one dispatch round; pass it as
// webhook.DispatcherConfig.OnDispatch.
func (m *Metrics) ObserveWebhookDispatch(s webhook.DispatchStats) {
	m.whMessages.Add(float64(s.Messages))
}

var (
	webhookEndpointsDesc = prometheus.NewDesc("checkd_webhook_endpoints",
		"Webhook endpoints, enabled and disabled (read at scrape).", []string{"state"}, nil)
	webhookPendingDesc = prometheus.NewDesc("checkd_webhook_messages_pending",
		"Webhook deliveries waiting in the webhooks queue: pending, running, scheduled or awaiting a retry (read at scrape).", nil, nil)
	webhookBacklogDesc = prometheus.NewDesc("checkd_webhook_dispatch_backlog",
		"Change events no webhook dispatcher has handed on yet (read at scrape).", nil, nil)
)

// webhookCollector reads the webhook gauges at scrape time: the endpoints
// (at most store.MaxWebhookEndpoints), the webhooks queue's counts and the
// dispatch group's lag.
type webhookCollector struct {
	st   *store.Store
	insp *asynq.Inspector
}

// Describe sends the three descriptors.
func (c *webhookCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- webhookEndpointsDesc
	ch <- webhookPendingDesc
	ch <- webhookBacklogDesc
}

// Collect reads them; a failed read becomes an invalid metric.
func (c *webhookCollector) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), ScrapeTimeout)
	defer cancel()
	if es, _, err := c.st.AllWebhookEndpoints(ctx); err != nil {
		ch <- prometheus.NewInvalidMetric(webhookEndpointsDesc, err)
	} else {
		disabled := 0
		for _, e := range es {
			if e.Disabled {
				disabled++
			}
		}
		ch <- prometheus.MustNewConstMetric(webhookEndpointsDesc, prometheus.GaugeValue, float64(len(es)-disabled), "enabled")
		ch <- prometheus.MustNewConstMetric(webhookEndpointsDesc, prometheus.GaugeValue, float64(disabled), "disabled")
	}
	if c.insp != nil {
		n := 0
		qi, err := c.insp.GetQueueInfo(tasks.QueueWebhooks)
		switch {
		case err == nil:
			n = qi.Pending + qi.Active + qi.Scheduled + qi.Retry
			ch <- prometheus.MustNewConstMetric(webhookPendingDesc, prometheus.GaugeValue, float64(n))
		case errors.Is(err, asynq.ErrQueueNotFound):
			ch <- prometheus.MustNewConstMetric(webhookPendingDesc, prometheus.GaugeValue, 0)
		default:
			ch <- prometheus.NewInvalidMetric(webhookPendingDesc, err)
		}
	}
	if n, err := c.st.EventBacklog(ctx, webhook.Group); err != nil {
		ch <- prometheus.NewInvalidMetric(webhookBacklogDesc, err)
	} else {
		ch <- prometheus.MustNewConstMetric(webhookBacklogDesc, prometheus.GaugeValue, float64(n))
	}
}

var (
	connectionsDesc = prometheus.NewDesc("checkd_connections",
		"Connections in each status, from the store's per-status counters (read at scrape).",
		[]string{"status"}, nil)
	dueBacklogDesc = prometheus.NewDesc("checkd_due_backlog",
		"Connections whose check time has passed and that no scheduler tick has enqueued yet (read at scrape).",
		nil, nil)
)

// storeCollector reads the store's counters at scrape time: one HGETALL
// and one ZCOUNT, whatever the number of connections.
type storeCollector struct {
	st  *store.Store
	clk clock.Clock
}

// Describe sends the two descriptors.
func (c *storeCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- connectionsDesc
	ch <- dueBacklogDesc
}

// Collect reads the counters; a failed read becomes an invalid metric, which
// the handler reports without failing the whole scrape.
func (c *storeCollector) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), ScrapeTimeout)
	defer cancel()
	counts, err := c.st.StatusCounts(ctx)
	if err != nil {
		ch <- prometheus.NewInvalidMetric(connectionsDesc, err)
	} else {
		// The vocabulary's order, so every status is present, zeros included.
		for _, st := range checks.ConnectionStatuses {
			ch <- prometheus.MustNewConstMetric(connectionsDesc, prometheus.GaugeValue, float64(counts[st]), string(st))
		}
	}
	n, err := c.st.DueBacklog(ctx, c.clk.Now())
	if err != nil {
		ch <- prometheus.NewInvalidMetric(dueBacklogDesc, err)
		return
	}
	ch <- prometheus.MustNewConstMetric(dueBacklogDesc, prometheus.GaugeValue, float64(n))
}

// unchecked registers a collector without describing it. asynq's queue
// collector describes itself by collecting, which would read Redis at
// registration; as an unchecked collector it is read only at scrape.
type unchecked struct{ prometheus.Collector }

// Describe sends nothing, which makes the collector unchecked.
func (unchecked) Describe(chan<- *prometheus.Desc) {}
