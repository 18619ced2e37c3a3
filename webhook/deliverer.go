package webhook

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	mrand "math/rand/v2"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"
	"github.com/sirupsen/logrus"

	"github.com/checkd/checkd/internal/clock"
	"github.com/checkd/checkd/internal/startstop"
	"github.com/checkd/checkd/internal/tasks"
	"github.com/checkd/checkd/store"
)

// DelivererConfig configures a Deliverer. Every field is required but the
// test hooks (Resolver, Rand, OnAttempt, OnDisabled): configs/checkd.yaml
// holds the defaults.
type DelivererConfig struct {
	// Concurrency is how many attempts run at once in this process.
	Concurrency int
	// PerEndpoint bounds the attempts to one endpoint at once in this
	// process, so a slow endpoint holds at most that many of Concurrency
	// (and as many more briefly, waiting for one of them to end).
	PerEndpoint int
	// Servers is how many asynq servers share Concurrency (1 to
	// Concurrency). asynq's processor takes one task per Redis round trip,
	// so a server's attempts per second are capped by that round trip
	// whatever its concurrency; several overlap their round trips.
	Servers int
	// Timeout bounds an attempt: no 2xx within it is a failure.
	Timeout time.Duration
	// Schedule is the delay before each attempt of a message to an
	// endpoint, from the previous one's failure (the first from the
	// dispatch, normally 0); its length is the number of attempts. Each
	// delay is spread by ±Jitter (0.2: ±20%).
	Schedule []time.Duration
	Jitter   float64
	// DisableAfter disables an endpoint all of whose attempts failed for
	// that long.
	DisableAfter time.Duration
	// Retention is how long attempts stay in the logs.
	Retention time.Duration
	// Policy decides which addresses attempts may connect to.
	Policy Policy
	// ShutdownTimeout is how long Stop lets attempts in flight finish.
	ShutdownTimeout time.Duration
	// PollInterval is how often an idle deliverer looks for work (asynq's
	// TaskCheckInterval; its scheduled and retried tasks are looked at
	// every second).
	PollInterval time.Duration
	// Clock stamps attempts and their signatures.
	Clock clock.Clock
	// Logger receives a line per failed attempt and per disabled endpoint.
	Logger logrus.FieldLogger

	// Rand, when set, replaces the jitter's random source (tests): a
	// number in [0, 1).
	Rand func() float64
	// OnAttempt, when set, is called after every attempt (metrics).
	OnAttempt func(Attempt)
	// OnDisabled, when set, is called when an attempt disabled its
	// endpoint (metrics).
	OnDisabled func(endpointID, reason string)
}

func (c DelivererConfig) validate() error {
	var p []string
	if c.Concurrency <= 0 || c.PerEndpoint <= 0 {
		p = append(p, "concurrency and perEndpoint must be positive")
	}
	if c.Servers <= 0 || c.Servers > max(c.Concurrency, 1) {
		p = append(p, "servers must be between 1 and concurrency")
	}
	if c.Timeout <= 0 || c.DisableAfter <= 0 || c.Retention <= 0 || c.ShutdownTimeout <= 0 || c.PollInterval <= 0 {
		p = append(p, "timeout, disableAfter, retention, shutdownTimeout and pollInterval must be positive")
	}
	if len(c.Schedule) == 0 {
		p = append(p, "the retry schedule needs at least one attempt")
	}
	for _, d := range c.Schedule {
		if d < 0 {
			p = append(p, "the retry schedule's delays must not be negative")
			break
		}
	}
	if c.Jitter < 0 || c.Jitter >= 1 {
		p = append(p, "jitter must be in [0, 1)")
	}
	if c.Clock == nil || c.Logger == nil {
		p = append(p, "a clock and a logger are required")
	}
	if len(p) > 0 {
		return fmt.Errorf("webhook: deliverer config: %s", strings.Join(p, "; "))
	}
	return nil
}

// Attempt describes one attempt, for metrics.
type Attempt struct {
	EndpointID string
	Trigger    string
	// Outcome is success, failure or gone (a 410).
	Outcome  string
	Duration time.Duration
}

