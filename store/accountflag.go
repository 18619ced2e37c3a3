package store

import (
	"context"
	"fmt"
	"strings"

	"github.com/redis/go-redis/v9"

	"github.com/checkd/checkd/checks"
)

// AccountFlag is an operator's flag on one account: Status OLD_ACCOUNT (the
// account is closed) or DUPLICATE (DuplicateOf names the account it
// duplicates), or "" to undo a flag.
type AccountFlag struct {
	AccountID   string
	Status      checks.AccountStatus
	DuplicateOf string
}

// FlagAccount sets or undoes an operator's flag on an account. OLD_ACCOUNT
// and DUPLICATE are terminal: the account is never pulled and checks leave
// it alone. Undoing brings back the status, detail and since the flag
// replaced (as reactivation restores). A DUPLICATE must name another
// account of the same connection or of another connection of the same
// company that is not itself a DUPLICATE. Refused (ErrInvalid) for an
// unknown account, a status other than those, an undo of an account not
// flagged; (ErrNotAllowed) while the company is inactive.
func (s *Store) FlagAccount(ctx context.Context, connID string, f AccountFlag) (Change, error) {
	switch f.Status {
	case "", checks.AcctOldAccount:
		if f.DuplicateOf != "" {
			return Change{}, fmt.Errorf("%w: duplicateOf goes only with status DUPLICATE", ErrInvalid)
		}
	case checks.AcctDuplicate:
		if f.DuplicateOf == "" {
			return Change{}, fmt.Errorf("%w: status DUPLICATE needs duplicateOf, the account it duplicates", ErrInvalid)
		}
		if f.DuplicateOf == f.AccountID {
			return Change{}, fmt.Errorf("%w: an account cannot duplicate itself", ErrInvalid)
		}
	default:
		return Change{}, fmt.Errorf("%w: an account flag is OLD_ACCOUNT or DUPLICATE (or null to undo one), not %q", ErrInvalid, f.Status)
	}
	if !ValidID(ConnectionIDPrefix, connID) {
		return Change{}, fmt.Errorf("connection %q: %w", connID, ErrNotFound)
	}
	// The original of a duplicate on another connection is checked before
	// the write; a race with that account's own flag is an operator's
	// doing twice at once, and undoing one is always possible.
	var other *acctRec
	return s.adminWrite(ctx, connID, CauseAccountFlag, func(r *connRec, now int64, m *mutation) ([]transition, error) {
		if r.Status == string(checks.ConnCompanyInactive) {
			return nil, fmt.Errorf("%w: the company of connection %s is inactive; reactivate it first", ErrNotAllowed, connID)
		}
		a := r.account(f.AccountID)
		if a == nil {
			return nil, fmt.Errorf("%w: account %q is not an account of connection %s", ErrInvalid, f.AccountID, connID)
		}
		if f.Status == "" {
			if a.FlagPrev == "" {
				return nil, fmt.Errorf("%w: account %s is not flagged OLD_ACCOUNT or DUPLICATE by an operator; nothing to undo", ErrInvalid, a.ID)
			}
			prev, detail, first := a.FlagPrev, a.FlagPrevDetail, a.FlagPrevFirst
			a.FlagPrev, a.FlagPrevDetail, a.FlagPrevFirst, a.Dup = "", "", 0, ""
			trs := a.move(prev, detail, now, nil)
			if len(trs) > 0 && first > 0 && first < now { // since when it had that status
				a.FirstSeen = first
			}
			return trs, nil
		}
		if f.Status == checks.AcctDuplicate {
			orig := r.account(f.DuplicateOf)
			if orig == nil && other == nil {
				var err error
				if other, err = s.companyAccount(ctx, r.CompanyID, f.DuplicateOf); err != nil {
					return nil, err
				}
			}
			if orig == nil {
				orig = other
			}
			if orig.Status == string(checks.AcctDuplicate) {
				return nil, fmt.Errorf("%w: account %s is itself a DUPLICATE (of %s); name the account it duplicates", ErrInvalid, orig.ID, orig.Dup)
			}
		}
		if a.Status == string(f.Status) && a.Dup == f.DuplicateOf {
			return nil, nil // flagged so already
		}
		if a.FlagPrev == "" { // the first flag keeps what to restore
			a.FlagPrev, a.FlagPrevDetail, a.FlagPrevFirst = a.Status, a.Detail, a.FirstSeen
		}
		a.Dup = f.DuplicateOf
		detail := ""
		if f.Status == checks.AcctDuplicate {
			detail = "duplicate of account " + f.DuplicateOf
		}
		trs := a.move(string(f.Status), detail, now, nil)
		if len(trs) == 0 { // DUPLICATE of another account: a new detail only
			m.event = &Event{Type: EventConnectionUpdated, ConnectionID: r.ID, CompanyID: r.CompanyID, Time: fromMS(now),
				Cause: CauseAccountFlag, ProtectedChanges: []string{"accounts"}}
		}
		return trs, nil
	})
}

// account is the record's account id, nil if it has none.
func (r *connRec) account(id string) *acctRec {
	for i := range r.Accounts {
		if r.Accounts[i].ID == id {
			return &r.Accounts[i]
		}
	}
	return nil
}

// companyAccount finds account id among the company's connections (reading
// them all: an operator's action, not a check's), refusing one that is not
// there (ErrInvalid).
func (s *Store) companyAccount(ctx context.Context, companyID, id string) (*acctRec, error) {
	if !strings.HasPrefix(id, AccountIDPrefix) || len(id) > 64 {
		return nil, fmt.Errorf("%w: duplicateOf %q is not an account ID", ErrInvalid, id)
	}
	p := s.rdb.Pipeline()
	ranges := make([]*redis.StringSliceCmd, len(checks.ConnectionStatuses))
	for i, st := range checks.ConnectionStatuses {
		ranges[i] = p.ZRange(ctx, s.kIndex(companyID, string(st)), 0, -1)
	}
	if _, err := p.Exec(ctx); err != nil {
		return nil, fmt.Errorf("list connections of %s: %w", companyID, err)
	}
	for _, rg := range ranges {
		ids := rg.Val()
		for start := 0; start < len(ids); start += bulkBatch {
			batch := ids[start:min(start+bulkBatch, len(ids))]
			vals, err := s.rdb.MGet(ctx, s.connKeys(batch)...).Result()
			if err != nil {
				return nil, fmt.Errorf("read connections of %s: %w", companyID, err)
			}
			for i, v := range vals {
				raw, ok := v.(string)
				if !ok {
					continue
				}
				r, err := decodeConn(batch[i], raw)
				if err != nil {
					return nil, fmt.Errorf("connection %s: %w", batch[i], err)
				}
				if a := r.account(id); a != nil {
					return a, nil
				}
			}
		}
	}
	return nil, fmt.Errorf("%w: duplicateOf %s is not an account of company %s", ErrInvalid, id, companyID)
}

func (s *Store) connKeys(ids []string) []string {
	keys := make([]string, len(ids))
	for i, id := range ids {
		keys[i] = s.kConn(id)
	}
	return keys
}
