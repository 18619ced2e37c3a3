package store

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"math"
	"slices"
	"strings"
	"time"

	"github.com/checkd/checkd/checks"
)

// ErrNotAllowed reports an action the connection's current state forbids
// (refreshing a credential-blocked connection, confirming accounts of an
// inactive company); the message says why.
var ErrNotAllowed = errors.New("not allowed in the current state")

// systemStatus reports statuses set by admin actions rather than checks.
func systemStatus(s string) bool {
	return checks.ConnectionStatus(s).Category() == checks.CategorySystem
}

// void voids the checks in flight for an admin action: they were loaded
// under the old generation and are fenced. It also forgets when the last
// check started, so the check this action enqueues is never taken as served
// by one from before it (CheckTarget.Served), whatever the clocks of the
// worker and the API say, and which attempt was applied last, so that check
// is not taken as a duplicate when its task ID (its slot, to the
// millisecond) equals the last one's; older checks being fenced, neither
// rule needs what came before the action.
func (r *connRec) void() {
	r.Gen++
	r.Started = 0
	r.Attempt = ""
}

// save keeps the connection's status, detail and since when to restore
// when the system status it is entering is lifted; a second system status
// (deactivated while its company is inactive) keeps the first one's.
func (r *connRec) save() {
	if !systemStatus(r.Status) {
		r.PrevStatus, r.PrevDetail, r.PrevFirst = r.Status, r.Detail, r.FirstSeen
	}
}

// restore moves the connection back to the status and detail it had before
// a system status, with the statusFirstSeenTime it had (a website down
// since Monday is still down since Monday), or to PENDING since now if it
// never had one, and forgets them.
func (r *connRec) restore(now int64, trs []transition) []transition {
	to, detail, first := r.PrevStatus, r.PrevDetail, r.PrevFirst
	// Credentials replaced after the system status began (r.FirstSeen)
	// unblock. UpdateCredentials saves PENDING then, which also covers a
	// second system status that began after the update; a record written
	// before it did holds the blocked status. (Not in the same
	// millisecond: a check of the new credentials may have found them bad
	// before the deactivation.)
	if to == "" || systemStatus(to) ||
		checks.ConnectionStatus(to).CredentialBlocked() && r.CredUpdated > r.FirstSeen {
		to, detail, first = string(checks.ConnPending), "", 0
	}
	r.PrevStatus, r.PrevDetail, r.PrevFirst = "", "", 0
	n := len(trs)
	trs = r.move(to, detail, now, trs)
	if first > 0 && first < now && len(trs) > n {
		r.FirstSeen, trs[n].newFirst = first, first
	}
	return trs
}

// Change tells the caller of an admin action what to do next.
type Change struct {
	Connection Connection
	// CheckNow: the connection became checkable; enqueue a check at once on
	// the critical queue (see MarkQueued).
	CheckNow bool
	// DueAt is the on-demand due time the change set when CheckNow: the
	// slot of that check, which ServeDue then takes out of the due index.
	DueAt time.Time
}

// DetailsPatch is a partial update of a connection's settings; nil fields
// are left alone.
type DetailsPatch struct {
	IsActive            *bool
	Name                *string
	StartDate           *string // YYYY-MM-DD, "" clears it
	OccupancyMultiplier *float64
	// SiteIDs replaces the site assignments (an empty list clears them).
	SiteIDs *[]string
}

// MaxOccupancyMultiplier bounds the occupancy multiplier.
const MaxOccupancyMultiplier = 100

func (p DetailsPatch) validate() error {
	var problems []string
	if p.Name != nil {
		if np := nameProblem(*p.Name); np != "" {
			problems = append(problems, np)
		}
	}
	if p.StartDate != nil && *p.StartDate != "" {
		if _, err := time.Parse(time.DateOnly, *p.StartDate); err != nil {
			problems = append(problems, fmt.Sprintf("startDate %q is not a date of the form 2024-01-31", *p.StartDate))
		}
	}
	if p.OccupancyMultiplier != nil {
		v := *p.OccupancyMultiplier
		if math.IsNaN(v) || v <= 0 || v > MaxOccupancyMultiplier {
			problems = append(problems, fmt.Sprintf("occupancyMultiplier must be greater than 0 and at most %d", MaxOccupancyMultiplier))
		}
	}
	if p.SiteIDs != nil {
		problems = append(problems, siteProblems(*p.SiteIDs)...)
	}
	if p.IsActive == nil && p.Name == nil && p.StartDate == nil && p.OccupancyMultiplier == nil && p.SiteIDs == nil {
		problems = append(problems, "nothing to update: give isActive, name, startDate, occupancyMultiplier or siteIds")
	}
	if len(problems) > 0 {
		return fmt.Errorf("%w: %s", ErrInvalid, strings.Join(problems, "; "))
	}
	return nil
}

