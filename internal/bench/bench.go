// Package bench is checkd's load benchmark (make bench, cmd/checkbench). It
// starts a throwaway redis-server on a free loopback port, measures six
// performance targets and, where one exists, the same work done by raw
// asynq in the same run on the same machine, and prints a table plus one
// machine-readable line per measure:
//
//	BENCH <id> <name> value=<number> unit=<unit> baseline=<number|-> ratio=<number|->
//
// Goals are judged on ratios measured side by side, never on absolute
// times: the machine is shared and noisy. Sub-values of a measure get their
// own lines with a dotted ID (P3.10k, P4.hist, P6.rss, ...), so
// `grep '^BENCH P[0-9] '` yields exactly one line per measure.
//
// Measures (full size; BENCH_SCALE=small shrinks every one, same code path):
//
//	P1 sweep        scheduler.Tick enqueueing 1M due connections vs raw asynq.Client.Enqueue
//	P2 process      100k sandbox checks end to end (worker) vs a raw asynq server with a no-op handler;
//	                P2.http: as many through the HTTP checker, vs the in-process sandbox
//	P3 tick         a tick with nothing due at 10k and at 1M stored connections
//	P4 memory       Redis used_memory per checked connection (two accounts), vs one asynq scheduled task
//	P5 spread       weekly slots of 1M connections created in one minute, by hour (bench/out/spread.svg)
//	P6 concurrency  one worker process, concurrency 2000, 1 s sandbox latency: throughput and peak RSS;
//	                P6.http: the same through the HTTP checker, the sandbox served by another process
//	P8 cap          a datasource capped at 50 beside an uncapped one, two worker processes of 1000
//	                (1 s latency): measured concurrency, capped throughput, the uncapped one's share
package bench

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"runtime"
	"runtime/pprof"
	"sort"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/checkd/checkd/configs"
	"github.com/checkd/checkd/internal/daemon"

	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"
	"github.com/sirupsen/logrus"

	"github.com/checkd/checkd/store"
)

// EnvScale names the variable that picks the sizes: "full" (default) or
// "small".
const EnvScale = "BENCH_SCALE"

// Sizes are the sizes of one run.
type Sizes struct {
	Name string
	// Conns is the dataset: P1's due connections, P3's large index, P4's
	// connections.
	Conns int
	// Companies the dataset is spread over (loaded in parallel).
	Companies int
	// RawProbe is how many tasks each goroutine count is tried on before
	// the full raw baseline of P1 runs with the best one.
	RawProbe int
	// RawGoroutines are the goroutine counts tried for P1's baseline.
	RawGoroutines []int
	// SweepConcurrency overrides the scheduler's EnqueueConcurrency in P1
	// (0: the scheduler's default).
	SweepConcurrency int
	// SweepRounds is how many alternating rounds of weekly ticks and raw
	// enqueues P1 is split into.
	SweepRounds int
	// Process is P2's number of checks; ProcessConcurrency the asynq
	// concurrency of both sides; ProcessRounds how many alternating rounds
	// they are split into.
	Process            int
	ProcessConcurrency int
	ProcessRounds      int
	// ProcessFloor adds P2's floor experiment: raw asynq whose handler
	// reads and writes one key per task.
	ProcessFloor bool
	// TickSmall is P3's small index; Ticks the ticks timed at each size.
	TickSmall int
	Ticks     int
	// AsynqScheduled is how many ProcessIn tasks P4's comparison enqueues.
	AsynqScheduled int
	// SpreadIDs is P5's number of connection IDs.
	SpreadIDs int
	// P6: one worker process with this concurrency and sandbox latency,
	// run for Duration; throughput is counted after Warmup.
	P6Concurrency int
	P6Latency     time.Duration
	P6Duration    time.Duration
	P6Warmup      time.Duration
	// P8Cap is P8's maxConcurrent of the capped datasource, beside the
	// uncapped sandbox in two worker processes of P6Concurrency/2 each,
	// with P6's latency, duration and warm-up.
	P8Cap int
	// P6PoolSize and P6BufferSize override the worker process's go-redis
	// pool size and read/write buffer sizes (0: as the daemon; experiments).
	P6PoolSize   int
	P6BufferSize int
	// CheckBatchWindow, when set, overrides the store's window for a
	// check's Redis calls (experiments; 0: checkd.yaml's
	// store.checkBatchWindow; negative: none).
	CheckBatchWindow time.Duration
}

