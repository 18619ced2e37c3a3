package store

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/checkd/checkd/internal/jsontext"
)

// Event types of the change-event stream, named as the reference's webhooks.
const (
	EventConnectionCreated   = "connection.created.v2"
	EventConnectionUpdated   = "connection.updated.v2"
	EventConnectionValidated = "connection.validated.v2"
)

// EventTypes lists every event type.
var EventTypes = []string{EventConnectionCreated, EventConnectionUpdated, EventConnectionValidated}

// Event is one entry of the change-event stream: a write that changed what
// GET /v1/connection/{id}/details shows. Every such write appends one in
// the same atomic step, with the connection as it was before and after.
type Event struct {
	// ID is the stream entry ID.
	ID string
	// Types are the messages the write makes: connection.created.v2 for a
	// creation; connection.updated.v2, followed by
	// connection.validated.v2 when a check recorded a connection status
	// different from the one before it.
	Types []string
	// Sequence counts the connection's writes that emitted an event (1 for
	// its creation): it only grows, so a consumer can drop an older
	// message arriving after a newer one.
	Sequence int64
	// Time is the write's time.
	Time  time.Time
	Cause string
	// Actor is who made the change: the API key's name, "link", "check"
	// or "system" (see Origin).
	Actor string
	// ConnectionID and CompanyID name the connection.
	ConnectionID, CompanyID string
	// ProtectedChanges names the fields of Connection whose value the write
	// changed, in the order GET details lists them, account changes as
	// "accounts" and replaced credentials as "credentials" (which has no
	// value anywhere); nextCheckAt (derived from the schedule) is never
	// named. Empty for a creation.
	ProtectedChanges []string
	// Old is the connection before the write (nil for a creation); its
	// NextCheckAt is nil.
	Old *Connection
	// Connection is the connection after the write, nextCheckAt included,
	// as GET details answered at that moment.
	Connection Connection
}

// changedFieldNames are the fields of GET details that a write's event
// names in protectedChanges, in the order GET details lists them, then
// "credentials"; a changeSet has bit i set for the i-th.
var changedFieldNames = []string{
	"name", "isActive", "status", "statusFirstSeenTime", "statusLastUpdateTime", "statusErrorDetail",
	"lastCheckAt", "lastSuccessAt", "consecutiveFailures", "startDate", "occupancyMultiplier",
	"credentialsUpdatedAt", "siteIds", "lastCheckStatus", "lastCheckDetail", "investigation", "accounts", "credentials",
}

// changeSet is a set of changedFieldNames, as bits.
type changeSet uint32

// Bits of a changeSet.
const (
	chName changeSet = 1 << iota
	chIsActive
	chStatus
	chFirstSeen
	chLastUpdate
	chDetail
	chLastCheck
	chLastSuccess
	chFailures
	chStartDate
	chOccupancy
	chCredUpdated
	chSiteIDs
	chLastCheckStatus
	chLastCheckDetail
	chInvestigation
	chAccounts
	chCredentials
)

// names lists the set's field names in order.
func (c changeSet) names() []string {
	var out []string
	for i, n := range changedFieldNames {
		if c&(1<<i) != 0 {
			out = append(out, n)
		}
	}
	return out
}

// changedFields is the set of fields of GET details whose value differs
// between a and b, and "credentials" when they were replaced. emits is
// false when every difference is a timestamp a check moves without
// changing anything else (statusLastUpdateTime, lastCheckAt,
// lastSuccessAt, and accounts' statusLastUpdateTime): such a write makes
// no event.
func changedFields(a, b *connRec) (changed changeSet, emits bool) {
	set := func(bit changeSet, differ bool) {
		if differ {
			changed |= bit
		}
	}
	set(chName, a.Name != b.Name)
	set(chIsActive, a.Inactive != b.Inactive)
	set(chStatus, a.Status != b.Status)
	set(chFirstSeen, a.FirstSeen != b.FirstSeen)
	set(chLastUpdate, a.LastUpdate != b.LastUpdate)
	set(chDetail, a.Detail != b.Detail)
	set(chLastCheck, a.LastCheck != b.LastCheck)
	set(chLastSuccess, a.LastSuccess != b.LastSuccess)
	set(chFailures, a.Failures != b.Failures)
	set(chStartDate, a.StartDate != b.StartDate)
	set(chOccupancy, a.Occupancy != b.Occupancy)
	set(chCredUpdated, a.CredUpdated != b.CredUpdated)
	set(chSiteIDs, !slices.Equal(a.SiteIDs, b.SiteIDs))
	as, ad := a.lastCheckOutcome()
	bs, bd := b.lastCheckOutcome()
	set(chLastCheckStatus, as != bs)
	set(chLastCheckDetail, ad != bd)
	set(chInvestigation, a.investigation() != b.investigation())
	accts, timestamps := accountsDiffer(a.Accounts, b.Accounts)
	set(chAccounts, accts)
	set(chCredentials, !bytes.Equal(a.Cred, b.Cred))
	emits = changed&^(chLastUpdate|chLastCheck|chLastSuccess) != 0
	if timestamps && changed&^(chLastUpdate|chLastCheck|chLastSuccess|chAccounts) == 0 {
		emits = false
	}
	return changed, emits
}