// UpdateDetails applies a settings patch atomically. isActive false makes
// the connection DEACTIVATED: it leaves the due index and any check queued
// or running for it is voided. isActive true restores its previous status
// (with its statusFirstSeenTime) and, when that is checkable, asks for a
// check at once (CheckNow); while its company is inactive (a deactivation
// under way included) the connection becomes COMPANY_INACTIVE instead, as
// the company's deactivation would have made it.
func (s *Store) UpdateDetails(ctx context.Context, id string, p DetailsPatch) (Change, error) {
	if err := p.validate(); err != nil {
		return Change{}, err
	}
	if !ValidID(ConnectionIDPrefix, id) {
		return Change{}, fmt.Errorf("connection %q: %w", id, ErrNotFound)
	}
	var ch Change
	err := s.update(ctx, id, "", func(r *connRec) (*mutation, error) {
		ch = Change{}
		now := ms(s.cfg.Clock.Now())
		changed := p.applySettings(r) // the settings the patch changes, as the event names them
		toggle := p.IsActive != nil && *p.IsActive == r.Inactive
		if len(changed) == 0 && !toggle {
			ch.Connection = r.public(0)
			return nil, nil // nothing changes: no write, no history, no event
		}
		m := &mutation{}
		var trs []transition
		cause := CauseSettings
		if toggle {
			changed = append(changed, "isActive")
			r.void()
			if *p.IsActive {
				cause = CauseReactivated
				var err error
				if trs, err = s.reactivate(ctx, r, now, m); err != nil {
					return nil, err
				}
				if m.due == dueSet {
					ch.CheckNow, ch.DueAt = true, fromMS(now)
				}
			} else {
				cause = CauseDeactivated
				trs = r.deactivate(now, m)
			}
		}
		m.history = historyOf(trs, now, cause, "")
		m.event = newEvent(r, EventConnectionUpdated, cause, now, trs)
		if m.event == nil {
			m.event = &Event{Type: EventConnectionUpdated, ConnectionID: r.ID, CompanyID: r.CompanyID, Time: fromMS(now), Cause: cause}
		}
		m.event.ProtectedChanges = append(m.event.ProtectedChanges, changed...)
		ch.Connection = r.public(0)
		return m, nil
	})
	if err != nil {
		return Change{}, err
	}
	return s.withNext(ctx, ch)
}

// applySettings writes the patch's name, start date and occupancy
// multiplier into r and returns the names of those that changed.
func (p DetailsPatch) applySettings(r *connRec) []string {
	var changed []string
	if p.Name != nil && strings.TrimSpace(*p.Name) != r.Name {
		r.Name, changed = strings.TrimSpace(*p.Name), append(changed, "name")
	}
	if p.StartDate != nil && *p.StartDate != r.StartDate {
		r.StartDate, changed = *p.StartDate, append(changed, "startDate")
	}
	if p.OccupancyMultiplier != nil && *p.OccupancyMultiplier != r.Occupancy {
		r.Occupancy, changed = *p.OccupancyMultiplier, append(changed, "occupancyMultiplier")
	}
	if p.SiteIDs != nil && !slices.Equal(*p.SiteIDs, r.SiteIDs) {
		r.SiteIDs, changed = cloneSites(*p.SiteIDs), append(changed, "siteIds")
	}
	return changed
}

// deactivate makes an active connection DEACTIVATED (COMPANY_INACTIVE
// stays as it is), saving its status to restore, and takes it out of the
// due index and the schedule.
func (r *connRec) deactivate(now int64, m *mutation) []transition {
	var trs []transition
	r.Inactive = true
	r.save()
	if r.Status != string(checks.ConnCompanyInactive) {
		trs = r.move(string(checks.ConnDeactivated), "", now, trs)
	}
	m.due = dueRemove
	return trs
}

// reactivate makes a deactivated connection active again: its saved status
// back, or COMPANY_INACTIVE while its company is inactive, and due at once
// (m.due = dueSet) when that is checkable.
func (s *Store) reactivate(ctx context.Context, r *connRec, now int64, m *mutation) ([]transition, error) {
	var trs []transition
	r.Inactive = false
	// The company's flag, read now and guarded by the write: a company
	// deactivation under way (flag down, connections converted index by
	// index) may have passed the index the restored status would go to.
	active, err := s.companyFlag(ctx, r.CompanyID)
	if err != nil {
		return nil, fmt.Errorf("reactivate connection %s: %w", r.ID, err)
	}
	m.companyActive = "0"
	if active {
		m.companyActive = "1"
	}
	switch {
	case r.Status != string(checks.ConnDeactivated):
	case active:
		trs = r.restore(now, trs)
	default: // as the company's deactivation would have left it
		trs = r.enterCompanyInactive(now, trs)
	}
	if active && checks.Eligibility(checks.ConnectionStatus(r.Status), true, true) == checks.SkipNone {
		m.due, m.dueAt = dueSet, now
		r.Joined = now // it was out of the schedule while inactive
	}
	return trs, nil
}