// Outcomes of an Attempt.
const (
	OutcomeSuccess = "success"
	OutcomeFailure = "failure"
	OutcomeGone    = "gone"
)

// Enqueuer enqueues asynq tasks; *asynq.Client implements it.
type Enqueuer interface {
	EnqueueContext(ctx context.Context, task *asynq.Task, opts ...asynq.Option) (*asynq.TaskInfo, error)
}

// Deliverer is the asynq servers of the webhooks queue and their handlers: it
// POSTs messages to endpoints, signed, and retries them on the schedule.
type Deliverer struct {
	rdb  redis.UniversalClient
	st   *store.Store
	enq  Enqueuer
	cfg  DelivererConfig
	log  logrus.FieldLogger
	http *http.Client

	slotsMu  sync.Mutex
	slots    map[string]*endpointSlots // of endpoints with attempts holding or waiting for a slot
	slotWait time.Duration

	life startstop.Lifecycle
	srvs []*asynq.Server
	// retries holds the records being tried again (recordLater), which
	// stopping (closed by Stop, under retryMu with stopped) ends;
	// recordRetry is the first wait (tests shorten it).
	retryMu     sync.Mutex
	stopped     bool
	retries     sync.WaitGroup
	stopping    chan struct{}
	recordRetry time.Duration
}

// NewDeliverer returns a deliverer of st's messages; enq enqueues recovery
// pages. Its asynq servers take tasks through st's Redis client
// (Store.ServerClient: its script calls share the store's group commit),
// so rdb, which Start pings, must be that client's Redis. It touches
// nothing until Start.
func NewDeliverer(rdb redis.UniversalClient, st *store.Store, enq Enqueuer, cfg DelivererConfig) (*Deliverer, error) {
	if rdb == nil || st == nil || enq == nil {
		return nil, errors.New("webhook: a deliverer needs a redis client, a store and an enqueuer")
	}
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	if cfg.Rand == nil {
		cfg.Rand = mrand.Float64
	}
	dialer := &net.Dialer{Timeout: cfg.Timeout, Control: cfg.Policy.control}
	tr := &http.Transport{
		Proxy:                 nil, // a proxy would connect for us, past the address policy
		DialContext:           dialer.DialContext,
		TLSHandshakeTimeout:   cfg.Timeout,
		ResponseHeaderTimeout: cfg.Timeout,
		MaxIdleConnsPerHost:   cfg.PerEndpoint,
		IdleConnTimeout:       90 * time.Second,
		ForceAttemptHTTP2:     true,
	}
	return &Deliverer{rdb: rdb, st: st, enq: enq, cfg: cfg, log: cfg.Logger, slots: map[string]*endpointSlots{}, slotWait: slotWait,
		stopping: make(chan struct{}), recordRetry: time.Second,
		http: &http.Client{Transport: tr, Timeout: cfg.Timeout,
			// A redirect is a failure: following it would deliver where the
			// endpoint's owner did not register, past the address policy.
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}}, nil
}

// retryError asks asynq to run the task again after a delay, without
// counting a failure: the retry schedule's next attempt, or a busy
// endpoint's.
type retryError struct {
	after  time.Duration
	reason string
}

func (e *retryError) Error() string { return e.reason }

// isFailure is asynq's IsFailure: the retry schedule's errors are not
// failures, so asynq's retry count (for checkd's own failures: Redis
// unreachable) does not move with them.
func isFailure(err error) bool {
	var r *retryError
	return !errors.As(err, &r)
}

// retryDelay is the asynq delay of a task whose handler failed: the
// schedule's, or a short backoff for checkd's own failures.
func retryDelay(n int, err error, _ *asynq.Task) time.Duration {
	var r *retryError
	if errors.As(err, &r) {
		return r.after
	}
	return min(time.Duration(1<<min(n, 6))*time.Second, time.Minute)
}

