package daemon_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/checkd/checkd/api"
	"github.com/checkd/checkd/configs"
	"github.com/checkd/checkd/internal/daemon"
	"github.com/checkd/checkd/internal/testing/openapitest"
	"github.com/checkd/checkd/internal/testing/redistest"
)

func TestMain(m *testing.M) { redistest.Main(m) }

const (
	testAPIKey = "test-key-0123456789abcdef"
	testEncKey = "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f"
)

// quietLogger discards logs unless the test runs verbose.
func quietLogger(t testing.TB) *logrus.Logger {
	l := logrus.New()
	l.SetOutput(io.Discard)
	if testing.Verbose() {
		l.SetOutput(testWriter{t})
		l.SetLevel(logrus.DebugLevel)
	}
	return l
}

type testWriter struct{ t testing.TB }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimSpace(string(p)))
	return len(p), nil
}

// syncBuffer is a bytes.Buffer safe to read while the daemon writes it.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// baseConfig is the embedded defaults on a free port, quick to stop.
func baseConfig() configs.Config {
	c := configs.Default()
	c.HTTPAddr = "127.0.0.1:0"
	c.Worker.Concurrency = 4
	c.Worker.ShutdownTimeout = 5 * time.Second
	c.Scheduler.EnqueueConcurrency = 4
	// The tests poll the API in tight loops; the per-key limit is the
	// api package's TestRateLimit's, and TestRateLimitConfigured's here.
	c.APIRateLimit.PerSecond = 0
	return c
}

func stopCtx(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func TestNewRefuses(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		modify func(*configs.Config)
		want   string
	}{
		{"external redis without encryption key", func(c *configs.Config) {
			c.RedisURL, c.APIKeys = "redis://127.0.0.1:1/0", []string{testAPIKey}
		}, "CHECKD_ENCRYPTION_KEY is required with an external Redis"},
		{"external redis api without keys", func(c *configs.Config) {
			c.RedisURL, c.EncryptionKey = "redis://127.0.0.1:1/0", testEncKey
		}, "needs at least one API key"},
		{"invalid config", func(c *configs.Config) { c.Roles = []string{"web"} }, `unknown role "web"`},
		{"every refusal at once", func(c *configs.Config) {
			c.RedisURL, c.Tick = "redis://127.0.0.1:1/0", "soon"
		}, "CHECKD_ENCRYPTION_KEY is required with an external Redis|needs at least one API key|is not a cron spec"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			c := baseConfig()
			tt.modify(&c)
			_, err := daemon.New(c, quietLogger(t), daemon.Options{})
			for _, want := range strings.Split(tt.want, "|") {
				if err == nil || !strings.Contains(err.Error(), want) {
					t.Errorf("New: got %v, want an error containing %q", err, want)
				}
			}
		})
	}
	// Without the api role, an external Redis needs no API key.
	c := baseConfig()
	c.RedisURL, c.EncryptionKey, c.Roles = "redis://127.0.0.1:1/0", testEncKey, []string{configs.RoleWorker}
	if _, err := daemon.New(c, nil, daemon.Options{}); err != nil {
		t.Errorf("worker-only daemon on external Redis: %v", err)
	}
}