// FullSizes are the sizes of the performance targets.
func FullSizes() Sizes {
	return Sizes{Name: "full", Conns: 1_000_000, Companies: 8, RawProbe: 100_000, RawGoroutines: []int{8, 16, 32}, SweepRounds: 4,
		Process: 100_000, ProcessConcurrency: 20, ProcessRounds: 4, TickSmall: 10_000, Ticks: 1000, AsynqScheduled: 100_000,
		SpreadIDs: 1_000_000, P6Concurrency: 2000, P6Latency: time.Second, P6Duration: 30 * time.Second, P6Warmup: 5 * time.Second,
		P8Cap: 50}
}

// SmallSizes run every measure in well under a minute. P5 keeps 1M IDs: it
// is CPU only (under a second), and its goal is statistical (fewer IDs
// cannot meet 1.05 × mean by chance alone).
func SmallSizes() Sizes {
	return Sizes{Name: "small", Conns: 20_000, Companies: 4, RawProbe: 5_000, RawGoroutines: []int{8, 16, 32}, SweepRounds: 2,
		Process: 5_000, ProcessConcurrency: 20, ProcessRounds: 2, TickSmall: 1_000, Ticks: 300, AsynqScheduled: 5_000,
		SpreadIDs: 1_000_000, P6Concurrency: 2000, P6Latency: time.Second, P6Duration: 8 * time.Second, P6Warmup: 3 * time.Second,
		P8Cap: 50}
}

// SizesFor returns the sizes of a scale name.
func SizesFor(scale string) (Sizes, error) {
	switch strings.ToLower(strings.TrimSpace(scale)) {
	case "", "full":
		return FullSizes(), nil
	case "small":
		return SmallSizes(), nil
	}
	return Sizes{}, fmt.Errorf("%s=%q: want full or small", EnvScale, scale)
}

// Options configure a run.
type Options struct {
	Sizes Sizes
	// Only lists measure IDs to run (P1..P6, P8); empty: all.
	Only []string
	// OutDir receives spread.svg, results.txt and results.md.
	OutDir string
	// CPUProfileDir, when set, receives a CPU profile of each measured run
	// (P1.pprof, P2.pprof, P4.pprof, P6.pprof from the worker child).
	CPUProfileDir string
	// RedisServer is the redis-server binary. Default "redis-server".
	RedisServer string
	// Exe is this program, re-executed for P6's worker process.
	Exe string
	// Replication, when set, gives the run's Redis a replica (an
	// experiment: ReplicationAsync, ReplicationMinReplicas,
	// ReplicationWait).
	Replication string
	// RedisProtocol is the clients' RESP version; 0 keeps go-redis's
	// default, which the daemon uses (for experiments only).
	RedisProtocol int
	// Stdout receives the table and BENCH lines; Progress the progress log.
	Stdout, Progress io.Writer
}

// Result is one measure's outcome.
type Result struct {
	ID, Name string
	Value    float64
	Unit     string
	Baseline float64 // NaN-free: HasBaseline tells
	HasBase  bool
	Ratio    float64
	HasRatio bool
	Goal     string
	// Met: "met", "MISSED", or "-" (no goal / not run).
	Met     string
	Details []string
	Subs    []Result // sub-values (own BENCH lines, dotted IDs)
	Err     error
}

func (r Result) benchLine() string {
	f := func(ok bool, v float64) string {
		if !ok {
			return "-"
		}
		return num(v)
	}
	return fmt.Sprintf("BENCH %s %s value=%s unit=%s baseline=%s ratio=%s", r.ID, r.Name, num(r.Value), r.Unit,
		f(r.HasBase, r.Baseline), f(r.HasRatio, r.Ratio))
}

// num formats a number for a BENCH line: plain decimal, up to 4 decimals.
func num(v float64) string {
	s := strconv.FormatFloat(v, 'f', 4, 64)
	s = strings.TrimRight(strings.TrimRight(s, "0"), ".")
	if s == "" || s == "-" {
		return "0"
	}
	return s
}

