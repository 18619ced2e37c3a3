package startstop

import (
	"context"
	"errors"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

// TestLifecycleSequences drives a Lifecycle through sequences of calls and
// checks each call's result and how often the part's start and stop ran.
func TestLifecycleSequences(t *testing.T) {
	t.Parallel()
	errBoom := errors.New("boom")
	type op struct {
		call    string // start, failstart, stop, failstop
		wantErr error  // nil: no error
	}
	tests := []struct {
		name          string
		ops           []op
		starts, stops int
		running       bool
	}{
		{"start then stop", []op{{"start", nil}, {"stop", nil}}, 1, 1, false},
		{"stop before start", []op{{"stop", nil}}, 0, 0, false},
		{"stop twice before start", []op{{"stop", nil}, {"stop", nil}}, 0, 0, false},
		{"start after stop", []op{{"stop", nil}, {"start", ErrStopped}}, 0, 0, false},
		{"start twice", []op{{"start", nil}, {"start", ErrStarted}}, 1, 0, true},
		{"stop twice", []op{{"start", nil}, {"stop", nil}, {"stop", nil}}, 1, 1, false},
		{"start after start and stop", []op{{"start", nil}, {"stop", nil}, {"start", ErrStopped}}, 1, 1, false},
		{"failed start may be retried", []op{{"failstart", errBoom}, {"start", nil}}, 2, 0, true},
		{"stop after failed start", []op{{"failstart", errBoom}, {"stop", nil}, {"start", ErrStopped}}, 1, 0, false},
		{"failed stop is reported once", []op{{"start", nil}, {"failstop", errBoom}, {"stop", nil}}, 1, 1, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			var l Lifecycle
			starts, stops := 0, 0
			for i, o := range tt.ops {
				var err error
				switch o.call {
				case "start", "failstart":
					err = l.Start("part", func() error {
						starts++
						if o.call == "failstart" {
							return errBoom
						}
						return nil
					})
				case "stop", "failstop":
					err = l.Stop(context.Background(), "part", func(context.Context) error {
						stops++
						if o.call == "failstop" {
							return errBoom
						}
						return nil
					})
				}
				switch {
				case o.wantErr == nil && err != nil:
					t.Fatalf("op %d (%s): %v, want no error", i, o.call, err)
				case o.wantErr != nil && !errors.Is(err, o.wantErr):
					t.Fatalf("op %d (%s): %v, want %v", i, o.call, err, o.wantErr)
				}
				if err != nil && o.wantErr != errBoom && !strings.HasPrefix(err.Error(), "part: start: ") {
					t.Errorf("op %d (%s): %q does not name the part", i, o.call, err)
				}
			}
			if starts != tt.starts || stops != tt.stops {
				t.Errorf("start ran %d times, stop %d; want %d and %d", starts, stops, tt.starts, tt.stops)
			}
			if got := l.Running(); got != tt.running {
				t.Errorf("Running() = %v, want %v", got, tt.running)
			}
		})
	}
}

// TestStopWaitsForStopUnderWay: a second Stop while the first drains waits
// for it (or for its own context) and runs nothing itself.
func TestStopWaitsForStopUnderWay(t *testing.T) {
	t.Parallel()
	var l Lifecycle
	if err := l.Start("part", func() error { return nil }); err != nil {
		t.Fatal(err)
	}
	entered, release := make(chan struct{}), make(chan struct{})
	var stops int
	first := make(chan error, 1)
	go func() {
		first <- l.Stop(context.Background(), "part", func(context.Context) error {
			stops++
			close(entered)
			<-release
			return nil
		})
	}()
	<-entered

	// A Stop whose context ends first gives up with its context's error.
	impatient, cancel := context.WithCancel(context.Background())
	cancel()
	if err := l.Stop(impatient, "part", nil); !errors.Is(err, context.Canceled) || !strings.HasPrefix(err.Error(), "part: stop: ") {
		t.Errorf("Stop with an ended context while another drains: %v, want part: stop: ... context.Canceled", err)
	}

	second := make(chan error, 1)
	go func() { second <- l.Stop(context.Background(), "part", nil) }()
	select {
	case err := <-second:
		t.Fatalf("second Stop returned (%v) while the first was still stopping", err)
	case err := <-first:
		t.Fatalf("first Stop returned (%v) before its stop did", err)
	default:
	}
	close(release)
	if err := <-first; err != nil {
		t.Errorf("first Stop: %v", err)
	}
	if err := <-second; err != nil {
		t.Errorf("second Stop: %v", err)
	}
	if stops != 1 {
		t.Errorf("stop ran %d times, want 1", stops)
	}
}

// TestStopWaitsForStart: a Stop that comes while Start runs waits for it,
// then stops the part that started.
func TestStopWaitsForStart(t *testing.T) {
	t.Parallel()
	var l Lifecycle
	entered, release := make(chan struct{}), make(chan struct{})
	started := make(chan error, 1)
	go func() {
		started <- l.Start("part", func() error {
			close(entered)
			<-release
			return nil
		})
	}()
	<-entered
	var stopped bool
	stopErr := make(chan error, 1)
	go func() {
		stopErr <- l.Stop(context.Background(), "part", func(context.Context) error {
			stopped = true
			return nil
		})
	}()
	close(release)
	if err := <-started; err != nil {
		t.Fatal(err)
	}
	if err := <-stopErr; err != nil {
		t.Fatal(err)
	}
	if !stopped {
		t.Error("the Stop that waited for Start did not stop the part")
	}
}