// TestStopTimeout: a graceful stop gives in-flight checks the worker's
// shutdown timeout, and more.
func TestStopTimeout(t *testing.T) {
	t.Parallel()
	short, long := baseConfig(), baseConfig()
	long.Worker.ShutdownTimeout = short.Worker.ShutdownTimeout + time.Minute
	ds, err := daemon.New(short, quietLogger(t), daemon.Options{})
	if err != nil {
		t.Fatal(err)
	}
	dl, err := daemon.New(long, quietLogger(t), daemon.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if got := ds.StopTimeout(); got <= short.Worker.ShutdownTimeout {
		t.Errorf("StopTimeout() = %s, want more than worker.shutdownTimeout %s", got, short.Worker.ShutdownTimeout)
	}
	if d := dl.StopTimeout() - ds.StopTimeout(); d != time.Minute {
		t.Errorf("a shutdown timeout a minute longer made StopTimeout %s longer, want a minute", d)
	}
}

func TestStopBeforeStartAndTwice(t *testing.T) {
	t.Parallel()
	d, err := daemon.New(baseConfig(), quietLogger(t), daemon.Options{})
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 2; i++ {
		if err := d.Stop(stopCtx(t)); err != nil {
			t.Errorf("Stop %d before Start: %v", i+1, err)
		}
	}
	if d.Store() != nil || d.API() != nil || d.Scheduler() != nil || d.Worker() != nil {
		t.Error("parts exist before Start")
	}
	if err := d.Start(context.Background()); err == nil {
		t.Error("Start after Stop succeeded; want an error")
	}
}

var keyLine = regexp.MustCompile(`(?m)^\s+([0-9a-f]{32})\s*$`)

func TestStartStopEmbeddedAllRoles(t *testing.T) {
	t.Parallel()
	cfg := baseConfig()
	cfg.Demo = configs.Demo{Enabled: true, Companies: []configs.DemoCompany{
		{Name: "Acme", Connections: map[string]int{"user_good": 3, "error_WEBSITE_DOWN": 1}},
	}}
	var out syncBuffer
	logs := &syncBuffer{}
	log := logrus.New()
	log.SetOutput(logs)
	d, err := daemon.New(cfg, log, daemon.Options{Out: &out})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if err := d.Start(ctx); err != nil {
		t.Fatalf("Start: %v", err)
	}
	t.Cleanup(func() { _ = d.Stop(stopCtx(t)) })
	if err := d.Start(ctx); err == nil {
		t.Error("second Start succeeded; want an error")
	}
	if d.Store() == nil || d.Scheduler() == nil || d.Worker() == nil || d.API() == nil {
		t.Fatal("a role is missing after Start")
	}
	if sum := d.Demo(); sum.Companies != 1 || sum.Connections != 4 {
		t.Errorf("demo summary %+v, want 1 company and 4 connections", sum)
	}

	base := "http://" + d.API().Addr()
	resp, err := openapitest.Client(t).Get(base + "/healthz")
	if err != nil {
		t.Fatalf("GET /healthz: %v", err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Errorf("GET /healthz: %d", resp.StatusCode)
	}

	// The generated key was printed once, on Out, never in the log.
	m := keyLine.FindStringSubmatch(out.String())
	if m == nil {
		t.Fatalf("no generated API key on Out:\n%s", out.String())
	}
	key := m[1]
	if strings.Contains(logs.String(), key) {
		t.Error("the generated API key reached the log")
	}
	if !strings.Contains(logs.String(), "EMBEDDED IN-MEMORY Redis") || !strings.Contains(logs.String(), "throwaway key") {
		t.Errorf("missing the embedded-Redis and throwaway-key warnings in:\n%s", logs.String())
	}
	var list api.CompanyList
	if code := getJSON(t, base+"/v1/company", key, &list); code != http.StatusOK || len(list.Companies) != 1 || list.Companies[0].Name != "Acme" {
		t.Errorf("GET /v1/company with the generated key: %d %+v", code, list)
	}
	if code := getJSON(t, base+"/v1/company", "wrong-key-wrong-key", nil); code != http.StatusUnauthorized {
		t.Errorf("GET /v1/company with a wrong key: %d, want 401", code)
	}

	for i := 0; i < 2; i++ {
		if err := d.Stop(stopCtx(t)); err != nil {
			t.Fatalf("Stop %d: %v", i+1, err)
		}
	}
	if _, err := http.Get(base + "/healthz"); err == nil {
		t.Error("API still answers after Stop")
	}
}

func TestRolesSubset(t *testing.T) {
	t.Parallel()
	cfg := baseConfig()
	cfg.Roles = []string{configs.RoleWorker}
	d, err := daemon.New(cfg, quietLogger(t), daemon.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if err := d.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	defer d.Stop(stopCtx(t))
	if d.Worker() == nil || d.Scheduler() != nil || d.API() != nil {
		t.Errorf("worker-only daemon: worker %v scheduler %v api %v", d.Worker() != nil, d.Scheduler() != nil, d.API() != nil)
	}
}

func TestStartFailures(t *testing.T) {
	t.Parallel()
	taken, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { taken.Close() })
	closed, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closedAddr := closed.Addr().String()
	closed.Close()

	tests := []struct {
		name   string
		modify func(*configs.Config)
		want   string
		hidden string // must not appear in the error
	}{
		{"port taken", func(c *configs.Config) { c.HTTPAddr = taken.Addr().String() }, "CHECKD_HTTP_ADDR", ""},
		{"redis unreachable", func(c *configs.Config) {
			c.RedisURL, c.EncryptionKey, c.APIKeys = "redis://:sup3rsecret@"+closedAddr+"/0", testEncKey, []string{testAPIKey}
		}, "cannot reach Redis at " + closedAddr, "sup3rsecret"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			c := baseConfig()
			tt.modify(&c)
			d, err := daemon.New(c, quietLogger(t), daemon.Options{Out: io.Discard})
			if err != nil {
				t.Fatal(err)
			}
			err = d.Start(context.Background())
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("Start: got %v, want an error containing %q", err, tt.want)
			}
			if tt.hidden != "" && strings.Contains(err.Error(), tt.hidden) {
				t.Errorf("error leaks a secret: %v", err)
			}
			// The failed start cleaned up: Redis is closed, Stop is a no-op.
			if st := d.Store(); st != nil {
				if err := st.Redis().Ping(context.Background()).Err(); err == nil {
					t.Error("Redis client still open after a failed Start")
				}
			}
			if err := d.Stop(stopCtx(t)); err != nil {
				t.Errorf("Stop after a failed Start: %v", err)
			}
		})
	}
}

