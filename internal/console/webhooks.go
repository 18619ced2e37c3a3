package console

import (
	"slices"
	"time"
)

// webhookRow is an endpoint the overview's webhook panel lists: disabled,
// or with its attempts failing. Never its secrets: the store reads them
// apart and the panel does not ask.
type webhookRow struct {
	ID, URL, Description string
	Disabled             bool
	// Since is when it was disabled, or when its run of failures began.
	Since time.Time
	// Reason is why it was disabled ("" while only failing).
	Reason string
	// RecoverSince is the start of what it missed: the earlier of its
	// failures' start and its disabling, for checkctl webhooks recover.
	RecoverSince string
}

type webhooksData struct {
	// Total is how many endpoints exist; Rows those that need attention,
	// disabled first, then failing, each the longest-standing first.
	Total int
	Rows  []webhookRow
	Err   string
}

// webhooks reads every endpoint (at most store.MaxWebhookEndpoints) and
// keeps those disabled or failing (store.WebhookEndpoint's Disabled and
// FailingSince).
func (c *Console) webhooks(q *request) webhooksData {
	es, _, err := c.cfg.Store.AllWebhookEndpoints(q.r.Context())
	if err != nil {
		return webhooksData{Err: c.panelError(q, err, "read the webhook endpoints")}
	}
	d := webhooksData{Total: len(es)}
	for _, e := range es {
		if !e.Disabled && e.FailingSince == nil {
			continue
		}
		row := webhookRow{ID: e.ID, URL: e.URL, Description: e.Description, Disabled: e.Disabled, Reason: e.DisabledReason}
		from := earliest(e.DisabledAt, e.FailingSince)
		if e.Disabled && e.DisabledAt != nil {
			row.Since = *e.DisabledAt
		} else {
			row.Since = from
		}
		row.RecoverSince = from.UTC().Format(time.RFC3339)
		d.Rows = append(d.Rows, row)
	}
	slices.SortStableFunc(d.Rows, func(a, b webhookRow) int {
		if a.Disabled != b.Disabled {
			if a.Disabled {
				return -1
			}
			return 1
		}
		return a.Since.Compare(b.Since)
	})
	return d
}

// earliest is the earlier of the times set (the zero time when neither is).
func earliest(a, b *time.Time) time.Time {
	switch {
	case a == nil && b == nil:
		return time.Time{}
	case a == nil:
		return *b
	case b == nil || a.Before(*b):
		return *a
	}
	return *b
}