// Start starts the asynq servers of the webhooks queue. A deliverer starts
// once (startstop.Lifecycle).
func (d *Deliverer) Start(ctx context.Context) error {
	return d.life.Start("webhook deliverer", func() error { return d.start(ctx) })
}

func (d *Deliverer) start(ctx context.Context) error {
	if err := d.rdb.Ping(ctx).Err(); err != nil {
		return fmt.Errorf("webhook: redis is unreachable: %w", err)
	}
	// Handlers get ctx's values but not its cancellation: Stop drains them.
	base := context.WithoutCancel(ctx)
	mux := asynq.NewServeMux()
	mux.HandleFunc(tasks.TypeWebhookDeliver, d.HandleDeliver)
	mux.HandleFunc(tasks.TypeWebhookRecover, d.HandleRecover)
	// An attempt's store calls wait for company only while asynq has free
	// slots to bring it (store.AddCheckSlots).
	d.st.AddCheckSlots(d.cfg.Concurrency)
	for i, share := range SplitConcurrency(d.cfg.Concurrency, d.cfg.Servers) {
		srv := d.server(i, share, base)
		if err := srv.Start(mux); err != nil {
			d.shutdown()
			return fmt.Errorf("webhook: start the deliverer's asynq server: %w", err)
		}
		d.srvs = append(d.srvs, srv)
	}
	d.log.WithFields(logrus.Fields{"concurrency": d.cfg.Concurrency, "servers": d.cfg.Servers, "perEndpoint": d.cfg.PerEndpoint,
		"allowPrivate": d.cfg.Policy.AllowPrivate}).Info("webhook deliverer started")
	return nil
}

// SplitConcurrency is concurrency split over n asynq servers as evenly as
// can be, the larger shares first (webhooks.servers).
func SplitConcurrency(concurrency, n int) []int {
	shares := make([]int, n)
	for i := range shares {
		shares[i] = concurrency / n
		if i < concurrency%n {
			shares[i]++
		}
	}
	return shares
}

// server is the deliverer's asynq server number i, running concurrency
// attempts with handlers under base. Attempts' completions share round
// trips with other attempts' reads and records (the store's group
// commit); the dequeue goes alone.
func (d *Deliverer) server(i, concurrency int, base context.Context) *asynq.Server {
	return asynq.NewServerFromRedisClient(d.st.ServerClient(), asynq.Config{
		Concurrency:              concurrency,
		Queues:                   map[string]int{tasks.QueueWebhooks: 1},
		ShutdownTimeout:          d.cfg.ShutdownTimeout,
		BaseContext:              func() context.Context { return base },
		TaskCheckInterval:        d.cfg.PollInterval,
		DelayedTaskCheckInterval: time.Second,
		RetryDelayFunc:           retryDelay,
		IsFailure:                isFailure,
		Logger:                   d.log.WithFields(logrus.Fields{"component": "asynq", "server": i}),
		LogLevel:                 asynq.WarnLevel,
		ErrorHandler: asynq.ErrorHandlerFunc(func(ctx context.Context, t *asynq.Task, err error) {
			if !isFailure(err) {
				return // the schedule's retries are logged with their attempt
			}
			id, _ := asynq.GetTaskID(ctx)
			d.log.WithFields(logrus.Fields{"taskId": id, "taskType": t.Type()}).WithError(err).Warn("webhook task failed; asynq retries it")
		}),
	})
}

// shutdown stops the asynq servers started, together (each waits up to
// ShutdownTimeout for its attempts), and gives back their slots.
func (d *Deliverer) shutdown() {
	var wg sync.WaitGroup
	for _, srv := range d.srvs {
		wg.Go(srv.Shutdown)
	}
	wg.Wait()
	d.srvs = nil
	d.st.AddCheckSlots(-d.cfg.Concurrency)
}

// Stop stops taking tasks and waits for attempts in flight, up to
// ShutdownTimeout (asynq then returns the rest to the queue) or until ctx
// ends. It is safe twice and before Start.
func (d *Deliverer) Stop(ctx context.Context) error {
	return d.life.Stop(ctx, "webhook deliverer", d.stop)
}

