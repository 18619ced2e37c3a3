package worker_test

import (
	"bufio"
	"context"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"

	"github.com/checkd/checkd/checks"
	"github.com/checkd/checkd/checks/sandbox"
	"github.com/checkd/checkd/configs"
	"github.com/checkd/checkd/internal/bench"
	"github.com/checkd/checkd/internal/tasks"
	"github.com/checkd/checkd/internal/testing/poll"
	"github.com/checkd/checkd/internal/testing/redistest"
	"github.com/checkd/checkd/internal/testing/storetest"
	"github.com/checkd/checkd/store"
	"github.com/checkd/checkd/worker"
)

// envCapChild carries a cap child's configuration (JSON): the test binary,
// re-executed with it, is one worker process (TestMain).
const envCapChild = "CHECKD_TEST_CAP_CHILD"

// capChild is a worker process's configuration.
type capChild struct {
	Addr         string `json:"addr"`
	DB           int    `json:"db"`
	Key          string `json:"key"`
	Cap          int    `json:"cap"`
	Concurrency  int    `json:"concurrency"`
	LatencyMS    int64  `json:"latencyMs"`
	CheckTimeout int64  `json:"checkTimeoutMs"`
	LeaseMS      int64  `json:"leaseMs"`
}

// capDS is the capped datasource of these tests.
const capDS = "capped"

// runCapChild is a worker process: checkd's worker with the sandbox as
// capDS capped at Cap, printing "IV <start ns> <end ns>" for every checker
// call and "READY" once started; it stops when its stdin closes.
func runCapChild() int {
	var cfg capChild
	fail := func(err error) int { fmt.Fprintln(os.Stderr, "cap child:", err); return 1 }
	if err := json.Unmarshal([]byte(os.Getenv(envCapChild)), &cfg); err != nil {
		return fail(err)
	}
	key, err := hex.DecodeString(cfg.Key)
	if err != nil {
		return fail(err)
	}
	ci, err := store.NewCipher(key)
	if err != nil {
		return fail(err)
	}
	rdb := redis.NewClient(&redis.Options{Addr: cfg.Addr, DB: cfg.DB})
	defer rdb.Close()
	scfg := configs.Default().StoreConfig()
	scfg.Cipher = ci
	st, err := store.New(rdb, scfg)
	if err != nil {
		return fail(err)
	}
	var mu sync.Mutex
	out := bufio.NewWriter(os.Stdout)
	sb := sandbox.New(sandbox.Options{Latency: time.Duration(cfg.LatencyMS) * time.Millisecond})
	reg := checks.NewRegistry()
	if err := reg.Register(capDS, checks.CheckerFunc(func(ctx context.Context, req checks.Request) (checks.Result, error) {
		start := time.Now().UnixNano()
		res, err := sb.Check(ctx, req)
		mu.Lock()
		fmt.Fprintf(out, "IV %d %d\n", start, time.Now().UnixNano())
		out.Flush()
		mu.Unlock()
		return res, err
	})); err != nil {
		return fail(err)
	}
	wcfg := worker.ConfigFrom(configs.Default())
	wcfg.Concurrency, wcfg.Logger = cfg.Concurrency, quietLogger()
	wcfg.CheckTimeout = time.Duration(cfg.CheckTimeout) * time.Millisecond
	wcfg.Datasources.MaxConcurrent = func(ds string) int { return map[bool]int{true: cfg.Cap}[ds == capDS] }
	wcfg.Datasources.SlotRetry = 100 * time.Millisecond
	wcfg.Datasources.SlotLease = time.Duration(cfg.LeaseMS) * time.Millisecond
	w, err := worker.New(rdb, st, reg, wcfg)
	if err != nil {
		return fail(err)
	}
	if err := w.Start(context.Background()); err != nil {
		return fail(err)
	}
	mu.Lock()
	fmt.Fprintln(out, "READY")
	out.Flush()
	mu.Unlock()
	_, _ = io.Copy(io.Discard, os.Stdin) // until the test closes it
	if err := w.Stop(context.Background()); err != nil {
		return fail(err)
	}
	return 0
}

// capProc is a running worker process and what it printed.
type capProc struct {
	cmd   *exec.Cmd
	stdin io.WriteCloser
	mu    sync.Mutex
	iv    [][2]int64
	ready chan struct{}
	done  chan struct{}
}

func startCapChild(t *testing.T, cfg capChild) *capProc {
	t.Helper()
	raw, _ := json.Marshal(cfg)
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), envCapChild+"="+string(raw))
	cmd.Stderr = os.Stderr
	stdin, err := cmd.StdinPipe()
	must(t, err)
	stdout, err := cmd.StdoutPipe()
	must(t, err)
	must(t, cmd.Start())
	p := &capProc{cmd: cmd, stdin: stdin, ready: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(p.done)
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			line := sc.Text()
			if line == "READY" {
				close(p.ready)
				continue
			}
			f := strings.Fields(line)
			if len(f) == 3 && f[0] == "IV" {
				a, _ := strconv.ParseInt(f[1], 10, 64)
				b, _ := strconv.ParseInt(f[2], 10, 64)
				p.mu.Lock()
				p.iv = append(p.iv, [2]int64{a, b})
				p.mu.Unlock()
			}
		}
	}()
	t.Cleanup(func() { _ = cmd.Process.Kill(); <-p.done; _ = cmd.Wait() })
	select {
	case <-p.ready:
	case <-time.After(30 * time.Second):
		t.Fatal("a worker process did not start within 30 s")
	}
	return p
}

