// Package startstop is the lifecycle every long-running part of checkd
// shares (the worker, the scheduler, the API server and the daemon that
// wires them): a part starts once, Stop is safe before Start, twice and
// concurrently, and a process stops its parts in the reverse of their start
// order.
//
// A part holds a Lifecycle and writes only what it does to start and to
// stop; Lifecycle decides whether that runs:
//
//	func (p *Part) Start(ctx context.Context) error {
//		return p.life.Start("part", func() error { /* listen, spawn, ... */ })
//	}
//
//	func (p *Part) Stop(ctx context.Context) error {
//		return p.life.Stop(ctx, "part", func(ctx context.Context) error { /* drain, bounded by ctx */ })
//	}
//
// A process that starts several parts starts each through a Stack
// (Stack.Start), which keeps the stop of every part that came up;
// Stack.Stop stops them last-started first.
package startstop

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
)

// ErrStarted is Start's error for a part already running.
var ErrStarted = errors.New("already running")

// ErrStopped is Start's error for a part that was stopped: a part runs once;
// build a new one to start again.
var ErrStopped = errors.New("stopped; create a new one to start again")

type state int

const (
	stateNew state = iota
	stateStarted
	stateStopping // the first Stop is running the part's stop
	stateStopped
)

// Lifecycle runs a part's start and stop at most once each, in that order.
// The zero value is a part that has not started. It is safe for concurrent
// use.
type Lifecycle struct {
	mu    sync.Mutex
	state state
	// done is closed when the part's stop has returned (or at once for a
	// part stopped before it started): later Stops wait for it.
	done chan struct{}
}

// Start runs start unless the part was started or stopped before, in which
// case it returns ErrStarted or ErrStopped prefixed with name. It holds the
// lifecycle while start runs, so a concurrent Stop waits for it. When start
// fails the part is still new and Start may be tried again: start must
// leave nothing running when it fails.
func (l *Lifecycle) Start(name string, start func() error) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	switch l.state {
	case stateStarted:
		return fmt.Errorf("%s: start: %w", name, ErrStarted)
	case stateStopping, stateStopped:
		return fmt.Errorf("%s: start: %w", name, ErrStopped)
	}
	if err := start(); err != nil {
		return err
	}
	l.state = stateStarted
	return nil
}

// Stop runs stop, bounded by ctx, if Start succeeded and no Stop ran
// before, and returns its error. Before Start it only marks the part
// stopped (it never starts). A Stop that finds another under way or done
// waits for that one's stop to return, or for its own ctx to end (then it
// returns ctx's error prefixed with name); it returns nil.
func (l *Lifecycle) Stop(ctx context.Context, name string, stop func(context.Context) error) error {
	l.mu.Lock()
	switch l.state {
	case stateNew:
		l.state, l.done = stateStopped, closed
		l.mu.Unlock()
		return nil
	case stateStarted:
		l.state, l.done = stateStopping, make(chan struct{})
		done := l.done
		l.mu.Unlock()
		defer func() {
			l.mu.Lock()
			l.state = stateStopped
			l.mu.Unlock()
			close(done)
		}()
		return stop(ctx)
	}
	done := l.done
	l.mu.Unlock()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("%s: stop: waiting for a stop under way: %w", name, ctx.Err())
	}
}

// Running reports whether the part started and no Stop began since.
func (l *Lifecycle) Running() bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.state == stateStarted
}

// closed is the done channel of parts stopped before they started.
var closed = func() chan struct{} {
	c := make(chan struct{})
	close(c)
	return c
}()

// Part is a long-running part of a process: the worker, the scheduler, the
// API server, the daemon itself.
type Part interface {
	// Start brings the part up and returns; it does not block.
	Start(ctx context.Context) error
	// Stop stops it, bounded by ctx; safe twice and before Start.
	Stop(ctx context.Context) error
}

// Stack holds the stops of the parts a process started, in start order.
// The zero value is empty. It is safe for concurrent use.
type Stack struct {
	mu    sync.Mutex
	parts []part
}

type part struct {
	name string
	stop func(context.Context) error
}

// Push adds the stop of a part that has just started.
func (s *Stack) Push(name string, stop func(context.Context) error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.parts = append(s.parts, part{name, stop})
}

// Start starts p and, when it started, pushes its Stop under name.
func (s *Stack) Start(ctx context.Context, name string, p Part) error {
	if err := p.Start(ctx); err != nil {
		return err
	}
	s.Push(name, p.Stop)
	return nil
}

// Len is how many parts the stack holds.
func (s *Stack) Len() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.parts)
}

// Stop empties the stack and stops its parts in the reverse of the order
// they were pushed, each bounded by ctx, every one even when an earlier one
// fails. It returns every failure, each prefixed with "stop <name>".
func (s *Stack) Stop(ctx context.Context) error {
	s.mu.Lock()
	parts := s.parts
	s.parts = nil
	s.mu.Unlock()
	var errs []error
	for _, p := range slices.Backward(parts) {
		if err := p.stop(ctx); err != nil {
			errs = append(errs, fmt.Errorf("stop %s: %w", p.name, err))
		}
	}
	return errors.Join(errs...)
}