func (d *Deliverer) stop(ctx context.Context) error {
	drained := make(chan struct{})
	go func() {
		d.shutdown()
		d.retryMu.Lock()
		d.stopped = true
		close(d.stopping)
		d.retryMu.Unlock()
		d.retries.Wait()
		d.http.CloseIdleConnections()
		d.log.Info("webhook deliverer stopped")
		close(drained)
	}()
	select {
	case <-drained:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("webhook: stop the deliverer: attempts are still in flight: %w", ctx.Err())
	}
}

// slotWait is how long an attempt waits for one of its endpoint's
// PerEndpoint slots before handing its task back for 1 to 3 s: long enough
// for a responsive endpoint's slot to come free (its attempts take
// milliseconds), so a burst to one endpoint flows PerEndpoint at a time
// instead of bouncing through asynq's retries; short enough that attempts
// queued behind a slow endpoint hold the deliverer's slots only briefly.
const slotWait = 250 * time.Millisecond

// endpointSlots bounds one endpoint's attempts in flight. Its counts are
// guarded by the Deliverer's slotsMu; sem is a channel so a waiter can
// give up when slotWait or its context ends.
type endpointSlots struct {
	sem     chan struct{} // a token per attempt in flight, PerEndpoint at most
	waiting int           // attempts waiting for a token, PerEndpoint at most
	users   int           // holders and waiters: the entry goes at 0
}

// acquire takes one of the endpoint's PerEndpoint slots, waiting up to
// d.slotWait for one; false when none came free, ctx ended, or PerEndpoint
// attempts wait already (then at once: a slow endpoint holds at most
// PerEndpoint of the deliverer's slots with attempts and PerEndpoint more,
// each for slotWait at most, with waits). A true is paired with release.
func (d *Deliverer) acquire(ctx context.Context, ep string) bool {
	d.slotsMu.Lock()
	s := d.slots[ep]
	if s == nil {
		s = &endpointSlots{sem: make(chan struct{}, d.cfg.PerEndpoint)}
		d.slots[ep] = s
	}
	select {
	case s.sem <- struct{}{}: // never blocks: the buffer has room or not
		s.users++
		d.slotsMu.Unlock()
		return true
	default:
	}
	if s.waiting >= d.cfg.PerEndpoint { // the tokens are held: users > 0 keeps the entry
		d.slotsMu.Unlock()
		return false
	}
	s.waiting++
	s.users++
	d.slotsMu.Unlock()

	t := time.NewTimer(d.slotWait)
	defer t.Stop()
	got := false
	select {
	case s.sem <- struct{}{}:
		got = true
	case <-t.C:
	case <-ctx.Done():
	}
	d.slotsMu.Lock()
	defer d.slotsMu.Unlock()
	s.waiting--
	if !got {
		d.leave(ep, s)
	}
	return got
}

// release gives back a slot acquire took.
func (d *Deliverer) release(ep string) {
	d.slotsMu.Lock()
	defer d.slotsMu.Unlock()
	s := d.slots[ep] // present: this holder is one of its users
	<-s.sem          // never blocks: this holder's token is in the buffer
	d.leave(ep, s)
}

// leave drops a user of an endpoint's slots and forgets them once nobody
// holds or waits for one. The caller holds slotsMu.
func (d *Deliverer) leave(ep string, s *endpointSlots) {
	if s.users--; s.users == 0 {
		delete(d.slots, ep)
	}
}

// jitter spreads a delay by ±Jitter.
func (d *Deliverer) jitter(v time.Duration) time.Duration {
	return time.Duration(float64(v) * (1 + d.cfg.Jitter*(2*d.cfg.Rand()-1)))
}

// maxRetryAfter bounds how long a Retry-After header can put an attempt off.
const maxRetryAfter = 24 * time.Hour

