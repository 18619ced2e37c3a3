package webhook

import (
	"encoding/json"
	"fmt"
	"strconv"
	"time"

	"github.com/checkd/checkd/api/view"
	"github.com/checkd/checkd/checks"
	"github.com/checkd/checkd/store"
)

// typeCodes end the message IDs of each event type.
var typeCodes = map[string]string{
	store.EventConnectionCreated:   "c",
	store.EventConnectionUpdated:   "u",
	store.EventConnectionValidated: "v",
}

// MessageID is the webhook-id of the message of type typ that the write
// with sequence seq of connection connID made: the same for every
// dispatcher that reads the write's event, so dispatching it twice makes
// one message, and unique, since a connection's sequence only grows.
// Example: msg_cn_0123456789abcdef_2_u.
func MessageID(connID string, seq int64, typ string) string {
	return "msg_" + connID + "_" + strconv.FormatInt(seq, 10) + "_" + typeCodes[typ]
}

// Payload is a message's body: the event type, the change's time, and the
// connection.
type Payload struct {
	Type      string    `json:"type"`
	Timestamp time.Time `json:"timestamp"`
	Data      Data      `json:"data"`
}

// Data is a message's data: the connection exactly as GET
// /v1/connection/{connectionId}/details answered right after the change,
// its sequence, and for connection.updated.v2 the fields the change made
// (protectedChanges, with "accounts" for any account change and
// "credentials" for replaced credentials) with their previous values (old;
// none for credentials, and null for a field GET details left out).
type Data struct {
	view.Connection
	Sequence         int64    `json:"sequence"`
	ProtectedChanges []string `json:"protectedChanges,omitempty"`
	// Old is set for every connection.updated.v2 ({} when credentials
	// alone changed) and for no other type.
	Old *map[string]json.RawMessage `json:"old,omitempty"`
}

// Render is the body of the message of type typ (one of ev.Types): compact
// JSON, rendered once when the change is dispatched and stored, so every
// attempt sends the same bytes.
func Render(ev store.Event, typ string) ([]byte, error) {
	if _, ok := typeCodes[typ]; !ok {
		return nil, fmt.Errorf("webhook: unknown event type %q", typ)
	}
	p := Payload{Type: typ, Timestamp: ev.Time.UTC(), Data: Data{Connection: view.Of(ev.Connection), Sequence: ev.Sequence}}
	if typ == store.EventConnectionUpdated && ev.Old != nil {
		old, err := fieldsOf(view.Of(*ev.Old))
		if err != nil {
			return nil, err
		}
		p.Data.ProtectedChanges = ev.ProtectedChanges
		values := make(map[string]json.RawMessage, len(ev.ProtectedChanges))
		for _, f := range ev.ProtectedChanges {
			if f == "credentials" {
				continue // never a value
			}
			v, ok := old[f]
			if !ok {
				v = json.RawMessage("null")
			}
			values[f] = v
		}
		p.Data.Old = &values
	}
	b, err := json.Marshal(p)
	if err != nil {
		return nil, fmt.Errorf("webhook: render %s of %s: %w", typ, ev.ConnectionID, err)
	}
	return b, nil
}

// fieldsOf is v's JSON object as its fields.
func fieldsOf(v any) (map[string]json.RawMessage, error) {
	b, err := json.Marshal(v)
	if err != nil {
		return nil, fmt.Errorf("webhook: render: %w", err)
	}
	var m map[string]json.RawMessage
	if err := json.Unmarshal(b, &m); err != nil {
		return nil, fmt.Errorf("webhook: render: %w", err)
	}
	return m, nil
}

// exampleTime is the time of the example messages.
var exampleTime = time.Date(2026, 3, 2, 9, 30, 0, 0, time.UTC)

// ExampleEvent is a made-up change of type typ, with made-up IDs: what the
// event-type catalog shows and an endpoint test sends.
func ExampleEvent(typ string) store.Event {
	at := exampleTime
	created := at.Add(-10 * time.Minute)
	next := at.Add(7 * 24 * time.Hour)
	acct := store.Account{ID: "ac_0123456789", AccountNumber: "100-200-300", Name: "Main meter",
		TrackingStatus: checks.TrackingUnset, Status: checks.AcctDetected,
		StatusFirstSeenTime: at, StatusLastUpdateTime: at, CreatedAt: at}
	conn := store.Connection{ID: "cn_0123456789abcdef", CompanyID: "co_0123456789abcdef",
		Datasource: store.Datasource{Name: "sandbox"}, Name: "Head office", IsActive: true, CreatedAt: created,
		Status: checks.ConnConnected, StatusFirstSeenTime: at, StatusLastUpdateTime: at,
		LastCheckAt: &at, LastSuccessAt: &at, NextCheckAt: &next, SiteIDs: []string{}, LastCheckStatus: checks.ConnConnected,
		Accounts: []store.Account{acct}}
	ev := store.Event{Types: []string{typ}, Sequence: 2, Time: at, Cause: store.CauseCheck,
		ConnectionID: conn.ID, CompanyID: conn.CompanyID, Connection: conn}
	switch typ {
	case store.EventConnectionCreated:
		conn.Status, conn.StatusFirstSeenTime, conn.StatusLastUpdateTime = checks.ConnPending, created, created
		conn.LastCheckAt, conn.LastSuccessAt, conn.NextCheckAt, conn.Accounts = nil, nil, &created, []store.Account{}
		conn.LastCheckStatus = ""
		ev.Connection, ev.Sequence, ev.Time, ev.Cause = conn, 1, created, store.CauseCreated
	case store.EventConnectionUpdated:
		old := conn
		old.Status, old.StatusFirstSeenTime, old.StatusLastUpdateTime = checks.ConnPending, created, created
		old.LastCheckAt, old.LastSuccessAt, old.NextCheckAt, old.Accounts = nil, nil, nil, []store.Account{}
		old.LastCheckStatus = ""
		ev.Old = &old
		ev.ProtectedChanges = []string{"status", "statusFirstSeenTime", "statusLastUpdateTime", "lastCheckAt", "lastSuccessAt", "lastCheckStatus", "accounts"}
	}
	return ev
}

// Example is the body of an example message of type typ.
func Example(typ string) ([]byte, error) { return Render(ExampleEvent(typ), typ) }
