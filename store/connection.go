package store

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/redis/go-redis/v9"

	"github.com/checkd/checkd/checks"
)

// NewConnection is the input of CreateConnection.
type NewConnection struct {
	CompanyID   string
	Datasource  string
	Name        string
	Credentials checks.Credentials
	// SiteIDs are the customer's sites the connection serves (siteProblems
	// has the rules).
	SiteIDs []string
}

// MaxCredentialLen bounds a credential field.
const MaxCredentialLen = 1024

// MaxCredentialExtra bounds the extra credential fields.
const MaxCredentialExtra = 16

func credentialProblems(c checks.Credentials) []string {
	var problems []string
	if strings.TrimSpace(c.Username) == "" {
		problems = append(problems, "credentials.username is required")
	}
	if len(c.Username) > MaxCredentialLen || len(c.Password) > MaxCredentialLen {
		problems = append(problems, fmt.Sprintf("credentials.username and credentials.password are at most %d bytes each", MaxCredentialLen))
	}
	if len(c.Extra) > MaxCredentialExtra {
		problems = append(problems, fmt.Sprintf("credentials.extra has at most %d entries", MaxCredentialExtra))
	}
	for k, v := range c.Extra {
		if len(k) > MaxCredentialLen || len(v) > MaxCredentialLen {
			problems = append(problems, fmt.Sprintf("credentials.extra keys and values are at most %d bytes each", MaxCredentialLen))
			break
		}
	}
	return problems
}

// ValidateCredentials reports what the store would refuse in c (an error
// wrapping ErrInvalid), so a caller can check before spending something,
// such as a single-use link.
func ValidateCredentials(c checks.Credentials) error {
	if p := credentialProblems(c); len(p) > 0 {
		return fmt.Errorf("%w: %s", ErrInvalid, strings.Join(p, "; "))
	}
	return nil
}

// Validate reports what CreateConnection would refuse in in, apart from
// its company (wrapping ErrInvalid): a caller that must not act on a
// refused connection (spending a single-use link) checks it first.
func (in NewConnection) Validate() error {
	var problems []string
	if in.Datasource == "" {
		problems = append(problems, "datasource is required")
	}
	problems = append(problems, credentialProblems(in.Credentials)...)
	if p := nameProblem(in.Name); p != "" {
		problems = append(problems, p)
	}
	problems = append(problems, siteProblems(in.SiteIDs)...)
	if len(problems) > 0 {
		return fmt.Errorf("%w: %s", ErrInvalid, strings.Join(problems, "; "))
	}
	return nil
}

// CreateConnection stores a new connection of an existing company. It is
// PENDING and due at once (its first check is prompt); under an inactive
// company it is COMPANY_INACTIVE and not due.
func (s *Store) CreateConnection(ctx context.Context, in NewConnection) (Connection, error) {
	if err := in.Validate(); err != nil {
		return Connection{}, err
	}
	for attempt := 0; attempt < maxAttempts; attempt++ {
		co, err := s.GetCompany(ctx, in.CompanyID)
		if err != nil {
			return Connection{}, err
		}
		m, err := s.newConnMutation(in, co)
		if err != nil {
			return Connection{}, err
		}
		r := m.rec
		err = s.commit(ctx, m)
		if errors.Is(err, errCompanyChanged) {
			continue // the company was (de)activated meanwhile: read it again
		}
		if err != nil {
			return Connection{}, err
		}
		var next int64
		if m.due == dueSet {
			next = r.CreatedAt
		}
		return r.public(next), nil
	}
	return Connection{}, fmt.Errorf("create connection: %w", ErrConflict)
}

// newConnMutation builds the creating write of a connection under co: PENDING
// and due at once, or COMPANY_INACTIVE and not due.
func (s *Store) newConnMutation(in NewConnection, co Company) (*mutation, error) {
	now := ms(s.cfg.Clock.Now())
	r := &connRec{ID: newID(ConnectionIDPrefix), CompanyID: co.ID, Datasource: in.Datasource,
		Name: strings.TrimSpace(in.Name), CreatedAt: now, SiteIDs: cloneSites(in.SiteIDs)}
	var err error
	if r.Cred, err = s.seal(r.ID, in.Credentials); err != nil {
		return nil, err
	}
	m := &mutation{rec: r, due: dueSet, dueAt: now, companyActive: "1", sealedWith: s.cfg.Cipher.Fingerprint()}
	setStatus(&r.Status, &r.FirstSeen, &r.LastUpdate, &r.Detail, string(checks.ConnPending), "", now)
	if !co.IsActive {
		m.due, m.companyActive = dueKeep, "0"
		setStatus(&r.Status, &r.FirstSeen, &r.LastUpdate, &r.Detail, string(checks.ConnCompanyInactive), "", now)
	}
	m.history = historyOf([]transition{{to: r.Status}}, now, CauseCreated, "")
	m.event = &Event{Type: EventConnectionCreated, ConnectionID: r.ID, CompanyID: r.CompanyID, Time: fromMS(now),
		Cause: CauseCreated, New: map[string]any{"status": r.Status}}
	return m, nil
}

