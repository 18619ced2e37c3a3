package metrics_test

import (
	"context"
	"fmt"
	"io"
	"math"
	"net/http"
	"net/http/httptest"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/hibiken/asynq"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"github.com/redis/go-redis/v9"

	"github.com/checkd/checkd/checks"
	"github.com/checkd/checkd/internal/clock"
	"github.com/checkd/checkd/internal/metrics"
	"github.com/checkd/checkd/internal/tasks"
	"github.com/checkd/checkd/internal/testing/testenv"
	"github.com/checkd/checkd/scheduler"
	"github.com/checkd/checkd/store"
	"github.com/checkd/checkd/worker"
)

var testNow = time.Date(2026, 3, 2, 10, 0, 0, 0, time.UTC)

type fixture struct {
	mr  *miniredis.Miniredis
	rdb *redis.Client
	st  *store.Store
	clk *clock.Fake
	m   *metrics.Metrics
	srv *httptest.Server
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	te := testenv.New(t, testenv.Options{Start: testNow,
		// No retries: the outage test wants failures at once.
		MiniOptions: func(o *redis.Options) { o.MaxRetries, o.DialerRetries = -1, 1 },
		// A century-long interval: the tests move the clock by minutes and
		// count the due backlog, which a weekly slot falling in those
		// minutes would change.
		Store: func(c *store.Config) { c.Interval = 100 * 365 * 24 * time.Hour }})
	mr, rdb, clk, st := te.Mini, te.Redis, te.Clock, te.Store
	m := metrics.New(st, asynq.NewInspectorFromRedisClient(rdb), clk)
	srv := httptest.NewServer(m.Handler())
	t.Cleanup(srv.Close)
	return &fixture{mr: mr, rdb: rdb, st: st, clk: clk, m: m, srv: srv}
}

// scrape GETs the handler and parses the text exposition format.
func (f *fixture) scrape(t *testing.T) map[string]*dto.MetricFamily {
	t.Helper()
	resp, err := http.Get(f.srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("scrape: status %d: %s", resp.StatusCode, body)
	}
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(strings.NewReader(string(body)))
	if err != nil {
		t.Fatalf("scrape output does not parse: %v\n%s", err, body)
	}
	return fams
}

// sample finds the metric of a family with exactly the given labels.
func sample(fams map[string]*dto.MetricFamily, name string, labels map[string]string) (*dto.Metric, bool) {
	fam, ok := fams[name]
	if !ok {
		return nil, false
	}
next:
	for _, m := range fam.GetMetric() {
		if len(m.GetLabel()) != len(labels) {
			continue
		}
		for _, l := range m.GetLabel() {
			if v, ok := labels[l.GetName()]; !ok || v != l.GetValue() {
				continue next
			}
		}
		return m, true
	}
	return nil, false
}

func value(m *dto.Metric) float64 {
	switch {
	case m.Counter != nil:
		return m.Counter.GetValue()
	case m.Gauge != nil:
		return m.Gauge.GetValue()
	case m.Untyped != nil:
		return m.Untyped.GetValue()
	}
	return math.NaN()
}

func labelsOf(s string) map[string]string {
	out := map[string]string{}
	if s == "" {
		return out
	}
	for _, kv := range strings.Split(s, ",") {
		k, v, _ := strings.Cut(kv, "=")
		out[k] = v
	}
	return out
}