func verdict(ok bool) string {
	if ok {
		return "met"
	}
	return "MISSED"
}

// env is what the measures share.
type env struct {
	opts Options
	sz   Sizes
	srv  *redisServer
	rdb  *redis.Client // DB 0: store and asynq, as the daemon shares one client
	rt   *rtCounter
	st   *store.Store
	// loader is st with the group-commit window off, for the harness's own
	// loops that call LoadCheck and RecordCheck back to back (a closed
	// loop waits out every window: store.Config.CheckBatchWindow).
	loader *store.Store
	aq     *asynq.Client
	key    []byte
	ds     *dataset
	quiet  *logrus.Logger // warn level, discarded
	info   *logrus.Logger // info level, discarded: the per-check log line is formatted as in production
	logf   func(format string, args ...any)
}

// storeConfig is the daemon's store configuration (the embedded defaults)
// with cipher ci.
func storeConfig(ci *store.Cipher) store.Config {
	c := configs.Default().StoreConfig()
	c.Cipher = ci
	return c
}

// poolSize mirrors the daemon: worker concurrency + enqueuers + 16, with
// room for P1's widest raw baseline.
func poolSize(sz Sizes) int {
	return daemon.RedisPoolSize(sz.ProcessConcurrency, configs.Default().Scheduler.EnqueueConcurrency)
}

// Run runs the selected measures and prints their results. It returns an
// error when a measure could not run; a missed goal is not an error.
func Run(ctx context.Context, opts Options) error {
	if opts.RedisServer == "" {
		opts.RedisServer = "redis-server"
	}
	if opts.Stdout == nil {
		opts.Stdout = os.Stdout
	}
	if opts.Progress == nil {
		opts.Progress = os.Stderr
	}
	if opts.OutDir == "" {
		opts.OutDir = "bench/out"
	}
	sel := map[string]bool{}
	for _, id := range opts.Only {
		id = strings.ToUpper(strings.TrimSpace(id))
		if id == "" {
			continue
		}
		if !validID(id) {
			return fmt.Errorf("-only %s: want measure IDs P1..P6, P8", id)
		}
		sel[id] = true
	}
	want := func(id string) bool { return len(sel) == 0 || sel[id] }
	began := time.Now()
	logf := func(format string, args ...any) {
		fmt.Fprintf(opts.Progress, "[%6.1fs] %s\n", time.Since(began).Seconds(), fmt.Sprintf(format, args...))
	}
	if err := os.MkdirAll(opts.OutDir, 0o755); err != nil {
		return err
	}
	if opts.CPUProfileDir != "" {
		if err := os.MkdirAll(opts.CPUProfileDir, 0o755); err != nil {
			return err
		}
	}
	mach := describeMachine()
	mach.load0 = loadAvg()

	srv, err := startRedis(ctx, opts.RedisServer)
	if err != nil {
		return err
	}
	defer srv.stop()
	srv.protocol = opts.RedisProtocol
	if srv.protocol == 0 {
		srv.protocol = daemon.RedisProtocol // as the daemon runs
	}
	logf("redis-server %s on %s (persistence off); scale %s", srv.Version, srv.Addr, opts.Sizes.Name)
	if opts.Replication != ReplicationNone {
		rep, err := startReplica(ctx, opts.RedisServer, srv, opts.Replication)
		if err != nil {
			return err
		}
		defer rep.stop()
		logf("replica on %s in sync; replication %s", rep.Addr, opts.Replication)
	}

	e := &env{opts: opts, sz: opts.Sizes, srv: srv, logf: logf}
	e.rdb, e.rt = srv.client(0, poolSize(e.sz))
	defer e.rdb.Close()
	stRdb := e.rdb // the store's client: the shared one, but under ReplicationWait
	if opts.Replication == ReplicationWait {
		c, _ := srv.client(0, poolSize(e.sz))
		c.AddHook(&waitHook{c: c})
		defer c.Close()
		stRdb = c
	}
	e.quiet = logrus.New()
	e.quiet.SetOutput(io.Discard)
	e.quiet.SetLevel(logrus.WarnLevel)
	// The daemon's logger as it runs in production (info, JSON: output
	// that is not a terminal), writing nowhere.
	if e.info, err = daemon.NewLogger(configs.Log{Level: "info", Format: configs.FormatAuto}, io.Discard); err != nil {
		return err
	}
	if e.key, err = store.GenerateKey(); err != nil {
		return err
	}
	ci, err := store.NewCipher(e.key)
	if err != nil {
		return err
	}
	stCfg := storeConfig(ci)
	switch w := opts.Sizes.CheckBatchWindow; {
	case w < 0:
		stCfg.CheckBatchWindow = 0
	case w > 0:
		stCfg.CheckBatchWindow = w
	}
	if e.st, err = store.New(stRdb, stCfg); err != nil {
		return err
	}
	loaderCfg := storeConfig(ci)
	loaderCfg.CheckBatchWindow = 0
	if e.loader, err = store.New(e.rdb, loaderCfg); err != nil {
		return err
	}
	e.aq = asynq.NewClientFromRedisClient(e.rdb)
	e.ds = &dataset{e: e}

	// The dataset is loaded once, at the largest size a selected measure needs.
	need := 0
	for _, id := range []string{"P1", "P3", "P4"} {
		if want(id) {
			need = max(need, e.sz.Conns)
		}
	}
	if want("P2") {
		need = max(need, 3*e.sz.Process) // first checks in process with the memo on and off, and over HTTP
	}
	if want("P6") || want("P8") {
		need = max(need, min(e.sz.Conns, p6Tasks(e.sz)))
	}
	if need > 0 {
		if err := e.ds.load(ctx, need); err != nil {
			return fmt.Errorf("load %d connections: %w", need, err)
		}
	}

	// Order matters: P1 sweeps the dataset (P3 ticks over it with nothing
	// due), P2 checks its first connections, P4 checks the rest and
	// measures memory before P6 adds anything.
	order := []struct {
		id  string
		run func(context.Context, *env) Result
	}{
		{"P1", runP1}, {"P3", runP3}, {"P2", runP2}, {"P4", runP4}, {"P5", runP5}, {"P6", runP6}, {"P8", runP8},
	}
	var results []Result
	var failed []string
	for _, m := range order {
		if !want(m.id) {
			continue
		}
		logf("%s: start", m.id)
		r := m.run(ctx, e)
		if r.Err != nil {
			failed = append(failed, fmt.Sprintf("%s: %v", m.id, r.Err))
			r.Met = "ERROR"
			logf("%s: FAILED: %v", m.id, r.Err)
		} else {
			logf("%s: done: %s", m.id, r.benchLine())
		}
		results = append(results, r)
		if ctx.Err() != nil {
			break
		}
	}
	mach.load1 = loadAvg()
	sort.Slice(results, func(i, j int) bool { return results[i].ID < results[j].ID })
	report(opts, mach, srv.Version, e.ds, results, time.Since(began))
	if len(failed) > 0 {
		return errors.New(strings.Join(failed, "; "))
	}
	return nil
}

