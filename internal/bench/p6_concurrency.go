package bench

import (
	"bufio"
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"runtime"
	"runtime/pprof"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/checkd/checkd/internal/daemon"

	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"
	"github.com/sirupsen/logrus"

	"github.com/checkd/checkd/checks"
	"github.com/checkd/checkd/checks/sandbox"
	"github.com/checkd/checkd/configs"
	"github.com/checkd/checkd/internal/tasks"
	"github.com/checkd/checkd/store"
	"github.com/checkd/checkd/worker"
)

// EnvChild carries the P6 child's configuration (JSON); ChildFlag is the
// flag that makes the bench binary the child.
const (
	EnvChild  = "CHECKBENCH_P6_CHILD"
	ChildFlag = "p6-child"
)

// childConfig is what the parent hands the worker process.
type childConfig struct {
	// Mode is "worker", "raw", "http" (the worker checking through the
	// HTTP checker at CheckerURL) or "checker" (the checker service).
	Mode        string `json:"mode"`
	Addr        string `json:"addr"`
	DB          int    `json:"db"`
	KeyHex      string `json:"key"`
	Concurrency int    `json:"concurrency"`
	LatencyMS   int64  `json:"latencyMs"`
	DurationMS  int64  `json:"durationMs"`
	CPUProfile  string `json:"cpuProfile,omitempty"`
	Protocol    int    `json:"protocol,omitempty"`
	PoolSize    int    `json:"poolSize,omitempty"`
	BufferSize  int    `json:"bufferSize,omitempty"`
	CheckerURL  string `json:"checkerUrl,omitempty"`
	Secret      string `json:"secret,omitempty"`
	// Cap, when set, registers the sandbox as CappedDS too, with that
	// maxConcurrent (P8).
	Cap      int    `json:"cap,omitempty"`
	CappedDS string `json:"cappedDs,omitempty"`
}

// childResult is what the worker process reports.
type childResult struct {
	BucketMS      int64   `json:"bucketMs"`
	Buckets       []int64 `json:"buckets"` // checks recorded per bucket since Start
	Applied       int64   `json:"applied"`
	Other         int64   `json:"other"`
	RoundTrips    int64   `json:"roundTrips"`
	MaxGoroutines int     `json:"maxGoroutines"`
	HeapSysMB     float64 `json:"heapSysMB"`
	SysMB         float64 `json:"sysMB"`
	CPUSeconds    float64 `json:"cpuSeconds"`
	StopMS        int64   `json:"stopMs"` // how long Stop took (in-flight checks finishing)
	// CappedBuckets counts the capped datasource's checks per bucket
	// (Buckets then counts the others); Intervals are its checker calls'
	// start and end (Unix ns). P8 only.
	CappedBuckets []int64    `json:"cappedBuckets,omitempty"`
	Intervals     [][2]int64 `json:"intervals,omitempty"`
}

const childBucket = 100 * time.Millisecond

// p6Tasks is how many tasks P6 queues: 20% more than the worker can take in
// its run, so it never starves.
func p6Tasks(sz Sizes) int {
	perSec := float64(sz.P6Concurrency) / sz.P6Latency.Seconds()
	return int(perSec*sz.P6Duration.Seconds()*1.2) + sz.P6Concurrency
}

// childRun is one run of a child process, as the parent saw it.
type childRun struct {
	res     childResult
	hwmMB   float64
	rssMB   []int64 // VmRSS each second
	meter   *meter
	left    int64   // tasks still queued at the end
	rate    float64 // checks per second in the window
	total   int64
	perSec  []string
	rateErr error
}

