package bench

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"slices"
	"sort"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"

	"github.com/checkd/checkd/checks"
	"github.com/checkd/checkd/configs"
	"github.com/checkd/checkd/internal/clock"
	"github.com/checkd/checkd/store"
	"github.com/checkd/checkd/webhook"
)

// p7DB is the database of P7: a store and queues of its own.
const p7DB = 7

// receiver is P7's local endpoint: a Go HTTP server answering 204 to every
// POST. It counts them and, when asked, the latency from each message's
// change (its payload's timestamp) to its arrival.
type receiver struct {
	srv  *http.Server
	url  string
	n    atomic.Int64
	want atomic.Int64
	done chan struct{}
	once sync.Once

	timing atomic.Bool
	mu     sync.Mutex
	lat    []time.Duration
}

func startReceiver() (*receiver, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	r := &receiver{url: "http://" + ln.Addr().String() + "/hook", done: make(chan struct{})}
	prefix := []byte(`"timestamp":"`)
	r.srv = &http.Server{ReadHeaderTimeout: 10 * time.Second, Handler: http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		if r.timing.Load() {
			b, _ := io.ReadAll(req.Body)
			if i := bytes.Index(b, prefix); i >= 0 {
				rest := b[i+len(prefix):]
				if j := bytes.IndexByte(rest, '"'); j > 0 {
					if t, err := time.Parse(time.RFC3339Nano, string(rest[:j])); err == nil {
						d := time.Since(t)
						r.mu.Lock()
						r.lat = append(r.lat, d)
						r.mu.Unlock()
					}
				}
			}
		} else {
			_, _ = io.Copy(io.Discard, req.Body)
		}
		w.WriteHeader(http.StatusNoContent)
		if n := r.n.Add(1); n == r.want.Load() {
			r.once.Do(func() { close(r.done) })
		}
	})}
	go func() { _ = r.srv.Serve(ln) }()
	return r, nil
}

// expect resets the counter and waits for n more requests with wait.
func (r *receiver) expect(n int) {
	r.n.Store(0)
	r.want.Store(int64(n))
	r.done = make(chan struct{})
	r.once = sync.Once{}
}

func (r *receiver) wait(ctx context.Context) error {
	t := time.NewTimer(drainTimeout)
	defer t.Stop()
	select {
	case <-r.done:
		return nil
	case <-t.C:
		return fmt.Errorf("the receiver got %d of %d requests in %s", r.n.Load(), r.want.Load(), drainTimeout)
	case <-ctx.Done():
		return ctx.Err()
	}
}

// p7 is one P7 run's checkd: a store on its own database and an endpoint
// at the receiver.
type p7 struct {
	e     *env
	rdb   *redis.Client
	rt    *rtCounter
	st    *store.Store
	aq    *asynq.Client
	rcv   *receiver
	co    store.Company
	ep    store.WebhookEndpoint
	conc  int
	conns []string
}

// deliverer is the daemon's deliverer (checkd's defaults) but for its
// concurrency, which one endpoint takes whole, as raw asynq's handler does
// (production bounds it lower: webhooks.perEndpoint), and the receiver's
// loopback address, which the policy allows.
func (p *p7) deliverer() (*webhook.Deliverer, error) {
	dc := webhook.DelivererConfigFrom(configs.Default())
	dc.Concurrency, dc.PerEndpoint, dc.Policy.AllowPrivate = p.conc, p.conc, true
	dc.Clock, dc.Logger = clock.Real{}, p.e.info.WithField("component", "webhooks")
	return webhook.NewDeliverer(p.rdb, p.st, p.aq, dc)
}

// dispatcher is the daemon's dispatcher, checkd's defaults.
func (p *p7) dispatcher() (*webhook.Dispatcher, error) {
	dc := webhook.DispatcherConfigFrom(configs.Default())
	dc.Clock, dc.Logger = clock.Real{}, p.e.info.WithField("component", "webhooks")
	return webhook.NewDispatcher(p.st, p.aq, dc)
}

// changes makes n changes: new connections (their connection.created.v2).
func (p *p7) changes(ctx context.Context, n int) error {
	in := make([]store.NewConnection, min(n, 5000))
	for i := range in {
		in[i] = store.NewConnection{Datasource: "sandbox", Credentials: checks.Credentials{Username: "user_good", Password: "pw"}}
	}
	for made := 0; made < n; made += len(in) {
		cs, err := p.st.CreateConnections(ctx, p.co.ID, in[:min(len(in), n-made)])
		if err != nil {
			return err
		}
		for _, c := range cs {
			p.conns = append(p.conns, c.ID)
		}
	}
	return nil
}

