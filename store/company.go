package store

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/checkd/checkd/checks"
)

// Companies and their activation. A company's active flag gates all its
// connections: SetCompanyActive lowers or raises it, then converts the
// company's connections to or from COMPANY_INACTIVE index by index; every
// write that depends on the flag guards it in its script (a mutation's
// companyActive), and a check's load reads it through a cache kept for
// one company epoch (companyFlags).

// NewCompany is the input of CreateCompany.
type NewCompany struct {
	Name string `json:"name"`
	// AutoTrack, when set, decides for this company whether discovered
	// accounts are tracked at once (Config.AutoTrack otherwise).
	AutoTrack *bool `json:"autoTrack,omitempty"`
}

// CreateCompany stores a new active company.
func (s *Store) CreateCompany(ctx context.Context, in NewCompany) (Company, error) {
	name := strings.TrimSpace(in.Name)
	if name == "" {
		return Company{}, fmt.Errorf("%w: company name is required (at most %d bytes)", ErrInvalid, MaxNameLen)
	}
	if p := nameProblem(name); p != "" {
		return Company{}, fmt.Errorf("%w: company %s", ErrInvalid, p)
	}
	now := s.cfg.Clock.Now().UTC().Truncate(time.Millisecond)
	c := Company{ID: newID(CompanyIDPrefix), Name: name, IsActive: true, CreatedAt: now, AutoTrack: in.AutoTrack}
	fields := []any{"name", c.Name, "active", "1", "ca", ms(now)}
	if in.AutoTrack != nil {
		fields = append(fields, "at", flag(*in.AutoTrack))
	}
	_, err := s.rdb.TxPipelined(ctx, func(p redis.Pipeliner) error {
		p.HSet(ctx, s.kCompany(c.ID), fields...)
		p.ZAdd(ctx, s.kCompanies(), redis.Z{Score: float64(ms(now)), Member: c.ID})
		return nil
	})
	if err != nil {
		return Company{}, fmt.Errorf("create company: %w", err)
	}
	return c, nil
}

// GetCompany returns a company, or ErrNotFound.
func (s *Store) GetCompany(ctx context.Context, id string) (Company, error) {
	if !ValidID(CompanyIDPrefix, id) {
		return Company{}, fmt.Errorf("company %q: %w", id, ErrNotFound)
	}
	m, err := s.rdb.HGetAll(ctx, s.kCompany(id)).Result()
	if err != nil {
		return Company{}, fmt.Errorf("get company %s: %w", id, err)
	}
	if len(m) == 0 {
		return Company{}, fmt.Errorf("company %q: %w", id, ErrNotFound)
	}
	var ca int64
	fmt.Sscan(m["ca"], &ca)
	return Company{ID: id, Name: m["name"], IsActive: m["active"] == "1", CreatedAt: fromMS(ca), AutoTrack: autoTrackFlag(m["at"])}, nil
}

// flag is a bool as a company hash stores it.
func flag(b bool) string {
	if b {
		return "1"
	}
	return "0"
}

// autoTrackFlag reads a company's autoTrack field: nil when it sets none.
func autoTrackFlag(v string) *bool {
	if v == "" {
		return nil
	}
	b := v == "1"
	return &b
}

// ListCompanies returns every company, oldest first.
func (s *Store) ListCompanies(ctx context.Context) ([]Company, error) {
	ids, err := s.rdb.ZRange(ctx, s.kCompanies(), 0, -1).Result()
	if err != nil {
		return nil, fmt.Errorf("list companies: %w", err)
	}
	out := make([]Company, 0, len(ids))
	for _, id := range ids {
		c, err := s.GetCompany(ctx, id)
		if err != nil {
			return nil, err
		}
		out = append(out, c)
	}
	return out, nil
}

// CompanyChange reports a company (de)activation.
type CompanyChange struct {
	Company Company `json:"company"`
	// Connections is how many connections were moved by this call.
	Connections int `json:"connectionsUpdated"`
}

// companyBatch is how many connections one round of SetCompanyActive reads
// and writes: each write is one short script, so Redis serves other clients
// between them.
const companyBatch = 500

// CompanyToggledError reports a company activation change overtaken by a
// later one (another request flipped the flag back meanwhile): the later
// request converts the company's connections; this one stopped, having
// converted some already. It wraps ErrConflict.
type CompanyToggledError struct {
	CompanyID string
}

