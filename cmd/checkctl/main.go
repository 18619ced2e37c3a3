// Command checkctl administers a checkd service through its HTTP API:
// companies, connections, accounts, queues and the status vocabulary. All
// of its logic lives in package ctl; run "checkctl --help" for the commands.
//
//	CHECKD_API_KEY=... checkctl connections list co_... --status PASSWORD_INCORRECT
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"

	"github.com/checkd/checkd/internal/ctl"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := ctl.Run(ctx, os.Args[1:], ctl.Env{})
	stop()
	os.Exit(code)
}
