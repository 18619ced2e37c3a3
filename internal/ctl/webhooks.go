package ctl

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/spf13/cobra"
	standardwebhooks "github.com/standard-webhooks/standard-webhooks/libraries/go"

	"github.com/checkd/checkd/api"
	"github.com/checkd/checkd/store"
	"github.com/checkd/checkd/webhook"
)

// hintEndpoint is the 404 hint of a command naming an endpoint or message.
const hintEndpoint = "list the webhook endpoints with: checkctl webhooks list; the messages with: checkctl webhooks messages"

// webhooksGroup is the "webhooks" commands (docs/webhooks.md).
func (a *app) webhooksGroup() *cobra.Command {
	return group("webhooks", "webhook endpoints, messages and a local receiver",
		a.leaf("list", "list webhook endpoints", 0, 0, "", "", webhooksList),
		a.webhooksCreate(),
		a.leaf("show <endpointId>", "show a webhook endpoint", 1, 1, "<endpointId>", hintEndpoint, webhooksShow),
		a.webhooksSet(),
		a.leaf("enable <endpointId>", "enable a webhook endpoint (then recover what it missed)", 1, 1, "<endpointId>", hintEndpoint,
			webhooksEnable(true)),
		a.leaf("disable <endpointId>", "disable a webhook endpoint: it receives nothing; messages are kept", 1, 1, "<endpointId>",
			hintEndpoint, webhooksEnable(false)),
		a.leaf("delete <endpointId>", "delete a webhook endpoint and its attempt log", 1, 1, "<endpointId>", hintEndpoint, webhooksDelete),
		a.webhooksSecret(),
		a.webhooksTest(),
		a.webhooksRecover(),
		a.webhooksAttempts(),
		a.webhooksMessages(),
		a.leaf("message <msgId>", "show a webhook message: its payload and deliveries", 1, 1, "<msgId>", hintEndpoint, webhooksMessage),
		a.leaf("resend <msgId> <endpointId>", "deliver a message to an endpoint once more, now", 2, 2, "<msgId> <endpointId>", hintEndpoint,
			webhooksResend),
		a.leaf("event-types", "list the webhook event types", 0, 0, "", "", webhooksEventTypes),
		a.webhooksListen())
}

// DefaultListenAddr is where checkctl webhooks listen receives by default.
const DefaultListenAddr = "127.0.0.1:18095"

func endpointPath(id string) string { return "/v1/webhooks/endpoints/" + seg(id) }

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
	t.row(e.ID, e.URL, types, cos, enabled, stampPtr(e.FailingSince))
}