func (e *CompanyToggledError) Error() string {
	return "company " + e.CompanyID + " was activated or deactivated again by another request while this one ran; " +
		"that request finishes converting its connections (some were converted by this one): read the company to see where it ended"
}

// Unwrap makes the error match ErrConflict.
func (e *CompanyToggledError) Unwrap() error { return ErrConflict }

// SetCompanyActive deactivates or reactivates a company. Deactivation makes
// every connection and account of it COMPANY_INACTIVE (remembering what
// each was) and takes them out of the due index; reactivation restores
// every status (with its statusFirstSeenTime) and tracking decision,
// terminal ones included, and makes the checkable connections due at once
// (the next scheduler ticks pick them up, within the per-tick bound). It
// works in batches, so a company with 100k connections never blocks Redis;
// calling it again finishes an interrupted run.
func (s *Store) SetCompanyActive(ctx context.Context, companyID string, active bool) (CompanyChange, error) {
	if _, err := s.GetCompany(ctx, companyID); err != nil {
		return CompanyChange{}, err
	}
	flag := "0"
	if active {
		flag = "1"
	}
	if err := s.setCompanyFlag(ctx, companyID, flag); err != nil {
		return CompanyChange{}, fmt.Errorf("set company %s active=%v: %w", companyID, active, err)
	}
	var sources []string
	if active {
		sources = []string{string(checks.ConnCompanyInactive)}
	} else {
		for _, st := range checks.ConnectionStatuses {
			if st != checks.ConnCompanyInactive {
				sources = append(sources, string(st))
			}
		}
	}
	out := CompanyChange{}
	for _, st := range sources {
		n, err := s.moveCompany(ctx, companyID, st, flag)
		out.Connections += n
		if err != nil {
			return out, err
		}
	}
	co, err := s.GetCompany(ctx, companyID)
	out.Company = co
	return out, err
}

// setCompanyFlag sets a company's active flag ("1" or "0") and moves the
// company epoch in the same transaction: LoadCheck's cached flags are good
// only while the epoch stands still, so every write of the flag goes
// through here.
func (s *Store) setCompanyFlag(ctx context.Context, companyID, flag string) error {
	_, err := s.rdb.TxPipelined(ctx, func(p redis.Pipeliner) error {
		p.HSet(ctx, s.kCompany(companyID), "active", flag)
		p.Incr(ctx, s.kCompanyEpoch())
		return nil
	})
	return err
}

// moveCompany converts every connection in one status index of a company,
// batch by batch, until the index is empty.
func (s *Store) moveCompany(ctx context.Context, companyID, status, flag string) (int, error) {
	moved, idle := 0, 0
	for {
		ids, err := s.rdb.ZRange(ctx, s.kIndex(companyID, status), 0, companyBatch-1).Result()
		if err != nil {
			return moved, fmt.Errorf("company %s: list %s connections: %w", companyID, status, err)
		}
		if len(ids) == 0 {
			return moved, nil
		}
		keys := make([]string, len(ids))
		for i, id := range ids {
			keys[i] = s.kConn(id)
		}
		raws, err := s.rdb.MGet(ctx, keys...).Result()
		if err != nil {
			return moved, fmt.Errorf("company %s: read connections: %w", companyID, err)
		}
		if err := s.loadCommit(ctx); err != nil { // Redis may have restarted since the last batch
			return moved, err
		}
		now := ms(s.cfg.Clock.Now())
		p := s.rdb.Pipeline()
		var cmds []*redis.Cmd
		for i, v := range raws {
			raw, _ := v.(string)
			if raw == "" {
				continue
			}
			r, err := decodeConn(ids[i], raw)
			if err != nil {
				return moved, err
			}
			oldStatus := r.Status
			m := companyMutation(r, flag == "1", now)
			m.rec, m.oldRaw, m.oldStatus, m.companyActive = r, raw, oldStatus, flag
			cmd, err := s.commitCmd(ctx, p, m)
			if err != nil {
				return moved, err
			}
			cmds = append(cmds, cmd)
		}
		if _, err := p.Exec(ctx); err != nil && !errors.Is(err, redis.Nil) {
			return moved, fmt.Errorf("company %s: write connections: %w", companyID, err)
		}
		progress := 0
		for _, c := range cmds {
			switch n, _ := c.Int(); n {
			case 1:
				progress++
			case -1:
				return moved + progress, &CompanyToggledError{CompanyID: companyID}
			}
		}
		moved += progress
		if progress == 0 { // every write lost a race: read again after a pause
			idle++
			if err := backoff(ctx, 3+idle); err != nil {
				return moved, err
			}
			if idle > maxAttempts {
				return moved, fmt.Errorf("company %s: %w", companyID, ErrConflict)
			}
		}
	}
}

