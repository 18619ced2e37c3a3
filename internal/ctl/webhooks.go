package ctl

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	standardwebhooks "github.com/standard-webhooks/standard-webhooks/libraries/go"

	"github.com/checkd/checkd/api"
	"github.com/checkd/checkd/store"
	"github.com/checkd/checkd/webhook"
)

// webhookCommands are the "webhooks" commands (docs/webhooks.md).
var webhookCommands = []*command{
	{name: "webhooks list", summary: "list webhook endpoints", maxArgs: 0, run: webhooksList},
	{name: "webhooks create", args: "<url>", flagSyn: "[--description D] [--type T]... [--company C]... [--disabled]",
		summary: "create a webhook endpoint and print its signing secret", minArgs: 1, maxArgs: 1,
		detail: "Without --type it receives every event type, without --company every company's connections.\n" +
			"The URL must be https and public unless the service allows private addresses\n" +
			"(CHECKD_WEBHOOK_ALLOW_PRIVATE, the demo's default).",
		flags: endpointCreateFlags, run: webhooksCreate},
	{name: "webhooks show", args: "<endpointId>", summary: "show a webhook endpoint", minArgs: 1, maxArgs: 1, run: webhooksShow},
	{name: "webhooks set", args: "<endpointId>", flagSyn: "[--endpoint-url U] [--description D] [--types T,...] [--companies C,...]",
		summary: "change a webhook endpoint", minArgs: 1, maxArgs: 1,
		detail: "Give at least one flag. --types \"\" or --companies \"\" subscribe to all.",
		flags:  endpointSetFlags, run: webhooksSet},
	{name: "webhooks enable", args: "<endpointId>", summary: "enable a webhook endpoint (then recover what it missed)", minArgs: 1, maxArgs: 1,
		run: webhooksEnable(true)},
	{name: "webhooks disable", args: "<endpointId>", summary: "disable a webhook endpoint: it receives nothing; messages are kept", minArgs: 1, maxArgs: 1,
		run: webhooksEnable(false)},
	{name: "webhooks delete", args: "<endpointId>", summary: "delete a webhook endpoint and its attempt log", minArgs: 1, maxArgs: 1, run: webhooksDelete},
	{name: "webhooks secret", args: "<endpointId>", flagSyn: "[--rotate]", summary: "print an endpoint's signing secret, or rotate it",
		minArgs: 1, maxArgs: 1,
		detail: "After --rotate the old secret signs too (a second signature) for webhooks.rotationGrace.",
		flags:  secretFlags, run: webhooksSecret},
	{name: "webhooks test", args: "<endpointId>", flagSyn: "[--type T]", summary: "send a signed example message to an endpoint now",
		minArgs: 1, maxArgs: 1, flags: testFlags, run: webhooksTest},
	{name: "webhooks recover", args: "<endpointId>", flagSyn: "--since TIME [--until TIME]",
		summary: "send again the messages of a window that an endpoint did not get", minArgs: 1, maxArgs: 1,
		detail: "TIME is RFC 3339 (2026-03-02T09:00:00Z) or a duration ago (24h). One attempt each, in the\n" +
			"background: failed messages, and those dispatched while the endpoint was disabled.",
		flags: recoverFlags, run: webhooksRecover},
	{name: "webhooks attempts", args: "<endpointId>|<msgId>", flagSyn: "[--limit N]",
		summary: "list the delivery attempts of an endpoint (newest first) or of a message", minArgs: 1, maxArgs: 1,
		flags: limitFlags(store.MaxWebhookPage), run: webhooksAttempts},
	{name: "webhooks messages", flagSyn: "[--type T] [--connection C] [--limit N]", summary: "list webhook messages, newest first",
		maxArgs: 0, flags: messagesFlags, run: webhooksMessages},
	{name: "webhooks message", args: "<msgId>", summary: "show a webhook message: its payload and deliveries", minArgs: 1, maxArgs: 1,
		run: webhooksMessage},
	{name: "webhooks resend", args: "<msgId> <endpointId>", summary: "deliver a message to an endpoint once more, now", minArgs: 2, maxArgs: 2,
		run: webhooksResend},
	{name: "webhooks event-types", summary: "list the webhook event types", maxArgs: 0, run: webhooksEventTypes},
	{name: "webhooks listen", flagSyn: "[--addr HOST:PORT] [--type T]... [--json] [--keep]",
		summary: "receive webhooks locally: create an endpoint here and print each verified message", maxArgs: 0,
		detail: "Starts an HTTP receiver on --addr (default " + DefaultListenAddr + "), creates an endpoint for it\n" +
			"(the service must allow private addresses: the demo does), and prints every message,\n" +
			"verified with the Standard Webhooks reference library, until Ctrl-C; then deletes the\n" +
			"endpoint unless --keep. --json prints each body.",
		flags: listenFlags, run: webhooksListen},
}

