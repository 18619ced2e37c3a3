// Command checkd-sandbox is the reference checker service: it serves the
// sandbox datasource's scenarios (checks/sandbox) over the HTTP checker
// protocol (checks/httpcheck, docs/checkers.md), verifying every request's
// signature. Tests and `make cluster` run the HTTP path end to end with it,
// and it shows operators what a checker answers.
//
//	CHECKD_SANDBOX_SECRET=whsec_... checkd-sandbox -addr 127.0.0.1:8090 -latency 200ms
//
// Checks are served at POST /check, a liveness probe at GET /healthz. Once
// it listens it prints "checkd-sandbox listening on http://ADDR/check" on
// stdout (with port 0, ADDR has the port picked). The secret is read from
// the environment only, never from a flag (flags show in ps).
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/checkd/checkd/checks/httpcheck"
	"github.com/checkd/checkd/checks/sandbox"
)

// EnvSecret holds the datasource's secret.
const EnvSecret = "CHECKD_SANDBOX_SECRET"

// stopTimeout bounds a graceful stop: in-flight checks finish first.
const stopTimeout = 30 * time.Second

func main() {
	if err := run(); err != nil {
		fmt.Fprintf(os.Stderr, "checkd-sandbox: %v\n", err)
		os.Exit(1)
	}
}

func run() error {
	addr := flag.String("addr", "127.0.0.1:8090", "listen address, host:port (port 0: a free one)")
	latency := flag.Duration("latency", 0, "how long each sandbox check pretends to take")
	level := flag.String("log-level", "info", "trace, debug (a line per check), info, warn or error")
	flag.Parse()

	secret := os.Getenv(EnvSecret)
	if secret == "" {
		return fmt.Errorf("set %s to the datasource's secret, the one checkd signs with (generate one with: echo \"whsec_$(openssl rand -base64 32)\")", EnvSecret)
	}
	lvl, err := logrus.ParseLevel(*level)
	if err != nil {
		return fmt.Errorf("-log-level: %w", err)
	}
	log := logrus.New()
	log.SetOutput(os.Stderr)
	log.SetLevel(lvl)
	h, err := httpcheck.NewHandler(sandbox.New(sandbox.Options{Latency: *latency}), httpcheck.HandlerConfig{Secret: secret, Logger: log})
	if err != nil {
		return err
	}
	mux := http.NewServeMux()
	mux.Handle("/check", h)
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) { fmt.Fprint(w, "ok\n") })

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	var lc net.ListenConfig
	ln, err := lc.Listen(ctx, "tcp", *addr)
	if err != nil {
		return fmt.Errorf("listen on %s: %w (choose another with -addr)", *addr, err)
	}
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()
	fmt.Printf("checkd-sandbox listening on http://%s/check\n", ln.Addr())
	log.WithField("latency", latency.String()).Info("serving the sandbox over the HTTP checker protocol")

	select {
	case err := <-served:
		return err
	case <-ctx.Done():
	}
	stop()
	log.Info("signal received: stopping after in-flight checks")
	sctx, cancel := context.WithTimeout(context.Background(), stopTimeout)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil && !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}
