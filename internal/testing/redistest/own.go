package redistest

import (
	"errors"
	"fmt"
	"github.com/checkd/checkd/internal/testing/ci"
	"os/exec"
	"strconv"
	"sync"
	"syscall"
	"testing"
)

// Own is a redis-server of one test's own, for what would disturb the
// other tests of the shared one: SCRIPT FLUSH (the script cache is
// server-wide), CLIENT PAUSE, a crash and restart, a freeze. It is stopped
// when the test ends.
type Own struct {
	Addr string
	tb   testing.TB
	args []string

	mu  sync.Mutex
	cmd *exec.Cmd
}

// StartOwn starts a redis-server on a free loopback port, skipping (or
// failing, in CI) the test as Start does when there is none. With aof its
// data survives Crash: append-only file, fsync before every reply, so
// whatever a client was answered is on disk.
func StartOwn(tb testing.TB, aof bool) *Own {
	tb.Helper()
	return startOwn(tb, aof)
}

// startOwn is StartOwn with extra redis-server arguments.
func startOwn(tb testing.TB, aof bool, extra ...string) *Own {
	tb.Helper()
	port, err := freePort()
	if err != nil {
		tb.Fatal(err)
	}
	args := []string{"--port", strconv.Itoa(port), "--bind", "127.0.0.1", "--save", "", "--dir", tb.TempDir(),
		"--protected-mode", "yes"}
	if aof {
		args = append(args, "--appendonly", "yes", "--appendfsync", "always")
	} else {
		args = append(args, "--appendonly", "no")
	}
	args = append(args, extra...)
	o := &Own{Addr: fmt.Sprintf("127.0.0.1:%d", port), tb: tb, args: args}
	if err := o.start(); err != nil {
		ci.SkipOrFail(tb, "no real Redis (%v); install it with: apt-get update && apt-get install -y redis-server", err)
	}
	tb.Cleanup(func() {
		o.mu.Lock()
		defer o.mu.Unlock()
		if o.cmd.ProcessState == nil { // not already stopped by Down
			_ = o.cmd.Process.Kill()
			_ = o.cmd.Wait()
		}
	})
	return o
}

// start starts redis-server with o.args and waits until it is ready.
func (o *Own) start() error {
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		return errors.New("redis-server not on PATH")
	}
	cmd, err := launch(bin, readyLine, o.args...)
	if err != nil {
		return fmt.Errorf("redis-server on %s: %w", o.Addr, err)
	}
	o.cmd = cmd
	return nil
}

// Crash kills the server (SIGKILL, no shutdown) and starts it again on the
// same port and directory: clients lose their connections, and the
// server's script cache is empty afterwards. A failed restart fails the
// test.
func (o *Own) Crash() {
	o.mu.Lock()
	defer o.mu.Unlock()
	_ = o.cmd.Process.Kill()
	_ = o.cmd.Wait()
	if err := o.start(); err != nil {
		o.tb.Errorf("restart redis-server: %v", err)
	}
}

// Down kills the server (SIGKILL): clients get "connection refused" until
// Up starts it again on the same port and directory.
func (o *Own) Down() {
	o.mu.Lock()
	defer o.mu.Unlock()
	_ = o.cmd.Process.Kill()
	_ = o.cmd.Wait()
}

// Up starts a server Down stopped. A failed start fails the test.
func (o *Own) Up() {
	o.mu.Lock()
	defer o.mu.Unlock()
	if err := o.start(); err != nil {
		o.tb.Errorf("start redis-server again: %v", err)
	}
}

// Pause freezes the server with SIGSTOP, as a paused VM or a network black
// hole would: connections stay open and accept writes into the kernel's
// buffers, and nothing answers until Resume.
func (o *Own) Pause() { o.signal(syscall.SIGSTOP) }

// Resume thaws a server frozen by Pause (SIGCONT).
func (o *Own) Resume() { o.signal(syscall.SIGCONT) }

func (o *Own) signal(sig syscall.Signal) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if err := o.cmd.Process.Signal(sig); err != nil {
		o.tb.Errorf("signal redis-server %s: %v", sig, err)
	}
}