// DefaultListenAddr is where checkctl webhooks listen receives by default.
const DefaultListenAddr = "127.0.0.1:18095"

func endpointPath(id string) string { return "/v1/webhooks/endpoints/" + seg(id) }

// strList is a repeatable string flag.
type strList []string

func (l *strList) String() string     { return strings.Join(*l, ",") }
func (l *strList) Set(v string) error { *l = append(*l, v); return nil }

// splitFlag splits a comma-separated flag value ("" is an empty list).
func splitFlag(v string) []string {
	out := []string{}
	for _, p := range strings.Split(v, ",") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}

func endpointHeader(t *tw) { t.row("ID", "URL", "TYPES", "COMPANIES", "ENABLED", "FAILING SINCE") }

func endpointRow(t *tw, e store.WebhookEndpoint) {
	types, cos := "all", "all"
	if len(e.FilterTypes) > 0 {
		types = strings.Join(e.FilterTypes, ",")
	}
	if len(e.CompanyIDs) > 0 {
		cos = strings.Join(e.CompanyIDs, ",")
	}
	enabled := "yes"
	if e.Disabled {
		enabled = "no: " + e.DisabledReason
	}
	failing := "-"
	if e.FailingSince != nil {
		failing = e.FailingSince.Format(time.RFC3339)
	}
	t.row(e.ID, e.URL, types, cos, enabled, failing)
}

func webhooksList(c *call) error {
	q := url.Values{"limit": {strconv.Itoa(store.MaxWebhookEndpoints)}} // every endpoint fits one page
	raw, _, err := c.send(http.MethodGet, "/v1/webhooks/endpoints", q, nil)
	if err != nil {
		return err
	}
	var out store.WebhookEndpointPage
	return c.emit(raw, &out, func(t *tw) {
		endpointHeader(t)
		for _, e := range out.Endpoints {
			endpointRow(t, e)
		}
	})
}

type endpointOpts struct {
	url, description, types, companies string
	typeList, companyList              strList
	disabled                           bool
}

func endpointCreateFlags(fs *flag.FlagSet) (any, func() error) {
	o := &endpointOpts{}
	fs.StringVar(&o.description, "description", "", "what the endpoint is for")
	fs.Var(&o.typeList, "type", "receive only this event `type` (repeatable)")
	fs.Var(&o.companyList, "company", "receive only this `companyId`'s connections (repeatable)")
	fs.BoolVar(&o.disabled, "disabled", false, "create it disabled")
	return o, nil
}

func webhooksCreate(c *call) error {
	o := c.opts.(*endpointOpts)
	body := map[string]any{"url": c.args[0], "filterTypes": []string(o.typeList), "companyIds": []string(o.companyList), "disabled": o.disabled}
	if o.typeList == nil {
		body["filterTypes"] = []string{}
	}
	if o.companyList == nil {
		body["companyIds"] = []string{}
	}
	if o.description != "" {
		body["description"] = o.description
	}
	raw, _, err := c.send(http.MethodPost, "/v1/webhooks/endpoints", nil, body)
	if err != nil {
		return err
	}
	var e api.WebhookEndpointCreated
	return c.emit(raw, &e, func(t *tw) {
		endpointHeader(t)
		endpointRow(t, e.WebhookEndpoint)
		t.line("\nsigning secret (keep it; checkctl webhooks secret %s prints it again): %s", e.ID, e.Secret)
	})
}

func webhooksShow(c *call) error {
	raw, _, err := c.send(http.MethodGet, endpointPath(c.args[0]), nil, nil)
	if err != nil {
		return err
	}
	return c.showEndpoint(raw)
}

