package webhook_test

import (
	"bytes"
	"net/http"
	"strconv"
	"testing"
	"time"

	"github.com/checkd/checkd/internal/testing/openapitest"
	"github.com/checkd/checkd/store"
	"github.com/checkd/checkd/webhook"
)

// TestMessagesMatchTheOpenAPIDocument holds messages, headers and body, to
// the API document's webhooks section: each type's example, and updates
// whose old holds a null (a field GET details left out) or nothing (only
// the credentials changed).
func TestMessagesMatchTheOpenAPIDocument(t *testing.T) {
	t.Parallel()
	secret, err := webhook.NewSecret()
	if err != nil {
		t.Fatal(err)
	}
	type message struct {
		name string
		ev   store.Event
		typ  string
	}
	var ms []message
	for _, typ := range store.EventTypes {
		ms = append(ms, message{typ + " example", webhook.ExampleEvent(typ), typ})
	}
	named := webhook.ExampleEvent(store.EventConnectionUpdated)
	old := *named.Old
	old.Name = "" // unset before: GET details left it out
	named.Old, named.ProtectedChanges = &old, []string{"name"}
	ms = append(ms, message{"an update naming a connection", named, store.EventConnectionUpdated})
	creds := webhook.ExampleEvent(store.EventConnectionUpdated)
	creds.Old, creds.ProtectedChanges = &creds.Connection, []string{"credentials"}
	ms = append(ms, message{"an update of the credentials alone", creds, store.EventConnectionUpdated})

	for _, m := range ms {
		body, err := webhook.Render(m.ev, m.typ)
		if err != nil {
			t.Fatal(err)
		}
		id := webhook.MessageID(m.ev.ConnectionID, m.ev.Sequence, m.typ)
		now := time.Now()
		sig, err := webhook.Sign(id, now, body, []string{secret})
		if err != nil {
			t.Fatal(err)
		}
		h := http.Header{}
		h.Set("Content-Type", "application/json")
		h.Set(webhook.HeaderID, id)
		h.Set(webhook.HeaderTimestamp, strconv.FormatInt(now.Unix(), 10))
		h.Set(webhook.HeaderSignature, sig)
		t.Run(m.name, func(t *testing.T) { openapitest.Webhook(t, m.typ, h, body) })
		if m.name == "an update of the credentials alone" && !bytes.Contains(body, []byte(`"protectedChanges":["credentials"],"old":{}`)) {
			t.Errorf("an update of the credentials alone: %s; want protectedChanges [credentials] and old {}", body)
		}
	}
}
