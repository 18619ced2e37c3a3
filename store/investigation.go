package store

import (
	"context"
	"fmt"
	"strings"

	"github.com/checkd/checkd/checks"
	"github.com/checkd/checkd/internal/termtext"
)

// MaxNoteLen bounds an operator's investigation note.
const MaxNoteLen = 1024

// FlagInvestigation puts a connection UNDER_INVESTIGATION by an operator's
// hand, note as its statusErrorDetail. The flag stays through every check
// (the connection is still checked weekly, its lastCheckAt and
// lastCheckStatus move) until ClearInvestigation, new credentials, or a
// check that ends in a credential status. An automatically escalated
// connection becomes the operator's; a flagged one gets the new note. A
// deactivated, company-inactive or credential-blocked connection cannot be
// flagged (ErrNotAllowed): the first two are not checked, the last needs
// new credentials first.
func (s *Store) FlagInvestigation(ctx context.Context, id, note string) (Change, error) {
	note = strings.TrimSpace(note)
	switch {
	case len(note) > MaxNoteLen:
		return Change{}, fmt.Errorf("%w: note is at most %d bytes", ErrInvalid, MaxNoteLen)
	case strings.ContainsFunc(note, termtext.Unsafe):
		return Change{}, fmt.Errorf("%w: note must not contain control characters (tabs, newlines, escape sequences, direction overrides)", ErrInvalid)
	case !ValidID(ConnectionIDPrefix, id):
		return Change{}, fmt.Errorf("connection %q: %w", id, ErrNotFound)
	}
	if note == "" {
		note = "flagged by an operator"
	}
	return s.adminWrite(ctx, id, CauseInvestigate, func(r *connRec, now int64, m *mutation) ([]transition, error) {
		st := checks.ConnectionStatus(r.Status)
		if systemStatus(r.Status) || st.CredentialBlocked() {
			return nil, fmt.Errorf("%w: connection %s is %s and cannot be put under investigation (%s)", ErrNotAllowed, id, st, investigateHint(st))
		}
		if r.Esc == escOperator && r.Detail == note {
			return nil, nil // already flagged with this note
		}
		if r.Status == string(checks.ConnUnderInvestigation) { // escalated, or a new note: no status change
			m.event = &Event{Type: EventConnectionUpdated, ConnectionID: r.ID, CompanyID: r.CompanyID, Time: fromMS(now),
				Cause: CauseInvestigate, ProtectedChanges: []string{"statusErrorDetail", "investigation"},
				Old: map[string]any{"statusErrorDetail": r.Detail}, New: map[string]any{"statusErrorDetail": note}}
			r.Detail, r.LastUpdate = note, now
		}
		r.Esc = escOperator
		return r.move(string(checks.ConnUnderInvestigation), note, now, nil), nil
	})
}

func investigateHint(st checks.ConnectionStatus) string {
	if st.CredentialBlocked() {
		return "it needs new credentials first"
	}
	return "reactivate it first"
}

// ClearInvestigation ends a connection's investigation, an operator's flag
// or an automatic escalation: it goes back to its last check's outcome (or
// PENDING if it has none) and is checked at once (CheckNow). Its count of
// provider failures in a row starts again, so a connection that still
// fails escalates again only after escalation.failures more checks. A
// connection not UNDER_INVESTIGATION is refused (ErrNotAllowed).
func (s *Store) ClearInvestigation(ctx context.Context, id string) (Change, error) {
	if !ValidID(ConnectionIDPrefix, id) {
		return Change{}, fmt.Errorf("connection %q: %w", id, ErrNotFound)
	}
	var ch Change
	out, err := s.adminWrite(ctx, id, CauseInvestigateClear, func(r *connRec, now int64, m *mutation) ([]transition, error) {
		ch = Change{}
		if r.Status != string(checks.ConnUnderInvestigation) {
			return nil, fmt.Errorf("%w: connection %s is %s, not under investigation", ErrNotAllowed, id, r.Status)
		}
		to, detail := r.LastOut, r.LastOutDetail
		if to == "" || to == string(checks.ConnUnderInvestigation) {
			to, detail = string(checks.ConnPending), ""
		}
		r.Esc, r.ProvFails = "", 0
		trs := r.move(to, detail, now, nil)
		if r.LastOut == r.Status {
			r.LastOut, r.LastOutDetail = "", ""
		}
		m.due, m.dueAt, m.companyActive = dueSet, now, "1"
		ch.CheckNow, ch.DueAt = true, fromMS(now)
		return trs, nil
	})
	out.CheckNow, out.DueAt = ch.CheckNow, ch.DueAt
	return out, err
}

// adminWrite is the shape of a simple admin action on one connection: fn
// changes the record and returns its transitions (nil, nil: nothing to
// write); the write carries its history entry and change event with cause.
func (s *Store) adminWrite(ctx context.Context, id, cause string, fn func(r *connRec, now int64, m *mutation) ([]transition, error)) (Change, error) {
	var ch Change
	err := s.update(ctx, id, "", func(r *connRec) (*mutation, error) {
		now := ms(s.cfg.Clock.Now())
		m := &mutation{}
		trs, err := fn(r, now, m)
		ch.Connection = r.public(0)
		if err != nil || len(trs) == 0 && m.event == nil {
			return nil, err
		}
		m.history = historyOf(trs, now, cause, "")
		if m.event == nil {
			m.event = newEvent(r, EventConnectionUpdated, cause, now, trs)
		}
		return m, nil
	})
	if err != nil {
		return Change{}, err
	}
	return s.withNext(ctx, ch)
}