func (c *call) showEndpoint(raw []byte) error {
	var e store.WebhookEndpoint
	return c.emit(raw, &e, func(t *tw) {
		endpointHeader(t)
		endpointRow(t, e)
		if e.Description != "" {
			t.line("\ndescription: %s", e.Description)
		}
	})
}

func endpointSetFlags(fs *flag.FlagSet) (any, func() error) {
	o := &endpointOpts{}
	fs.StringVar(&o.url, "endpoint-url", "", "the endpoint's new `URL`")
	fs.StringVar(&o.description, "description", "", "what the endpoint is for")
	fs.StringVar(&o.types, "types", "", "receive only these event `types` (comma-separated; \"\": all)")
	fs.StringVar(&o.companies, "companies", "", "receive only these `companyIds`' connections (comma-separated; \"\": all)")
	return o, func() error {
		if !isSet(fs, "endpoint-url") && !isSet(fs, "description") && !isSet(fs, "types") && !isSet(fs, "companies") {
			return usagef("give at least one of --endpoint-url, --description, --types, --companies")
		}
		return nil
	}
}

func webhooksSet(c *call) error {
	o := c.opts.(*endpointOpts)
	body := map[string]any{}
	if isSet(c.fs, "endpoint-url") {
		body["url"] = o.url
	}
	if isSet(c.fs, "description") {
		body["description"] = o.description
	}
	if isSet(c.fs, "types") {
		body["filterTypes"] = splitFlag(o.types)
	}
	if isSet(c.fs, "companies") {
		body["companyIds"] = splitFlag(o.companies)
	}
	raw, _, err := c.send(http.MethodPatch, endpointPath(c.args[0]), nil, body)
	if err != nil {
		return err
	}
	return c.showEndpoint(raw)
}

func webhooksEnable(enabled bool) func(c *call) error {
	return func(c *call) error {
		raw, _, err := c.send(http.MethodPatch, endpointPath(c.args[0]), nil, map[string]bool{"disabled": !enabled})
		if err != nil {
			return err
		}
		return c.showEndpoint(raw)
	}
}

func webhooksDelete(c *call) error {
	raw, _, err := c.send(http.MethodDelete, endpointPath(c.args[0]), nil, nil)
	if err != nil {
		return err
	}
	return c.emit(raw, nil, func(t *tw) { t.line("deleted %s", c.args[0]) })
}

func secretFlags(fs *flag.FlagSet) (any, func() error) {
	return fs.Bool("rotate", false, "make a new secret; the old one keeps signing for webhooks.rotationGrace"), nil
}

func webhooksSecret(c *call) error {
	method, path := http.MethodGet, endpointPath(c.args[0])+"/secret"
	if *c.opts.(*bool) {
		method, path = http.MethodPost, path+"/rotate"
	}
	raw, _, err := c.send(method, path, nil, nil)
	if err != nil {
		return err
	}
	var s api.WebhookSecret
	return c.emit(raw, &s, func(t *tw) {
		t.line("%s", s.Secret)
		if s.PreviousValidUntil != nil {
			t.line("the previous secret signs too until %s", s.PreviousValidUntil.Format(time.RFC3339))
		}
	})
}

func testFlags(fs *flag.FlagSet) (any, func() error) {
	return fs.String("type", store.EventConnectionUpdated, "the example's event `type`"), nil
}

func webhooksTest(c *call) error {
	raw, _, err := c.send(http.MethodPost, endpointPath(c.args[0])+"/test", nil, map[string]string{"eventType": *c.opts.(*string)})
	if err != nil {
		return err
	}
	var a api.WebhookAccepted
	return c.emit(raw, &a, func(t *tw) {
		t.line("sent example message %s (see checkctl webhooks attempts %s)", a.MessageID, a.MessageID)
	})
}

type recoverOpts struct{ since, until string }

func recoverFlags(fs *flag.FlagSet) (any, func() error) {
	o := &recoverOpts{}
	fs.StringVar(&o.since, "since", "", "start of the window: RFC 3339 `time` or a duration ago (24h)")
	fs.StringVar(&o.until, "until", "", "end of the window (default now)")
	return o, func() error {
		if o.since == "" {
			return usagef("--since is required (e.g. --since 24h or --since 2026-03-02T09:00:00Z)")
		}
		return nil
	}
}