func (s *Store) seal(connID string, c checks.Credentials) ([]byte, error) {
	pt, err := json.Marshal(sealedCreds{U: c.Username, P: c.Password, X: c.Extra})
	if err != nil {
		return nil, fmt.Errorf("encode credentials: %w", err)
	}
	ct, err := s.cfg.Cipher.Seal(pt, []byte(connID))
	if err != nil {
		return nil, fmt.Errorf("encrypt credentials of %s: %w", connID, err)
	}
	return ct, nil
}

func (s *Store) open(r *connRec) (checks.Credentials, error) {
	pt, err := s.cfg.Cipher.Open(r.Cred, []byte(r.ID))
	if err != nil {
		return checks.Credentials{}, fmt.Errorf("credentials of %s: %w", r.ID, err)
	}
	var c sealedCreds
	// Directly, not through json.Unmarshal: its validating pass would read
	// the plaintext once more; UnmarshalJSON validates what it reads.
	if err := c.UnmarshalJSON(pt); err != nil {
		return checks.Credentials{}, fmt.Errorf("credentials of %s: decode: %w", r.ID, err)
	}
	return checks.Credentials{Username: c.U, Password: c.P, Extra: c.X}, nil
}

// GetConnection returns a connection with its accounts, or ErrNotFound.
func (s *Store) GetConnection(ctx context.Context, id string) (Connection, error) {
	if !ValidID(ConnectionIDPrefix, id) {
		return Connection{}, fmt.Errorf("connection %q: %w", id, ErrNotFound)
	}
	cs, err := s.getConnections(ctx, []string{id})
	if err != nil {
		return Connection{}, err
	}
	if len(cs) == 0 {
		return Connection{}, fmt.Errorf("connection %q: %w", id, ErrNotFound)
	}
	return cs[0], nil
}

// ConnectionCompany returns the ID of the company a connection belongs to
// (ErrNotFound when there is no such connection), with one GET: what the
// API needs to tell whether a key limited to companies may see it.
func (s *Store) ConnectionCompany(ctx context.Context, id string) (string, error) {
	if !ValidID(ConnectionIDPrefix, id) {
		return "", fmt.Errorf("connection %q: %w", id, ErrNotFound)
	}
	raw, err := s.rdb.Get(ctx, s.kConn(id)).Result()
	if errors.Is(err, redis.Nil) {
		return "", fmt.Errorf("connection %q: %w", id, ErrNotFound)
	}
	if err != nil {
		return "", fmt.Errorf("read connection %s: %w", id, err)
	}
	r, err := decodeConn(id, raw)
	if err != nil {
		return "", fmt.Errorf("connection %s: %w", id, err)
	}
	return r.CompanyID, nil
}

// getConnections reads connections and their next check times in one round
// trip; missing ones are left out. The next check is the earlier of an
// on-demand due time and the first weekly slot after the sweep cursor.
func (s *Store) getConnections(ctx context.Context, ids []string) ([]Connection, error) {
	p := s.rdb.Pipeline()
	gets := make([]*redis.StringCmd, len(ids))
	dues := make([]*redis.FloatCmd, len(ids))
	weeks := make([]*redis.FloatCmd, len(ids))
	cursor := p.Get(ctx, s.kCursor())
	for i, id := range ids {
		gets[i] = p.Get(ctx, s.kConn(id))
		dues[i] = p.ZScore(ctx, s.kDue(), id)
		wk, _ := s.kWeek(id)
		weeks[i] = p.ZScore(ctx, wk, id)
	}
	if _, err := p.Exec(ctx); err != nil && !errors.Is(err, redis.Nil) {
		return nil, fmt.Errorf("read connections: %w", err)
	}
	swept, err := cursor.Int64()
	if errors.Is(err, redis.Nil) {
		swept, err = ms(s.cfg.Clock.Now()), nil
	}
	if err != nil {
		return nil, fmt.Errorf("read the sweep cursor: %w", err)
	}
	out := make([]Connection, 0, len(ids))
	for i := range ids {
		raw, err := gets[i].Result()
		if errors.Is(err, redis.Nil) {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("read connection %s: %w", ids[i], err)
		}
		r, err := decodeConn(ids[i], raw)
		if err != nil {
			return nil, fmt.Errorf("connection %s: %w", ids[i], err)
		}
		next := int64(0) // not checked (blocked or inactive)
		if due, err := dues[i].Result(); err == nil {
			next = int64(due)
		}
		if _, err := weeks[i].Result(); err == nil {
			if w := ms(checks.NextSlot(ids[i], fromMS(swept), s.cfg.Interval)); next == 0 || w < next {
				next = w
			}
		}
		out = append(out, r.public(next))
	}
	return out, nil
}