func TestScrapeAfterObservationsAndStoreWrites(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()

	co, err := f.st.CreateCompany(ctx, store.NewCompany{Name: "Acme"})
	if err != nil {
		t.Fatal(err)
	}
	var conns []store.Connection
	for i := 0; i < 3; i++ {
		c, err := f.st.CreateConnection(ctx, store.NewConnection{CompanyID: co.ID, Datasource: "sandbox",
			Credentials: checks.Credentials{Username: "user_good", Password: "pw"}})
		if err != nil {
			t.Fatal(err)
		}
		conns = append(conns, c)
	}
	// One deactivated: it leaves PENDING for DEACTIVATED and the due index.
	off := false
	if _, err := f.st.UpdateDetails(ctx, conns[0].ID, store.DetailsPatch{IsActive: &off}); err != nil {
		t.Fatal(err)
	}
	f.clk.Advance(time.Minute) // the two active ones are overdue now

	// One check task waiting in the default queue, one paused critical queue.
	cl := asynq.NewClientFromRedisClient(f.rdb)
	task, err := tasks.NewCheckTask(conns[1].ID, testNow, tasks.ReasonScheduled)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := cl.Enqueue(task, asynq.Queue(tasks.QueueDefault)); err != nil {
		t.Fatal(err)
	}

	f.m.ObserveCheck(worker.CheckEvent{Datasource: "sandbox", Status: checks.ConnConnected, Outcome: store.Applied, Duration: 200 * time.Millisecond})
	f.m.ObserveCheck(worker.CheckEvent{Datasource: "sandbox", Status: checks.ConnConnected, Outcome: store.Applied, Duration: 300 * time.Millisecond})
	f.m.ObserveCheck(worker.CheckEvent{Datasource: "sandbox", Status: checks.ConnPasswordIncorrect, Outcome: store.Duplicate, Duration: 1500 * time.Millisecond})
	f.m.ObserveCheck(worker.CheckEvent{Datasource: "webportal", Status: checks.ConnWebsiteDown, Outcome: store.Applied, Duration: 20 * time.Second})
	f.m.ObserveTick(scheduler.TickStats{Claimed: 5, Enqueued: 4, AlreadyQueued: 1, Duration: 30 * time.Millisecond})
	f.m.ObserveTick(scheduler.TickStats{Claimed: 3, Enqueued: 1, Failed: 2, Duration: 2 * time.Second})

	fams := f.scrape(t)

	for _, tc := range []struct {
		name   string
		labels string
		want   float64
	}{
		{"checkd_checks_total", "datasource=sandbox,status=CONNECTED,outcome=applied", 2},
		{"checkd_checks_total", "datasource=sandbox,status=PASSWORD_INCORRECT,outcome=duplicate", 1},
		{"checkd_checks_total", "datasource=webportal,status=WEBSITE_DOWN,outcome=applied", 1},
		{"checkd_connections", "status=PENDING", 2},
		{"checkd_connections", "status=DEACTIVATED", 1},
		{"checkd_connections", "status=CONNECTED", 0},
		{"checkd_connections", "status=COMPANY_INACTIVE", 0},
		{"checkd_due_backlog", "", 2},
		{"checkd_scheduler_enqueued_total", "", 5},
		{"checkd_scheduler_enqueue_failures_total", "", 2},
		{"asynq_queue_size", "queue=default", 1},
		{"asynq_tasks_enqueued_total", "queue=default,state=pending", 1},
		{"asynq_tasks_enqueued_total", "queue=default,state=active", 0},
		{"asynq_queue_paused_total", "queue=default", 0},
	} {
		t.Run(tc.name+"{"+tc.labels+"}", func(t *testing.T) {
			m, ok := sample(fams, tc.name, labelsOf(tc.labels))
			if !ok {
				t.Fatalf("no sample %s{%s} in the scrape; families: %v", tc.name, tc.labels, names(fams))
			}
			if got := value(m); got != tc.want {
				t.Fatalf("%s{%s} = %v, want %v", tc.name, tc.labels, got, tc.want)
			}
		})
	}

	// Every connection status has a sample, so dashboards see zeros.
	if got, want := len(fams["checkd_connections"].GetMetric()), len(checks.ConnectionStatuses); got != want {
		t.Errorf("checkd_connections has %d samples, want one per status (%d)", got, want)
	}

	for _, tc := range []struct {
		name      string
		labels    string
		count     uint64
		sum       float64
		bucketLE  float64
		cumulLEQ  uint64
		bucketsIn []float64
	}{
		{"checkd_check_duration_seconds", "datasource=sandbox", 3, 2.0, 0.5, 2, metrics.CheckDurationBuckets},
		{"checkd_check_duration_seconds", "datasource=webportal", 1, 20, 10, 0, metrics.CheckDurationBuckets},
		{"checkd_scheduler_tick_duration_seconds", "", 2, 2.03, 0.05, 1, metrics.TickDurationBuckets},
	} {
		t.Run(tc.name+"{"+tc.labels+"}", func(t *testing.T) {
			m, ok := sample(fams, tc.name, labelsOf(tc.labels))
			if !ok || m.Histogram == nil {
				t.Fatalf("no histogram %s{%s} in the scrape", tc.name, tc.labels)
			}
			h := m.Histogram
			if h.GetSampleCount() != tc.count {
				t.Errorf("count = %d, want %d", h.GetSampleCount(), tc.count)
			}
			if math.Abs(h.GetSampleSum()-tc.sum) > 1e-9 {
				t.Errorf("sum = %v, want %v", h.GetSampleSum(), tc.sum)
			}
			if len(h.GetBucket()) != len(tc.bucketsIn)+1 { // +Inf
				t.Errorf("%d buckets, want %d and +Inf", len(h.GetBucket()), len(tc.bucketsIn))
			}
			found := false
			for _, b := range h.GetBucket() {
				if b.GetUpperBound() == tc.bucketLE {
					found = true
					if b.GetCumulativeCount() != tc.cumulLEQ {
						t.Errorf("bucket le=%v = %d, want %d", tc.bucketLE, b.GetCumulativeCount(), tc.cumulLEQ)
					}
				}
			}
			if !found {
				t.Errorf("no bucket le=%v", tc.bucketLE)
			}
		})
	}

	// The runtime and process collectors are registered.
	for _, name := range []string{"go_goroutines", "go_memstats_alloc_bytes", "process_cpu_seconds_total", "process_open_fds"} {
		if _, ok := fams[name]; !ok {
			t.Errorf("family %s missing from the scrape", name)
		}
	}
}