// whenOf reads an RFC 3339 time or a duration ago.
func whenOf(name, v string, now time.Time) (string, error) {
	if d, err := time.ParseDuration(v); err == nil {
		return now.Add(-d).UTC().Format(time.RFC3339), nil
	}
	if _, err := time.Parse(time.RFC3339Nano, v); err != nil {
		return "", usagef("--%s %q is neither an RFC 3339 time (2026-03-02T09:00:00Z) nor a duration (24h)", name, v)
	}
	return v, nil
}

func webhooksRecover(c *call) error {
	o := c.opts.(*recoverOpts)
	now := time.Now()
	since, err := whenOf("since", o.since, now)
	if err != nil {
		return err
	}
	body := map[string]string{"since": since}
	if o.until != "" {
		if body["until"], err = whenOf("until", o.until, now); err != nil {
			return err
		}
	}
	raw, _, err := c.send(http.MethodPost, endpointPath(c.args[0])+"/recover", nil, body)
	if err != nil {
		return err
	}
	var a api.WebhookAccepted
	return c.emit(raw, &a, func(t *tw) {
		t.line("recovering %s's messages from %s to %s in the background", a.EndpointID, a.Since.Format(time.RFC3339), a.Until.Format(time.RFC3339))
	})
}

func limitFlags(max int) func(fs *flag.FlagSet) (any, func() error) {
	return func(fs *flag.FlagSet) (any, func() error) {
		n := fs.Int("limit", 0, fmt.Sprintf("at most this many, 1 to %d (default: the API's, 50)", max))
		return n, func() error {
			if isSet(fs, "limit") && (*n < 1 || *n > max) {
				return usagef("--limit must be from 1 to %d, not %d", max, *n)
			}
			return nil
		}
	}
}

func attemptHeader(t *tw) {
	t.row("TIME", "MESSAGE", "ENDPOINT", "TRIGGER", "#", "STATUS", "HTTP", "MS", "NEXT", "ERROR")
}

func attemptRow(t *tw, a store.WebhookAttempt) {
	next := "-"
	if a.NextAttemptAt != nil {
		next = a.NextAttemptAt.Format(time.RFC3339)
	}
	code := "-"
	if a.ResponseStatusCode != 0 {
		code = strconv.Itoa(a.ResponseStatusCode)
	}
	t.row(a.Timestamp.Format(time.RFC3339), a.MessageID, a.EndpointID, a.Trigger, strconv.Itoa(a.Attempt), a.Status, code,
		strconv.FormatInt(a.DurationMs, 10), next, orDash(a.Error))
}

func webhooksAttempts(c *call) error {
	id := c.args[0]
	q := url.Values{}
	if n := *c.opts.(*int); n > 0 {
		q.Set("limit", strconv.Itoa(n))
	}
	path := endpointPath(id) + "/attempts"
	if strings.HasPrefix(id, "msg_") {
		path = "/v1/webhooks/messages/" + seg(id) + "/attempts"
	}
	raw, _, err := c.send(http.MethodGet, path, q, nil)
	if err != nil {
		return err
	}
	var out store.WebhookAttemptPage
	return c.emit(raw, &out, func(t *tw) {
		attemptHeader(t)
		for _, a := range out.Attempts {
			attemptRow(t, a)
		}
	})
}

type messagesOpts struct {
	typ, connection string
	limit           int
}

func messagesFlags(fs *flag.FlagSet) (any, func() error) {
	o := &messagesOpts{}
	fs.StringVar(&o.typ, "type", "", "only this event `type`")
	fs.StringVar(&o.connection, "connection", "", "only this `connectionId`'s messages")
	fs.IntVar(&o.limit, "limit", 0, fmt.Sprintf("at most this many, 1 to %d (default: the API's, 50)", store.MaxWebhookPage))
	return o, func() error {
		if isSet(fs, "limit") && (o.limit < 1 || o.limit > store.MaxWebhookPage) {
			return usagef("--limit must be from 1 to %d, not %d", store.MaxWebhookPage, o.limit)
		}
		return nil
	}
}