// runChild queues the tasks, runs one child process in mode ("worker",
// "raw" or "http", checking through checker), and measures it.
func runChild(ctx context.Context, e *env, mode string, slotBase time.Time, checker *checkerChild) (*childRun, error) {
	sz := e.sz
	d := e.ds
	n := p6Tasks(sz)
	if err := flushAsynq(ctx, e.rdb); err != nil {
		return nil, err
	}
	if _, err := enqueueChecks(ctx, e.aq, d.ids, n, func(i int) time.Time { return slotBase.Add(time.Duration(i) * time.Millisecond) }, 16,
		asynq.Queue(tasks.QueueDefault), asynq.Timeout(5*time.Minute)); err != nil {
		return nil, err
	}
	cfg := childConfig{Mode: mode, Addr: e.srv.Addr, DB: 0, KeyHex: e.keyHex(), Concurrency: sz.P6Concurrency,
		LatencyMS: sz.P6Latency.Milliseconds(), DurationMS: sz.P6Duration.Milliseconds(), Protocol: e.srv.protocol,
		PoolSize: sz.P6PoolSize, BufferSize: sz.P6BufferSize}
	if checker != nil {
		cfg.CheckerURL, cfg.Secret = checker.url, checker.secret
	}
	e.logf("P6: %s process, concurrency %d, latency %s, for %s, %d tasks queued", mode, sz.P6Concurrency, sz.P6Latency, sz.P6Duration, n)
	run, err := startChild(ctx, e, cfg, "P6-"+mode)
	if err != nil {
		return nil, err
	}
	if run.left, err = pendingTasks(ctx, e.rdb, tasks.QueueDefault); err != nil {
		return nil, err
	}
	if err := flushAsynq(ctx, e.rdb); err != nil {
		return nil, err
	}
	var window int64
	lo, hi := int(sz.P6Warmup/childBucket), int(sz.P6Duration/childBucket)
	for i, c := range run.res.Buckets {
		run.total += c
		if i >= lo && i < hi {
			window += c
		}
	}
	run.rate = float64(window) / (sz.P6Duration - sz.P6Warmup).Seconds()
	return run, nil
}

// startChild runs one worker process of cfg (this binary re-executed) to
// its end and reads what it reports and its memory from /proc; profile
// names its CPU profile.
func startChild(ctx context.Context, e *env, cfg childConfig, profile string) (*childRun, error) {
	mode := cfg.Mode
	if e.opts.CPUProfileDir != "" {
		cfg.CPUProfile = e.opts.CPUProfileDir + "/" + profile + ".pprof"
	}
	raw, _ := json.Marshal(cfg)
	cmd := exec.CommandContext(ctx, e.opts.Exe, "-"+ChildFlag)
	cmd.Env = append(os.Environ(), EnvChild+"="+string(raw))
	cmd.Stderr = e.opts.Progress
	stdin, err := cmd.StdinPipe()
	if err != nil {
		return nil, err
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	run := &childRun{meter: startMeter(ctx, e.rdb, e.rt)}
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	pid := cmd.Process.Pid
	// Sample the child's RSS each second (VmHWM at the end is the peak; the
	// samples show its shape).
	stopSampling := make(chan struct{})
	var smu sync.Mutex
	go func() {
		t := time.NewTicker(time.Second)
		defer t.Stop()
		for {
			select {
			case <-stopSampling:
				return
			case <-t.C:
				if v, err := procStatusKB(pid, "VmRSS"); err == nil {
					smu.Lock()
					run.rssMB = append(run.rssMB, v/1024)
					smu.Unlock()
				}
			}
		}
	}()
	sc := bufio.NewScanner(stdout)
	sc.Buffer(make([]byte, 1<<20), 16<<20)
	got := false
	var decodeErr error
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "CHILDRESULT "); ok {
			decodeErr = json.Unmarshal([]byte(v), &run.res)
			got = true
			break
		}
	}
	hwm, hwmErr := procStatusKB(pid, "VmHWM")
	close(stopSampling)
	_ = stdin.Close() // the child exits on EOF
	go func() { _, _ = io.Copy(io.Discard, stdout) }()
	waitErr := cmd.Wait()
	run.meter.stop(ctx)
	smu.Lock()
	defer smu.Unlock()
	switch {
	case !got:
		return nil, fmt.Errorf("%s process ended without a result: %v", mode, waitErr)
	case decodeErr != nil:
		return nil, fmt.Errorf("%s process result: %w", mode, decodeErr)
	case hwmErr != nil:
		return nil, fmt.Errorf("read VmHWM of the %s process: %w", mode, hwmErr)
	}
	run.hwmMB = float64(hwm) / 1024
	for s := 0; s*10 < len(run.res.Buckets); s++ {
		var c int64
		for _, v := range run.res.Buckets[s*10 : min(len(run.res.Buckets), s*10+10)] {
			c += v
		}
		run.perSec = append(run.perSec, strconv.FormatInt(c, 10))
	}
	return run, nil
}

