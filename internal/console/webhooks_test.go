package console_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/checkd/checkd/store"
)

// endpoint creates a webhook endpoint through the store, with secret.
func (e *env) endpoint(url, secret string) store.WebhookEndpoint {
	e.t.Helper()
	ep, err := e.te.Store.CreateWebhookEndpoint(context.Background(), store.NewWebhookEndpoint{URL: url, Secret: secret})
	if err != nil {
		e.t.Fatal(err)
	}
	return ep
}

// attempt records a failed attempt to ep at time at, as the deliverer
// does; gone is a 410, which disables it.
func (e *env) attempt(ep store.WebhookEndpoint, at time.Time, gone bool) {
	e.t.Helper()
	a := store.WebhookAttempt{MessageID: "msg_test", EndpointID: ep.ID, URL: ep.URL, Timestamp: at, Trigger: store.TriggerScheduled,
		Attempt: 1, Status: "failed", ResponseStatusCode: 500}
	o := store.AttemptOutcome{Series: true, Gone: gone, Final: gone, GoneReason: "the endpoint answered 410 Gone",
		StaleReason: "every attempt failed for 5 days", Retention: 30 * 24 * time.Hour, DisableAfter: 120 * time.Hour}
	if gone {
		a.ResponseStatusCode = 410
	}
	if _, _, err := e.te.Store.RecordWebhookAttempt(context.Background(), a, o); err != nil {
		e.t.Fatal(err)
	}
}

func TestOverviewWebhooks(t *testing.T) {
	t.Parallel()
	const secret = "whsec_c2VjcmV0LW9mLXRoZS10ZXN0cy0wMTIzNDU2"
	tests := []struct {
		name string
		// setup makes the endpoints; it returns what the panel must say
		// and what it must not.
		setup           func(e *env) (want, not []string)
		wantTable       bool
		wantIDs, notIDs []string
	}{
		{name: "no endpoint", setup: func(e *env) ([]string, []string) {
			return []string{"Webhooks No webhook endpoint", "checkctl webhooks create"}, []string{"need attention", "delivering"}
		}},
		{name: "all healthy", setup: func(e *env) ([]string, []string) {
			e.endpoint("https://hooks.example.com/a", secret)
			e.endpoint("https://hooks.example.com/b", secret)
			return []string{"All 2 webhook endpoints are enabled and delivering"}, []string{"need attention", "No webhook endpoint"}
		}},
		{name: "one healthy, one failing, one disabled", wantTable: true, setup: func(e *env) ([]string, []string) {
			now := e.te.Clock.Now()
			healthy := e.endpoint("https://hooks.example.com/healthy", secret)
			failing := e.endpoint("https://hooks.example.com/failing?team=ops", secret)
			e.attempt(failing, now.Add(-3*time.Hour), false)
			e.attempt(failing, now.Add(-time.Hour), false) // the run began at the first
			gone := e.endpoint("https://old.example.com/gone", secret)
			e.attempt(gone, now.Add(-50*time.Hour), false)
			e.attempt(gone, now.Add(-26*time.Hour), true)
			since := func(t time.Time) string { return t.UTC().Format("2006-01-02 15:04 UTC") }
			return []string{
					"2 of 3 webhook endpoints need attention",
					// Disabled first: why, since when, and how to recover
					// from the start of its failures.
					"https://old.example.com/gone " + gone.ID + " disabled " + since(now.Add(-26*time.Hour)) + " 26 h ago the endpoint answered 410 Gone",
					"checkctl webhooks enable " + gone.ID,
					"checkctl webhooks recover " + gone.ID + " --since " + now.Add(-50*time.Hour).UTC().Format(time.RFC3339),
					`PATCH /v1/webhooks/endpoints/` + gone.ID + ` {"disabled": false}`,
					"https://hooks.example.com/failing?team=ops " + failing.ID + " failing " + since(now.Add(-3*time.Hour)) + " 3 h ago",
					"checkctl webhooks recover " + failing.ID + " --since " + now.Add(-3*time.Hour).UTC().Format(time.RFC3339),
					"POST /v1/webhooks/endpoints/" + failing.ID + "/recover",
				}, []string{
					healthy.ID, "hooks.example.com/healthy", "checkctl webhooks enable " + failing.ID,
				}
		}},
		{name: "disabled by an operator", wantTable: true, setup: func(e *env) ([]string, []string) {
			ep := e.endpoint("https://hooks.example.com/paused", secret)
			off := true
			if _, err := e.te.Store.UpdateWebhookEndpoint(context.Background(), ep.ID, store.WebhookEndpointPatch{Disabled: &off}); err != nil {
				t.Fatal(err)
			}
			return []string{"1 of 1 webhook endpoints need attention", ep.ID + " disabled", "now disabled by an operator",
				"checkctl webhooks enable " + ep.ID}, nil
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			e := newEnv(t, options{})
			want, not := tc.setup(e)
			p := e.browser().get("/console/")
			if p.code != 200 {
				t.Fatalf("overview: %d\n%s", p.code, p.body)
			}
			p.has(t, tc.name, want...)
			txt := p.text()
			for _, n := range not {
				if strings.Contains(txt, n) {
					t.Errorf("%s: the page says %q", tc.name, n)
				}
			}
			if got := strings.Contains(p.body, `<table id="webhooks">`); got != tc.wantTable {
				t.Errorf("%s: webhook table shown %v, want %v", tc.name, got, tc.wantTable)
			}
			// No secret, whole or in part, in what the page sends.
			if strings.Contains(p.body, secret) || strings.Contains(p.body, strings.TrimPrefix(secret, "whsec_")) {
				t.Errorf("%s: the page shows an endpoint's secret", tc.name)
			}
		})
	}

	t.Run("unreadable", func(t *testing.T) {
		t.Parallel()
		e := newEnv(t, options{})
		// An endpoint hash whose filters are not JSON: the panel says it
		// cannot read them, the rest of the overview shows.
		ep := e.endpoint("https://hooks.example.com/a", secret)
		keys, err := e.te.Redis.Keys(context.Background(), "*wh:e:"+ep.ID).Result()
		if err != nil || len(keys) != 1 {
			t.Fatalf("the endpoint's key: %v, %v", keys, err)
		}
		if err := e.te.Redis.HSet(context.Background(), keys[0], "ft", "{not json").Err(); err != nil {
			t.Fatal(err)
		}
		p := e.browser().get("/console/")
		p.has(t, "unreadable endpoints", "Could not read the webhook endpoints", "Load forecast")
	})
}