// retryAfter reads a Retry-After header: seconds or an HTTP date.
func retryAfter(h string, now time.Time) time.Duration {
	if h == "" {
		return 0
	}
	if n, err := strconv.ParseInt(strings.TrimSpace(h), 10, 64); err == nil && n > 0 {
		return min(time.Duration(n)*time.Second, maxRetryAfter)
	}
	if t, err := http.ParseTime(h); err == nil && t.After(now) {
		return min(t.Sub(now), maxRetryAfter)
	}
	return 0
}

// maxResponse is how much of a response body an attempt keeps.
const maxResponse = 512

// HandleDeliver is the webhook:deliver handler: one attempt of a message
// to an endpoint. A scheduled delivery that fails is retried on the
// schedule (a *retryError asynq runs again without counting a failure)
// until it succeeds, its last attempt fails, or its endpoint answers 410
// or is disabled; other triggers make one attempt. It returns other
// errors only when checkd could not do its part (Redis unreachable), for
// asynq to retry. Under asynq the attempt's record is stowed
// (Store.StowWebhookAttempt) to ride with asynq's completion of the task;
// one that fails is tried again in the background (recordLater), not by
// asynq. Called directly, it records before it returns.
func (d *Deliverer) HandleDeliver(ctx context.Context, t *asynq.Task) error {
	p, err := tasks.ParseWebhookDeliverPayload(t.Payload())
	if err != nil {
		return fmt.Errorf("webhook task: %w; archived: %w", err, asynq.SkipRetry)
	}
	entry := func() *logrus.Entry { // made only to log: most attempts log nothing
		return d.log.WithFields(logrus.Fields{"msgId": p.MessageID, "endpointId": p.EndpointID, "trigger": p.Trigger})
	}
	tg, err := d.st.LoadWebhookTarget(ctx, p.MessageID, p.EndpointID)
	switch {
	case errors.Is(err, store.ErrWebhookMessageGone), errors.Is(err, store.ErrWebhookEndpointGone):
		entry().WithError(err).Info("webhook delivery dropped")
		return nil
	case err != nil:
		return err
	}
	series := p.Trigger == store.TriggerScheduled
	switch {
	case series && tg.Delivery.Status != store.DeliveryPending:
		return nil // finished already: a second task of a delivery dispatched twice
	case tg.Endpoint.Disabled:
		if series {
			entry().Info("webhook delivery failed: its endpoint is disabled (recover it once enabled)")
			return d.st.FailWebhookDelivery(ctx, p.MessageID, p.EndpointID)
		}
		entry().Info("webhook delivery skipped: its endpoint is disabled")
		return nil
	case p.Trigger == store.TriggerRecover && tg.Delivery.Status == store.DeliverySuccess:
		return nil // delivered since the recovery was asked for
	}
	if !d.acquire(ctx, p.EndpointID) {
		return &retryError{after: time.Second + time.Duration(d.cfg.Rand()*float64(2*time.Second)),
			reason: "the endpoint has its webhooks.perEndpoint (" + strconv.Itoa(d.cfg.PerEndpoint) + ") attempts in flight; this one waits 1 to 3 s"}
	}
	defer d.release(p.EndpointID)

	trigger := p.Trigger
	if series && tg.Delivery.Attempts > 0 {
		trigger = store.TriggerRetry
	}
	start := d.cfg.Clock.Now()
	a := store.WebhookAttempt{MessageID: p.MessageID, EndpointID: p.EndpointID, URL: tg.Endpoint.URL,
		Timestamp: start.UTC().Truncate(time.Millisecond), Trigger: trigger, Attempt: len(tg.Delivery.AttemptIDs()) + 1}
	code, retryAfterHeader, err := d.post(ctx, &tg, p.MessageID, start, &a)
	a.DurationMs = d.cfg.Clock.Now().Sub(start).Milliseconds()
	o := store.AttemptOutcome{Series: series, Retention: d.cfg.Retention, DisableAfter: d.cfg.DisableAfter}
	outcome := OutcomeFailure
	switch {
	case err == nil && code/100 == 2:
		a.Status, o.Success, outcome = store.DeliverySuccess, true, OutcomeSuccess
	case code == http.StatusGone:
		a.Status, o.Gone, o.Final, outcome = store.DeliveryFailed, true, true, OutcomeGone
	default:
		a.Status = store.DeliveryFailed
	}
	if o.Gone {
		o.GoneReason = fmt.Sprintf("the endpoint answered 410 Gone at %s", a.Timestamp.Format(time.RFC3339))
	}
	if !o.Success { // the reason should this failure disable the endpoint
		since := start
		if tg.Endpoint.FailingSince != nil {
			since = *tg.Endpoint.FailingSince
		}
		o.StaleReason = fmt.Sprintf("every attempt failed since %s (webhooks.disableAfter %s)", since.UTC().Format(time.RFC3339), d.cfg.DisableAfter)
	}
	var next time.Duration
	if series && !o.Success && !o.Gone {
		n := tg.Delivery.Attempts + 1 // attempts of the schedule made, this one included
		if n >= len(d.cfg.Schedule) {
			o.Final = true
		} else {
			next = d.jitter(d.cfg.Schedule[n])
			if code == http.StatusTooManyRequests || code == http.StatusServiceUnavailable {
				next = max(next, retryAfter(retryAfterHeader, start))
			}
			at := a.Timestamp.Add(next)
			a.NextAttemptAt = &at
		}
	}
	recorded := func(disabled string) {
		if d.cfg.OnAttempt != nil {
			d.cfg.OnAttempt(Attempt{EndpointID: p.EndpointID, Trigger: trigger, Outcome: outcome, Duration: time.Duration(a.DurationMs) * time.Millisecond})
		}
		if disabled != "" {
			d.log.WithFields(logrus.Fields{"endpointId": p.EndpointID, "url": tg.Endpoint.URL}).Warn("webhook endpoint disabled: " + disabled +
				"; it receives nothing until re-enabled (PATCH disabled:false), then recover its messages")
			if d.cfg.OnDisabled != nil {
				d.cfg.OnDisabled(p.EndpointID, disabled)
			}
		}
	}
	if _, underAsynq := asynq.GetTaskID(ctx); underAsynq && ctx.Err() == nil {
		// asynq completes the task as soon as this returns, through the
		// store's group commit: the record rides ahead of it. (A context
		// ended by asynq, at shutdown or the task's deadline, records
		// nothing and asynq runs the task again, as before.)
		d.st.StowWebhookAttempt(ctx, a, o, func(_, disabled string, err error) {
			if err != nil {
				d.recordLater(a, o, recorded, err)
				return
			}
			recorded(disabled)
		})
	} else {
		_, disabled, err := d.st.RecordWebhookAttempt(ctx, a, o)
		if err != nil {
			return err // asynq retries the task; the attempt is made again
		}
		recorded(disabled)
	}
	if o.Success {
		return nil
	}
	fields := logrus.Fields{"attempt": a.Attempt, "status": a.ResponseStatusCode}
	if a.Error != "" {
		fields["error"] = a.Error
	}
	switch {
	case !series:
		entry().WithFields(fields).Warn("webhook attempt failed")
		return nil
	case a.NextAttemptAt == nil:
		entry().WithFields(fields).Warn("webhook delivery failed; no attempt left (recover it once the endpoint works)")
		return nil
	}
	entry().WithFields(fields).WithField("nextAttemptAt", a.NextAttemptAt.Format(time.RFC3339)).Info("webhook attempt failed; retrying")
	return &retryError{after: next, reason: fmt.Sprintf("attempt %d failed (%s); next in %s", a.Attempt, attemptFailure(a), next.Round(time.Second))}
}

