package store

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/redis/go-redis/v9"

	"github.com/checkd/checkd/internal/jsontext"
)

// A connection's history is one element (histRec) per write that made
// status transitions. The newest recordHistory elements are kept in the
// connection's record (field "h", compact form below); a write that adds
// one beyond that spills the oldest record-held element to the list
// P h:<conn> (histRec JSON, newest first) in the same commit script call,
// and the list is trimmed to Config.HistoryLimit − recordHistory elements,
// so record and list together keep at most Config.HistoryLimit elements.
// (With HistoryLimit ≤ recordHistory the record keeps HistoryLimit
// elements and spilled ones are dropped.)
// A record without "h" (written before this layout) has its whole history
// in the list; its new elements go into the record, and its list is trimmed
// to the new bound at its first spill (until then it may keep up to
// recordHistory elements more).
//
// Compact form of "h": a JSON array, newest element first. An element is
//
//   - a number n: the creation element (time createdAt, cause "created",
//     one connection transition from "" to status code n, no detail);
//   - an array [dt, cause, attempt, tr...], where dt is the element's time
//     less createdAt in ms; cause a code of causeCodes or the cause itself,
//     or [cause, actor] for a change made with an actor (Origin);
//     attempt, left out when there is none, a number d for the check
//     attempt ":<T−d>" (a check task's short ID ends with its slot in ms,
//     so d is how long after its slot the check finished) or the short
//     attempt string; and each tr is [subject, from, to] or [subject,
//     from, to, detail], with subject 0 for the connection, k ≥ 1 for the
//     record's k-th account (accounts are only ever appended, so k stays
//     valid) or an account ID, and from and to a code of statusCodes or
//     the status itself.
//
// A two-account connection after its first check (created, then PENDING →
// CONNECTED with two accounts DETECTED, finished 62 s after creation and
// 2 s after its slot) holds "h":[[62000,0,2000,[0,1,2],[1,0,3],[2,0,3]],1]:
// 42 bytes, where the list form of the same two elements is 218 bytes of
// JSON, in a list key of its own (BENCHMARKS.md has what each costs).

// recordHistory (K) is how many of a connection's newest history elements
// its record keeps. K = 4 keeps the usual life of a connection (created,
// first check, confirmation, first pulls) in its record, whose size stays
// in the same allocation classes, with no list key, which would cost more
// than the elements it holds (BENCHMARKS.md, "History in the record", has
// the sizes measured). Past that, elements are mostly status flaps (error
// details are repeated per account), which a list stores about as
// compactly as the record, so a larger K would only grow the record every
// check reads and rewrites.
const recordHistory = 4

// statusCodes numbers the statuses a compact history element refers to.
// Append only: stored records use these numbers. Statuses not listed are
// stored as strings.
var statusCodes = []string{
	"", "PENDING", "CONNECTED", "DETECTED", "ONBOARDED", "PULL_COMPLETED",
	"WEBSITE_DOWN", "WORKFLOW_NOT_ACCESSIBLE", "COMPANY_INACTIVE", "DEACTIVATED",
	"PASSWORD_INCORRECT", "MFA_TOKEN_EXPIRED", "NEW_PASSWORD_NEEDED", "ADDITIONAL_CREDENTIALS_NEEDED",
	"URL_INACCESSIBLE", "NO_ACCOUNTS_FOUND", "OTHER_ERROR", "UNDER_INVESTIGATION",
	"NO_DOCUMENTS_FOUND", "PDF_DOWNLOAD_FAILED", "ACCOUNT_NOT_FOUND", "OLD_ACCOUNT",
	"DUPLICATE", "CUSTOMER_NOT_TRACKED",
}

// causeCodes numbers the causes of history elements. Append only, as
// statusCodes.
var causeCodes = []string{
	CauseCheck, CauseCreated, CauseDeactivated, CauseReactivated, CauseCompanyInactive,
	CauseCompanyReactivate, CauseConfirm, CauseCredentials, CauseSettings,
}

var statusIndex, causeIndex = indexOf(statusCodes), indexOf(causeCodes)

func indexOf(codes []string) map[string]int {
	m := make(map[string]int, len(codes))
	for i, c := range codes {
		m[c] = i
	}
	return m
}

