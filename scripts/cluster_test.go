// Package scripts_test runs the shell scripts beside it as a user does.
package scripts_test

import (
	"bufio"
	"encoding/json"
	"errors"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/checkd/checkd/internal/testing/ci"
	"github.com/checkd/checkd/internal/testing/poll"
)

// clusterTimeout bounds the whole run: two builds, four processes, a stop.
const clusterTimeout = 5 * time.Minute

// needTool skips a test without a tool locally, and fails it in CI.
func needTool(t *testing.T, name string) {
	t.Helper()
	if _, err := exec.LookPath(name); err != nil {
		ci.SkipOrFail(t, "%s is not installed", name)
	}
}

// freeAddr is a loopback address nothing listens on now, below the
// ephemeral ports (as scripts/net.sh's free_port): the local end of an
// outgoing connection could take one of those before the script binds it.
func freeAddr(t *testing.T) string {
	t.Helper()
	for range 100 {
		addr := "127.0.0.1:" + strconv.Itoa(20000+rand.IntN(12000))
		if ln, err := net.Listen("tcp", addr); err == nil {
			ln.Close()
			return addr
		}
	}
	t.Fatal("no free port in 20000-31999")
	return ""
}

// TestClusterCtrlC runs `make cluster`'s script, waits until it says the
// cluster is ready, checks the API and a worker answer with the key it
// printed, then does what Ctrl-C in a terminal does: one SIGINT to the
// script's process group. The script must stop the checkd processes
// gracefully, each on one signal, and Redis only after them (Redis never
// sees the SIGINT), and exit 0.
func TestClusterCtrlC(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a Redis and three checkd processes")
	}
	for _, tool := range []string{"bash", "redis-server", "setsid", "go"} {
		needTool(t, tool)
	}
	dir := t.TempDir()
	api := freeAddr(t)
	cmd := exec.Command("bash", "cluster.sh")
	env := slices.DeleteFunc(os.Environ(), func(kv string) bool {
		return strings.HasPrefix(kv, "CHECKD_") || strings.HasPrefix(kv, "CLUSTER_")
	})
	cmd.Env = append(env, "CLUSTER_DIR="+dir, "CHECKD_HTTP_ADDR="+api)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true} // a terminal's foreground job
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = cmd.Stdout
	// A terminal starts its foreground job with SIGINT's default action,
	// but a test run from a job without job control may have it ignored,
	// which a child inherits (and bash then cannot trap). A signal the
	// test handles while starting the script is at its default there.
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGINT)
	err = cmd.Start()
	signal.Stop(sig)
	if err != nil {
		t.Fatal(err)
	}
	killed := false
	t.Cleanup(func() {
		if !killed { // the test failed half-way: take everything down
			_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGTERM)
			_ = cmd.Wait()
		}
	})
	lines := make(chan string, 100)
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			lines <- sc.Text()
		}
		close(lines)
	}()
	deadline := time.After(clusterTimeout)
	var got []string
	// until reads the script's output up to a line containing s.
	until := func(s string) {
		t.Helper()
		for {
			select {
			case l, ok := <-lines:
				if !ok {
					t.Fatalf("the script ended before %q:\n%s", s, strings.Join(got, "\n"))
				}
				got = append(got, l)
				if strings.Contains(l, s) {
					return
				}
			case <-deadline:
				t.Fatalf("no %q within %s:\n%s", s, clusterTimeout, strings.Join(got, "\n"))
			}
		}
	}
	until("Ctrl-C stops")
	text := strings.Join(got, "\n")
	key := regexp.MustCompile(`API key: ([0-9a-f]+)`).FindStringSubmatch(text)
	workerMetrics := regexp.MustCompile(`, (http://127\.0\.0\.1:\d+/metrics)`).FindStringSubmatch(text)
	if key == nil || workerMetrics == nil || !strings.Contains(text, "http://"+api+"/v1/") {
		t.Fatalf("the script did not print the API's URL, a worker's metrics and the key:\n%s", text)
	}
	var pids []int
	for _, m := range regexp.MustCompile(`ready \(pid (\d+)\)`).FindAllStringSubmatch(text, -1) {
		pid, _ := strconv.Atoi(m[1])
		pids = append(pids, pid)
	}
	if len(pids) != 3 {
		t.Fatalf("want three checkd processes ready, got %v:\n%s", pids, text)
	}
	// The checker service's company: its connections are checked through
	// it (the demo's tick is 5 s).
	co := regexp.MustCompile(`company (co_\w+): \d+ connections of datasource sandbox-http`).FindStringSubmatch(text)
	if co == nil {
		t.Fatalf("the script did not create the sandbox-http company:\n%s", text)
	}
	poll.WaitFor(t, clusterTimeout/2, "the sandbox-http connections checked through the checker service", func() bool {
		var page struct {
			Connections []struct{ Status string } `json:"connections"`
		}
		req, _ := http.NewRequest(http.MethodGet, "http://"+api+"/v1/connection/company/"+co[1], nil)
		req.Header.Set("X-API-Key", key[1])
		resp, err := (&http.Client{Timeout: 10 * time.Second}).Do(req)
		if err != nil {
			return false
		}
		defer resp.Body.Close()
		if json.NewDecoder(resp.Body).Decode(&page) != nil || len(page.Connections) == 0 {
			return false
		}
		for _, c := range page.Connections {
			if c.Status == "PENDING" {
				return false
			}
		}
		return true
	})
	for _, u := range []string{"http://" + api + "/v1/queues", workerMetrics[1]} {
		req, _ := http.NewRequest(http.MethodGet, u, nil)
		req.SetBasicAuth("admin", key[1])
		if strings.Contains(u, "/v1/") {
			req.Header.Set("X-API-Key", key[1])
		}
		// The key is rate-limited like any other: the poll above may have
		// spent its burst, so a 429 means ask again, as Retry-After says.
		code := 0
		poll.WaitFor(t, clusterTimeout/4, "GET "+u+" answered without 429", func() bool {
			resp, err := (&http.Client{Timeout: 10 * time.Second}).Do(req)
			if err != nil {
				t.Fatal(err)
			}
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			code = resp.StatusCode
			return code != http.StatusTooManyRequests
		})
		if code != http.StatusOK {
			t.Fatalf("GET %s with the printed key: %d", u, code)
		}
	}

	// Ctrl-C: one SIGINT to the foreground process group.
	if err := syscall.Kill(-cmd.Process.Pid, syscall.SIGINT); err != nil {
		t.Fatal(err)
	}
	until("stopped; logs in")
	for range lines { // the rest, so Wait sees the pipe closed
	}
	err = cmd.Wait()
	killed = true
	text = strings.Join(got, "\n")
	if err != nil {
		t.Fatalf("the script exited with %v after Ctrl-C, want 0:\n%s", err, text)
	}
	// The order: every checkd process stopped, then the checker service
	// (the workers' last checks need it), then Redis.
	order := []string{"stopping the checkd processes", "checkd processes stopped", "stopping the checker service", "stopping Redis", "stopped; logs in"}
	at := -1
	for _, s := range order {
		i := strings.Index(text, s)
		if i <= at {
			t.Fatalf("the script's stop is not in the order %q:\n%s", order, text)
		}
		at = i
	}
	for _, pid := range pids {
		if err := syscall.Kill(pid, 0); !errors.Is(err, syscall.ESRCH) {
			t.Errorf("checkd process %d is still there after the script ended (%v)", pid, err)
		}
	}
	for _, name := range []string{"api", "worker1", "worker2"} {
		b, err := os.ReadFile(dir + "/" + name + ".log")
		if err != nil {
			t.Fatal(err)
		}
		log := string(b)
		// One signal, the script's SIGTERM (the terminal's SIGINT never
		// reaches it), and a graceful stop.
		if n := strings.Count(log, "signal received: stopping"); n != 1 || !strings.Contains(log, "terminated signal received") ||
			!strings.Contains(log, `"checkd stopped"`) {
			t.Errorf("%s: want one stop on SIGTERM (\"terminated signal received\") and \"checkd stopped\":\n%s", name, tail(log))
		}
	}
	if b, err := os.ReadFile(dir + "/checkd-sandbox.log"); err != nil || !strings.Contains(string(b), "signal received: stopping") {
		t.Errorf("the checker service must stop on the script's SIGTERM (%v):\n%s", err, tail(string(b)))
	}
	b, err := os.ReadFile(dir + "/redis.log")
	if err != nil {
		t.Fatal(err)
	}
	if redis := string(b); strings.Contains(redis, "SIGINT") || !strings.Contains(redis, "Received SIGTERM") {
		t.Errorf("Redis must stop on the script's SIGTERM, never on the terminal's SIGINT:\n%s", tail(redis))
	}
}

func tail(s string) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	return strings.Join(lines[max(0, len(lines)-10):], "\n")
}