// withNext fills the connection's nextCheckAt after a write.
func (s *Store) withNext(ctx context.Context, ch Change) (Change, error) {
	c, err := s.GetConnection(ctx, ch.Connection.ID)
	if err != nil {
		return Change{}, err
	}
	ch.Connection = c
	return ch, nil
}

// ErrSuperseded reports a conditional credential update refused because
// the credentials were replaced after the time it was based on.
var ErrSuperseded = errors.New("the credentials were updated since")

// UpdateCredentials replaces a connection's credentials (encrypted). Checks
// in flight with the old ones are voided. A credential-blocked connection
// becomes PENDING and, when checkable, CheckNow asks for a check at once.
func (s *Store) UpdateCredentials(ctx context.Context, id string, c checks.Credentials) (Change, error) {
	return s.updateCredentials(ctx, id, c, -1)
}

// UpdateCredentialsSince is UpdateCredentials for a request whose authority
// dates from since (a link issued then): it writes nothing and returns an
// error wrapping ErrSuperseded when the credentials were replaced after
// since, in the same atomic step as the write, so a stale link cannot
// overwrite newer credentials.
func (s *Store) UpdateCredentialsSince(ctx context.Context, id string, c checks.Credentials, since time.Time) (Change, error) {
	return s.updateCredentials(ctx, id, c, max(0, ms(since)))
}

// updateCredentials is UpdateCredentials refusing a replacement of the
// credentials after since (Unix ms; no condition when negative).
func (s *Store) updateCredentials(ctx context.Context, id string, c checks.Credentials, since int64) (Change, error) {
	if err := ValidateCredentials(c); err != nil {
		return Change{}, err
	}
	if !ValidID(ConnectionIDPrefix, id) {
		return Change{}, fmt.Errorf("connection %q: %w", id, ErrNotFound)
	}
	sealed, err := s.seal(id, c)
	if err != nil {
		return Change{}, err
	}
	var ch Change
	err = s.update(ctx, id, "", func(r *connRec) (*mutation, error) {
		ch = Change{}
		if since >= 0 && r.CredUpdated > since {
			return nil, fmt.Errorf("connection %s: %w at %s", id, ErrSuperseded, fromMS(r.CredUpdated).Format(time.RFC3339Nano))
		}
		now := ms(s.cfg.Clock.Now())
		r.Cred, r.CredUpdated = sealed, now
		r.void()
		var trs []transition
		blocked := checks.ConnectionStatus(r.Status).CredentialBlocked()
		if blocked || r.Status == string(checks.ConnUnderInvestigation) {
			// New credentials end an investigation too (an operator's flag
			// included): the next check says how they fare.
			r.Esc, r.ProvFails = "", 0
			trs = r.move(string(checks.ConnPending), "", now, trs)
		} else if systemStatus(r.Status) && (checks.ConnectionStatus(r.PrevStatus).CredentialBlocked() ||
			r.PrevStatus == string(checks.ConnUnderInvestigation)) {
			r.Esc, r.ProvFails = "", 0
			// Deactivated, or its company inactive: what reactivation
			// restores is no longer blocked on the old credentials.
			r.PrevStatus, r.PrevDetail, r.PrevFirst = string(checks.ConnPending), "", now
		}
		m := &mutation{history: historyOf(trs, now, CauseCredentials, ""), event: newEvent(r, EventConnectionUpdated, CauseCredentials, now, trs),
			sealedWith: s.cfg.Cipher.Fingerprint()}
		if m.event == nil {
			m.event = &Event{Type: EventConnectionUpdated, ConnectionID: r.ID, CompanyID: r.CompanyID, Time: fromMS(now),
				Cause: CauseCredentials, ProtectedChanges: []string{"credentials"}}
		}
		if checks.Eligibility(checks.ConnectionStatus(r.Status), !r.Inactive, true) == checks.SkipNone {
			m.due, m.dueAt, m.companyActive = dueSet, now, "1"
			if blocked { // out of the schedule until now
				r.Joined = now
			}
			ch.CheckNow, ch.DueAt = true, fromMS(now)
		}
		ch.Connection = r.public(0)
		return m, nil
	})
	if err != nil {
		return Change{}, err
	}
	return s.withNext(ctx, ch)
}