// historySplit is how many history elements a record keeps and how many
// its list keeps, out of Config.HistoryLimit.
func (s *Store) historySplit() (inRecord, inList int) {
	inRecord = min(recordHistory, s.cfg.HistoryLimit)
	return inRecord, s.cfg.HistoryLimit - inRecord
}

// addHistory puts h in r's history as its newest element and returns the
// elements that no longer fit in the record (at most keep stay), newest
// first. The elements kept are copied as stored, undecoded: a stored
// element depends only on createdAt and the order of the accounts, which
// never change.
func (r *connRec) addHistory(h histRec, keep int) ([]histRec, error) {
	old, err := splitArray(r.Hist)
	if err != nil {
		return nil, fmt.Errorf("decode record history: %w", err)
	}
	var spill []histRec
	if keep <= 0 {
		spill = append(spill, h)
	}
	if n := max(keep-1, 0); len(old) > n {
		for i, raw := range old[n:] {
			var e histRec
			if err := r.decodeElem(raw, &e); err != nil {
				return nil, fmt.Errorf("decode record history element %d: %w", n+i, err)
			}
			spill = append(spill, e)
		}
		old = old[:n]
	}
	b := make([]byte, 0, len(r.Hist)+64)
	b = append(b, '[')
	if keep > 0 {
		b = r.appendElem(b, &h)
	}
	for _, raw := range old {
		b = append(append(b, ','), raw...)
	}
	r.Hist = append(b, ']')
	return spill, nil
}

// history decodes the elements r holds, newest first.
func (r *connRec) history() ([]histRec, error) {
	raws, err := splitArray(r.Hist)
	if err != nil {
		return nil, fmt.Errorf("decode record history: %w", err)
	}
	if len(raws) == 0 {
		return nil, nil
	}
	out := make([]histRec, len(raws))
	for i, raw := range raws {
		if err := r.decodeElem(raw, &out[i]); err != nil {
			return nil, fmt.Errorf("decode record history element %d: %w", i, err)
		}
	}
	return out, nil
}

// appendHistory appends the compact form of elems (newest first) to dst.
func (r *connRec) appendHistory(dst []byte, elems []histRec) []byte {
	dst = append(dst, '[')
	for i := range elems {
		if i > 0 {
			dst = append(dst, ',')
		}
		dst = r.appendElem(dst, &elems[i])
	}
	return append(dst, ']')
}

func (r *connRec) appendElem(dst []byte, h *histRec) []byte {
	if h.C == CauseCreated && h.T == r.CreatedAt && h.A == "" && h.B == "" && len(h.Tr) == 1 &&
		h.Tr[0][0] == "" && h.Tr[0][1] == "" && h.Tr[0][3] == "" {
		if c := statusIndex[h.Tr[0][2]]; c > 0 {
			return strconv.AppendInt(dst, int64(c), 10)
		}
	}
	dst = append(dst, '[')
	dst = strconv.AppendInt(dst, h.T-r.CreatedAt, 10)
	dst = append(dst, ',')
	if h.B != "" {
		dst = append(appendCode(append(dst, '['), causeIndex, h.C), ',')
		dst = append(jsontext.AppendString(dst, h.B), ']')
	} else {
		dst = appendCode(dst, causeIndex, h.C)
	}
	if h.A != "" {
		dst = append(dst, ',')
		if slot, ok := slotAttempt(h.A); ok {
			dst = strconv.AppendInt(dst, h.T-slot, 10)
		} else {
			dst = jsontext.AppendString(dst, h.A)
		}
	}
	for _, tr := range h.Tr {
		dst = append(dst, ",["...)
		if tr[0] == "" {
			dst = append(dst, '0')
		} else if k := r.accountIndex(tr[0]); k >= 0 {
			dst = strconv.AppendInt(dst, int64(k+1), 10)
		} else {
			dst = jsontext.AppendString(dst, tr[0])
		}
		dst = append(dst, ',')
		dst = appendCode(dst, statusIndex, tr[1])
		dst = append(dst, ',')
		dst = appendCode(dst, statusIndex, tr[2])
		if tr[3] != "" {
			dst = append(dst, ',')
			dst = jsontext.AppendString(dst, tr[3])
		}
		dst = append(dst, ']')
	}
	return append(dst, ']')
}