// Page is one page of a listing; Next is the cursor of the following page,
// empty on the last.
type Page struct {
	Connections []Connection `json:"connections"`
	Next        string       `json:"nextCursor,omitempty"`
}

// MaxPageSize bounds a listing page.
const MaxPageSize = 1000

// ListConnections lists a company's connections, in the given statuses (all
// when none), grouped by status in the reference's order and oldest first
// within one. cursor is "" or a Page.Next: it names the last connection
// returned (its status group, creation time and ID), and the next page
// resumes after it, so a connection that stays in its status while a
// client pages is listed exactly once, whatever else changes meanwhile;
// one whose status changes may be listed twice or not at all (listed
// under the old status, then the new). It costs O(limit), not O(N).
func (s *Store) ListConnections(ctx context.Context, companyID string, statuses []checks.ConnectionStatus, cursor string, limit int) (Page, error) {
	return s.ListConnectionsBy(ctx, companyID, ListFilter{Statuses: statuses}, cursor, limit)
}

// ListFilter narrows a listing of a company's connections.
type ListFilter struct {
	// Statuses keeps the connections in one of them (all when empty).
	Statuses []checks.ConnectionStatus
	// SiteID, when set, keeps the connections assigned that site.
	SiteID string
}

// MaxListScan bounds how many connections one page of a listing filtered
// by site reads: a page that reaches it before it is full ends there with
// a cursor to go on from (it may hold fewer connections, even none).
const MaxListScan = 10000

// ListConnectionsBy is ListConnections with a filter. A site filter reads
// the connections in the statuses asked for and keeps the site's, so a
// page costs O(connections read), at most MaxListScan.
func (s *Store) ListConnectionsBy(ctx context.Context, companyID string, f ListFilter, cursor string, limit int) (Page, error) {
	if _, err := s.GetCompany(ctx, companyID); err != nil {
		return Page{}, err
	}
	if limit <= 0 || limit > MaxPageSize {
		limit = MaxPageSize
	}
	statuses := f.Statuses
	if len(statuses) == 0 {
		statuses = checks.ConnectionStatuses
	}
	if f.SiteID != "" && !ValidSiteID(f.SiteID) {
		return Page{}, fmt.Errorf("%w: siteId %q is not a site ID (1 to %d bytes, no control characters)", ErrInvalid, f.SiteID, MaxSiteIDLen)
	}
	at, err := parseCursor(cursor, len(statuses))
	if err != nil {
		return Page{}, err
	}
	var ids []string
	var last listCursor // the last connection taken (or, filtering, read)
	scanned := 0
	for si := at.group; si < len(statuses) && len(ids) < limit; si++ {
		key := s.kIndex(companyID, string(statuses[si]))
		from := at // resume after it in its own group; from the start in the next
		if si != at.group {
			from = listCursor{}
		}
		min := "-inf"
		if from.id != "" {
			min = strconv.FormatInt(from.created, 10)
		}
		for off := int64(0); ; {
			want := int64(limit - len(ids))
			if f.SiteID != "" {
				want = max(want, 200) // most read connections may be of other sites
			}
			got, err := s.rdb.ZRangeByScoreWithScores(ctx, key, &redis.ZRangeBy{Min: min, Max: "+inf", Offset: off, Count: want + 1}).Result()
			if err != nil {
				return Page{}, fmt.Errorf("list connections of %s: %w", companyID, err)
			}
			var keep map[string]bool
			if f.SiteID != "" {
				if keep, err = s.siteMembers(ctx, got, f.SiteID); err != nil {
					return Page{}, err
				}
			}
			for _, z := range got {
				id, _ := z.Member.(string)
				// A sorted set orders equal scores by member: skip the ties
				// at the cursor's creation time up to its ID.
				if from.id != "" && int64(z.Score) == from.created && id <= from.id {
					continue
				}
				if keep != nil && !keep[id] {
					if scanned++; scanned >= MaxListScan && len(ids) < limit { // read enough for one page
						cs, err := s.getConnections(ctx, ids)
						return Page{Connections: cs, Next: listCursor{si, int64(z.Score), id}.String()}, err
					}
					last = listCursor{si, int64(z.Score), id}
					continue
				}
				if len(ids) == limit { // one more exists: the page is full
					cs, err := s.getConnections(ctx, ids)
					return Page{Connections: cs, Next: last.String()}, err
				}
				ids, last = append(ids, id), listCursor{si, int64(z.Score), id}
			}
			if int64(len(got)) <= want { // the group is done
				break
			}
			off += int64(len(got)) // a full batch of which ties were skipped: on after it
		}
	}
	cs, err := s.getConnections(ctx, ids)
	p := Page{Connections: cs}
	if len(ids) == limit && err == nil { // more may follow (the next page may be empty)
		p.Next = last.String()
	}
	return p, err
}

