// Package rekey runs the re-encryption of stored credentials in the
// background of a checkd process that holds old encryption keys (a key
// rotation under way). A run is started on request (store.StartRekey:
// POST /v1/store/rekey, checkctl store rekey); every process with the same
// primary key and old keys runs a Runner, and the run's lease in Redis lets
// one of them at a time do it, batch by batch, while the others stand by
// to take over should it die. See the store package's rekey.go for what a
// run does and when it is done.
package rekey

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"sync"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/checkd/checkd/store"
)

// Defaults of Config.
const (
	DefaultLease = time.Minute
	DefaultBatch = 500
	DefaultPause = 20 * time.Millisecond
	DefaultPoll  = 5 * time.Second
)

// Config tunes a Runner; every zero field takes its default.
type Config struct {
	// Owner names this process in the run's lease. Default: host name,
	// process ID and a random suffix.
	Owner string
	// Lease is how long another process waits before taking over a run
	// whose owner stopped renewing it. Default 1m.
	Lease time.Duration
	// Batch is how many connections one step looks at (a SCAN count).
	// Default 500.
	Batch int
	// Pause is the wall-clock wait between two batches, leaving Redis to
	// the checks. Default 20ms.
	Pause time.Duration
	// Poll is how often the runner looks for a run to do when there is
	// none, or another process holds it. Default 5s.
	Poll time.Duration
	// Logger receives the run's progress. Default: logrus's standard logger.
	Logger logrus.FieldLogger
}

// Runner does the re-encryption runs of its store's primary key.
type Runner struct {
	st  *store.Store
	cfg Config
	log logrus.FieldLogger

	wake chan struct{} // Wake's signal: look for a run now

	mu      sync.Mutex
	started bool
	stopped bool
	cancel  context.CancelFunc
	done    chan struct{}
}

// New returns a runner over st (whose cipher holds the old keys).
func New(st *store.Store, cfg Config) (*Runner, error) {
	if st == nil {
		return nil, errors.New("rekey: a store is required")
	}
	if cfg.Owner == "" {
		host, _ := os.Hostname()
		var b [4]byte
		_, _ = rand.Read(b[:])
		cfg.Owner = fmt.Sprintf("%s-%d-%s", host, os.Getpid(), hex.EncodeToString(b[:]))
	}
	if cfg.Lease <= 0 {
		cfg.Lease = DefaultLease
	}
	if cfg.Batch <= 0 {
		cfg.Batch = DefaultBatch
	}
	if cfg.Pause <= 0 {
		cfg.Pause = DefaultPause
	}
	if cfg.Poll <= 0 {
		cfg.Poll = DefaultPoll
	}
	if cfg.Logger == nil {
		cfg.Logger = logrus.StandardLogger()
	}
	return &Runner{st: st, cfg: cfg, log: cfg.Logger.WithField("component", "rekey"), wake: make(chan struct{}, 1)}, nil
}

// Start runs the runner in the background until Stop. It starts once.
func (r *Runner) Start(ctx context.Context) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.started || r.stopped {
		return errors.New("rekey: already started or stopped; create a new Runner to start again")
	}
	runCtx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	r.started, r.cancel, r.done = true, cancel, make(chan struct{})
	go func() {
		defer close(r.done)
		r.loop(runCtx)
	}()
	return nil
}

// Wake makes the runner look for a run now instead of at its next poll
// (the API calls it after starting one in this process).
func (r *Runner) Wake() {
	select {
	case r.wake <- struct{}{}:
	default:
	}
}

// Stop ends the runner, waiting (bounded by ctx) for the batch under way;
// the run's state is in Redis, so the next runner goes on from there. It
// is safe to call twice and before Start.
func (r *Runner) Stop(ctx context.Context) error {
	r.mu.Lock()
	started, cancel, done := r.started && !r.stopped, r.cancel, r.done
	r.stopped = true
	r.mu.Unlock()
	if !started {
		return nil
	}
	cancel()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("rekey: stop: a batch is still running: %w", ctx.Err())
	}
}

// loop does steps until ctx ends: paced while a run goes on, polling
// otherwise. It logs a run's start, its progress every half minute, its
// end, and a block.
func (r *Runner) loop(ctx context.Context) {
	var last store.RekeyProgress
	var lastLog time.Time
	for {
		p, err := r.st.RekeyStep(ctx, r.cfg.Owner, r.cfg.Lease, r.cfg.Batch)
		wait := r.cfg.Poll
		switch {
		case err != nil && ctx.Err() != nil: // stopping: a step cut short says nothing
			return
		case errors.Is(err, store.ErrRekeyBusy):
		case err != nil:
			r.log.WithError(err).Warn("re-encryption: a batch failed; it is retried")
		case p.Running:
			wait = r.cfg.Pause
			if !last.Running || time.Since(lastLog) > 30*time.Second {
				r.log.WithFields(logrus.Fields{"target": p.Target, "pass": p.Pass, "scanned": p.Scanned, "rewritten": p.Rewritten}).
					Info("re-encryption running")
				lastLog = time.Now()
			}
		case p.Done && !last.Done && last.Target != "":
			r.log.WithFields(logrus.Fields{"target": p.Target, "passes": p.Pass, "rewritten": p.Rewritten}).
				Info("re-encryption done: every credential is sealed with the primary key; remove the old keys (CHECKD_ENCRYPTION_OLD_KEYS) from every process")
		case p.Blocked && !last.Blocked:
			r.log.WithFields(logrus.Fields{"target": p.Target, "unreadable": p.Unreadable}).
				Error("re-encryption stopped: some credentials open with none of the configured keys; configure the key that sealed them (or give those connections new credentials), then start it again")
		}
		if err == nil {
			last = p
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-r.wake:
			t.Stop()
		case <-t.C:
		}
	}
}