func (r *connRec) decodeElem(raw []byte, h *histRec) error {
	if len(raw) == 0 {
		return errors.New("empty element")
	}
	if raw[0] != '[' { // the creation element: a status code
		c, err := strconv.Atoi(string(raw))
		if err != nil || c < 0 || c >= len(statusCodes) {
			return fmt.Errorf("element %s is neither an array nor a status code", raw)
		}
		*h = histRec{T: r.CreatedAt, C: CauseCreated, Tr: [][4]string{{"", "", statusCodes[c], ""}}}
		return nil
	}
	var buf [8][]byte
	items, err := jsontext.SplitArray(raw, buf[:0])
	if err != nil {
		return err
	}
	if len(items) < 2 {
		return fmt.Errorf("%d items, want 2 or more", len(items))
	}
	dt, err := strconv.ParseInt(string(items[0]), 10, 64)
	if err != nil {
		return fmt.Errorf("time: %w", err)
	}
	*h = histRec{T: r.CreatedAt + dt}
	if err := decodeCause(items[1], h); err != nil {
		return fmt.Errorf("cause: %w", err)
	}
	rest := items[2:]
	if len(rest) > 0 && rest[0][0] != '[' {
		if rest[0][0] == '"' {
			h.A, err = jsontext.DecodeString(rest[0])
		} else {
			var d int64
			d, err = strconv.ParseInt(string(rest[0]), 10, 64)
			h.A = ":" + strconv.FormatInt(h.T-d, 10)
		}
		if err != nil {
			return fmt.Errorf("attempt: %w", err)
		}
		rest = rest[1:]
	}
	if len(rest) > 0 {
		h.Tr = make([][4]string, len(rest))
	}
	for i, raw := range rest {
		if err := r.decodeTransition(raw, &h.Tr[i]); err != nil {
			return fmt.Errorf("transition %d: %w", i, err)
		}
	}
	return nil
}

// decodeCause reads an element's cause item: a cause code or string, or
// [cause, actor].
func decodeCause(raw []byte, h *histRec) error {
	if raw[0] != '[' {
		var err error
		h.C, err = decodeCode(causeCodes, raw)
		return err
	}
	var buf [2][]byte
	parts, err := jsontext.SplitArray(raw, buf[:0])
	if err != nil {
		return err
	}
	if len(parts) != 2 || parts[1][0] != '"' {
		return fmt.Errorf("%.40s is not [cause, actor]", raw)
	}
	if h.C, err = decodeCode(causeCodes, parts[0]); err != nil {
		return err
	}
	h.B, err = jsontext.DecodeString(parts[1])
	return err
}

func (r *connRec) decodeTransition(raw []byte, tr *[4]string) error {
	if raw[0] != '[' {
		return fmt.Errorf("%s is not an array", raw)
	}
	var buf [4][]byte
	parts, err := jsontext.SplitArray(raw, buf[:0])
	if err != nil {
		return err
	}
	if len(parts) < 3 || len(parts) > 4 {
		return fmt.Errorf("%d parts, want 3 or 4", len(parts))
	}
	if parts[0][0] == '"' {
		if tr[0], err = jsontext.DecodeString(parts[0]); err != nil {
			return err
		}
	} else {
		k, err := strconv.Atoi(string(parts[0]))
		if err != nil || k < 0 || k > len(r.Accounts) {
			return fmt.Errorf("subject %s is not the connection or one of its %d accounts", parts[0], len(r.Accounts))
		}
		if k > 0 {
			tr[0] = r.Accounts[k-1].ID
		}
	}
	if tr[1], err = decodeCode(statusCodes, parts[1]); err != nil {
		return fmt.Errorf("from: %w", err)
	}
	if tr[2], err = decodeCode(statusCodes, parts[2]); err != nil {
		return fmt.Errorf("to: %w", err)
	}
	if len(parts) == 4 {
		if parts[3][0] != '"' {
			return fmt.Errorf("detail %s is not a string", parts[3])
		}
		if tr[3], err = jsontext.DecodeString(parts[3]); err != nil {
			return fmt.Errorf("detail: %w", err)
		}
	}
	return nil
}

// splitArray returns the values of the JSON array b ([] when b is empty),
// as slices of b.
func splitArray(b []byte) ([][]byte, error) {
	if len(b) == 0 {
		return nil, nil
	}
	return jsontext.SplitArray(b, make([][]byte, 0, recordHistory+1))
}