func deliveriesText(ds []store.WebhookDelivery) string {
	if len(ds) == 0 {
		return "-"
	}
	parts := make([]string, len(ds))
	for i, d := range ds {
		parts[i] = fmt.Sprintf("%s:%s/%d", d.EndpointID, d.Status, d.Attempts)
	}
	return strings.Join(parts, " ")
}

func webhooksMessages(c *call) error {
	o := c.opts.(*messagesOpts)
	q := url.Values{}
	if o.typ != "" {
		q.Set("eventType", o.typ)
	}
	if o.connection != "" {
		q.Set("connectionId", o.connection)
	}
	if o.limit > 0 {
		q.Set("limit", strconv.Itoa(o.limit))
	}
	raw, _, err := c.send(http.MethodGet, "/v1/webhooks/messages", q, nil)
	if err != nil {
		return err
	}
	var page store.WebhookMessagePage
	return c.emit(raw, &page, func(t *tw) {
		t.row("TIME", "ID", "TYPE", "CONNECTION", "DELIVERIES (endpoint:status/attempts)")
		for _, m := range page.Messages {
			t.row(m.Timestamp.Format(time.RFC3339), m.ID, m.EventType, m.ConnectionID, deliveriesText(m.Deliveries))
		}
	})
}

func webhooksMessage(c *call) error {
	raw, _, err := c.send(http.MethodGet, "/v1/webhooks/messages/"+seg(c.args[0]), nil, nil)
	if err != nil {
		return err
	}
	var m store.WebhookMessage
	return c.emit(raw, &m, func(t *tw) {
		t.row("ID:", m.ID)
		t.row("Type:", m.EventType)
		t.row("Connection:", m.ConnectionID)
		t.row("Company:", m.CompanyID)
		t.row("Changed:", m.Timestamp.Format(time.RFC3339Nano))
		t.row("Deliveries:", deliveriesText(m.Deliveries))
		t.flush()
		t.line("\nPayload:")
		var b strings.Builder
		_ = printJSON(&b, m.Payload)
		t.line("%s", strings.TrimRight(b.String(), "\n"))
	})
}

func webhooksResend(c *call) error {
	raw, _, err := c.send(http.MethodPost, "/v1/webhooks/messages/"+seg(c.args[0])+"/endpoints/"+seg(c.args[1])+"/resend", nil, nil)
	if err != nil {
		return err
	}
	return c.emit(raw, nil, func(t *tw) { t.line("sending %s to %s once more", c.args[0], c.args[1]) })
}

func webhooksEventTypes(c *call) error {
	raw, _, err := c.send(http.MethodGet, "/v1/webhooks/event-types", nil, nil)
	if err != nil {
		return err
	}
	var out api.WebhookEventTypes
	return c.emit(raw, &out, func(t *tw) {
		t.row("TYPE", "WHEN")
		for _, e := range out.EventTypes {
			t.row(e.Name, e.Description)
		}
	})
}

type listenOpts struct {
	addr       string
	types      strList
	json, keep bool
}

func listenFlags(fs *flag.FlagSet) (any, func() error) {
	o := &listenOpts{}
	fs.StringVar(&o.addr, "addr", DefaultListenAddr, "where the receiver listens (`host:port`)")
	fs.Var(&o.types, "type", "receive only this event `type` (repeatable)")
	fs.BoolVar(&o.json, "json", false, "print each message's body")
	fs.BoolVar(&o.keep, "keep", false, "keep the endpoint when stopping")
	return o, nil
}

func webhooksListen(c *call) error {
	o := c.opts.(*listenOpts)
	return Listen(c.ctx, c.client, ListenOptions{Addr: o.addr, Types: o.types, JSON: o.json, Keep: o.keep}, c.env.Stdout, c.env.Stderr)
}

// ListenOptions configure Listen.
type ListenOptions struct {
	// Addr is where the receiver listens (host:port; port 0 picks one).
	Addr string
	// Types are the event types to receive (none: all).
	Types []string
	// JSON prints each message's body instead of a summary line.
	JSON bool
	// Keep leaves the endpoint in place when Listen returns.
	Keep bool
	// Ready, when set, is called with the endpoint once it receives.
	Ready func(endpoint store.WebhookEndpoint)
}