// stop ends the process gracefully (its running checks finish).
func (p *capProc) stop(t *testing.T) {
	t.Helper()
	must(t, p.stdin.Close())
	<-p.done
	must(t, p.cmd.Wait())
}

func (p *capProc) intervals() [][2]int64 {
	p.mu.Lock()
	defer p.mu.Unlock()
	return slices.Clone(p.iv)
}

// capSetup is a store over a real Redis database, a company of n
// connections of capDS and their check tasks queued, and the children's
// configuration.
func capSetup(t *testing.T, n int, cfg capChild) (*store.Store, []string, capChild) {
	t.Helper()
	srv := redistest.Start(t)
	rdb := srv.Client(t)
	key, err := store.GenerateKey()
	must(t, err)
	ci, err := store.NewCipher(key)
	must(t, err)
	st := storetest.New(t, rdb, func(c *store.Config) { c.Cipher = ci })
	ctx := context.Background()
	co, err := st.CreateCompany(ctx, store.NewCompany{Name: "Capped Co"})
	must(t, err)
	ins := make([]store.NewConnection, n)
	for i := range ins {
		ins[i] = store.NewConnection{Datasource: capDS, Credentials: checks.Credentials{Username: sandbox.UserGood, Password: "p"}}
	}
	cs, err := st.CreateConnections(ctx, co.ID, ins)
	must(t, err)
	aq := asynq.NewClientFromRedisClient(rdb)
	slot := time.Now().Add(time.Hour)
	ids := make([]string, len(cs))
	for i, c := range cs {
		ids[i] = c.ID
		tk, err := tasks.NewCheckTask(c.ID, slot, tasks.ReasonScheduled, asynq.Queue(tasks.QueueDefault), asynq.MaxRetry(3))
		must(t, err)
		_, err = aq.EnqueueContext(ctx, tk)
		must(t, err)
	}
	cfg.Addr, cfg.DB, cfg.Key = srv.Addr, rdb.Options().DB, hex.EncodeToString(key)
	return st, ids, cfg
}

// TestCapAcrossWorkerProcesses: two real worker processes over one Redis
// check a capped datasource's connections: the checker calls of both
// processes never overlap beyond the cap, and every connection is checked
// (a check that found no slot came back and ran).
func TestCapAcrossWorkerProcesses(t *testing.T) {
	if testing.Short() {
		t.Skip("worker processes: skipped in -short mode")
	}
	t.Parallel()
	const n, capN = 40, 3
	st, ids, cfg := capSetup(t, n, capChild{Cap: capN, Concurrency: 10, LatencyMS: 100, CheckTimeout: 5000, LeaseMS: 10000})
	a, b := startCapChild(t, cfg), startCapChild(t, cfg)
	ctx := context.Background()
	poll.WaitFor(t, 60*time.Second, "every capped connection checked", func() bool {
		for _, id := range ids {
			c, err := st.GetConnection(ctx, id)
			if err != nil || c.LastCheckAt == nil {
				return false
			}
		}
		return true
	})
	a.stop(t)
	b.stop(t)
	ia, ib := a.intervals(), b.intervals()
	all := append(ia, ib...)
	if got := bench.MaxOverlap(all); got > capN || len(all) < n {
		t.Fatalf("%d checker calls, at most %d at once across both processes; want all %d, at most %d", len(all), got, n, capN)
	}
	if len(ia) == 0 || len(ib) == 0 {
		t.Errorf("checker calls per process: %d and %d; want both processes to have checked", len(ia), len(ib))
	}
	if held, err := st.RunningSlots(ctx, capDS, time.Now()); err != nil || held != 0 {
		t.Errorf("slots held after both stopped: %d (%v), want 0", held, err)
	}
}

// TestCapSlotsOfAKilledWorker: a worker process killed while its checks
// hold every slot leaves them to expire with their lease; then the slots
// are free again.
func TestCapSlotsOfAKilledWorker(t *testing.T) {
	if testing.Short() {
		t.Skip("worker processes: skipped in -short mode")
	}
	t.Parallel()
	const capN = 3
	lease := 5 * time.Second
	st, _, cfg := capSetup(t, capN, capChild{Cap: capN, Concurrency: 10, LatencyMS: 60000, CheckTimeout: 4000, LeaseMS: lease.Milliseconds()})
	p := startCapChild(t, cfg)
	ctx := context.Background()
	poll.WaitFor(t, 30*time.Second, "every slot taken", func() bool {
		n, err := st.RunningSlots(ctx, capDS, time.Now())
		return err == nil && n == capN
	})
	must(t, p.cmd.Process.Kill())
	if ok, err := st.AcquireSlot(ctx, capDS, "probe-early", capN, time.Second, time.Now()); err != nil || ok {
		t.Fatalf("a slot free right after the kill (%v, %v): the dead worker's slots hold until their lease ends", ok, err)
	}
	poll.WaitFor(t, lease+10*time.Second, "the killed worker's slots free again", func() bool {
		ok, err := st.AcquireSlot(ctx, capDS, "probe", capN, time.Second, time.Now())
		return err == nil && ok
	})
}