func (c *childRun) describe(mode string) string {
	rss := make([]string, len(c.rssMB))
	for i, v := range c.rssMB {
		rss[i] = strconv.FormatInt(v, 10)
	}
	return fmt.Sprintf("%s process: %.0f/s; per second: %s; peak RSS (VmHWM) %.1f MB, RSS each second (MB): %s; Go heap sys %.1f MB, runtime sys %.1f MB; max goroutines %d; CPU %.1f s (%.0f µs/check); %.2f client round trips/check; %d tasks left queued (never starved: %v); stop took %d ms",
		mode, c.rate, strings.Join(c.perSec, " "), c.hwmMB, strings.Join(rss, " "), c.res.HeapSysMB, c.res.SysMB, c.res.MaxGoroutines,
		c.res.CPUSeconds, c.res.CPUSeconds*1e6/float64(max(c.total, 1)), float64(c.res.RoundTrips)/float64(max(c.total, 1)),
		c.left, c.left > 0, c.res.StopMS)
}

// runP6: one worker process (this binary re-executed) with concurrency C
// runs sandbox checks of latency L for D; the parent queues enough tasks,
// reads the child's VmHWM from /proc, and counts checks recorded after a
// warm-up. The goal is against the ideal C / L; raw asynq with a handler
// that only waits L, same concurrency and queues, runs first for
// reference (it shows what asynq alone reaches on this machine).
func runP6(ctx context.Context, e *env) (r Result) {
	r = Result{ID: "P6", Name: "concurrency", Unit: "checks/s", Goal: "≥ 0.9 × concurrency/latency and peak RSS ≤ 256 MB"}
	sz := e.sz
	if len(e.ds.ids) == 0 {
		r.Err = errors.New("no connections loaded")
		return r
	}
	if e.opts.Exe == "" {
		r.Err = errors.New("the bench binary's path is unknown: cannot start the worker process")
		return r
	}
	base := time.Now().Truncate(time.Hour).Add(72 * time.Hour)
	raw, err := runChild(ctx, e, "raw", base, nil)
	if err != nil {
		r.Err = err
		return r
	}
	w, err := runChild(ctx, e, "worker", base.Add(time.Hour), nil)
	if err != nil {
		r.Err = err
		return r
	}
	checker, err := startCheckerChild(ctx, e)
	if err != nil {
		r.Err = err
		return r
	}
	h, err := runChild(ctx, e, "http", base.Add(2*time.Hour), checker)
	checkerRSS, stopErr := checker.stop()
	if err == nil {
		err = stopErr
	}
	if err != nil {
		r.Err = fmt.Errorf("P6.http: %w", err)
		return r
	}
	ideal := float64(sz.P6Concurrency) / sz.P6Latency.Seconds()
	r.Value, r.Baseline, r.HasBase, r.Ratio, r.HasRatio = w.rate, ideal, true, w.rate/ideal, true
	r.Met = verdict(r.Ratio >= 0.9 && w.hwmMB <= 256)
	r.Details = append(r.Details,
		fmt.Sprintf("value = checks recorded per second from %s to %s after the process started; baseline = concurrency / latency = %.0f/s (the ceiling); pool %s",
			sz.P6Warmup, sz.P6Duration, ideal, poolDesc(sz)),
		w.describe("worker"),
		"Redis side of the worker run: "+w.meter.perItem(int(max(w.total, 1))),
		raw.describe("raw asynq (handler waits the latency, nothing else)"),
		fmt.Sprintf("P6.http: the same worker checking through the HTTP checker (checks/httpcheck, %d kept-alive connections) against the sandbox served over the protocol by another process (the reference service's handler, latency %s; its peak RSS %.1f MB); its checks are the second ones of connections the worker run checked first",
			sz.P6Concurrency, sz.P6Latency, checkerRSS),
		h.describe("worker over HTTP"),
		"Redis side of the worker over HTTP: "+h.meter.perItem(int(max(h.total, 1))))
	r.Subs = append(r.Subs,
		Result{ID: "P6.rss", Name: "worker-peak-rss", Value: w.hwmMB, Unit: "MB", Goal: "≤ 256 MB", Met: verdict(w.hwmMB <= 256)},
		Result{ID: "P6.raw", Name: "raw-asynq-wait", Value: raw.rate, Unit: "tasks/s", Baseline: ideal, HasBase: true,
			Ratio: raw.rate / ideal, HasRatio: true, Met: "-"},
		Result{ID: "P6.rawrss", Name: "raw-asynq-peak-rss", Value: raw.hwmMB, Unit: "MB", Met: "-"},
		Result{ID: "P6.http", Name: "concurrency-http-checker", Value: h.rate, Unit: "checks/s", Baseline: ideal, HasBase: true,
			Ratio: h.rate / ideal, HasRatio: true, Goal: "≥ 0.9 × concurrency/latency and peak RSS ≤ 256 MB", Met: verdict(h.rate/ideal >= 0.9 && h.hwmMB <= 256)},
		Result{ID: "P6.httprss", Name: "worker-http-peak-rss", Value: h.hwmMB, Unit: "MB", Goal: "≤ 256 MB", Met: verdict(h.hwmMB <= 256)})
	return r
}