func (r *connRec) accountIndex(id string) int {
	for i := range r.Accounts {
		if r.Accounts[i].ID == id {
			return i
		}
	}
	return -1
}

// slotAttempt reports the slot of a short check attempt ":<slot ms>",
// written canonically (so that it reads back the same).
func slotAttempt(a string) (int64, bool) {
	rest, ok := strings.CutPrefix(a, ":")
	if !ok {
		return 0, false
	}
	v, err := strconv.ParseInt(rest, 10, 64)
	// Bounded far beyond any time in ms, so T − slot cannot overflow.
	if err != nil || strconv.FormatInt(v, 10) != rest || v > 1<<52 || v < -1<<52 {
		return 0, false
	}
	return v, true
}

func appendCode(dst []byte, index map[string]int, s string) []byte {
	if c, ok := index[s]; ok {
		return strconv.AppendInt(dst, int64(c), 10)
	}
	return jsontext.AppendString(dst, s)
}

func decodeCode(codes []string, raw []byte) (string, error) {
	if raw[0] == '"' {
		return jsontext.DecodeString(raw)
	}
	c, err := strconv.Atoi(string(raw))
	if err != nil || c < 0 || c >= len(codes) {
		return "", fmt.Errorf("unknown code %s", raw)
	}
	return codes[c], nil
}

// historyOf is the history element of one write, nil when it made no
// transition.
func historyOf(trs []transition, t int64, cause, attempt string) *histRec {
	if len(trs) == 0 {
		return nil
	}
	h := &histRec{T: t, C: cause, A: attempt, Tr: make([][4]string, len(trs))}
	for i, tr := range trs {
		h.Tr[i] = [4]string{tr.acct, tr.from, tr.to, tr.detail}
	}
	return h
}

// History returns a connection's transitions, newest first: those of the
// elements its record holds, then those of its history list; up to limit
// of them, or every one it keeps when limit is 0 (Config.HistoryLimit
// counts elements, one per write, and a write may hold several
// transitions: the connection's and each account's). Record and list are
// read in one transaction, so an element spilled from the record meanwhile
// is seen exactly once.
func (s *Store) History(ctx context.Context, connID string, limit int) ([]HistoryEntry, error) {
	if limit < 0 {
		limit = 0
	}
	if !ValidID(ConnectionIDPrefix, connID) {
		return nil, fmt.Errorf("connection %q: %w", connID, ErrNotFound)
	}
	// Every element has one transition or more: limit elements suffice.
	keep := int64(s.cfg.HistoryLimit)
	if limit > 0 {
		keep = min(keep, int64(limit))
	}
	var get *redis.StringCmd
	var list *redis.StringSliceCmd
	_, err := s.rdb.TxPipelined(ctx, func(p redis.Pipeliner) error {
		get = p.Get(ctx, s.kConn(connID))
		list = p.LRange(ctx, s.kHistory(connID), 0, keep-1)
		return nil
	})
	if err != nil && !errors.Is(err, redis.Nil) {
		return nil, fmt.Errorf("history of %s: %w", connID, err)
	}
	raw, err := get.Result()
	if errors.Is(err, redis.Nil) {
		return nil, fmt.Errorf("connection %q: %w", connID, ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("history of %s: %w", connID, err)
	}
	r, err := decodeConn(connID, raw)
	if err != nil {
		return nil, fmt.Errorf("connection %s: %w", connID, err)
	}
	elems, err := r.history()
	if err != nil {
		return nil, fmt.Errorf("history of %s: %w", connID, err)
	}
	out := make([]HistoryEntry, 0, 8)
	full := func() bool { return limit > 0 && len(out) >= limit }
	// Newest first: a write's transitions are stored oldest first.
	add := func(h histRec) bool {
		es := h.public(connID)
		for i := len(es) - 1; i >= 0 && !full(); i-- {
			out = append(out, es[i])
		}
		return !full()
	}
	for _, h := range elems {
		if !add(h) {
			return out, nil
		}
	}
	for _, raw := range list.Val() {
		var h histRec
		if err := json.Unmarshal([]byte(raw), &h); err != nil {
			return nil, fmt.Errorf("history of %s: decode entry: %w", connID, err)
		}
		if !add(h) {
			break
		}
	}
	return out, nil
}