// siteMembers says which of the listed connections are assigned site.
func (s *Store) siteMembers(ctx context.Context, got []redis.Z, site string) (map[string]bool, error) {
	p := s.rdb.Pipeline()
	gets := make([]*redis.StringCmd, len(got))
	for i, z := range got {
		id, _ := z.Member.(string)
		gets[i] = p.Get(ctx, s.kConn(id))
	}
	if _, err := p.Exec(ctx); err != nil && !errors.Is(err, redis.Nil) {
		return nil, fmt.Errorf("read connections: %w", err)
	}
	keep := make(map[string]bool, len(got))
	for i, z := range got {
		id, _ := z.Member.(string)
		raw, err := gets[i].Result()
		if err != nil {
			continue // gone since it was listed
		}
		r, err := decodeConn(id, raw)
		if err != nil {
			return nil, fmt.Errorf("connection %s: %w", id, err)
		}
		keep[id] = r.hasSite(site)
	}
	return keep, nil
}

// listCursor is where a listing page ended: after connection id, created at
// created (its status index score), in the status group-th of the listing.
type listCursor struct {
	group   int
	created int64
	id      string
}

func (c listCursor) String() string { return fmt.Sprintf("%d.%d.%s", c.group, c.created, c.id) }

func parseCursor(c string, n int) (listCursor, error) {
	if c == "" {
		return listCursor{}, nil
	}
	bad := fmt.Errorf("%w: cursor %q is not one this listing returned (start again without a cursor)", ErrInvalid, c)
	parts := strings.Split(c, ".")
	if len(parts) != 3 {
		return listCursor{}, bad
	}
	group, err1 := strconv.Atoi(parts[0])
	created, err2 := strconv.ParseInt(parts[1], 10, 64)
	if err1 != nil || err2 != nil || group < 0 || group >= n || !ValidID(ConnectionIDPrefix, parts[2]) {
		return listCursor{}, bad
	}
	return listCursor{group, created, parts[2]}, nil
}

// bulkBatch is how many connections one pipeline of CreateConnections writes.
const bulkBatch = 500

// CreateConnections creates many connections of one company, pipelined in
// batches (one round trip per batch); each connection is still one atomic
// write with its indexes. It stops at the first error; the connections
// created before it are returned with it.
func (s *Store) CreateConnections(ctx context.Context, companyID string, ins []NewConnection) ([]Connection, error) {
	for i, in := range ins {
		in.CompanyID = companyID
		if err := in.Validate(); err != nil {
			return nil, fmt.Errorf("connection %d: %w", i, err)
		}
	}
	out := make([]Connection, 0, len(ins))
	for start := 0; start < len(ins); start += bulkBatch {
		co, err := s.GetCompany(ctx, companyID)
		if err != nil {
			return out, err
		}
		if err := s.loadCommit(ctx); err != nil {
			return out, err
		}
		batch := ins[start:min(start+bulkBatch, len(ins))]
		p := s.rdb.Pipeline()
		cmds := make([]*redis.Cmd, len(batch))
		recs := make([]*connRec, len(batch))
		for i, in := range batch {
			in.CompanyID = companyID
			m, err := s.newConnMutation(in, co)
			if err != nil {
				return out, err
			}
			recs[i] = m.rec
			if cmds[i], err = s.commitCmd(ctx, p, m); err != nil {
				return out, err
			}
		}
		if _, err := p.Exec(ctx); err != nil && !errors.Is(err, redis.Nil) {
			return out, fmt.Errorf("create connections: %w", err)
		}
		for i, c := range cmds {
			n, err := c.Int()
			if err != nil {
				return out, fmt.Errorf("create connection %d: %w", start+i, err)
			}
			if n != 1 {
				return out, fmt.Errorf("company %s changed during a bulk create; retry the rest: %w", companyID, ErrConflict)
			}
			var next int64
			if co.IsActive {
				next = recs[i].CreatedAt
			}
			out = append(out, recs[i].public(next))
		}
	}
	return out, nil
}
