package store

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

func cmdStats(t *testing.T, rdb redis.UniversalClient) map[string][2]float64 {
	s, err := rdb.Info(context.Background(), "commandstats").Result()
	if err != nil {
		t.Fatal(err)
	}
	out := map[string][2]float64{}
	for _, l := range strings.Split(s, "\n") {
		l = strings.TrimSpace(l)
		name, rest, ok := strings.Cut(strings.TrimPrefix(l, "cmdstat_"), ":")
		if !ok || !strings.HasPrefix(l, "cmdstat_") {
			continue
		}
		var calls, usec float64
		for _, kv := range strings.Split(rest, ",") {
			k, v, _ := strings.Cut(kv, "=")
			f, _ := strconv.ParseFloat(v, 64)
			switch k {
			case "calls":
				calls = f
			case "usec":
				usec = f
			}
		}
		out[name] = [2]float64{calls, usec}
	}
	return out
}

func diff(a, b map[string][2]float64, n int) string {
	var sb strings.Builder
	for k, v := range b {
		d := v[1] - a[k][1]
		c := v[0] - a[k][0]
		if c > 0 {
			fmt.Fprintf(&sb, "%s %.2f calls %.2fµs; ", k, c/float64(n), d/float64(n))
		}
	}
	return sb.String()
}

func TestZZScriptCost(t *testing.T) {
	f := newFixture(t, realBackend, nil)
	f.clk.Set(time.Now())
	ep, err := f.s.CreateWebhookEndpoint(f.ctx, NewWebhookEndpoint{URL: "https://a.example/", Secret: testSecret})
	if err != nil {
		t.Fatal(err)
	}
	body := []byte(strings.Repeat("x", 640))
	const n = 5000
	var msgs []NewWebhookMessage
	for i := range n {
		msgs = append(msgs, NewWebhookMessage{ID: fmt.Sprintf("msg_cn_%016d_1_c", i), Type: EventConnectionCreated, ConnectionID: fmt.Sprintf("cn_%016d", i), Time: f.clk.Now(), Body: body, Endpoints: []string{ep.ID}})
	}
	a := cmdStats(t, f.rdb)
	for i := 0; i < n; i += 500 {
		if err := f.s.SaveWebhookMessages(f.ctx, msgs[i:i+500], 30*24*time.Hour); err != nil {
			t.Fatal(err)
		}
	}
	b := cmdStats(t, f.rdb)
	t.Logf("save: %s", diff(a, b, n))
	for i := range n {
		if _, err := f.s.LoadWebhookTarget(f.ctx, msgs[i].ID, ep.ID); err != nil {
			t.Fatal(err)
		}
	}
	c := cmdStats(t, f.rdb)
	t.Logf("load: %s", diff(b, c, n))
	for i := range n {
		if _, _, err := f.s.RecordWebhookAttempt(f.ctx, WebhookAttempt{MessageID: msgs[i].ID, EndpointID: ep.ID, URL: "https://a.example/", Timestamp: f.clk.Now(), Trigger: "scheduled", Attempt: 1, Status: "success", ResponseStatusCode: 204, DurationMs: 1},
			AttemptOutcome{Series: true, Success: true, Retention: 30 * 24 * time.Hour, DisableAfter: time.Hour}); err != nil {
			t.Fatal(err)
		}
	}
	d := cmdStats(t, f.rdb)
	t.Logf("record: %s", diff(c, d, n))
}