func attemptFailure(a store.WebhookAttempt) string {
	if a.Error != "" {
		return a.Error
	}
	return "HTTP " + strconv.Itoa(a.ResponseStatusCode)
}

// post makes the attempt: it signs the message for this moment and POSTs
// it, filling a's response fields. It returns the status code (0 without
// a response) and the Retry-After header.
func (d *Deliverer) post(ctx context.Context, tg *store.WebhookTarget, msgID string, now time.Time, a *store.WebhookAttempt) (int, string, error) {
	sig, err := Sign(msgID, now, tg.Body, tg.Secrets.At(now))
	if err != nil {
		a.Error = err.Error()
		return 0, "", err
	}
	ctx, cancel := context.WithTimeout(ctx, d.cfg.Timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, tg.Endpoint.URL, bytes.NewReader(tg.Body))
	if err != nil {
		a.Error = err.Error()
		return 0, "", err
	}
	h := req.Header
	h.Set("Content-Type", "application/json")
	h.Set("User-Agent", "checkd-webhooks/1")
	h.Set(HeaderID, msgID)
	h.Set(HeaderTimestamp, strconv.FormatInt(now.Unix(), 10))
	h.Set(HeaderSignature, sig)
	resp, err := d.http.Do(req)
	if err != nil {
		a.Error = describe(err)
		return 0, "", err
	}
	defer resp.Body.Close()
	a.ResponseStatusCode = resp.StatusCode
	b, _ := io.ReadAll(io.LimitReader(resp.Body, maxResponse))
	a.Response = strings.ToValidUTF8(string(b), string(utf8.RuneError))
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10)) // lets the connection be reused
	return resp.StatusCode, resp.Header.Get("Retry-After"), nil
}

