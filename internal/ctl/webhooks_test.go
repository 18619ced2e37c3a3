package ctl_test

import (
	"bufio"
	"bytes"
	"context"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/checkd/checkd/configs"
	"github.com/checkd/checkd/internal/ctl"
	"github.com/checkd/checkd/internal/daemon"
	"github.com/checkd/checkd/store"
)

// daemonKey is the API key of the test daemons (the daemon wants 16
// characters or more).
const daemonKey = "ctl-test-key-0123456789"

// dcli runs checkctl against a test daemon.
func dcli(t *testing.T, url, stdin string, args ...string) (string, string, int) {
	t.Helper()
	var out, errb bytes.Buffer
	code := ctl.Run(context.Background(), append([]string{"--url", url, "--api-key", daemonKey}, args...), ctl.Env{
		Stdin: strings.NewReader(stdin), Stdout: &out, Stderr: &errb, Getenv: func(string) string { return "" }})
	return out.String(), errb.String(), code
}

// demoDaemon runs every role on an embedded Redis with private webhook
// addresses allowed, as the demo does, and returns its API's URL.
func demoDaemon(t *testing.T) string {
	t.Helper()
	cfg := configs.Default()
	cfg.HTTPAddr = "127.0.0.1:0"
	cfg.APIKeys = []string{daemonKey}
	cfg.Worker.Concurrency = 2
	cfg.Worker.ShutdownTimeout = 5 * time.Second
	cfg.Webhooks.AllowPrivate = true
	cfg.Webhooks.Dispatch.Block = 20 * time.Millisecond
	log := logrus.New()
	log.SetOutput(io.Discard)
	d, err := daemon.New(cfg, log, daemon.Options{Out: io.Discard})
	if err != nil {
		t.Fatal(err)
	}
	if err := d.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		_ = d.Stop(ctx)
	})
	return "http://" + d.API().Addr()
}

// lines reads r line by line into a channel, closed at r's end.
func lines(r io.Reader) <-chan string {
	ch := make(chan string, 100)
	go func() {
		defer close(ch)
		sc := bufio.NewScanner(r)
		for sc.Scan() {
			ch <- sc.Text()
		}
	}()
	return ch
}

// waitLine reads lines until one contains want, failing the test on a line
// NOT VERIFIED, the end of the output, or a deadline.
func waitLine(t *testing.T, ch <-chan string, want string) {
	t.Helper()
	deadline := time.NewTimer(30 * time.Second)
	defer deadline.Stop()
	for {
		select {
		case l, ok := <-ch:
			switch {
			case !ok:
				t.Fatalf("listen's output ended before %q", want)
			case strings.Contains(l, "NOT VERIFIED"):
				t.Fatalf("a message did not verify: %s", l)
			case strings.Contains(l, want):
				return
			}
		case <-deadline.C:
			t.Fatalf("no %q in listen's output after 30s", want)
		}
	}
}

// TestWebhooksListen: checkctl webhooks listen creates an endpoint for its
// receiver, prints each message verified, and deletes the endpoint when it
// stops.
func TestWebhooksListen(t *testing.T) {
	t.Parallel()
	url := demoDaemon(t)
	client, err := ctl.NewClient(url, daemonKey, nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	pr, pw := io.Pipe()
	out := lines(pr)
	ready := make(chan store.WebhookEndpoint, 1)
	done := make(chan error, 1)
	go func() {
		err := ctl.Listen(ctx, client, ctl.ListenOptions{Addr: "127.0.0.1:0", Ready: func(e store.WebhookEndpoint) { ready <- e }}, pw, io.Discard)
		pw.Close()
		done <- err
	}()
	var ep store.WebhookEndpoint
	select {
	case ep = <-ready:
	case err := <-done:
		t.Fatalf("listen: %v", err)
	}
	if list, _, code := dcli(t, url, "", "webhooks", "list"); code != 0 || !strings.Contains(list, ep.ID) {
		t.Fatalf("webhooks list: %d %s", code, list)
	}
	co, _, _ := dcli(t, url, "", "--output", "json", "company", "create", "Acme")
	coID := jsonField(t, co, "id")
	if _, stderr, code := dcli(t, url, "pw\n", "connection", "create", coID, "--datasource", "sandbox", "--username", "user_good", "--password-stdin"); code != 0 {
		t.Fatalf("connection create: %s", stderr)
	}
	waitLine(t, out, "verified  connection.created.v2")
	if _, _, code := dcli(t, url, "", "webhooks", "test", ep.ID, "--type", "connection.validated.v2"); code != 0 {
		t.Fatal("webhooks test failed")
	}
	waitLine(t, out, "verified  connection.validated.v2  cn_0123456789abcdef")
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("listen: %v", err)
	}
	if list, _, _ := dcli(t, url, "", "webhooks", "list"); strings.Contains(list, ep.ID) {
		t.Fatalf("the endpoint outlived listen:\n%s", list)
	}
}