// TestConcurrentCalls hammers one Lifecycle from many goroutines (run
// with -race): start and stop each run at most once, stop only after
// start, and never at the same time.
func TestConcurrentCalls(t *testing.T) {
	t.Parallel()
	for range 50 {
		var (
			l             Lifecycle
			mu            sync.Mutex
			starts, stops int
			inside        bool
		)
		enter := func() {
			mu.Lock()
			defer mu.Unlock()
			if inside {
				t.Error("start and stop overlap")
			}
			inside = true
		}
		leave := func() { mu.Lock(); inside = false; mu.Unlock() }
		var wg sync.WaitGroup
		for i := range 16 {
			wg.Go(func() {
				if i%2 == 0 {
					_ = l.Start("part", func() error { enter(); defer leave(); starts++; return nil })
					return
				}
				_ = l.Stop(context.Background(), "part", func(context.Context) error {
					enter()
					defer leave()
					if starts == 0 {
						t.Error("stop ran before start")
					}
					stops++
					return nil
				})
			})
		}
		wg.Wait()
		if starts > 1 || stops > 1 || stops > starts {
			t.Fatalf("start ran %d times, stop %d", starts, stops)
		}
	}
}

func TestStackStopsInReverse(t *testing.T) {
	t.Parallel()
	errA, errC := errors.New("a failed"), errors.New("c failed")
	tests := []struct {
		name     string
		fail     map[string]error
		wantErrs []error
	}{
		{"all stop", nil, nil},
		{"a failure does not stop the rest", map[string]error{"a": errA, "c": errC}, []error{errA, errC}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			var s Stack
			var order []string
			for _, name := range []string{"a", "b", "c"} {
				s.Push(name, func(ctx context.Context) error {
					if ctx.Err() != nil {
						t.Errorf("%s got an ended context", name)
					}
					order = append(order, name)
					return tt.fail[name]
				})
			}
			if s.Len() != 3 {
				t.Fatalf("Len() = %d, want 3", s.Len())
			}
			err := s.Stop(context.Background())
			if want := []string{"c", "b", "a"}; !slices.Equal(order, want) {
				t.Errorf("stopped in order %v, want %v", order, want)
			}
			for _, w := range tt.wantErrs {
				if !errors.Is(err, w) {
					t.Errorf("Stop: %v, want it to wrap %v", err, w)
				}
			}
			if len(tt.wantErrs) == 0 && err != nil {
				t.Errorf("Stop: %v", err)
			}
			if err != nil && (!strings.Contains(err.Error(), "stop a: a failed") || !strings.Contains(err.Error(), "stop c: c failed")) {
				t.Errorf("Stop: %q, want each failure named by its part", err)
			}
			// Emptied: a second Stop stops nothing again.
			if err := s.Stop(context.Background()); err != nil || len(order) != 3 || s.Len() != 0 {
				t.Errorf("second Stop: %v, order %v, Len %d; want nothing stopped twice", err, order, s.Len())
			}
		})
	}
}

// TestStackStopBounded: Stop hands every part its context; a part that
// overruns it reports the context's error and the rest still stop.
func TestStackStopBounded(t *testing.T) {
	t.Parallel()
	var s Stack
	var first bool
	s.Push("first", func(context.Context) error { first = true; return nil })
	s.Push("slow", func(ctx context.Context) error { <-ctx.Done(); return ctx.Err() })
	ctx, cancel := context.WithTimeout(context.Background(), time.Millisecond)
	defer cancel()
	if err := s.Stop(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Stop: %v, want the slow part's deadline", err)
	}
	if !first {
		t.Error("the part started first was not stopped after the slow one")
	}
}

// fakePart records its calls in a shared log.
type fakePart struct {
	name     string
	log      *[]string
	startErr error
}

func (p *fakePart) Start(context.Context) error {
	*p.log = append(*p.log, "start "+p.name)
	return p.startErr
}

func (p *fakePart) Stop(context.Context) error {
	*p.log = append(*p.log, "stop "+p.name)
	return nil
}

// TestStackStart: a part that starts is stopped by the stack, one whose
// Start fails is not (it left nothing running).
func TestStackStart(t *testing.T) {
	t.Parallel()
	errDown := errors.New("redis down")
	var log []string
	var s Stack
	ctx := context.Background()
	if err := s.Start(ctx, "a", &fakePart{name: "a", log: &log}); err != nil {
		t.Fatal(err)
	}
	if err := s.Start(ctx, "b", &fakePart{name: "b", log: &log, startErr: errDown}); !errors.Is(err, errDown) {
		t.Fatalf("Start of a failing part: %v, want its error", err)
	}
	if err := s.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	if want := []string{"start a", "start b", "stop a"}; !slices.Equal(log, want) {
		t.Errorf("calls %v, want %v", log, want)
	}
}
