package store

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/checkd/checkd/internal/jsontext"
)

// Event types of the change-event stream, named as the reference's webhooks.
const (
	EventConnectionCreated = "connection.created.v2"
	EventConnectionUpdated = "connection.updated.v2"
)

// Event is one entry of the change-event stream: what changed on a
// connection, with the previous values of the changed fields.
type Event struct {
	ID           string    `json:"id,omitempty"` // stream entry ID, set when read
	Type         string    `json:"type"`
	ConnectionID string    `json:"connectionId"`
	CompanyID    string    `json:"companyId"`
	Time         time.Time `json:"time"`
	Cause        string    `json:"cause"`
	// Actor is who made the change: the API key's name, "link", "check"
	// or "system" (see Origin).
	Actor            string         `json:"actor"`
	ProtectedChanges []string       `json:"protectedChanges,omitempty"`
	Old              map[string]any `json:"old,omitempty"`
	New              map[string]any `json:"new,omitempty"`
}

// newEvent builds the event of a write that made transitions; nil when
// nothing a subscriber cares about changed.
func newEvent(r *connRec, typ, cause string, t int64, trs []transition) *Event {
	if len(trs) == 0 {
		return nil
	}
	ev := &Event{Type: typ, ConnectionID: r.ID, CompanyID: r.CompanyID, Time: fromMS(t), Cause: cause,
		Old: map[string]any{}, New: map[string]any{}}
	var accts []map[string]string
	for _, tr := range trs {
		if tr.acct == "" {
			ev.ProtectedChanges = append(ev.ProtectedChanges, "status", "statusFirstSeenTime", "statusErrorDetail")
			if tr.from != "" {
				ev.Old["status"] = tr.from
				ev.Old["statusFirstSeenTime"] = string(appendEventTime(nil, tr.oldFirst))
				ev.Old["statusErrorDetail"] = tr.oldDetail
			}
			ev.New["status"] = tr.to
			ev.New["statusFirstSeenTime"] = string(appendEventTime(nil, tr.first(t)))
			ev.New["statusErrorDetail"] = tr.detail
			continue
		}
		accts = append(accts, map[string]string{"id": tr.acct, "from": tr.from, "to": tr.to})
	}
	if len(accts) > 0 {
		ev.ProtectedChanges = append(ev.ProtectedChanges, "accounts")
		ev.New["accounts"] = accts
	}
	return ev
}

// appendEventTime appends a millisecond time as the event's JSON writes
// times (RFC 3339, UTC), unquoted.
func appendEventTime(b []byte, v int64) []byte {
	return fromMS(v).AppendFormat(b, time.RFC3339Nano)
}

// change is the event of a write as its transitions: appendChange writes
// the JSON of newEvent's Event without building the Event and its maps
// (on a check's path, those maps were most of the bytes it allocated).
type change struct {
	typ, cause string
	actor      string // set by originate
	t          int64
	trs        []transition
}

// newChange is newEvent's event as a change; nil when it would be nil.
func newChange(typ, cause string, t int64, trs []transition) *change {
	if len(trs) == 0 {
		return nil
	}
	return &change{typ: typ, cause: cause, t: t, trs: trs}
}

// appendChange appends marshalEvent(newEvent(r, c.typ, c.cause, c.t,
// c.trs)) with c.actor: the same fields in the same order, the maps' keys
// sorted as json.Marshal sorts them, a later connection transition
// overwriting an earlier one's values as in the maps. A time the fast path does not
// write goes through the Event.
func appendChange(b []byte, r *connRec, c *change) ([]byte, error) {
	var conn, old *transition // the last connection transition, and the last with a status before it
	accts, conns := 0, 0
	for i := range c.trs {
		tr := &c.trs[i]
		if tr.acct != "" {
			accts++
			continue
		}
		conn, conns = tr, conns+1
		if tr.from != "" {
			old = tr
		}
	}
	mark := len(b)
	b = append(b, `{"type":`...)
	b = jsontext.AppendString(b, c.typ)
	b = jsontext.AppendString(append(b, `,"connectionId":`...), r.ID)
	b = jsontext.AppendString(append(b, `,"companyId":`...), r.CompanyID)
	n := len(b) + len(`,"time":"`)
	b = fromMS(c.t).AppendFormat(append(b, `,"time":"`...), time.RFC3339Nano)
	if b[n+4] != '-' || b[len(b)-1] != 'Z' { // as appendEvent: let the Event path decide
		ev := newEvent(r, c.typ, c.cause, c.t, c.trs)
		ev.Actor = c.actor
		return marshalEvent(b[:mark], ev)
	}
	b = jsontext.AppendString(append(b, `","cause":`...), c.cause)
	b = jsontext.AppendString(append(b, `,"actor":`...), c.actor)
	b = append(b, `,"protectedChanges":[`...)
	for i := range conns {
		if i > 0 {
			b = append(b, ',')
		}
		b = append(b, `"status","statusFirstSeenTime","statusErrorDetail"`...)
	}
	if accts > 0 {
		if conns > 0 {
			b = append(b, ',')
		}
		b = append(b, `"accounts"`...)
	}
	b = append(b, ']')
	if old != nil { // keys in json.Marshal's order
		b = jsontext.AppendString(append(b, `,"old":{"status":`...), old.from)
		b = jsontext.AppendString(append(b, `,"statusErrorDetail":`...), old.oldDetail)
		b = append(appendEventTime(append(b, `,"statusFirstSeenTime":"`...), old.oldFirst), '"', '}')
	}
	b = append(b, `,"new":{`...)
	if accts > 0 {
		b = append(b, `"accounts":[`...)
		k := 0
		for i := range c.trs {
			tr := &c.trs[i]
			if tr.acct == "" {
				continue
			}
			if k > 0 {
				b = append(b, ',')
			}
			k++
			b = jsontext.AppendString(append(b, `{"from":`...), tr.from)
			b = jsontext.AppendString(append(b, `,"id":`...), tr.acct)
			b = append(jsontext.AppendString(append(b, `,"to":`...), tr.to), '}')
		}
		b = append(b, ']')
		if conn != nil {
			b = append(b, ',')
		}
	}
	if conn != nil {
		b = jsontext.AppendString(append(b, `"status":`...), conn.to)
		b = jsontext.AppendString(append(b, `,"statusErrorDetail":`...), conn.detail)
		b = append(appendEventTime(append(b, `,"statusFirstSeenTime":"`...), conn.first(c.t)), '"')
	}
	return append(b, '}', '}'), nil
}

// Events returns up to count change events after the stream ID after ("0"
// or "" for the oldest kept); count 0 or less returns none.
func (s *Store) Events(ctx context.Context, after string, count int64) ([]Event, error) {
	if after == "" {
		after = "0"
	}
	if count <= 0 { // Redis answers COUNT 0 with a null reply
		return nil, nil
	}
	msgs, err := s.rdb.XRangeN(ctx, s.kEvents(), "("+after, "+", count).Result()
	if err != nil {
		return nil, fmt.Errorf("read events after %s: %w", after, err)
	}
	return decodeEvents(msgs)
}

func decodeEvents(msgs []redis.XMessage) ([]Event, error) {
	out := make([]Event, 0, len(msgs))
	for _, m := range msgs {
		raw, _ := m.Values["e"].(string)
		var ev Event
		if err := json.Unmarshal([]byte(raw), &ev); err != nil {
			return nil, fmt.Errorf("decode event %s: %w", m.ID, err)
		}
		ev.ID = m.ID
		out = append(out, ev)
	}
	return out, nil
}