// Listen receives webhooks until ctx ends: it serves an HTTP receiver on
// o.Addr, creates an endpoint for it through client, and prints every
// message to out, verified with the Standard Webhooks reference library
// against the endpoint's secret. The endpoint is deleted on return unless
// o.Keep.
func Listen(ctx context.Context, client *Client, o ListenOptions, out, errOut io.Writer) error {
	var lc net.ListenConfig
	ln, err := lc.Listen(ctx, "tcp", o.Addr)
	if err != nil {
		return fmt.Errorf("listen on %s: %w (pick another address with --addr)", o.Addr, err)
	}
	defer ln.Close()
	target := "http://" + ln.Addr().String() + "/"
	types := o.Types
	if types == nil {
		types = []string{}
	}
	raw, _, err := client.Do(ctx, http.MethodPost, "/v1/webhooks/endpoints", nil, map[string]any{
		"url": target, "description": "checkctl webhooks listen", "filterTypes": types})
	if err != nil {
		var ae *APIError
		if errors.As(err, &ae) && strings.Contains(ae.Message, webhook.EnvAllowPrivate) {
			return fmt.Errorf("%w\nthe service refuses local endpoints: run it with %s=true (the demo does)", err, webhook.EnvAllowPrivate)
		}
		return err
	}
	var ep api.WebhookEndpointCreated
	if err := json.Unmarshal(raw, &ep); err != nil {
		return fmt.Errorf("the API's answer is not an endpoint (version mismatch?): %w", err)
	}
	wh, err := standardwebhooks.NewWebhook(ep.Secret)
	if err != nil {
		return fmt.Errorf("the endpoint's secret: %w", err)
	}
	defer func() {
		if o.Keep {
			fmt.Fprintf(errOut, "endpoint %s kept (delete it with: checkctl webhooks delete %s)\n", ep.ID, ep.ID)
			return
		}
		dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
		defer cancel()
		if _, _, err := client.Do(dctx, http.MethodDelete, "/v1/webhooks/endpoints/"+seg(ep.ID), nil, nil); err != nil {
			fmt.Fprintf(errOut, "could not delete endpoint %s: %v\n", ep.ID, err)
		}
	}()
	var mu sync.Mutex // one message printed at a time
	srv := &http.Server{ReadHeaderTimeout: 10 * time.Second, Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, err := io.ReadAll(io.LimitReader(r.Body, 1<<20))
		if err != nil || r.Method != http.MethodPost {
			w.WriteHeader(http.StatusBadRequest)
			return
		}
		verr := wh.Verify(b, r.Header)
		mu.Lock()
		defer mu.Unlock()
		printMessage(out, r.Header.Get(webhook.HeaderID), b, verr, o.JSON)
		if verr != nil {
			w.WriteHeader(http.StatusUnauthorized) // checkd retries it
			return
		}
		w.WriteHeader(http.StatusNoContent)
	})}
	fmt.Fprintf(errOut, "listening on %s as endpoint %s (Ctrl-C to stop)\n", target, ep.ID)
	if o.Ready != nil {
		o.Ready(ep.WebhookEndpoint)
	}
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ln) }()
	select {
	case err := <-done:
		return fmt.Errorf("receiver: %w", err)
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	_ = srv.Shutdown(sctx)
	return nil
}

// printMessage prints one received message: a summary line, or its body.
func printMessage(out io.Writer, id string, body []byte, verr error, asJSON bool) {
	state := "verified"
	if verr != nil {
		state = "NOT VERIFIED (" + verr.Error() + ")"
	}
	if asJSON {
		fmt.Fprintf(out, "# %s %s\n", id, state)
		_ = printJSON(out, body)
		return
	}
	var p webhook.Payload
	if err := json.Unmarshal(body, &p); err != nil {
		fmt.Fprintf(out, "%s  %s  %s  (not a checkd message: %v)\n", time.Now().Format("15:04:05"), state, id, err)
		return
	}
	line := fmt.Sprintf("%s  %s  %-23s  %s  seq %d  %s", time.Now().Format("15:04:05"), state, p.Type, p.Data.ID, p.Data.Sequence, p.Data.Status)
	if len(p.Data.ProtectedChanges) > 0 {
		line += "  [" + strings.Join(p.Data.ProtectedChanges, " ") + "]"
	}
	t := newTW(out)
	t.line("%s", line)
	_ = t.flush()
}