// recordRetryMax bounds the wait between a failed record's tries, and
// recordRetryFor how long it is tried: past the task's lease (asynq's 30 s)
// asynq may run the task again, whose own attempt is recorded.
const (
	recordRetryMax = 30 * time.Second
	recordRetryFor = 5 * time.Minute
)

// transient reports whether a failed record may land if tried again: not
// when Redis answered with an error of the script's own (a reply error
// other than the busy, loading or failover ones) or the attempt could not
// be encoded.
func transient(err error) bool {
	var re redis.Error
	if errors.Is(err, store.ErrInvalid) {
		return false
	}
	if !errors.As(err, &re) {
		return true
	}
	for _, p := range []string{"LOADING", "BUSY", "TRYAGAIN", "MASTERDOWN", "READONLY", "CLUSTERDOWN", "OOM"} {
		if redis.HasErrorPrefix(err, p) {
			return true
		}
	}
	return false
}

// recordLater tries again, in the background, to record an attempt whose
// stowed record failed (Redis unreachable, say): its task may be complete
// already, so nothing else would record it. It tries after recordRetry,
// then twice as long each time up to recordRetryMax, for recordRetryFor,
// and once more when the deliverer stops (bounded by ShutdownTimeout);
// then the attempt is logged whole at error level. A record whose reply
// was lost after Redis ran it is logged twice (the script is not
// idempotent); one Redis refused for good is not tried again.
func (d *Deliverer) recordLater(a store.WebhookAttempt, o store.AttemptOutcome, recorded func(disabled string), err error) {
	entry := d.log.WithFields(logrus.Fields{"msgId": a.MessageID, "endpointId": a.EndpointID, "attempt": a.Attempt, "status": a.Status})
	lost := func(why string, err error) {
		b, _ := json.Marshal(a)
		entry.WithError(err).WithField("attemptRecord", string(b)).Error("webhook attempt not recorded: " + why +
			"; the message's delivery to the endpoint shows its previous state (resend it with POST /v1/webhooks/messages/{msgId}/endpoints/{endpointId}/resend if it stays pending)")
	}
	if !transient(err) {
		lost("Redis refused it", err)
		return
	}
	d.retryMu.Lock()
	defer d.retryMu.Unlock()
	if d.stopped {
		lost("the deliverer had stopped", err)
		return
	}
	entry.WithError(err).Warn("webhook attempt not recorded; trying again in the background")
	d.retries.Add(1)
	go func() {
		defer d.retries.Done()
		giveUp := time.Now().Add(recordRetryFor)
		for wait := d.recordRetry; ; wait = min(2*wait, recordRetryMax) {
			t := time.NewTimer(wait)
			stopping := false
			select {
			case <-t.C:
			case <-d.stopping:
				t.Stop()
				stopping = true
			}
			ctx, cancel := context.WithTimeout(context.Background(), d.cfg.ShutdownTimeout)
			_, disabled, err := d.st.RecordWebhookAttempt(ctx, a, o)
			cancel()
			switch {
			case err == nil:
				entry.Info("webhook attempt recorded after a retry")
				recorded(disabled)
				return
			case stopping:
				lost("the deliverer stopped before Redis took it", err)
				return
			case !transient(err) || time.Now().After(giveUp):
				lost("Redis did not take it", err)
				return
			}
			entry.WithError(err).Warn("webhook attempt still not recorded; trying again")
		}
	}()
}

