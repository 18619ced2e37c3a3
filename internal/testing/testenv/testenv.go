// Package testenv is the scaffolding the tests of the parts built on the
// store share (scheduler, worker, api, ...): a store with checkd's default
// settings (configs/checkd.yaml) and a throwaway credential key, over a
// Redis of the test's own, with a fake clock; companies and connections
// made for the test, or the test fails; an enqueuer that records
// (Enqueuer). Each package keeps only what is its own (a worker, an HTTP
// server).
//
// The store's own tests cannot use it (it imports store); they have their
// fixture.
package testenv

import (
	"context"
	"fmt"
	"io"
	"sync"
	"testing"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/redis/go-redis/v9"
	"github.com/sirupsen/logrus"

	"github.com/checkd/checkd/checks"
	"github.com/checkd/checkd/checks/sandbox"
	"github.com/checkd/checkd/configs"
	"github.com/checkd/checkd/internal/clock"
	"github.com/checkd/checkd/internal/testing/storetest"
	"github.com/checkd/checkd/store"
)

// T0 is when an Env's fake clock starts unless Options.Start says
// otherwise: a Monday morning.
var T0 = time.Date(2026, 3, 2, 9, 0, 0, 0, time.UTC)

// Env is a store over a Redis of its own, with a fake clock.
type Env struct {
	Redis *redis.Client
	// Mini is the miniredis under Redis; nil when Options.Redis was given
	// (the real redis-server: redistest).
	Mini  *miniredis.Miniredis
	Store *store.Store
	Clock *clock.Fake
}

// Options adjust an Env; the zero value is a store with checkd's defaults
// on a fresh miniredis, its clock at T0.
type Options struct {
	// Redis is the client the store uses (the test owns it); nil: a fresh
	// miniredis, closed when the test ends.
	Redis *redis.Client
	// MiniOptions change the fresh miniredis's client options (pool size,
	// retries); unused with Redis.
	MiniOptions func(*redis.Options)
	// Start is when the fake clock starts; zero: T0.
	Start time.Time
	// Store changes the store's settings: checkd's defaults with a
	// throwaway key and the fake clock.
	Store func(*store.Config)
}

// New returns an Env. Any failure fails the test.
func New(tb testing.TB, o Options) *Env {
	tb.Helper()
	e := &Env{Redis: o.Redis, Clock: clock.NewFake(T0)}
	if !o.Start.IsZero() {
		e.Clock.Set(o.Start)
	}
	if e.Redis == nil {
		e.Mini = miniredis.RunT(tb)
		opt := &redis.Options{Addr: e.Mini.Addr()}
		if o.MiniOptions != nil {
			o.MiniOptions(opt)
		}
		e.Redis = redis.NewClient(opt)
		tb.Cleanup(func() { _ = e.Redis.Close() })
	}
	e.Store = storetest.New(tb, e.Redis, func(c *store.Config) {
		c.Clock = e.Clock
		if o.Store != nil {
			o.Store(c)
		}
	})
	return e
}

// Company creates an active company.
func (e *Env) Company(tb testing.TB, name string) store.Company {
	tb.Helper()
	co, err := e.Store.CreateCompany(context.Background(), store.NewCompany{Name: name})
	if err != nil {
		tb.Fatalf("create company %q: %v", name, err)
	}
	return co
}

// Connection creates a connection (PENDING, due at once).
func (e *Env) Connection(tb testing.TB, nc store.NewConnection) store.Connection {
	tb.Helper()
	cn, err := e.Store.CreateConnection(context.Background(), nc)
	if err != nil {
		tb.Fatalf("create connection %s of %s: %v", nc.Credentials.Username, nc.CompanyID, err)
	}
	return cn
}

// Connections creates n sandbox connections of company companyID, users
// user_0 to user_<n-1> (the sandbox checks them CONNECTED), eight at a
// time.
func (e *Env) Connections(tb testing.TB, companyID string, n int) []store.Connection {
	tb.Helper()
	out := make([]store.Connection, n)
	errs := make(chan error, n)
	var wg sync.WaitGroup
	const par = 8
	for w := range par {
		wg.Go(func() {
			for i := w; i < n; i += par {
				cn, err := e.Store.CreateConnection(context.Background(), store.NewConnection{CompanyID: companyID,
					Datasource:  sandbox.Datasource,
					Credentials: checks.Credentials{Username: fmt.Sprintf("user_%d", i), Password: "secret"}})
				if err != nil {
					errs <- err
					return
				}
				out[i] = cn
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		tb.Fatalf("create connections: %v", err)
	}
	return out
}

// Get reads a connection.
func (e *Env) Get(tb testing.TB, id string) store.Connection {
	tb.Helper()
	cn, err := e.Store.GetConnection(context.Background(), id)
	if err != nil {
		tb.Fatalf("get connection %s: %v", id, err)
	}
	return cn
}

// QuietLogger is a logger that discards everything: for tests that assert
// on results, not on log lines.
func QuietLogger() *logrus.Logger {
	l := logrus.New()
	l.SetOutput(io.Discard)
	return l
}

// DemoConfig is the configuration of make run: the embedded defaults under
// the embedded configs/demo.yaml.
func DemoConfig(tb testing.TB) configs.Config {
	tb.Helper()
	b, err := configs.EmbeddedFile(configs.DemoFile)
	if err != nil {
		tb.Fatal(err)
	}
	cfg, err := configs.Parse(b)
	if err != nil {
		tb.Fatalf("the demo's configuration: %v", err)
	}
	return cfg
}