func TestNewLogger(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		cfg     configs.Log
		json    bool
		level   logrus.Level
		wantErr bool
	}{
		{"auto on a buffer is json", configs.Log{Level: "info", Format: "auto"}, true, logrus.InfoLevel, false},
		{"text", configs.Log{Level: "debug", Format: "text"}, false, logrus.DebugLevel, false},
		{"json", configs.Log{Level: "warn", Format: "json"}, true, logrus.WarnLevel, false},
		{"bad level", configs.Log{Level: "loud", Format: "json"}, false, 0, true},
		{"bad format", configs.Log{Level: "info", Format: "xml"}, false, 0, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			var buf bytes.Buffer
			l, err := daemon.NewLogger(tt.cfg, &buf)
			if tt.wantErr {
				if err == nil {
					t.Error("want an error")
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if l.GetLevel() != tt.level {
				t.Errorf("level %s, want %s", l.GetLevel(), tt.level)
			}
			l.Error("hello")
			isJSON := json.Valid(bytes.TrimSpace(buf.Bytes()))
			if isJSON != tt.json {
				t.Errorf("json output %v, want %v: %s", isJSON, tt.json, buf.String())
			}
		})
	}
}

// getJSON GETs url with the API key and decodes a 2xx body into v.
func getJSON(t testing.TB, url, key string, v any) int {
	t.Helper()
	return doJSON(t, http.MethodGet, url, key, nil, v)
}

func doJSON(t testing.TB, method, url, key string, body, v any) int {
	t.Helper()
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			t.Fatal(err)
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequest(method, url, rd)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set(api.HeaderAPIKey, key)
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := openapitest.Client(t).Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode/100 == 2 && v != nil {
		if err := json.Unmarshal(b, v); err != nil {
			t.Fatalf("%s %s: decode %s: %v", method, url, b, err)
		}
	} else if resp.StatusCode/100 != 2 && testing.Verbose() {
		t.Logf("%s %s: %d %s", method, url, resp.StatusCode, b)
	}
	return resp.StatusCode
}

func Example() {
	cfg := configs.Default() // production defaults; no Redis URL: embedded
	cfg.HTTPAddr = "127.0.0.1:0"
	cfg.APIKeys = []string{"example-key-0123456789"}
	log := logrus.New()
	log.SetOutput(io.Discard)

	d, err := daemon.New(cfg, log, daemon.Options{})
	if err != nil {
		fmt.Println(err)
		return
	}
	if err := d.Start(context.Background()); err != nil {
		fmt.Println(err)
		return
	}
	resp, err := http.Get("http://" + d.API().Addr() + "/healthz")
	if err == nil {
		fmt.Println("healthz:", resp.Status)
		resp.Body.Close()
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := d.Stop(ctx); err != nil && !errors.Is(err, context.DeadlineExceeded) {
		fmt.Println(err)
	}
	// Output: healthz: 200 OK
}
