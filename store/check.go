package store

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/checkd/checkd/checks"
)

// CheckTarget is a connection loaded for a check: its state, decrypted
// credentials and the request to hand to the checker. Its raw form lets
// RecordCheck write in one round trip when nothing changed meanwhile.
type CheckTarget struct {
	Connection Connection
	// Skip is why the connection must not be checked now (empty: check it).
	Skip    checks.Skip
	Request checks.Request
	gen     uint64
	started int64 // start of the last check recorded (ms); 0: none
	// autoTrack: accounts the check discovers are tracked at once (the
	// company's choice, else Config.AutoTrack).
	autoTrack bool
	raw       string
	rec       *connRec // decoded raw, handed to the first write attempt
}

// Served reports whether a check that started at or after slot is already
// recorded, so a task for slot has nothing left to do: a slot enqueued twice
// (an admin action's check and the sweep's, on different queues, where
// asynq's task IDs do not meet), a sweep read again after a scheduler died
// (asynq forgets a completed task's ID), a retry whose first attempt did
// record. A zero slot (a payload without one) is never served.
func (t *CheckTarget) Served(slot time.Time) bool {
	return slot.UnixMilli() > 0 && t.started >= slot.UnixMilli()
}

// LoadCheck loads a connection for a check. The worker runs the checker only
// when Skip is empty.
func (s *Store) LoadCheck(ctx context.Context, connID string) (*CheckTarget, error) {
	if !ValidID(ConnectionIDPrefix, connID) {
		return nil, fmt.Errorf("connection %q: %w", connID, ErrNotFound)
	}
	// The record and the company epoch, in one round trip shared with other
	// checks' calls; the company's active flag then comes from the cache of
	// that epoch (companyActive).
	get := redis.NewStringCmd(ctx, "get", s.kConn(connID))
	epoch := redis.NewStringCmd(ctx, "get", s.kCompanyEpoch())
	err := s.batch.DoWindowed(ctx, get, epoch)
	raw, gerr := get.Result()
	ep, eerr := epoch.Result()
	switch {
	case err != nil:
	case errors.Is(gerr, redis.Nil):
		return nil, fmt.Errorf("connection %q: %w", connID, ErrNotFound)
	case gerr != nil:
		err = gerr
	case eerr != nil && !errors.Is(eerr, redis.Nil): // no epoch yet: no company changed since
		err = eerr
	}
	if err != nil {
		return nil, fmt.Errorf("load connection %s: %w", connID, err)
	}
	r, err := decodeConn(connID, raw)
	if err != nil {
		return nil, fmt.Errorf("connection %s: %w", connID, err)
	}
	co, err := s.companyActive(ctx, r.CompanyID, ep)
	if err != nil {
		return nil, fmt.Errorf("load connection %s: %w", connID, err)
	}
	autoTrack := s.cfg.AutoTrack
	if co.autoTrack != nil {
		autoTrack = *co.autoTrack
	}
	t := &CheckTarget{Connection: r.public(0), gen: r.Gen, started: r.Started, raw: raw, rec: r, autoTrack: autoTrack,
		Skip: checks.Eligibility(checks.ConnectionStatus(r.Status), !r.Inactive, co.active)}
	if t.Skip != checks.SkipNone {
		return t, nil
	}
	cred, err := s.open(r)
	if err != nil {
		return nil, err
	}
	t.Request = checks.Request{ConnectionID: r.ID, Datasource: r.Datasource, Credentials: cred,
		Accounts: make([]checks.Account, len(r.Accounts))}
	for i, a := range r.Accounts {
		t.Request.Accounts[i] = checks.Account{ID: a.ID, Number: a.Number,
			Pull: checks.Pullable(checks.AccountStatus(a.Status), a.tracking())}
	}
	return t, nil
}

// CheckResult is a finished check to record.
type CheckResult struct {
	// Attempt identifies the check attempt (the task ID): recording the same
	// attempt twice is a no-op.
	Attempt    string
	StartedAt  time.Time
	FinishedAt time.Time
	Result     checks.Result
}

// Recorded tells what RecordCheck did.
type Recorded struct {
	Outcome Outcome
	// From and To are the connection's status before and after.
	From, To checks.ConnectionStatus
	// Transitions counts status changes of the connection and its accounts.
	Transitions int
}

// RecordCheck applies a check result to the connection and all its accounts
// in one atomic write, with the due index, status index, history and change
// event. A duplicate attempt, a result older than the last applied one, a
// check voided by an admin action since it was loaded, and a connection no
// longer checked (its company's deactivation included, however far it got)
// are dropped, and Recorded says which.
func (s *Store) RecordCheck(ctx context.Context, t *CheckTarget, in CheckResult) (Recorded, error) {
	if err := in.Result.Validate(); err != nil {
		return Recorded{}, fmt.Errorf("%w: %v", ErrInvalid, err)
	}
	ap := checkApply{attempt: shortAttempt(t.Connection.ID, in.Attempt), started: ms(in.StartedAt), finished: ms(in.FinishedAt),
		gen: t.gen, result: in.Result, autoTrack: t.autoTrack, esc: s.cfg.Escalation, newID: func() string { return newShortID(AccountIDPrefix) }}
	var out Recorded
	calls := 0
	fn := func(r *connRec) (*mutation, error) {
		if calls++; calls > 1 {
			// A retry: the record changed, or the company guard failed
			// (its deactivation began after the load). Its live flag
			// decides; the write guards it again.
			active, err := s.companyFlag(ctx, r.CompanyID)
			if err != nil {
				return nil, fmt.Errorf("record check of %s: %w", r.ID, err)
			}
			ap.companyInactive = !active
		}
		// A write landing after newer ones (an admin action after the
		// check ended, a later-started check that ended first) is stamped
		// with the newest time the record holds: its times never go back.
		in := ap
		in.finished = max(in.finished, r.newest())
		out = Recorded{From: checks.ConnectionStatus(r.Status), To: checks.ConnectionStatus(r.Status)}
		oc, trs := applyCheck(r, in)
		out.Outcome, out.Transitions = oc, len(trs)
		if oc != Applied {
			return nil, nil
		}
		out.To = checks.ConnectionStatus(r.Status)
		// The company guard: a company's deactivation lowers its flag, then
		// converts its connections index by index, so a check loaded
		// before must not move one into an index already converted.
		m := &mutation{due: dueAfter, dueSince: in.started, clearQueued: true, check: true, companyActive: "1",
			history: historyOf(trs, in.finished, CauseCheck, in.attempt),
			change:  newChange(EventConnectionUpdated, CauseCheck, in.finished, trs)}
		if out.To.CredentialBlocked() {
			m.due = dueRemove
		}
		return m, nil
	}
	err := s.updateFrom(ctx, t.Connection.ID, t.raw, t.rec, fn)
	if err == nil && out.Outcome != Applied && calls == 1 {
		// Dropped on the record as loaded: tell the status as it is now
		// (an admin action may have come in between). A fresher record
		// drops it too: generations and start times only move forward.
		err = s.updateFrom(ctx, t.Connection.ID, "", nil, fn)
	}
	t.raw, t.rec = "", nil // a second RecordCheck on the same target reads afresh
	return out, err
}
