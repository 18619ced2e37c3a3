// Package redistest starts a throwaway redis-server on a free loopback port
// for tests that need a real Redis. Outside CI a missing redis-server skips
// the test with an install hint; in CI (CI set) it fails the test loudly.
package redistest

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/checkd/checkd/internal/testing/ci"
	"github.com/redis/go-redis/v9"
)

// Server is a running redis-server.
type Server struct {
	Addr string
	cmd  *exec.Cmd
}

var (
	shared     *Server
	sharedErr  error
	sharedOnce sync.Once
)

// Databases is how many logical databases the server has; each test takes
// its own with Client, so tests run in parallel without sharing keys.
const Databases = 1024

// EnvAddr names the variable that points tests at a running redis-server
// (started with --databases 1024, as scripts/test.sh does) instead of
// starting one per test binary.
const EnvAddr = "CHECKD_TEST_REDIS_ADDR"

// Start returns the real Redis of this test binary: the one EnvAddr names,
// or a redis-server it starts once. One it started is stopped by
// StopShared, normally from TestMain.
func Start(tb testing.TB) *Server {
	tb.Helper()
	sharedOnce.Do(func() {
		if addr := os.Getenv(EnvAddr); addr != "" {
			shared = &Server{Addr: addr}
			c := redis.NewClient(&redis.Options{Addr: addr})
			defer c.Close()
			if err := c.Ping(context.Background()).Err(); err != nil {
				shared, sharedErr = nil, fmt.Errorf("%s=%s: %w", EnvAddr, addr, err)
			}
			return
		}
		shared, sharedErr = start()
	})
	if sharedErr != nil {
		ci.SkipOrFail(tb, "no real Redis (%v); install it with: apt-get update && apt-get install -y redis-server", sharedErr)
	}
	return shared
}

// StopShared stops the server Start started, if any.
func StopShared() {
	if shared != nil && shared.cmd != nil && shared.cmd.Process != nil {
		_ = shared.cmd.Process.Kill()
		_ = shared.cmd.Wait()
	}
}

// Client returns a client on a database of its own, flushed, closed when the
// test ends. Databases are handed out by a counter in database 0, so test
// binaries of several packages sharing one server never share a database.
func (s *Server) Client(tb testing.TB) *redis.Client {
	tb.Helper()
	admin := redis.NewClient(&redis.Options{Addr: s.Addr})
	n, err := admin.Incr(context.Background(), "redistest:next-db").Result()
	admin.Close()
	if err != nil {
		tb.Fatalf("allocate a redis database: %v", err)
	}
	db := 1 + int((n-1)%(Databases-1)) // database 0 holds the counter
	c := redis.NewClient(&redis.Options{Addr: s.Addr, DB: db, PoolSize: 64})
	if err := c.FlushDB(context.Background()).Err(); err != nil {
		tb.Fatalf("flush redis db %d: %v", db, err)
	}
	tb.Cleanup(func() { _ = c.Close() })
	return c
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

func start() (*Server, error) {
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		return nil, fmt.Errorf("redis-server not on PATH")
	}
	port, err := freePort()
	if err != nil {
		return nil, fmt.Errorf("find a free port: %w", err)
	}
	dir, err := os.MkdirTemp("", "redistest")
	if err != nil {
		return nil, err
	}
	cmd, err := launch(bin, readyLine, "--port", fmt.Sprint(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
		"--databases", fmt.Sprint(Databases), "--dir", dir, "--protected-mode", "yes")
	if err != nil {
		return nil, fmt.Errorf("redis-server on port %d: %w", port, err)
	}
	return &Server{Addr: fmt.Sprintf("127.0.0.1:%d", port), cmd: cmd}, nil
}

// readyLine is what redis-server logs once it accepts connections.
const readyLine = "Ready to accept connections"

// launch starts redis-server bin with args and waits until it logs a line
// containing ready.
func launch(bin, ready string, args ...string) (*exec.Cmd, error) {
	cmd := exec.Command(bin, args...)
	out, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start redis-server: %w", err)
	}
	up := make(chan struct{})
	go func() {
		sc := bufio.NewScanner(out)
		once := sync.Once{}
		for sc.Scan() {
			if strings.Contains(sc.Text(), ready) {
				once.Do(func() { close(up) })
			}
		}
	}()
	select {
	case <-up:
	case <-time.After(10 * time.Second):
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		return nil, fmt.Errorf("no %q after 10s", ready)
	}
	return cmd, nil
}

// Main runs a package's tests and then stops the server Start may have
// started: call it from TestMain.
func Main(m *testing.M) {
	code := m.Run()
	StopShared()
	os.Exit(code)
}