// describe is a network error as an attempt log shows it.
func describe(err error) string {
	var ne net.Error
	switch {
	case errors.Is(err, ErrURLRefused):
		return "refused: " + err.Error()
	case errors.As(err, &ne) && ne.Timeout():
		return "timed out: " + err.Error()
	}
	return err.Error()
}

// nonce is a fresh task ID suffix.
func nonce() string {
	var b [8]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// recoverPage is how many messages one webhook:recover task looks at.
const recoverPage = 500

// HandleRecover is the webhook:recover handler: one page of an endpoint's
// recovery. It sends again, once each, the messages of the window that
// its endpoint receives, created after it, and not delivered to it
// (failed, or dispatched while it was disabled), then enqueues the next
// page.
func (d *Deliverer) HandleRecover(ctx context.Context, t *asynq.Task) error {
	p, err := tasks.ParseWebhookRecoverPayload(t.Payload())
	if err != nil {
		return fmt.Errorf("webhook task: %w; archived: %w", err, asynq.SkipRetry)
	}
	ep, err := d.st.WebhookEndpoint(ctx, p.EndpointID)
	if errors.Is(err, store.ErrNotFound) {
		return nil
	}
	if err != nil {
		return err
	}
	msgs, next, err := d.st.WebhookMessagesBetween(ctx, time.UnixMilli(p.Since), time.UnixMilli(p.Until), p.Cursor, recoverPage)
	if err != nil {
		return err
	}
	sent := 0
	for _, m := range msgs {
		if !ep.Receives(m.EventType, m.CompanyID) || m.Timestamp.Before(ep.CreatedAt) {
			continue
		}
		if st := m.DeliveryTo(ep.ID).Status; st == store.DeliverySuccess || st == store.DeliveryPending {
			continue
		}
		task, err := tasks.NewWebhookDeliverTask(tasks.WebhookDeliverPayload{MessageID: m.ID, EndpointID: ep.ID, Trigger: store.TriggerRecover},
			nonce(), asynq.MaxRetry(deliverMaxRetry), asynq.Timeout(d.cfg.Timeout+taskTimeoutMargin))
		if err != nil {
			return err
		}
		if _, err := d.enq.EnqueueContext(ctx, task); err != nil {
			return fmt.Errorf("webhook: enqueue the recovery of %s to %s: %w", m.ID, ep.ID, err)
		}
		sent++
	}
	d.log.WithFields(logrus.Fields{"endpointId": ep.ID, "messages": sent, "more": next != ""}).Info("webhook recovery: messages sent again")
	if next == "" {
		return nil
	}
	p.Cursor = next
	task, err := tasks.NewWebhookRecoverTask(p, asynq.TaskID("whr:"+ep.ID+":"+nonce()))
	if err != nil {
		return err
	}
	if _, err := d.enq.EnqueueContext(ctx, task); err != nil {
		return fmt.Errorf("webhook: enqueue the next page of the recovery of %s: %w", ep.ID, err)
	}
	return nil
}

// Task options of every delivery: asynq's own retries are for checkd's
// failures only (the schedule's do not count), and an attempt's task
// outlives its HTTP timeout.
const (
	deliverMaxRetry   = 25
	taskTimeoutMargin = 30 * time.Second
)
