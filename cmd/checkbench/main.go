// Command checkbench is checkd's load benchmark (make bench): it starts a
// throwaway redis-server on a free loopback port and measures the six
// performance targets side by side with raw asynq (see package bench and
// BENCHMARKS.md).
//
//	go run ./cmd/checkbench                   # full sizes (several minutes)
//	BENCH_SCALE=small go run ./cmd/checkbench # every measure, reduced, under a minute
//	go run ./cmd/checkbench -only P3,P5       # selected measures
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/checkd/checkd/internal/bench"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintf(os.Stderr, "checkbench: %v\n", err)
		os.Exit(1)
	}
}

func run() error {
	scale := flag.String("scale", os.Getenv(bench.EnvScale), "full or small (default $"+bench.EnvScale+", else full)")
	only := flag.String("only", "", "comma-separated measures to run, e.g. P1,P3 (default all)")
	out := flag.String("out", "bench/out", "directory for spread.svg and the results files")
	prof := flag.String("cpuprofile", "", "directory for a CPU profile of each measured run (P1, P2, P4, P6)")
	redisBin := flag.String("redis-server", "redis-server", "redis-server binary")
	conns := flag.Int("conns", 0, "override the dataset size (P1, P3's large index, P4)")
	p2c := flag.Int("p2-concurrency", 0, "override P2's asynq concurrency (both sides)")
	p2n := flag.Int("p2-checks", 0, "override P2's number of checks (both sides)")
	p2r := flag.Int("p2-rounds", 0, "override how many alternating rounds P2's checks are split into")
	p2floor := flag.Bool("p2-floor", false, "experiment: also run P2's floor, raw asynq whose handler GETs and SETs one key per task")
	sweepC := flag.Int("sweep-concurrency", 0, "override the scheduler's EnqueueConcurrency in P1 (default: the scheduler's)")
	p6d := flag.Duration("p6-duration", 0, "override P6's run length")
	p6pool := flag.Int("p6-pool", 0, "experiment: the P6 worker process's go-redis pool size (default: concurrency + 32, as the daemon)")
	p6buf := flag.Int("p6-bufsize", 0, "experiment: the P6 worker process's go-redis read/write buffer size in bytes (default: go-redis's)")
	window := flag.Duration("check-batch-window", 0, "experiment: the store's CheckBatchWindow (default: configs/checkd.yaml's store.checkBatchWindow; negative: none)")
	proto := flag.Int("redis-protocol", 0, "experiment: the clients' RESP version (default: the daemon's, 2)")
	repl := flag.String("replication", "", "experiment: give Redis a replica: async, min-replicas (min-replicas-to-write 1) or wait (the store follows each write with WAIT 1)")
	child := flag.Bool(bench.ChildFlag, false, "internal: run as P6's worker process")
	flag.Parse()

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if *child {
		return bench.RunWorkerChild(ctx, os.Stdin, os.Stdout)
	}
	sz, err := bench.SizesFor(*scale)
	if err != nil {
		return err
	}
	if *conns > 0 {
		sz.Conns = *conns
	}
	if *p2c > 0 {
		sz.ProcessConcurrency = *p2c
	}
	if *p2n > 0 {
		sz.Process = *p2n
	}
	if *p2r > 0 {
		sz.ProcessRounds = *p2r
	}
	sz.ProcessFloor = *p2floor
	if *sweepC > 0 {
		sz.SweepConcurrency = *sweepC
	}
	if *p6d > 0 {
		sz.P6Duration = *p6d
		sz.P6Warmup = min(sz.P6Warmup, *p6d/2)
	}
	sz.P6PoolSize, sz.P6BufferSize = *p6pool, *p6buf
	sz.CheckBatchWindow = *window
	exe, err := os.Executable()
	if err != nil {
		return err
	}
	var sel []string
	if *only != "" {
		sel = strings.Split(*only, ",")
	}
	return bench.Run(ctx, bench.Options{Sizes: sz, Only: sel, OutDir: *out, CPUProfileDir: *prof, RedisServer: *redisBin, Exe: exe,
		RedisProtocol: *proto, Replication: *repl})
}
