package redistest

import (
	"context"
	"slices"
	"sync"

	"github.com/redis/go-redis/v9"
)

// Gate is a go-redis hook for tests of code that batches script calls (the
// group commit): it records the script commands a client sends (not the
// connection handshakes go-redis also runs through hooks), and can hold the
// next single one, or the next pipeline of them, until released, so a test
// knows exactly which calls queue behind it. Add it with Client.AddHook.
type Gate struct {
	mu         sync.Mutex
	holdSingle chan struct{} // non-nil: the next single command waits for it
	holdPipe   chan struct{} // non-nil: the next pipeline waits for it
	panicPipe  bool          // the next pipeline panics
	entered    chan string   // "single" or "pipeline" when one is held
	singles    []string      // command names, in order
	pipes      [][]string    // each pipeline's command names
}

// NewGate returns a gate that holds nothing until asked.
func NewGate() *Gate { return &Gate{entered: make(chan string, 4)} }

// DialHook passes dials through.
func (g *Gate) DialHook(next redis.DialHook) redis.DialHook { return next }

// ProcessHook records a single script command, holding it if asked.
func (g *Gate) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		if !isScriptCmd(cmd) {
			return next(ctx, cmd)
		}
		g.mu.Lock()
		g.singles = append(g.singles, cmd.Name())
		hold := g.holdSingle
		g.holdSingle = nil
		g.mu.Unlock()
		if hold != nil {
			g.entered <- "single"
			<-hold
		}
		return next(ctx, cmd)
	}
}

// ProcessPipelineHook records a pipeline of script commands, holding it or
// panicking if asked.
func (g *Gate) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		if len(cmds) == 0 || !isScriptCmd(cmds[0]) {
			return next(ctx, cmds)
		}
		names := make([]string, len(cmds))
		for i, c := range cmds {
			names[i] = c.Name()
		}
		g.mu.Lock()
		g.pipes = append(g.pipes, names)
		hold, panics := g.holdPipe, g.panicPipe
		g.holdPipe, g.panicPipe = nil, false
		g.mu.Unlock()
		if panics {
			panic("hook panics")
		}
		if hold != nil {
			g.entered <- "pipeline"
			<-hold
		}
		return next(ctx, cmds)
	}
}

func isScriptCmd(cmd redis.Cmder) bool {
	switch cmd.Name() {
	case "eval", "evalsha":
		return true
	}
	return false
}

// HoldNextSingle makes the next single script command wait until release
// is called (release is safe to call twice).
func (g *Gate) HoldNextSingle() (release func()) {
	ch := make(chan struct{})
	g.mu.Lock()
	g.holdSingle = ch
	g.mu.Unlock()
	return sync.OnceFunc(func() { close(ch) })
}

// HoldNextPipeline makes the next pipeline of script commands wait until
// release is called (release is safe to call twice).
func (g *Gate) HoldNextPipeline() (release func()) {
	ch := make(chan struct{})
	g.mu.Lock()
	g.holdPipe = ch
	g.mu.Unlock()
	return sync.OnceFunc(func() { close(ch) })
}

// PanicNextPipeline makes the next pipeline of script commands panic with
// "hook panics" in the goroutine sending it.
func (g *Gate) PanicNextPipeline() {
	g.mu.Lock()
	g.panicPipe = true
	g.mu.Unlock()
}

// Entered receives "single" or "pipeline" when the gate holds one.
func (g *Gate) Entered() <-chan string { return g.entered }

// Singles is the script commands sent alone so far, in order.
func (g *Gate) Singles() []string {
	g.mu.Lock()
	defer g.mu.Unlock()
	return slices.Clone(g.singles)
}

// Pipelines is each pipeline of script commands sent so far.
func (g *Gate) Pipelines() [][]string {
	g.mu.Lock()
	defer g.mu.Unlock()
	out := make([][]string, len(g.pipes))
	copy(out, g.pipes)
	return out
}

// Reset forgets the commands recorded so far.
func (g *Gate) Reset() {
	g.mu.Lock()
	g.singles, g.pipes = nil, nil
	g.mu.Unlock()
}