// accountsDiffer reports whether two account lists differ in what GET
// details shows, and whether only in statusLastUpdateTime.
func accountsDiffer(a, b []acctRec) (differ, timestampsOnly bool) {
	if len(a) != len(b) {
		return true, false
	}
	timestampsOnly = true
	for i := range a {
		x, y := &a[i], &b[i]
		if x.ID != y.ID || x.Number != y.Number || x.Name != y.Name || x.tracking() != y.tracking() ||
			x.Status != y.Status || x.FirstSeen != y.FirstSeen || x.Detail != y.Detail || x.created() != y.created() || x.Dup != y.Dup {
			return true, false
		}
		if x.LastUpdate != y.LastUpdate {
			differ = true
		}
	}
	return differ, differ && timestampsOnly
}

// clone copies what a write may change in r in place (its accounts), so
// the copy keeps the record as read.
func (r *connRec) clone() *connRec {
	c := *r
	c.Accounts, c.SiteIDs = slices.Clone(r.Accounts), slices.Clone(r.SiteIDs)
	return &c
}

// eventFields are the stream fields of a write's event, "" when it makes
// none: the header (types, sequence, time, cause, changed fields), and the
// record before (none for a creation) and after, without credentials or
// history. It sets the record's sequence, so it runs before the record is
// encoded. The commit script adds the schedule's state for nextCheckAt.
func eventFields(m *mutation) (header, before, after string, err error) {
	r := m.rec
	var types []string
	var changed changeSet
	switch {
	case m.before == nil && m.oldRaw == "": // a creation
		types = []string{EventConnectionCreated}
		r.Seq = 1
	case m.before == nil:
		return "", "", "", nil
	case m.reseal:
		r.Seq = m.before.Seq
		return "", "", "", nil
	default:
		var emits bool
		if changed, emits = changedFields(m.before, r); !emits {
			r.Seq = m.before.Seq
			return "", "", "", nil
		}
		types = []string{EventConnectionUpdated}
		if m.cause == CauseCheck && m.before.Status != r.Status {
			types = append(types, EventConnectionValidated)
		}
		r.Seq = m.before.Seq + 1
	}
	header = withBuffer(func(b []byte) ([]byte, string) {
		b = jsontext.AppendString(append(b, `{"c":`...), r.ID)
		b = jsontext.AppendStrings(append(b, `,"t":`...), types)
		b = strconv.AppendInt(append(b, `,"q":`...), r.Seq, 10)
		b = strconv.AppendInt(append(b, `,"at":`...), m.at, 10)
		b = jsontext.AppendString(append(b, `,"ca":`...), m.cause)
		b = jsontext.AppendString(append(b, `,"by":`...), m.actor)
		if changed != 0 {
			b = jsontext.AppendStrings(append(b, `,"pc":`...), changed.names())
		}
		b = append(b, '}')
		return b, string(b)
	})
	if m.before != nil {
		if before, err = snapshot(m.before); err != nil {
			return "", "", "", err
		}
	}
	after, err = snapshot(r)
	return header, before, after, err
}

// snapshot is r's stored form without its credentials and history: what
// an event keeps of it.
func snapshot(r *connRec) (string, error) {
	c := *r
	c.Cred, c.Hist = nil, nil
	return marshalConn(&c)
}

// eventHeader is the decoded header of a stream entry.
type eventHeader struct {
	Conn    string   `json:"c"`
	Types   []string `json:"t"`
	Seq     int64    `json:"q"`
	At      int64    `json:"at"`
	Cause   string   `json:"ca"`
	Actor   string   `json:"by"` // "" in events written before actors: the cause's implied one
	Changed []string `json:"pc"`
}

// decodeEvent reads a stream entry: header "e", records "o" (before) and
// "r" (after), and the schedule's state the commit script added: "d" the
// on-demand due time, "w" set when the connection is in the weekly
// schedule, "c" the sweep cursor.
func (s *Store) decodeEvent(m redis.XMessage) (Event, error) {
	str := func(k string) string { v, _ := m.Values[k].(string); return v }
	var h eventHeader
	if err := json.Unmarshal([]byte(str("e")), &h); err != nil {
		return Event{}, fmt.Errorf("decode event %s: %w", m.ID, err)
	}
	if !ValidID(ConnectionIDPrefix, h.Conn) || len(h.Types) == 0 {
		return Event{}, fmt.Errorf("decode event %s: no connection or type", m.ID)
	}
	after, err := decodeConn(h.Conn, str("r"))
	if err != nil {
		return Event{}, fmt.Errorf("decode event %s: %w", m.ID, err)
	}
	var due *int64
	if d, err := strconv.ParseFloat(str("d"), 64); err == nil {
		v := int64(d)
		due = &v
	}
	swept, err := strconv.ParseInt(str("c"), 10, 64)
	if err != nil {
		swept = h.At // no sweep yet: as GET details, which takes now
	}
	if h.Actor == "" {
		h.Actor = impliedActor(h.Cause)
	}
	ev := Event{ID: m.ID, Types: h.Types, Sequence: h.Seq, Time: fromMS(h.At), Cause: h.Cause, Actor: h.Actor,
		ConnectionID: h.Conn, CompanyID: after.CompanyID, ProtectedChanges: h.Changed,
		Connection: after.public(s.nextCheck(h.Conn, due, str("w") != "", swept))}
	if raw := str("o"); raw != "" {
		before, err := decodeConn(h.Conn, raw)
		if err != nil {
			return Event{}, fmt.Errorf("decode event %s: %w", m.ID, err)
		}
		old := before.public(0)
		ev.Old = &old
	}
	return ev, nil
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
	out := make([]Event, 0, len(msgs))
	for _, m := range msgs {
		ev, err := s.decodeEvent(m)
		if err != nil {
			return nil, err
		}
		out = append(out, ev)
	}
	return out, nil
}