// runCheckd delivers the n changes made beforehand: the dispatcher and the
// deliverer start, and the run ends when the receiver has them all.
func (p *p7) runCheckd(ctx context.Context, n int) (*meter, error) {
	dlv, err := p.deliverer()
	if err != nil {
		return nil, err
	}
	dsp, err := p.dispatcher()
	if err != nil {
		return nil, err
	}
	p.rcv.expect(n)
	stopProf := p.e.startProfile(fmt.Sprintf("P7-checkd-%d", len(p.conns)))
	defer stopProf()
	m := startMeter(ctx, p.rdb, p.rt)
	if err := dlv.Start(ctx); err != nil {
		return nil, err
	}
	if err := dsp.Start(ctx); err != nil {
		return nil, err
	}
	err = p.rcv.wait(ctx)
	m.stop(ctx)
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
	defer cancel()
	_ = dsp.Stop(sctx)
	_ = dlv.Stop(sctx)
	if err != nil {
		return nil, fmt.Errorf("checkd: %w", err)
	}
	return m, flushAsynq(ctx, p.rdb)
}

// rawDelivery is the payload of raw asynq's task: the message itself.
type rawDelivery struct {
	ID   string          `json:"id"`
	Body json.RawMessage `json:"body"`
}

// rawHandler is raw asynq's handler: it signs the task's message with the
// reference library and POSTs it.
func (p *p7) rawHandler(client *http.Client, secret string) asynq.Handler {
	return asynq.HandlerFunc(func(ctx context.Context, t *asynq.Task) error {
		var d rawDelivery
		if err := json.Unmarshal(t.Payload(), &d); err != nil {
			return err
		}
		now := time.Now()
		sig, err := webhook.Sign(d.ID, now, d.Body, []string{secret})
		if err != nil {
			return err
		}
		req, err := http.NewRequestWithContext(ctx, http.MethodPost, p.rcv.url, bytes.NewReader(d.Body))
		if err != nil {
			return err
		}
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set(webhook.HeaderID, d.ID)
		req.Header.Set(webhook.HeaderTimestamp, fmt.Sprint(now.Unix()))
		req.Header.Set(webhook.HeaderSignature, sig)
		resp, err := client.Do(req)
		if err != nil {
			return err
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode/100 != 2 {
			return fmt.Errorf("status %d", resp.StatusCode)
		}
		return nil
	})
}

// runRaw delivers the same messages with raw asynq: they are enqueued (16
// goroutines) while servers of the same concurrency in all run a plain
// handler that signs each with the reference library and POSTs it. One
// server is raw asynq as plainly run; more split the concurrency as
// checkd's deliverer does (webhooks.servers).
func (p *p7) runRaw(ctx context.Context, msgs []rawDelivery, secret string, servers int) (*meter, error) {
	client := &http.Client{Timeout: 15 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: p.conc}}
	defer client.CloseIdleConnections()
	p.rcv.expect(len(msgs))
	stopProf := p.e.startProfile(fmt.Sprintf("P7-raw%d-%d", servers, len(p.conns)))
	defer stopProf()
	m := startMeter(ctx, p.rdb, p.rt)
	h := p.rawHandler(client, secret)
	var srvs []*asynq.Server
	shutdown := func() {
		for _, srv := range srvs {
			srv.Shutdown()
		}
		srvs = nil
	}
	defer shutdown()
	for _, c := range webhook.SplitConcurrency(p.conc, servers) {
		srv := asynq.NewServerFromRedisClient(p.rdb, asynq.Config{Concurrency: c, Queues: map[string]int{"raw": 1},
			TaskCheckInterval: 100 * time.Millisecond, Logger: p.e.quiet.WithField("c", "asynq"), LogLevel: asynq.WarnLevel})
		if err := srv.Start(h); err != nil {
			return nil, err
		}
		srvs = append(srvs, srv)
	}
	var wg sync.WaitGroup
	errs := make(chan error, 16)
	for g := range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := g; i < len(msgs); i += 16 {
				b, _ := json.Marshal(msgs[i])
				if _, err := p.aq.EnqueueContext(ctx, asynq.NewTask("raw:deliver", b, asynq.Queue("raw"))); err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	err := <-errs
	if err == nil {
		err = p.rcv.wait(ctx)
	}
	m.stop(ctx)
	shutdown()
	if err != nil {
		return nil, fmt.Errorf("raw: %w", err)
	}
	return m, flushAsynq(ctx, p.rdb)
}

// runP7: webhook fan-out. Changes (new connections, each one
// connection.created.v2) are delivered to one local receiver by checkd's
// dispatcher and deliverer, end to end from the stream, and the same
// messages by raw asynq from a plain handler that signs and POSTs them,
// same concurrency, in alternating rounds (as P2). Then the latency from
// the store write to the receiver at a steady P7Rate changes per second,
// and the Redis memory a retained message costs.
func runP7(ctx context.Context, e *env) (r Result) {
	r = Result{ID: "P7", Name: "webhooks", Unit: "msgs/s", Goal: "ratio ≥ 0.8"}
	rdb, rt := e.srv.client(p7DB, poolSize(e.sz))
	defer rdb.Close()
	if err := rdb.FlushDB(ctx).Err(); err != nil {
		r.Err = err
		return r
	}
	ci, err := store.NewCipher(e.key)
	if err != nil {
		r.Err = err
		return r
	}
	st, err := store.New(rdb, storeConfig(ci))
	if err != nil {
		r.Err = err
		return r
	}
	rcv, err := startReceiver()
	if err != nil {
		r.Err = err
		return r
	}
	defer rcv.srv.Close()
	p := &p7{e: e, rdb: rdb, rt: rt, st: st, aq: asynq.NewClientFromRedisClient(st.SharedClient()), rcv: rcv, conc: e.sz.P7Concurrency}
	if p.co, err = st.CreateCompany(ctx, store.NewCompany{Name: "P7"}); err != nil {
		r.Err = err
		return r
	}
	secret, err := webhook.NewSecret()
	if err != nil {
		r.Err = err
		return r
	}
	if p.ep, err = st.CreateWebhookEndpoint(ctx, store.NewWebhookEndpoint{URL: rcv.url, Secret: secret}); err != nil {
		r.Err = err
		return r
	}
	if err := st.EnsureEventGroup(ctx, webhook.Group); err != nil {
		r.Err = err
		return r
	}

	rounds := max(e.sz.P7Rounds, 1)
	per := e.sz.P7Changes / rounds
	checkd, raw, rawSplit := &meter{}, &meter{}, &meter{}
	// The deliverer splits its concurrency over webhooks.servers asynq
	// servers; raw asynq runs once so split too, for reference.
	split := configs.Default().Webhooks.Servers
	var roundRatios []string
	var memPer float64
	var memDetail, streamDetail string
	e.logf("P7: %d rounds of %d changes, concurrency %d, one receiver", rounds, per, p.conc)
	for k := range rounds {
		// The round's changes, and the same messages rendered for raw
		// asynq from their events (neither timed).
		last, err := lastEventID(ctx, rdb)
		if err != nil {
			r.Err = err
			return r
		}
		if err := p.changes(ctx, per); err != nil {
			r.Err = err
			return r
		}
		if k == 0 { // the stream's cost per event, before the dispatcher trims it
			n, _ := rdb.XLen(ctx, prefix+"ev").Result()
			if mu, err := memoryUsage(ctx, rdb, prefix+"ev", 0); err == nil && n > 0 {
				streamDetail = fmt.Sprintf("the change-event stream held %d events in %d B: %.0f B per event (the connection before and after, the changed fields, the schedule's state; a creation has no before)",
					n, mu, float64(mu)/float64(n))
			}
		}
		evs, err := st.Events(ctx, last, int64(per))
		if err != nil || len(evs) != per {
			r.Err = fmt.Errorf("round %d: read %d of %d events: %v", k+1, len(evs), per, err)
			return r
		}
		msgs := make([]rawDelivery, len(evs))
		for i, ev := range evs {
			b, err := webhook.Render(ev, ev.Types[0])
			if err != nil {
				r.Err = err
				return r
			}
			msgs[i] = rawDelivery{ID: webhook.MessageID(ev.ConnectionID, ev.Sequence, ev.Types[0]), Body: b}
		}
		before, err := datasetMemory(ctx, rdb)
		if err != nil {
			r.Err = err
			return r
		}
		// checkd between raw asynq plain (one server) and raw asynq split
		// as the deliverer is, their order alternating.
		var mc, mr, ms *meter
		first, second := &mr, &ms
		firstN, secondN := 1, split
		if k%2 == 1 {
			first, second, firstN, secondN = second, first, secondN, firstN
		}
		if *first, err = p.runRaw(ctx, msgs, secret, firstN); err == nil {
			if mc, err = p.runCheckd(ctx, per); err == nil {
				*second, err = p.runRaw(ctx, msgs, secret, secondN)
			}
		}
		if err == nil && k == 0 {
			memPer, memDetail, err = p.retainedMemory(ctx, before, per)
		}
		if err != nil {
			r.Err = fmt.Errorf("round %d: %w", k+1, err)
			return r
		}
		checkd.add(mc)
		raw.add(mr)
		rawSplit.add(ms)
		roundRatios = append(roundRatios, fmt.Sprintf("%.3f", mr.Wall.Seconds()/mc.Wall.Seconds()))
		e.logf("P7: round %d: checkd %.0f msgs/s, raw asynq %.0f/s, raw asynq on %d servers %.0f/s", k+1,
			float64(per)/mc.Wall.Seconds(), float64(per)/mr.Wall.Seconds(), split, float64(per)/ms.Wall.Seconds())
	}
	n := per * rounds
	rate, rawRate, splitRate := float64(n)/checkd.Wall.Seconds(), float64(n)/raw.Wall.Seconds(), float64(n)/rawSplit.Wall.Seconds()
	r.Value, r.Baseline, r.HasBase, r.Ratio, r.HasRatio = rate, rawRate, true, rate/rawRate, true
	r.Met = verdict(r.Ratio >= 0.8)

	p50, p99, sent, err := p.latency(ctx)
	if err != nil {
		r.Err = err
		return r
	}
	r.Subs = append(r.Subs,
		Result{ID: "P7.p50", Name: "webhook-latency-p50", Value: float64(p50.Milliseconds()), Unit: "ms", Goal: "none", Met: "-"},
		Result{ID: "P7.p99", Name: "webhook-latency-p99", Value: float64(p99.Milliseconds()), Unit: "ms", Goal: "≤ 1000 ms",
			Met: verdict(p99 <= time.Second)},
		Result{ID: "P7.mem", Name: "webhook-memory", Value: memPer, Unit: "B/msg", Goal: "none: reported", Met: "-"},
		Result{ID: "P7.split", Name: "webhooks-vs-split-raw", Value: rate, Unit: "msgs/s", Baseline: splitRate, HasBase: true,
			Ratio: rate / splitRate, HasRatio: true, Goal: "none: reported", Met: "-"})
	r.Details = append(r.Details,
		fmt.Sprintf("%d changes (new connections: connection.created.v2, one message each) delivered to one local receiver (Go, 204) by checkd's dispatcher + deliverer in %s, from the stream to the last arrival; raw asynq (16 enqueuers, a handler that signs with the reference library and POSTs) in %s; %d alternating rounds; concurrency %d on both sides (checkd's perEndpoint raised to it: one endpoint)",
			n, checkd.Wall.Round(time.Millisecond), raw.Wall.Round(time.Millisecond), rounds, p.conc),
		fmt.Sprintf("checkd's deliverer splits its concurrency over %d asynq servers (webhooks.servers; asynq's processor takes one task per round trip); raw asynq split the same way (P7.split's baseline) delivered in %s: %.0f msgs/s, ratio %.3f (P7's baseline is raw asynq as plainly run, one server)",
			split, rawSplit.Wall.Round(time.Millisecond), splitRate, rate/splitRate),
		"ratio by round: "+fmt.Sprint(roundRatios),
		"checkd "+checkd.perItem(n),
		"raw    "+raw.perItem(n),
		"raw on "+strconv.Itoa(split)+" servers "+rawSplit.perItem(n),
		fmt.Sprintf("by CPU (Go + Redis per message): checkd %s, raw %s (ratio %.3f)", checkd.cpuPerItem(n), raw.cpuPerItem(n), checkd.cpuRatio(raw, n)),
		fmt.Sprintf("asynq's processor dequeues one task at a time: mean dequeue call latency checkd %s, raw %s, raw split %s (dequeue calls per message %.2f, %.2f, %.2f)",
			checkd.dequeueLatency(), raw.dequeueLatency(), rawSplit.dequeueLatency(),
			float64(checkd.Dequeues)/float64(n), float64(raw.Dequeues)/float64(n), float64(rawSplit.Dequeues)/float64(n)),
		fmt.Sprintf("latency, store write to arrival, at %d changes/s for %s (%d messages): p50 %s, p99 %s (the change's time has millisecond precision)",
			e.sz.P7Rate, e.sz.P7Duration, sent, p50.Round(100*time.Microsecond), p99.Round(100*time.Microsecond)),
		memDetail, streamDetail)
	return r
}

// lastEventID is the newest entry of the change-event stream ("0" none).
func lastEventID(ctx context.Context, c *redis.Client) (string, error) {
	ms, err := c.XRevRangeN(ctx, prefix+"ev", "+", "-", 1).Result()
	if err != nil {
		return "", err
	}
	if len(ms) == 0 {
		return "0", nil
	}
	return ms[0].ID, nil
}

// retainedMemory is the Redis memory of the n messages retained so far
// (each with its delivery state, attempt log entry and index entries):
// used_memory less what remains once the webhook keys are deleted. The
// messages are deleted, which later rounds do not need.
func (p *p7) retainedMemory(ctx context.Context, before int64, n int) (float64, string, error) {
	used, err := datasetMemory(ctx, p.rdb)
	if err != nil {
		return 0, "", err
	}
	var sample string
	if page, err := p.st.ListWebhookMessages(ctx, store.WebhookMessageFilter{}, "", 1); err == nil && len(page.Messages) == 1 {
		m := page.Messages[0]
		mu, _ := memoryUsage(ctx, p.rdb, prefix+"wh:m:"+m.ID, 0)
		att, _ := memoryUsage(ctx, p.rdb, prefix+"wh:a:"+p.ep.ID, 0)
		natt, _ := p.rdb.XLen(ctx, prefix+"wh:a:"+p.ep.ID).Result()
		idx := int64(0)
		v, _ := memoryUsage(ctx, p.rdb, prefix+"wh:ml", 0)
		idx += v
		sample = fmt.Sprintf("; by MEMORY USAGE: a message key (its body %d B) %d B, an attempt %.0f B (%d in the endpoint's log), the listing by time %.0f B per message (the per-connection one comes on top)",
			len(m.Payload), mu, float64(att)/float64(max(natt, 1)), natt, float64(idx)/float64(max(n, 1)))
	}
	for _, pat := range []string{prefix + "wh:m:*", prefix + "wh:ml", prefix + "wh:mc:*", prefix + "wh:a:*"} {
		if _, err := deletePattern(ctx, p.rdb, pat); err != nil {
			return 0, "", err
		}
	}
	after, err := datasetMemory(ctx, p.rdb)
	if err != nil {
		return 0, "", err
	}
	per := float64(used-after) / float64(n)
	return per, fmt.Sprintf("memory: %d retained messages (a message hash with its body and delivery state, its attempt in the endpoint's log, its entries in the listings by time and by connection) took %.0f B each (used_memory before and after deleting them; the round's delivery added %d B in all, stream entries not yet trimmed included)%s",
		n, per, used-before, sample), nil
}

// latency writes changes (renames of the round's connections) at P7Rate
// per second for P7Duration with the dispatcher and deliverer running, and
// returns the p50 and p99 from each write to its arrival.
func (p *p7) latency(ctx context.Context) (p50, p99 time.Duration, sent int, err error) {
	dlv, err := p.deliverer()
	if err != nil {
		return 0, 0, 0, err
	}
	dsp, err := p.dispatcher()
	if err != nil {
		return 0, 0, 0, err
	}
	if err := dlv.Start(ctx); err != nil {
		return 0, 0, 0, err
	}
	if err := dsp.Start(ctx); err != nil {
		return 0, 0, 0, err
	}
	defer func() {
		sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
		defer cancel()
		_ = dsp.Stop(sctx)
		_ = dlv.Stop(sctx)
	}()
	total := int(p.e.sz.P7Rate * int(p.e.sz.P7Duration/time.Second))
	p.rcv.timing.Store(true)
	defer p.rcv.timing.Store(false)
	p.rcv.mu.Lock()
	p.rcv.lat = nil
	p.rcv.mu.Unlock()
	p.rcv.expect(total)
	tick := time.NewTicker(time.Second / time.Duration(p.e.sz.P7Rate))
	defer tick.Stop()
	for i := range total {
		<-tick.C
		id := p.conns[i%len(p.conns)]
		if _, err := p.st.UpdateDetails(ctx, id, store.DetailsPatch{Name: new(fmt.Sprintf("rename %d", i))}); err != nil {
			return 0, 0, 0, err
		}
	}
	if err := p.rcv.wait(ctx); err != nil {
		return 0, 0, 0, err
	}
	p.rcv.mu.Lock()
	lat := slices.Clone(p.rcv.lat)
	p.rcv.mu.Unlock()
	if len(lat) == 0 {
		return 0, 0, 0, fmt.Errorf("no latency measured")
	}
	sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
	q := func(f float64) time.Duration { return lat[min(len(lat)-1, int(f*float64(len(lat))))] }
	return q(0.50), q(0.99), len(lat), nil
}