// enterCompanyInactive makes the connection and its accounts
// COMPANY_INACTIVE, saving what each was to restore on reactivation.
func (r *connRec) enterCompanyInactive(now int64, trs []transition) []transition {
	r.save()
	trs = r.move(string(checks.ConnCompanyInactive), "", now, trs)
	for i := range r.Accounts {
		a := &r.Accounts[i]
		if a.Status == string(checks.AcctCompanyInactive) {
			continue
		}
		a.Prev, a.PrevDetail, a.PrevFirst = a.Status, a.Detail, a.FirstSeen
		trs = a.move(string(checks.AcctCompanyInactive), "", now, trs)
	}
	return trs
}

// companyMutation moves one connection and its accounts into or out of
// COMPANY_INACTIVE.
func companyMutation(r *connRec, active bool, now int64) *mutation {
	var trs []transition
	cause := CauseCompanyInactive
	m := &mutation{}
	r.void()
	if !active {
		trs = r.enterCompanyInactive(now, trs)
		m.due = dueRemove
	} else {
		cause = CauseCompanyReactivate
		if r.Inactive { // still deactivated: its own status stays saved
			trs = r.move(string(checks.ConnDeactivated), "", now, trs)
		} else {
			trs = r.restore(now, trs)
		}
		for i := range r.Accounts {
			a := &r.Accounts[i]
			if a.Status != string(checks.AcctCompanyInactive) || a.Prev == "" {
				continue
			}
			prev, detail, first := a.Prev, a.PrevDetail, a.PrevFirst
			a.Prev, a.PrevDetail, a.PrevFirst = "", "", 0
			trs = a.move(prev, detail, now, trs)
			if first > 0 && first < now { // since when it had that status
				a.FirstSeen = first
			}
		}
		if checks.Eligibility(checks.ConnectionStatus(r.Status), !r.Inactive, true) == checks.SkipNone {
			m.due, m.dueAt = dueSet, now
			r.Joined = now // out of the schedule while its company was inactive
		}
	}
	m.history = historyOf(trs, now, cause, "")
	m.event = newEvent(r, EventConnectionUpdated, cause, now, trs)
	return m
}

// companyFlags caches companies' active flags for one company epoch: the
// counter every change of an active flag increments in the same
// transaction (SetCompanyActive). LoadCheck reads the epoch with the record,
// so a flag served from the cache is as current as the script that used
// to read it with the record: a change made before the read bumped the
// epoch and emptied the cache. A company missing from the cache costs one
// HMGET, once per epoch. The cache holds the company's autoTrack too,
// which never changes.
type companyFlags struct {
	mu     sync.Mutex
	epoch  string
	active map[string]companyFlag
}

// companyFlag is what a check's load needs of its company.
type companyFlag struct {
	active    bool
	autoTrack *bool // nil: the store's default
}

// companyActive reports company co's flags as of epoch.
func (s *Store) companyActive(ctx context.Context, co, epoch string) (companyFlag, error) {
	c := &s.coFlags
	c.mu.Lock()
	if c.epoch != epoch || c.active == nil {
		c.epoch, c.active = epoch, map[string]companyFlag{}
	}
	v, ok := c.active[co]
	c.mu.Unlock()
	if ok {
		return v, nil
	}
	vals, err := s.rdb.HMGet(ctx, s.kCompany(co), "active", "at").Result()
	if err != nil {
		return companyFlag{}, fmt.Errorf("company %s: %w", co, err)
	}
	active, _ := vals[0].(string) // nil for a missing company: not active
	at, _ := vals[1].(string)
	v = companyFlag{active: active == "1", autoTrack: autoTrackFlag(at)}
	c.mu.Lock()
	if c.epoch == epoch { // read at or after epoch: good for it
		c.active[co] = v
	}
	c.mu.Unlock()
	return v, nil
}

// companyFlag reads company co's active flag from Redis; a missing company
// is not active.
func (s *Store) companyFlag(ctx context.Context, co string) (bool, error) {
	flag, err := s.rdb.HGet(ctx, s.kCompany(co), "active").Result()
	if err != nil && !errors.Is(err, redis.Nil) {
		return false, fmt.Errorf("company %s: %w", co, err)
	}
	return flag == "1", nil
}