func validID(id string) bool {
	switch id {
	case "P1", "P2", "P3", "P4", "P5", "P6", "P8":
		return true
	}
	return false
}

// startProfile starts a CPU profile of a measured run when asked to; the
// returned func stops it.
func (e *env) startProfile(id string) func() {
	if e.opts.CPUProfileDir == "" {
		return func() {}
	}
	f, err := os.Create(e.opts.CPUProfileDir + "/" + id + ".pprof")
	if err != nil {
		e.logf("%s: cpu profile: %v", id, err)
		return func() {}
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		e.logf("%s: cpu profile: %v", id, err)
		f.Close()
		return func() {}
	}
	return func() { pprof.StopCPUProfile(); f.Close() }
}

// machine describes where the run happened.
type machine struct {
	cpus         int
	model        string
	goVersion    string
	load0, load1 string
}

func describeMachine() machine {
	m := machine{cpus: runtime.NumCPU(), goVersion: runtime.Version(), model: "unknown"}
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for _, line := range strings.Split(string(b), "\n") {
			if k, v, ok := strings.Cut(line, ":"); ok && strings.TrimSpace(k) == "model name" {
				m.model = strings.TrimSpace(v)
				break
			}
		}
	}
	return m
}

func loadAvg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "?"
	}
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return "?"
	}
	return strings.Join(f[:3], " ")
}

