package startstop_test

import (
	"context"
	"fmt"

	"github.com/checkd/checkd/internal/startstop"
)

// part is a long-running part: it writes what it does to start and stop,
// its Lifecycle decides whether that runs.
type part struct {
	name string
	life startstop.Lifecycle
}

func (p *part) Start(context.Context) error {
	return p.life.Start(p.name, func() error { fmt.Println("start", p.name); return nil })
}

func (p *part) Stop(ctx context.Context) error {
	return p.life.Stop(ctx, p.name, func(context.Context) error { fmt.Println("stop", p.name); return nil })
}

// Example starts two parts as a process does, through a Stack, and stops
// them in reverse; the parts' own Stop and Start then do nothing more.
func Example() {
	ctx := context.Background()
	var started startstop.Stack
	redis, worker := &part{name: "redis"}, &part{name: "worker"}
	for _, p := range []*part{redis, worker} {
		if err := started.Start(ctx, p.name, p); err != nil {
			fmt.Println(err)
			return
		}
	}
	fmt.Println(started.Stop(ctx))
	fmt.Println(worker.Stop(ctx)) // twice: nothing to do
	fmt.Println(worker.Start(ctx))
	// Output:
	// start redis
	// start worker
	// stop worker
	// stop redis
	// <nil>
	// <nil>
	// worker: start: stopped; create a new one to start again
}
