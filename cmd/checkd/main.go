// Command checkd runs the checkd daemon: the scheduler, the check workers
// and the HTTP API (by default all three in one process; CHECKD_ROLES
// splits them). Configuration: -config FILE or CHECKD_CONFIG, over the
// embedded defaults, under CHECKD_* environment overrides (see
// docs/configuration.md).
//
//	checkd -config configs/demo.yaml
//	checkd --version
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/checkd/checkd/configs"
	"github.com/checkd/checkd/internal/daemon"
	"github.com/checkd/checkd/internal/version"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintf(os.Stderr, "checkd: %v\n", err)
		os.Exit(1)
	}
}

func run() error {
	path := flag.String("config", "", "YAML config file over the embedded defaults (default $"+configs.EnvConfig+")")
	showVersion := flag.Bool("version", false, "print the build's version and commit, and exit")
	flag.Parse()
	if *showVersion {
		fmt.Println("checkd " + version.Get().String())
		return nil
	}

	cfg, err := configs.Load(*path)
	if err != nil {
		return err
	}
	log, err := daemon.NewLogger(cfg.Log, os.Stderr)
	if err != nil {
		return err
	}
	d, err := daemon.New(cfg, log, daemon.Options{})
	if err != nil {
		return err
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	startErr := d.Start(ctx)
	if startErr == nil {
		<-ctx.Done()
		stop() // a second signal now kills the process at once
		// The cause names the signal ("interrupt signal received").
		log.Infof("%v: stopping (send it again to exit at once)", context.Cause(ctx))
	}

	sctx, cancel := context.WithTimeout(context.Background(), d.StopTimeout())
	defer cancel()
	return errors.Join(startErr, d.Stop(sctx))
}
