package store

import (
	"fmt"
	"time"

	"github.com/checkd/checkd/checks"
)

// setStatus is the status rule of docs/architecture.md ("Status rules") for
// one status tuple: the same status only refreshes statusLastUpdateTime and
// the detail; a new status also restarts statusFirstSeenTime. It reports
// whether the status changed.
func setStatus(status *string, firstSeen, lastUpdate *int64, detail *string, s, d string, t int64) bool {
	*lastUpdate = t
	*detail = d
	if *status == s {
		return false
	}
	*status = s
	*firstSeen = t
	return true
}

// Outcome says what recording a check did.
type Outcome string

// Outcomes of RecordCheck.
const (
	// Applied: the result was written.
	Applied Outcome = "applied"
	// Duplicate: this check attempt was already applied; nothing written.
	Duplicate Outcome = "duplicate"
	// Stale: a check that started later was already applied; dropped.
	Stale Outcome = "stale"
	// Fenced: an admin action (deactivation, credential update, ...) came
	// after the check started; dropped.
	Fenced Outcome = "fenced"
	// Ineligible: the connection is not checked any more; dropped.
	Ineligible Outcome = "ineligible"
)

// transition is one status change made by a write. A connection's also
// carries the statusFirstSeenTime and detail it replaced, for its event's
// old values, and the statusFirstSeenTime of its new status when that is
// not the write's time (newFirst: a restored status keeps its own).
type transition struct {
	acct, from, to, detail string
	oldFirst               int64
	oldDetail              string
	newFirst               int64
}

// first is the statusFirstSeenTime the transition gave a connection, in a
// write at t.
func (tr *transition) first(t int64) int64 {
	if tr.newFirst != 0 {
		return tr.newFirst
	}
	return t
}

// checkApply is the input of applyCheck, in stored units.
type checkApply struct {
	attempt   string
	started   int64
	finished  int64
	gen       uint64
	result    checks.Result
	autoTrack bool
	newID     func() string
	// companyInactive: the company's flag, read live, is down (a retry
	// after the write's company guard failed).
	companyInactive bool
	// esc is the automatic escalation rule.
	esc Escalation
}

// Who put a connection under investigation (connRec.Esc).
const (
	escAuto     = "a"
	escOperator = "o"
)

// applyCheck applies a check result to r in place, following the status
// rules; it returns what happened and the transitions it made.
func applyCheck(r *connRec, in checkApply) (Outcome, []transition) {
	switch {
	case in.attempt != "" && in.attempt == r.Attempt:
		return Duplicate, nil
	case in.gen != r.Gen:
		return Fenced, nil
	case in.started < r.Started:
		return Stale, nil
	case checks.Eligibility(checks.ConnectionStatus(r.Status), !r.Inactive, !in.companyInactive) != checks.SkipNone:
		return Ineligible, nil
	}
	t, res := in.finished, in.result.Normalized()
	var trs []transition
	detail := res.Detail
	if res.Status == checks.ConnConnected {
		detail = ""
	}
	to, toDetail := investigate(r, res.Status, detail, t, in.esc)
	trs = r.move(to, toDetail, t, trs)
	r.LastOut, r.LastOutDetail = "", ""
	if to != string(res.Status) { // the status hides the check's outcome: keep it visible
		r.LastOut, r.LastOutDetail = string(res.Status), detail
	}
	r.Attempt, r.Started, r.LastCheck = in.attempt, in.started, t
	if res.Status == checks.ConnConnected {
		r.LastSuccess, r.Failures = t, 0
	} else {
		r.Failures++
	}

	if res.Status.IsError() {
		d := fmt.Sprintf("connection status %s", res.Status)
		if res.Detail != "" {
			d += ": " + res.Detail
		}
		for i := range r.Accounts {
			trs = setAccount(&r.Accounts[i], checks.AcctWorkflowNotAccessible, d, t, trs)
		}
		return Applied, trs
	}

	seen := make(map[string]checks.AccountResult, len(res.Accounts))
	for _, a := range res.Accounts {
		seen[a.Number] = a
	}
	for i := range r.Accounts {
		a := &r.Accounts[i]
		got, ok := seen[a.Number]
		delete(seen, a.Number)
		if ok && got.Name != "" && !checks.AccountStatus(a.Status).Terminal() {
			a.Name = got.Name
		}
		switch {
		case !ok:
			trs = setAccount(a, checks.AcctAccountNotFound, "the account was not listed on the provider's website at the last check", t, trs)
		case got.Status != "" && checks.Pullable(checks.AccountStatus(a.Status), a.tracking()):
			d := got.Detail
			if got.Status == checks.AcctPullCompleted {
				d = ""
			}
			trs = setAccount(a, got.Status, d, t, trs)
		default:
			trs = setAccount(a, notPulled(a), "", t, trs)
		}
	}
	// New accounts, in the checker's order.
	for _, got := range res.Accounts {
		if _, isNew := seen[got.Number]; !isNew {
			continue
		}
		a := acctRec{ID: in.newID(), Number: got.Number, Name: got.Name,
			Status: string(checks.AcctDetected), FirstSeen: t, LastUpdate: t}
		if in.autoTrack {
			a.Tracking, a.Status = string(checks.TrackingEnabled), string(checks.AcctOnboarded)
		}
		r.Accounts = append(r.Accounts, a)
		trs = append(trs, transition{acct: a.ID, to: a.Status})
	}
	return Applied, trs
}