func webhooksList(c *call) error {
	q := url.Values{"limit": {strconv.Itoa(store.MaxWebhookEndpoints)}} // every endpoint fits one page
	raw, err := c.send(http.MethodGet, "/v1/webhooks/endpoints", q, nil)
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

func (a *app) webhooksCreate() *cobra.Command {
	var description string
	var types, companies []string
	var disabled bool
	cmd := a.leaf("create <url> [--description D] [--type T]... [--company C]... [--disabled]",
		"create a webhook endpoint and print its signing secret", 1, 1, "<url>", "", func(c *call) error {
			in := api.WebhookEndpointRequest{URL: &c.args[0], FilterTypes: &types, CompanyIDs: &companies, Disabled: &disabled}
			if types == nil {
				in.FilterTypes = &[]string{}
			}
			if companies == nil {
				in.CompanyIDs = &[]string{}
			}
			if description != "" {
				in.Description = &description
			}
			raw, err := c.send(http.MethodPost, "/v1/webhooks/endpoints", nil, in)
			if err != nil {
				return err
			}
			var e api.WebhookEndpointCreated
			return c.emit(raw, &e, func(t *tw) {
				endpointHeader(t)
				endpointRow(t, e.WebhookEndpoint)
				t.line("\nsigning secret (checkctl webhooks secret %s prints it again): %s", e.ID, e.Secret)
			})
		})
	cmd.Long = "Without --type it receives every event type, without --company every company's connections.\n" +
		"The URL must be https and public unless the service allows private addresses\n" +
		"(CHECKD_WEBHOOK_ALLOW_PRIVATE, the demo's default)."
	f := cmd.Flags()
	f.StringVar(&description, "description", "", "what the endpoint is for")
	f.StringArrayVar(&types, "type", nil, "receive only this event `type` (repeatable)")
	f.StringArrayVar(&companies, "company", nil, "receive only this `companyId`'s connections (repeatable)")
	f.BoolVar(&disabled, "disabled", false, "create it disabled")
	return cmd
}

func webhooksShow(c *call) error {
	raw, err := c.send(http.MethodGet, endpointPath(c.args[0]), nil, nil)
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

func (a *app) webhooksSet() *cobra.Command {
	var target, description, types, companies string
	cmd := a.leaf("set <endpointId> [--endpoint-url U] [--description D] [--types T,...] [--companies C,...]", "change a webhook endpoint",
		1, 1, "<endpointId>", hintEndpoint, func(c *call) error {
			f := c.cmd.Flags()
			var in api.WebhookEndpointRequest
			if f.Changed("endpoint-url") {
				in.URL = &target
			}
			if f.Changed("description") {
				in.Description = &description
			}
			if f.Changed("types") {
				l := splitFlag(types)
				in.FilterTypes = &l
			}
			if f.Changed("companies") {
				l := splitFlag(companies)
				in.CompanyIDs = &l
			}
			if in == (api.WebhookEndpointRequest{}) {
				return usagef("nothing to change: give --endpoint-url, --description, --types or --companies")
			}
			raw, err := c.send(http.MethodPatch, endpointPath(c.args[0]), nil, in)
			if err != nil {
				return err
			}
			return c.showEndpoint(raw)
		})
	cmd.Long = "Give at least one flag. --types \"\" or --companies \"\" subscribe to all."
	f := cmd.Flags()
	f.StringVar(&target, "endpoint-url", "", "the endpoint's new `URL`")
	f.StringVar(&description, "description", "", "what the endpoint is for")
	f.StringVar(&types, "types", "", "receive only these event `types` (comma-separated; \"\": all)")
	f.StringVar(&companies, "companies", "", "receive only these `companyIds`' connections (comma-separated; \"\": all)")
	return cmd
}

func webhooksEnable(enabled bool) func(c *call) error {
	return func(c *call) error {
		disabled := !enabled
		raw, err := c.send(http.MethodPatch, endpointPath(c.args[0]), nil, api.WebhookEndpointRequest{Disabled: &disabled})
		if err != nil {
			return err
		}
		return c.showEndpoint(raw)
	}
}

func webhooksDelete(c *call) error {
	raw, err := c.send(http.MethodDelete, endpointPath(c.args[0]), nil, nil)
	if err != nil {
		return err
	}
	return c.emit(raw, nil, func(t *tw) { t.line("deleted %s", c.args[0]) })
}

func (a *app) webhooksSecret() *cobra.Command {
	var rotate bool
	cmd := a.leaf("secret <endpointId> [--rotate]", "print an endpoint's signing secret, or rotate it", 1, 1, "<endpointId>", hintEndpoint,
		func(c *call) error {
			method, path := http.MethodGet, endpointPath(c.args[0])+"/secret"
			if rotate {
				method, path = http.MethodPost, path+"/rotate"
			}
			raw, err := c.send(method, path, nil, nil)
			if err != nil {
				return err
			}
			var s api.WebhookSecret
			return c.emit(raw, &s, func(t *tw) {
				t.line("%s", s.Secret)
				if s.PreviousValidUntil != nil {
					t.line("the previous secret signs too until %s", stamp(*s.PreviousValidUntil))
				}
			})
		})
	cmd.Long = "After --rotate the old secret signs too (a second signature) for webhooks.rotationGrace."
	cmd.Flags().BoolVar(&rotate, "rotate", false, "make a new secret; the old one keeps signing for webhooks.rotationGrace")
	return cmd
}

func (a *app) webhooksTest() *cobra.Command {
	var typ string
	cmd := a.leaf("test <endpointId> [--type T]", "send a signed example message to an endpoint now", 1, 1, "<endpointId>", hintEndpoint,
		func(c *call) error {
			raw, err := c.send(http.MethodPost, endpointPath(c.args[0])+"/test", nil, api.WebhookTestRequest{EventType: typ})
			if err != nil {
				return err
			}
			var acc api.WebhookAccepted
			return c.emit(raw, &acc, func(t *tw) {
				t.line("sent example message %s (see: checkctl webhooks attempts %s)", acc.MessageID, acc.MessageID)
			})
		})
	cmd.Flags().StringVar(&typ, "type", store.EventConnectionUpdated, "the example's event `type`")
	return cmd
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

func (a *app) webhooksRecover() *cobra.Command {
	var since, until string
	cmd := a.leaf("recover <endpointId> --since TIME [--until TIME]", "send again the messages of a window that an endpoint did not get",
		1, 1, "<endpointId>", hintEndpoint, func(c *call) error {
			if since == "" {
				return usagef("--since is required (e.g. --since 24h or --since 2026-03-02T09:00:00Z)")
			}
			now := time.Now()
			var in api.WebhookRecoverRequest
			var err error
			if in.Since, err = whenOf("since", since, now); err != nil {
				return err
			}
			if until != "" {
				if in.Until, err = whenOf("until", until, now); err != nil {
					return err
				}
			}
			raw, err := c.send(http.MethodPost, endpointPath(c.args[0])+"/recover", nil, in)
			if err != nil {
				return err
			}
			var acc api.WebhookAccepted
			return c.emit(raw, &acc, func(t *tw) {
				t.line("recovering %s's messages from %s to %s in the background", acc.EndpointID, stampPtr(acc.Since), stampPtr(acc.Until))
			})
		})
	cmd.Long = "TIME is RFC 3339 (2026-03-02T09:00:00Z) or a duration ago (24h). One attempt each, in the\n" +
		"background: failed messages, and those dispatched while the endpoint was disabled."
	f := cmd.Flags()
	f.StringVar(&since, "since", "", "start of the window: RFC 3339 `time` or a duration ago (24h)")
	f.StringVar(&until, "until", "", "end of the window (default now)")
	return cmd
}

func attemptHeader(t *tw) {
	t.row("TIME", "MESSAGE", "ENDPOINT", "TRIGGER", "#", "STATUS", "HTTP", "MS", "NEXT", "ERROR")
}

func attemptRow(t *tw, at store.WebhookAttempt) {
	code := "-"
	if at.ResponseStatusCode != 0 {
		code = strconv.Itoa(at.ResponseStatusCode)
	}
	t.row(stamp(at.Timestamp), at.MessageID, at.EndpointID, at.Trigger, strconv.Itoa(at.Attempt), at.Status, code,
		strconv.FormatInt(at.DurationMs, 10), stampPtr(at.NextAttemptAt), orDash(at.Error))
}

func (a *app) webhooksAttempts() *cobra.Command {
	var limit int
	cmd := a.leaf("attempts <endpointId>|<msgId> [--limit N]", "list the delivery attempts of an endpoint (newest first) or of a message",
		1, 1, "<endpointId>|<msgId>", hintEndpoint, func(c *call) error {
			q := url.Values{}
			if c.cmd.Flags().Changed("limit") {
				if limit < 1 || limit > store.MaxWebhookPage {
					return usagef("--limit must be from 1 to %d, not %d", store.MaxWebhookPage, limit)
				}
				q.Set("limit", strconv.Itoa(limit))
			}
			id := c.args[0]
			path := endpointPath(id) + "/attempts"
			if strings.HasPrefix(id, "msg_") {
				path = "/v1/webhooks/messages/" + seg(id) + "/attempts"
			}
			raw, err := c.send(http.MethodGet, path, q, nil)
			if err != nil {
				return err
			}
			var out store.WebhookAttemptPage
			return c.emit(raw, &out, func(t *tw) {
				attemptHeader(t)
				for _, at := range out.Attempts {
					attemptRow(t, at)
				}
			})
		})
	cmd.Flags().IntVar(&limit, "limit", 0, fmt.Sprintf("at most this many, 1 to %d (default: the API's, 50)", store.MaxWebhookPage))
	return cmd
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

func (a *app) webhooksMessages() *cobra.Command {
	var typ, connection string
	var limit int
	cmd := a.leaf("messages [--type T] [--connection C] [--limit N]", "list webhook messages, newest first", 0, 0, "", hintConnection,
		func(c *call) error {
			q := url.Values{}
			if typ != "" {
				q.Set("eventType", typ)
			}
			if connection != "" {
				q.Set("connectionId", connection)
			}
			if c.cmd.Flags().Changed("limit") {
				if limit < 1 || limit > store.MaxWebhookPage {
					return usagef("--limit must be from 1 to %d, not %d", store.MaxWebhookPage, limit)
				}
				q.Set("limit", strconv.Itoa(limit))
			}
			raw, err := c.send(http.MethodGet, "/v1/webhooks/messages", q, nil)
			if err != nil {
				return err
			}
			var page store.WebhookMessagePage
			return c.emit(raw, &page, func(t *tw) {
				t.row("TIME", "ID", "TYPE", "CONNECTION", "DELIVERIES (endpoint:status/attempts)")
				for _, m := range page.Messages {
					t.row(stamp(m.Timestamp), m.ID, m.EventType, m.ConnectionID, deliveriesText(m.Deliveries))
				}
			})
		})
	f := cmd.Flags()
	f.StringVar(&typ, "type", "", "only this event `type`")
	f.StringVar(&connection, "connection", "", "only this `connectionId`'s messages")
	f.IntVar(&limit, "limit", 0, fmt.Sprintf("at most this many, 1 to %d (default: the API's, 50)", store.MaxWebhookPage))
	return cmd
}

func webhooksMessage(c *call) error {
	raw, err := c.send(http.MethodGet, "/v1/webhooks/messages/"+seg(c.args[0]), nil, nil)
	if err != nil {
		return err
	}
	var m store.WebhookMessage
	return c.emit(raw, &m, func(t *tw) {
		t.row("ID:", m.ID)
		t.row("Type:", m.EventType)
		t.row("Connection:", m.ConnectionID)
		t.row("Company:", m.CompanyID)
		t.row("Changed:", stamp(m.Timestamp))
		t.row("Deliveries:", deliveriesText(m.Deliveries))
		t.flush()
		t.line("\nPayload:")
		var b strings.Builder
		_ = printJSON(&b, m.Payload)
		t.line("%s", strings.TrimRight(b.String(), "\n"))
	})
}

func webhooksResend(c *call) error {
	raw, err := c.send(http.MethodPost, "/v1/webhooks/messages/"+seg(c.args[0])+"/endpoints/"+seg(c.args[1])+"/resend", nil, nil)
	if err != nil {
		return err
	}
	return c.emit(raw, nil, func(t *tw) { t.line("sending %s to %s once more", c.args[0], c.args[1]) })
}

func webhooksEventTypes(c *call) error {
	raw, err := c.send(http.MethodGet, "/v1/webhooks/event-types", nil, nil)
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

func (a *app) webhooksListen() *cobra.Command {
	var o ListenOptions
	cmd := a.leaf("listen [--addr HOST:PORT] [--type T]... [--json] [--keep]",
		"receive webhooks locally: create an endpoint here and print each verified message", 0, 0, "", "", func(c *call) error {
			client, err := c.a.clientFor()
			if err != nil {
				return err
			}
			// Ctrl-C ends the listening and deletes the endpoint.
			ctx, stop := signal.NotifyContext(c.cmd.Context(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			return Listen(ctx, client, o, c.a.env.Stdout, c.a.env.Stderr)
		})
	cmd.Long = "Starts an HTTP receiver on --addr (default " + DefaultListenAddr + "), creates an endpoint for it\n" +
		"(the service must allow private addresses: the demo does), and prints every message,\n" +
		"verified with the Standard Webhooks reference library, until Ctrl-C; then deletes the\n" +
		"endpoint unless --keep. --json prints each body."
	f := cmd.Flags()
	f.StringVar(&o.Addr, "addr", DefaultListenAddr, "where the receiver listens (`host:port`)")
	f.StringArrayVar(&o.Types, "type", nil, "receive only this event `type` (repeatable)")
	f.BoolVar(&o.JSON, "json", false, "print each message's body")
	f.BoolVar(&o.Keep, "keep", false, "keep the endpoint when stopping")
	return cmd
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