func jsonField(t *testing.T, raw, key string) string {
	t.Helper()
	i := strings.Index(raw, `"`+key+`": "`)
	if i < 0 {
		t.Fatalf("no %s in %s", key, raw)
	}
	rest := raw[i+len(key)+5:]
	return rest[:strings.IndexByte(rest, '"')]
}

// TestWebhooksCommands runs the endpoint and message commands against a
// real daemon.
func TestWebhooksCommands(t *testing.T) {
	t.Parallel()
	url := demoDaemon(t)
	run := func(want int, args ...string) string {
		t.Helper()
		out, errOut, code := dcli(t, url, "", args...)
		if code != want {
			t.Fatalf("checkctl %v: exit %d, want %d\n%s%s", args, code, want, out, errOut)
		}
		return out + errOut
	}
	created := run(0, "--output", "json", "webhooks", "create", "http://127.0.0.1:1/hook", "--type", "connection.updated.v2", "--description", "billing")
	id, secret := jsonField(t, created, "id"), jsonField(t, created, "secret")
	if !strings.HasPrefix(secret, "whsec_") {
		t.Fatalf("create: %s", created)
	}
	if out := run(0, "webhooks", "show", id); !strings.Contains(out, "connection.updated.v2") || !strings.Contains(out, "billing") {
		t.Fatalf("show: %s", out)
	}
	if out := run(0, "webhooks", "secret", id); strings.TrimSpace(out) != secret {
		t.Fatalf("secret: %q, want %q", out, secret)
	}
	if out := run(0, "webhooks", "secret", id, "--rotate"); strings.Contains(out, secret) || !strings.Contains(out, "previous secret signs too") {
		t.Fatalf("rotate: %s", out)
	}
	if out := run(0, "webhooks", "set", id, "--types", ""); !strings.Contains(out, "all") {
		t.Fatalf("set: %s", out)
	}
	if out := run(0, "webhooks", "disable", id); !strings.Contains(out, "no: disabled by an operator") {
		t.Fatalf("disable: %s", out)
	}
	run(4, "webhooks", "test", id)
	run(4, "webhooks", "recover", id, "--since", "1h")
	run(0, "webhooks", "enable", id)
	if out := run(0, "webhooks", "recover", id, "--since", "1h"); !strings.Contains(out, "recovering") {
		t.Fatalf("recover: %s", out)
	}
	run(2, "webhooks", "recover", id, "--since", "yesterday")
	run(2, "webhooks", "set", id)
	out := run(0, "webhooks", "event-types")
	for _, typ := range store.EventTypes {
		if !strings.Contains(out, "\n"+typ+" ") {
			t.Fatalf("event-types lacks %s: %s", typ, out)
		}
	}
	run(0, "webhooks", "messages")
	run(0, "webhooks", "attempts", id)
	run(3, "webhooks", "message", "msg_nope")
	run(3, "webhooks", "show", "ep_0000000000000000")
	run(0, "webhooks", "delete", id)
	run(3, "webhooks", "delete", id)
}