// investigate decides the connection status a check's outcome s (with
// detail) leads to, given the investigation rules (docs/architecture.md,
// "Status rules"), and counts provider failures in a row. An operator's
// flag stays through any check but one ending in a credential status; an
// automatic escalation ends with a success (or a credential status) and
// otherwise keeps its status with a fresh detail; a connection not under
// investigation escalates when in.esc says so.
func investigate(r *connRec, s checks.ConnectionStatus, detail string, t int64, esc Escalation) (string, string) {
	// The time since the last success (or the creation), before this check.
	since := r.LastSuccess
	if since == 0 {
		since = r.CreatedAt
	}
	if s.ProviderFailure() {
		r.ProvFails++
	} else {
		r.ProvFails = 0
	}
	under := r.Status == string(checks.ConnUnderInvestigation)
	switch {
	case s.CredentialBlocked() || !under && !s.ProviderFailure():
		r.Esc = ""
		return string(s), detail
	case under && r.Esc != escAuto: // an operator's flag (or a record from before Esc was kept)
		return r.Status, r.Detail
	case under && s == checks.ConnConnected:
		r.Esc = ""
		return string(s), detail
	case under:
		return r.Status, escalationDetail(r, s, detail, t, since)
	case esc.Enabled && r.ProvFails >= esc.Failures && t-since >= esc.After.Milliseconds():
		r.Esc = escAuto
		return string(checks.ConnUnderInvestigation), escalationDetail(r, s, detail, t, since)
	}
	return string(s), detail
}

// escalationDetail is the statusErrorDetail of an automatically escalated
// connection: the last error and how long it has been failing.
func escalationDetail(r *connRec, s checks.ConnectionStatus, detail string, t, since int64) string {
	d := fmt.Sprintf("%s on the last %d checks in a row; no successful check for %s (since %s)",
		s, r.ProvFails, fromMS(t).Sub(fromMS(since)).Round(time.Minute), fromMS(since).Format("2006-01-02 15:04 UTC"))
	if detail != "" {
		d += ": " + detail
	}
	return d
}

// notPulled is the status of a listed account that was not pulled: awaiting
// a tracking decision, or tracked and awaiting its pull (an account back
// after a connection error or after missing from the website is ONBOARDED
// again); a pulled account keeps its last pull outcome.
func notPulled(a *acctRec) checks.AccountStatus {
	cur := checks.AccountStatus(a.Status)
	if a.tracking() != checks.TrackingEnabled {
		return checks.AcctDetected
	}
	switch cur {
	case checks.AcctWorkflowNotAccessible, checks.AcctAccountNotFound, checks.AcctDetected:
		return checks.AcctOnboarded
	}
	return cur
}

// newest is the latest time the record's status fields hold, its
// accounts' included.
func (r *connRec) newest() int64 {
	t := max(r.FirstSeen, r.LastUpdate, r.LastCheck, r.LastSuccess)
	for i := range r.Accounts {
		t = max(t, r.Accounts[i].FirstSeen, r.Accounts[i].LastUpdate)
	}
	return t
}

// move applies the status rule to the connection and records the
// transition, if any.
func (r *connRec) move(to, detail string, t int64, trs []transition) []transition {
	from, first, was := r.Status, r.FirstSeen, r.Detail
	if from != to && r.LastCheck != 0 && r.LastOut == "" {
		// The status now shown was the last check's outcome: keep that
		// visible (applyCheck sets it afresh).
		r.LastOut, r.LastOutDetail = from, was
	}
	if setStatus(&r.Status, &r.FirstSeen, &r.LastUpdate, &r.Detail, to, detail, t) {
		trs = append(trs, transition{from: from, to: to, detail: detail, oldFirst: first, oldDetail: was})
	}
	return trs
}

// move applies the status rule to the account and records the transition,
// if any.
func (a *acctRec) move(to, detail string, t int64, trs []transition) []transition {
	from := a.Status
	if from != to && a.CreatedAt == 0 {
		a.CreatedAt = a.FirstSeen // FirstSeen is about to move: keep the creation time
	}
	if setStatus(&a.Status, &a.FirstSeen, &a.LastUpdate, &a.Detail, to, detail, t) {
		trs = append(trs, transition{acct: a.ID, from: from, to: to, detail: detail})
	}
	return trs
}

// setAccount applies the status rule to a non-terminal account; terminal
// accounts are left alone entirely.
func setAccount(a *acctRec, s checks.AccountStatus, detail string, t int64, trs []transition) []transition {
	if checks.AccountStatus(a.Status).Terminal() {
		return trs
	}
	return a.move(string(s), detail, t, trs)
}
