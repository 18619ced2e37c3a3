package store

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/checkd/checkd/checks"
)

// loadScript reads a connection and its company's active flag in one round
// trip. The company ID is taken from the stored JSON (it is always the
// second field, and user strings cannot forge the unescaped pattern).
// KEYS: conn; ARGV: company key prefix. Returns {conn, active} or nil.
var loadScript = redis.NewScript(`
local c = redis.call('GET', KEYS[1])
if not c then return false end
local co = string.match(c, '"co":"([^"]*)"')
local a = false
if co then a = redis.call('HGET', ARGV[1] .. co, 'active') end
return {c, a}
`)

// CheckTarget is a connection loaded for a check: its state, decrypted
// credentials and the request to hand to the checker. Its raw form lets
// RecordCheck write in one round trip when nothing changed meanwhile.
type CheckTarget struct {
	Connection Connection
	// Skip is why the connection must not be checked now (empty: check it).
	Skip    checks.Skip
	Request checks.Request
	gen     uint64
	raw     string
	rec     *connRec // decoded raw, handed to the first write attempt
}

// LoadCheck loads a connection for a check. The worker runs the checker only
// when Skip is empty.
func (s *Store) LoadCheck(ctx context.Context, connID string) (*CheckTarget, error) {
	if !ValidID(ConnectionIDPrefix, connID) {
		return nil, fmt.Errorf("connection %q: %w", connID, ErrNotFound)
	}
	v, err := s.batch.runCheck(ctx, loadScript, []string{s.kConn(connID)}, s.cfg.Prefix+"co:").Slice()
	if errors.Is(err, redis.Nil) {
		return nil, fmt.Errorf("connection %q: %w", connID, ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("load connection %s: %w", connID, err)
	}
	raw, _ := v[0].(string)
	active, _ := v[1].(string)
	r, err := decodeConn(connID, raw)
	if err != nil {
		return nil, fmt.Errorf("connection %s: %w", connID, err)
	}
	t := &CheckTarget{Connection: r.public(0), gen: r.Gen, raw: raw, rec: r,
		Skip: checks.Eligibility(checks.ConnectionStatus(r.Status), !r.Inactive, active == "1")}
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
// longer checked are dropped, and Recorded says which.
func (s *Store) RecordCheck(ctx context.Context, t *CheckTarget, in CheckResult) (Recorded, error) {
	if err := in.Result.Validate(); err != nil {
		return Recorded{}, fmt.Errorf("%w: %v", ErrInvalid, err)
	}
	ap := checkApply{attempt: shortAttempt(t.Connection.ID, in.Attempt), started: ms(in.StartedAt), finished: ms(in.FinishedAt),
		gen: t.gen, result: in.Result, autoTrack: s.cfg.AutoTrack, newID: func() string { return newShortID(AccountIDPrefix) }}
	var out Recorded
	err := s.updateFrom(ctx, t.Connection.ID, t.raw, t.rec, func(r *connRec) (*mutation, error) {
		out = Recorded{From: checks.ConnectionStatus(r.Status), To: checks.ConnectionStatus(r.Status)}
		oc, trs := applyCheck(r, ap)
		out.Outcome, out.Transitions = oc, len(trs)
		if oc != Applied {
			return nil, nil
		}
		out.To = checks.ConnectionStatus(r.Status)
		m := &mutation{due: dueAfter, dueSince: ap.started, clearQueued: true, check: true,
			history: historyOf(trs, ap.finished, CauseCheck, ap.attempt),
			change:  newChange(EventConnectionUpdated, CauseCheck, ap.finished, trs)}
		if out.To.CredentialBlocked() {
			m.due = dueRemove
		}
		return m, nil
	})
	t.raw, t.rec = "", nil // a second RecordCheck on the same target reads afresh
	return out, err
}