// report prints the table, the details and the BENCH lines, and writes
// them to OutDir/results.txt and a Markdown table to OutDir/results.md.
func report(opts Options, m machine, redisVersion string, ds *dataset, results []Result, took time.Duration) {
	var b strings.Builder
	fmt.Fprintf(&b, "\ncheckbench: scale %s, %d CPUs (%s), %s, Redis %s on loopback; load average %s at start, %s at end; took %s\n",
		opts.Sizes.Name, m.cpus, m.model, m.goVersion, redisVersion, m.load0, m.load1, took.Round(time.Second))
	if ds != nil && ds.loadN > 0 {
		fmt.Fprintf(&b, "dataset: %d sandbox user_good connections over %d companies, created with store.CreateConnections in %s (%.0f/s)\n",
			ds.loadN, len(ds.companies), ds.loadTook.Round(time.Millisecond), float64(ds.loadN)/ds.loadTook.Seconds())
		fmt.Fprintf(&b, "dataset load %s\n", ds.loadCost)
	}
	b.WriteString("\n")
	tw := tabwriter.NewWriter(&b, 2, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tmeasure\tvalue\tunit\tbaseline\tratio\tgoal\tverdict")
	row := func(r Result) {
		base, ratio := "-", "-"
		if r.HasBase {
			base = human(r.Baseline)
		}
		if r.HasRatio {
			ratio = strconv.FormatFloat(r.Ratio, 'f', 3, 64)
		}
		val := human(r.Value)
		if r.Err != nil {
			val = "error"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", r.ID, r.Name, val, r.Unit, base, ratio, r.Goal, r.Met)
	}
	for _, r := range results {
		row(r)
		for _, s := range r.Subs {
			row(s)
		}
	}
	tw.Flush()
	b.WriteString("\n")
	for _, r := range results {
		if r.Err != nil {
			fmt.Fprintf(&b, "%s error: %v\n", r.ID, r.Err)
		}
		for _, d := range r.Details {
			fmt.Fprintf(&b, "%s: %s\n", r.ID, d)
		}
	}
	b.WriteString("\n")
	for _, r := range results {
		if r.Err != nil {
			continue
		}
		fmt.Fprintln(&b, r.benchLine())
		for _, s := range r.Subs {
			fmt.Fprintln(&b, s.benchLine())
		}
	}
	out := b.String()
	fmt.Fprint(opts.Stdout, out)
	_ = os.WriteFile(opts.OutDir+"/results-"+opts.Sizes.Name+".txt", []byte(out), 0o644)

	var md strings.Builder
	fmt.Fprintf(&md, "| ID | measure | value | unit | baseline | ratio | goal | verdict |\n|---|---|---:|---|---:|---:|---|---|\n")
	mdRow := func(r Result) {
		base, ratio := "-", "-"
		if r.HasBase {
			base = human(r.Baseline)
		}
		if r.HasRatio {
			ratio = strconv.FormatFloat(r.Ratio, 'f', 3, 64)
		}
		fmt.Fprintf(&md, "| %s | %s | %s | %s | %s | %s | %s | %s |\n", r.ID, r.Name, human(r.Value), r.Unit, base, ratio,
			strings.ReplaceAll(r.Goal, "|", "/"), r.Met)
	}
	for _, r := range results {
		mdRow(r)
		for _, s := range r.Subs {
			mdRow(s)
		}
	}
	_ = os.WriteFile(opts.OutDir+"/results-"+opts.Sizes.Name+".md", []byte(md.String()), 0o644)
}

// human formats a table value: thousands separators for large numbers,
// three significant decimals for small ones.
func human(v float64) string {
	switch {
	case v >= 100:
		s := strconv.FormatInt(int64(v+0.5), 10)
		var out []byte
		for i := range s {
			if i > 0 && (len(s)-i)%3 == 0 {
				out = append(out, ',')
			}
			out = append(out, s[i])
		}
		return string(out)
	case v >= 10:
		return strconv.FormatFloat(v, 'f', 1, 64)
	default:
		return strconv.FormatFloat(v, 'f', 3, 64)
	}
}

// keyHex is the store's encryption key for the P6 child.
func (e *env) keyHex() string { return hex.EncodeToString(e.key) }
