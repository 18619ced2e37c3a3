package store

import (
	"fmt"

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
}

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
	trs = r.move(string(res.Status), detail, t, trs)
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