func TestStoreGaugesFollowWrites(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	co, err := f.st.CreateCompany(ctx, store.NewCompany{Name: "Acme"})
	if err != nil {
		t.Fatal(err)
	}
	gauge := func(name, labels string) float64 {
		t.Helper()
		m, ok := sample(f.scrape(t), name, labelsOf(labels))
		if !ok {
			t.Fatalf("no sample %s{%s}", name, labels)
		}
		return value(m)
	}
	if got := gauge("checkd_connections", "status=PENDING"); got != 0 {
		t.Fatalf("PENDING = %v before any connection, want 0", got)
	}
	for i := 0; i < 4; i++ {
		if _, err := f.st.CreateConnection(ctx, store.NewConnection{CompanyID: co.ID, Datasource: "sandbox",
			Credentials: checks.Credentials{Username: "user_good", Password: "pw"}}); err != nil {
			t.Fatal(err)
		}
	}
	// A new connection is due at its creation time, and the backlog counts
	// due <= now, so they count at once.
	if got := gauge("checkd_due_backlog", ""); got != 4 {
		t.Fatalf("due backlog = %v, want 4", got)
	}
	if got := gauge("checkd_connections", "status=PENDING"); got != 4 {
		t.Fatalf("PENDING = %v, want 4", got)
	}
	if _, err := f.st.SetCompanyActive(ctx, co.ID, false); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name, labels string
		want         float64
	}{
		{"checkd_connections", "status=PENDING", 0},
		{"checkd_connections", "status=COMPANY_INACTIVE", 4},
		{"checkd_due_backlog", "", 0},
	} {
		if got := gauge(tc.name, tc.labels); got != tc.want {
			t.Errorf("after deactivating the company: %s{%s} = %v, want %v", tc.name, tc.labels, got, tc.want)
		}
	}
}

func TestScrapeSurvivesRedisOutage(t *testing.T) {
	f := newFixture(t)
	f.m.ObserveCheck(worker.CheckEvent{Datasource: "sandbox", Status: checks.ConnConnected, Outcome: store.Applied})
	f.mr.Close()
	fams := f.scrape(t)
	if m, ok := sample(fams, "checkd_checks_total", labelsOf("datasource=sandbox,status=CONNECTED,outcome=applied")); !ok || value(m) != 1 {
		t.Fatalf("in-memory counters must still be served while Redis is down; families: %v", names(fams))
	}
	for _, name := range []string{"checkd_connections", "checkd_due_backlog", "asynq_queue_size"} {
		if _, ok := fams[name]; ok {
			t.Errorf("%s served while Redis is down; want it left out", name)
		}
	}
	// The handler counts the failure after serving; the next scrape shows it.
	if m, ok := sample(f.scrape(t), "promhttp_metric_handler_errors_total", labelsOf("cause=gathering")); !ok || value(m) < 1 {
		t.Errorf("the failed gathering is not counted in promhttp_metric_handler_errors_total")
	}
}

func TestNilSourcesLeaveTheirMetricsOut(t *testing.T) {
	m := metrics.New(nil, nil, nil)
	m.ObserveTick(scheduler.TickStats{Enqueued: 3})
	fams, err := m.Registry().Gather()
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]bool{}
	for _, f := range fams {
		got[f.GetName()] = true
	}
	if !got["checkd_scheduler_enqueued_total"] || !got["go_goroutines"] {
		t.Fatalf("own metrics missing: %v", got)
	}
	for _, name := range []string{"checkd_connections", "checkd_due_backlog", "asynq_queue_size"} {
		if got[name] {
			t.Errorf("%s present without its source", name)
		}
	}
}

func names(fams map[string]*dto.MetricFamily) []string {
	out := make([]string, 0, len(fams))
	for n := range fams {
		out = append(out, n)
	}
	sort.Strings(out)
	return out
}

// ExampleMetrics_ObserveCheck plugs the metrics into the worker and the
// scheduler hooks and serves them.
func ExampleMetrics_ObserveCheck() {
	m := metrics.New(nil, nil, nil) // a daemon passes its store, an inspector and its clock
	_ = worker.Config{OnCheck: m.ObserveCheck}
	_ = scheduler.Config{OnTick: m.ObserveTick}

	m.ObserveCheck(worker.CheckEvent{Datasource: "sandbox", Status: checks.ConnConnected, Outcome: store.Applied, Duration: time.Second})

	rec := httptest.NewRecorder()
	m.Handler().ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/metrics", nil))
	for _, line := range strings.Split(rec.Body.String(), "\n") {
		if strings.HasPrefix(line, "checkd_checks_total{") {
			fmt.Println(line)
		}
	}
	// Output:
	// checkd_checks_total{datasource="sandbox",outcome="applied",status="CONNECTED"} 1
}