// Refreshable says whether an on-demand check may run now: the status must
// allow a refresh (the "can be refreshed?" flag), the connection be active
// and its company too. The error wraps ErrNotAllowed with the reason.
func (s *Store) Refreshable(ctx context.Context, id string) (Connection, error) {
	c, err := s.GetConnection(ctx, id)
	if err != nil {
		return Connection{}, err
	}
	co, err := s.GetCompany(ctx, c.CompanyID)
	if err != nil {
		return Connection{}, err
	}
	if skip := checks.Eligibility(c.Status, c.IsActive, co.IsActive); skip != checks.SkipNone {
		return c, fmt.Errorf("%w: connection %s cannot be refreshed: %s", ErrNotAllowed, id, skip)
	}
	if in, _ := c.Status.Info(); !in.CanRefresh {
		return c, fmt.Errorf("%w: connection %s in status %s cannot be refreshed", ErrNotAllowed, id, c.Status)
	}
	return c, nil
}

// AccountDecision confirms (ENABLED) or rejects (DISABLED) one account.
type AccountDecision struct {
	AccountID      string                `json:"accountId"`
	TrackingStatus checks.TrackingStatus `json:"trackingStatus"`
}

// AccountsError names the accounts a confirmation refused; it wraps
// ErrInvalid.
type AccountsError struct {
	Problems map[string]string // account ID → what is wrong
}

func (e *AccountsError) Error() string {
	parts := make([]string, 0, len(e.Problems))
	for _, id := range slices.Sorted(maps.Keys(e.Problems)) {
		parts = append(parts, id+": "+e.Problems[id])
	}
	return "accounts refused (nothing was changed): " + strings.Join(parts, "; ")
}

// Unwrap makes errors.Is(err, ErrInvalid) true.
func (e *AccountsError) Unwrap() error { return ErrInvalid }

// ConfirmAccounts applies tracking decisions, all or nothing: ENABLED makes
// a detected (or previously rejected) account ONBOARDED, DISABLED makes it
// CUSTOMER_NOT_TRACKED (terminal, never pulled).
func (s *Store) ConfirmAccounts(ctx context.Context, id string, ds []AccountDecision) (Change, error) {
	if len(ds) == 0 {
		return Change{}, fmt.Errorf("%w: give at least one account decision", ErrInvalid)
	}
	if !ValidID(ConnectionIDPrefix, id) {
		return Change{}, fmt.Errorf("connection %q: %w", id, ErrNotFound)
	}
	var ch Change
	err := s.update(ctx, id, "", func(r *connRec) (*mutation, error) {
		if r.Status == string(checks.ConnCompanyInactive) {
			return nil, fmt.Errorf("%w: the company of connection %s is inactive; reactivate it first", ErrNotAllowed, id)
		}
		byID := make(map[string]*acctRec, len(r.Accounts))
		for i := range r.Accounts {
			byID[r.Accounts[i].ID] = &r.Accounts[i]
		}
		problems := map[string]string{}
		seen := map[string]bool{}
		for _, d := range ds {
			a, ok := byID[d.AccountID]
			switch {
			case !ok:
				problems[d.AccountID] = "no such account on this connection"
			case seen[d.AccountID]:
				problems[d.AccountID] = "decided twice in one request"
			case d.TrackingStatus != checks.TrackingEnabled && d.TrackingStatus != checks.TrackingDisabled:
				problems[d.AccountID] = fmt.Sprintf("trackingStatus must be ENABLED or DISABLED, not %q", d.TrackingStatus)
			case checks.AccountStatus(a.Status).Terminal() && a.Status != string(checks.AcctCustomerNotTracked):
				problems[d.AccountID] = fmt.Sprintf("account is %s (terminal) and cannot be confirmed", a.Status)
			}
			seen[d.AccountID] = true
		}
		if len(problems) > 0 {
			return nil, &AccountsError{Problems: problems}
		}
		now := ms(s.cfg.Clock.Now())
		var trs []transition
		for _, d := range ds {
			a := byID[d.AccountID]
			a.Tracking = string(d.TrackingStatus)
			to := a.Status
			switch {
			case d.TrackingStatus == checks.TrackingDisabled:
				to = string(checks.AcctCustomerNotTracked)
			case a.Status == string(checks.AcctDetected) || a.Status == string(checks.AcctCustomerNotTracked):
				to = string(checks.AcctOnboarded)
			}
			if to != a.Status { // a decision that keeps the status keeps its detail and time too
				trs = a.move(to, "", now, trs)
			}
		}
		ch.Connection = r.public(0)
		m := &mutation{history: historyOf(trs, now, CauseConfirm, ""), event: newEvent(r, EventConnectionUpdated, CauseConfirm, now, trs)}
		if m.event == nil {
			m.event = &Event{Type: EventConnectionUpdated, ConnectionID: r.ID, CompanyID: r.CompanyID, Time: fromMS(now),
				Cause: CauseConfirm, ProtectedChanges: []string{"accounts"}}
		}
		return m, nil
	})
	if err != nil {
		return Change{}, err
	}
	return s.withNext(ctx, ch)
}