func poolDesc(sz Sizes) string {
	pool := fmt.Sprintf("%d connections (daemon.RedisPoolSize, as the daemon)", daemon.RedisPoolSize(sz.P6Concurrency, 16))
	if sz.P6PoolSize > 0 {
		pool = fmt.Sprintf("%d connections (override)", sz.P6PoolSize)
	}
	if sz.P6BufferSize > 0 {
		pool += fmt.Sprintf(", %d-byte read/write buffers (override)", sz.P6BufferSize)
	} else {
		pool += ", go-redis default buffers"
	}
	return pool
}

// procStatusKB reads a kB field of /proc/<pid>/status.
func procStatusKB(pid int, field string) (int64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, field+":"); ok {
			f := strings.Fields(v)
			if len(f) == 0 {
				break
			}
			return strconv.ParseInt(f[0], 10, 64)
		}
	}
	return 0, fmt.Errorf("/proc/%d/status has no %s", pid, field)
}

// RunWorkerChild is P6's worker process: it reads its configuration from
// EnvChild, runs a worker for the configured duration, prints
// "CHILDRESULT <json>" on out, and waits for in to close so the parent can
// read its /proc status first.
func RunWorkerChild(ctx context.Context, in io.Reader, out io.Writer) error {
	var cfg childConfig
	if err := json.Unmarshal([]byte(os.Getenv(EnvChild)), &cfg); err != nil {
		return fmt.Errorf("%s: %w", EnvChild, err)
	}
	if cfg.Mode == "checker" {
		return runCheckerChild(cfg, in, out)
	}
	if cfg.CPUProfile != "" {
		f, err := os.Create(cfg.CPUProfile)
		if err != nil {
			return err
		}
		if err := pprof.StartCPUProfile(f); err != nil {
			return err
		}
		defer func() { pprof.StopCPUProfile(); f.Close() }()
	}
	key, err := hex.DecodeString(cfg.KeyHex)
	if err != nil {
		return err
	}
	ci, err := store.NewCipher(key)
	if err != nil {
		return err
	}
	// The daemon's pool and protocol, as it would run this worker.
	pool := daemon.RedisPoolSize(cfg.Concurrency, 16)
	if cfg.Protocol == 0 {
		cfg.Protocol = daemon.RedisProtocol
	}
	if cfg.PoolSize > 0 {
		pool = cfg.PoolSize
	}
	rdb := redis.NewClient(&redis.Options{Addr: cfg.Addr, DB: cfg.DB, PoolSize: pool, Protocol: cfg.Protocol,
		ReadBufferSize: cfg.BufferSize, WriteBufferSize: cfg.BufferSize})
	defer rdb.Close()
	rt := &rtCounter{}
	rdb.AddHook(rt)
	st, err := store.New(rdb, storeConfig(ci))
	if err != nil {
		return err
	}
	lat := time.Duration(cfg.LatencyMS) * time.Millisecond
	reg := checks.NewRegistry()
	if err := reg.Register(sandbox.Datasource, sandbox.New(sandbox.Options{Latency: lat})); err != nil {
		return err
	}
	var capped *cappedChecker
	if cfg.Cap > 0 {
		capped = &cappedChecker{c: sandbox.New(sandbox.Options{Latency: lat})}
		if err := reg.Register(cfg.CappedDS, capped); err != nil {
			return err
		}
	}
	dur := time.Duration(cfg.DurationMS) * time.Millisecond
	buckets := make([]atomic.Int64, int((dur+time.Minute)/childBucket))
	cappedBuckets := make([]atomic.Int64, len(buckets))
	var applied, other atomic.Int64
	var start time.Time
	var started atomic.Bool
	var countIn func(buckets []atomic.Int64, ok bool)
	log := logrus.New()
	log.SetOutput(io.Discard)
	log.SetLevel(logrus.InfoLevel) // as in production: the per-check line is formatted
	count := func(ok bool) { countIn(buckets, ok) }
	countIn = func(buckets []atomic.Int64, ok bool) {
		if !started.Load() {
			return
		}
		i := int(time.Since(start) / childBucket)
		if i < len(buckets) {
			buckets[i].Add(1)
		}
		if ok {
			applied.Add(1)
		} else {
			other.Add(1)
		}
	}
	var startFn func() error
	var stopFn func() error
	if cfg.Mode == "http" {
		hreg, c, err := httpRegistry(cfg.CheckerURL, cfg.Secret, cfg.Concurrency)
		if err != nil {
			return err
		}
		defer c.CloseIdleConnections()
		reg = hreg
	}
	switch cfg.Mode {
	case "worker", "http":
		wcfg := worker.ConfigFrom(configs.Default()) // the daemon's worker settings
		wcfg.Concurrency, wcfg.Logger, wcfg.ShutdownTimeout = cfg.Concurrency, log, 10*time.Second
		wcfg.OnCheck = func(ev worker.CheckEvent) {
			if capped != nil && ev.Datasource == cfg.CappedDS {
				countIn(cappedBuckets, ev.Outcome == store.Applied)
				return
			}
			count(ev.Outcome == store.Applied)
		}
		if capped != nil {
			wcfg.Datasources.MaxConcurrent = func(ds string) int {
				if ds == cfg.CappedDS {
					return cfg.Cap
				}
				return 0
			}
		}
		w, err := worker.New(rdb, st, reg, wcfg)
		if err != nil {
			return err
		}
		startFn = func() error { return w.Start(ctx) }
		stopFn = func() error { return w.Stop(context.Background()) }
	case "raw":
		srv := asynq.NewServerFromRedisClient(rdb, asynq.Config{Concurrency: cfg.Concurrency, Queues: configs.Default().Worker.Queues,
			ShutdownTimeout: 10 * time.Second, Logger: log.WithField("c", "asynq"), LogLevel: asynq.WarnLevel})
		startFn = func() error {
			return srv.Start(asynq.HandlerFunc(func(ctx context.Context, _ *asynq.Task) error {
				t := time.NewTimer(lat) // the simulated website, as the sandbox waits
				defer t.Stop()
				select {
				case <-t.C:
				case <-ctx.Done():
					return ctx.Err()
				}
				count(true)
				return nil
			}))
		}
		stopFn = func() error { srv.Shutdown(); return nil }
	default:
		return fmt.Errorf("child mode %q: want worker, raw or http", cfg.Mode)
	}
	var maxG atomic.Int64
	stopG := make(chan struct{})
	go func() {
		t := time.NewTicker(200 * time.Millisecond)
		defer t.Stop()
		for {
			select {
			case <-stopG:
				return
			case <-t.C:
				if g := int64(runtime.NumGoroutine()); g > maxG.Load() {
					maxG.Store(g)
				}
			}
		}
	}()
	cpu0 := processCPU()
	start = time.Now()
	started.Store(true)
	if err := startFn(); err != nil {
		return err
	}
	t := time.NewTimer(dur) // the run's length, not a measurement
	select {
	case <-t.C:
	case <-ctx.Done():
	}
	stopBegan := time.Now()
	if err := stopFn(); err != nil {
		return err
	}
	stopMS := time.Since(stopBegan).Milliseconds()
	close(stopG)
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	res := childResult{BucketMS: childBucket.Milliseconds(), Applied: applied.Load(), Other: other.Load(), RoundTrips: rt.load(),
		MaxGoroutines: int(maxG.Load()), HeapSysMB: float64(ms.HeapSys) / (1 << 20), SysMB: float64(ms.Sys) / (1 << 20),
		CPUSeconds: (processCPU() - cpu0).Seconds(), StopMS: stopMS}
	last := 0
	for i := range buckets {
		if buckets[i].Load() > 0 {
			last = i
		}
	}
	res.Buckets = make([]int64, last+1)
	for i := range res.Buckets {
		res.Buckets[i] = buckets[i].Load()
	}
	if capped != nil {
		res.CappedBuckets = make([]int64, len(cappedBuckets))
		for i := range res.CappedBuckets {
			res.CappedBuckets[i] = cappedBuckets[i].Load()
		}
		res.Intervals = capped.intervals()
	}
	b, _ := json.Marshal(res)
	fmt.Fprintf(out, "CHILDRESULT %s\n", b)
	_, _ = io.Copy(io.Discard, in) // until the parent closes stdin
	return nil
}

// checkerChild is P6.http's checker service, a process of its own.
type checkerChild struct {
	url, secret string
	cmd         *exec.Cmd
	stdin       io.Closer
}

// startCheckerChild starts the checker service process (this binary
// re-executed) and waits for its address.
func startCheckerChild(ctx context.Context, e *env) (*checkerChild, error) {
	c := &checkerChild{secret: newSecret()}
	raw, _ := json.Marshal(childConfig{Mode: "checker", LatencyMS: e.sz.P6Latency.Milliseconds(), Secret: c.secret})
	c.cmd = exec.CommandContext(ctx, e.opts.Exe, "-"+ChildFlag)
	c.cmd.Env = append(os.Environ(), EnvChild+"="+string(raw))
	c.cmd.Stderr = e.opts.Progress
	stdin, err := c.cmd.StdinPipe()
	if err != nil {
		return nil, err
	}
	c.stdin = stdin
	stdout, err := c.cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := c.cmd.Start(); err != nil {
		return nil, err
	}
	sc := bufio.NewScanner(stdout)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "CHECKER "); ok {
			c.url = v
			break
		}
	}
	go func() { _, _ = io.Copy(io.Discard, stdout) }()
	if c.url == "" {
		_ = stdin.Close()
		return nil, fmt.Errorf("the checker service process did not start: %v", c.cmd.Wait())
	}
	e.logf("P6: checker service process (latency %s) at %s", e.sz.P6Latency, c.url)
	return c, nil
}

// stop reads the checker process's peak RSS (MB) and ends it.
func (c *checkerChild) stop() (float64, error) {
	hwm, err := procStatusKB(c.cmd.Process.Pid, "VmHWM")
	_ = c.stdin.Close() // it exits on EOF
	if werr := c.cmd.Wait(); werr != nil && err == nil {
		err = fmt.Errorf("checker service process: %w", werr)
	}
	return float64(hwm) / 1024, err
}

// runCheckerChild is P6.http's checker service: the sandbox served over the
// HTTP checker protocol until in closes.
func runCheckerChild(cfg childConfig, in io.Reader, out io.Writer) error {
	svc, err := startCheckerServer(time.Duration(cfg.LatencyMS)*time.Millisecond, cfg.Secret)
	if err != nil {
		return err
	}
	defer svc.stop()
	fmt.Fprintf(out, "CHECKER %s\n", svc.URL)
	_, _ = io.Copy(io.Discard, in)
	return nil
}
