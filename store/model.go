package store

import (
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"github.com/checkd/checkd/checks"
)

// Company owns connections. An inactive company's connections and accounts
// are COMPANY_INACTIVE and nothing of it is checked.
type Company struct {
	ID        string    `json:"id"`
	Name      string    `json:"name"`
	IsActive  bool      `json:"isActive"`
	CreatedAt time.Time `json:"createdAt"`
	// AutoTrack, when set, says whether the company's discovered accounts
	// are tracked at once (true) or wait for a decision (false); absent,
	// the service's store.autoTrack decides.
	AutoTrack *bool `json:"autoTrack,omitempty"`
}

// Datasource names the provider a connection logs in to; the reference's
// integrators read it as datasource.name.
type Datasource struct {
	Name string `json:"name"`
}

// UnmarshalJSON reads the object, or a bare name (the form requests send).
func (d *Datasource) UnmarshalJSON(b []byte) error {
	if len(b) > 0 && b[0] == '"' {
		return json.Unmarshal(b, &d.Name)
	}
	type plain Datasource
	return json.Unmarshal(b, (*plain)(d))
}

// Connection is a login to a provider's website and the accounts behind it,
// with the reference's status fields. Credentials are never part of it.
type Connection struct {
	ID                   string                  `json:"id"`
	CompanyID            string                  `json:"companyId"`
	Datasource           Datasource              `json:"datasource"`
	Name                 string                  `json:"name,omitempty"`
	IsActive             bool                    `json:"isActive"`
	CreatedAt            time.Time               `json:"createdAt"`
	Status               checks.ConnectionStatus `json:"status"`
	StatusFirstSeenTime  time.Time               `json:"statusFirstSeenTime"`
	StatusLastUpdateTime time.Time               `json:"statusLastUpdateTime"`
	StatusErrorDetail    string                  `json:"statusErrorDetail"`
	LastCheckAt          *time.Time              `json:"lastCheckAt"`
	LastSuccessAt        *time.Time              `json:"lastSuccessAt"`
	NextCheckAt          *time.Time              `json:"nextCheckAt"`
	ConsecutiveFailures  int                     `json:"consecutiveFailures"`
	StartDate            string                  `json:"startDate,omitempty"`
	OccupancyMultiplier  float64                 `json:"occupancyMultiplier,omitempty"`
	CredentialsUpdatedAt *time.Time              `json:"credentialsUpdatedAt,omitempty"`
	// SiteIDs are the customer's sites the connection serves (seed 001's
	// "site assignments"), in the order given.
	SiteIDs []string `json:"siteIds"`
	// LastCheckStatus and LastCheckDetail are the outcome of the last
	// applied check, which the status hides while it is not the check's
	// (UNDER_INVESTIGATION, or after an admin action); empty before the
	// first check.
	LastCheckStatus checks.ConnectionStatus `json:"lastCheckStatus,omitempty"`
	LastCheckDetail string                  `json:"lastCheckDetail,omitempty"`
	// Investigation says who put the connection UNDER_INVESTIGATION; nil
	// when it is not.
	Investigation *Investigation `json:"investigation,omitempty"`
	Accounts      []Account      `json:"accounts"`
}

// Investigation is why a connection is UNDER_INVESTIGATION.
type Investigation struct {
	// By is InvestigationAutomatic (escalated after continued provider
	// failures: a successful check ends it) or InvestigationOperator
	// (flagged by hand: only an operator's clear or new credentials end it).
	By string `json:"by"`
	// Note is the operator's note, or what the automatic escalation found.
	Note string `json:"note"`
	// Since is when the connection became UNDER_INVESTIGATION.
	Since time.Time `json:"since"`
}

// Who put a connection under investigation (Investigation.By).
const (
	InvestigationAutomatic = "automatic"
	InvestigationOperator  = "operator"
)

// Account is one utility account behind a connection.
type Account struct {
	ID                   string                `json:"id"`
	AccountNumber        string                `json:"accountNumber"`
	Name                 string                `json:"name,omitempty"`
	TrackingStatus       checks.TrackingStatus `json:"trackingStatus"`
	Status               checks.AccountStatus  `json:"status"`
	StatusFirstSeenTime  time.Time             `json:"statusFirstSeenTime"`
	StatusLastUpdateTime time.Time             `json:"statusLastUpdateTime"`
	StatusErrorDetail    string                `json:"statusErrorDetail"`
	CreatedAt            time.Time             `json:"createdAt"`
	// DuplicateOf names the account this one duplicates (status DUPLICATE).
	DuplicateOf string `json:"duplicateOf,omitempty"`
}

// HistoryEntry is one status transition of a connection or of one of its
// accounts (AccountID set), with what caused it.
type HistoryEntry struct {
	Time      time.Time `json:"time"`
	AccountID string    `json:"accountId,omitempty"`
	From      string    `json:"from"`
	To        string    `json:"to"`
	Detail    string    `json:"detail,omitempty"`
	Cause     string    `json:"cause"`
	// Actor is who made the change: the API key's name, the console's
	// logged-in user, "link", "check" or "system" (see Origin); entries
	// written before actors were recorded read as "check" for a check,
	// "system" otherwise.
	Actor   string `json:"actor,omitempty"`
	Attempt string `json:"attempt,omitempty"`
}

// Causes of a history entry and of a change event.
const (
	CauseCreated           = "created"
	CauseCheck             = "check"
	CauseDeactivated       = "admin:deactivate"
	CauseReactivated       = "admin:reactivate"
	CauseCompanyInactive   = "admin:company-deactivate"
	CauseCompanyReactivate = "admin:company-reactivate"
	CauseConfirm           = "admin:confirm-accounts"
	CauseCredentials       = "credentials"
	CauseSettings          = "admin:settings"
	CauseInvestigate       = "admin:investigate"
	CauseInvestigateClear  = "admin:investigate-clear"
	CauseAccountFlag       = "admin:account-flag"
)

// connRec is the stored form of a connection: one JSON string per connection
// with short field names and millisecond times, so a connection with two
// accounts stays a few hundred bytes and is replaced in one atomic write.
// Values implied by others are left out (see encode): lastUpdate and each
// account's lastUpdate when equal to lastCheck, lastSuccess while there is
// no failure. It also holds the connection's newest history elements (see
// history.go).
type connRec struct {
	ID          string  `json:"-"` // the key holds it
	CompanyID   string  `json:"co"`
	Datasource  string  `json:"ds"`
	Name        string  `json:"nm,omitempty"`
	CreatedAt   int64   `json:"ca"`
	Inactive    bool    `json:"x,omitempty"`
	Cred        []byte  `json:"cr,omitempty"`
	Status      string  `json:"s"`
	FirstSeen   int64   `json:"fs"`
	LastUpdate  int64   `json:"lu,omitempty"` // 0: equal to LastCheck
	Detail      string  `json:"d,omitempty"`
	LastCheck   int64   `json:"lc,omitempty"`
	LastSuccess int64   `json:"ls,omitempty"`
	Failures    int     `json:"cf,omitempty"`
	Attempt     string  `json:"at,omitempty"` // last applied check attempt
	Started     int64   `json:"st,omitempty"` // start of the last applied check
	Gen         uint64  `json:"g,omitempty"`  // bumped by actions that void checks in flight
	PrevStatus  string  `json:"ps,omitempty"` // status to restore when a system status is lifted
	PrevDetail  string  `json:"pd,omitempty"` // and its statusErrorDetail
	PrevFirst   int64   `json:"pf,omitempty"` // and its statusFirstSeenTime (0: saved before it was kept)
	StartDate   string  `json:"sd,omitempty"` // YYYY-MM-DD: collect bills from this date
	Occupancy   float64 `json:"om,omitempty"` // occupancy multiplier
	CredUpdated int64   `json:"cu,omitempty"` // last credential update
	// Joined is when the connection last came back into the weekly
	// schedule after being out of it (deactivated, blocked on credentials,
	// company inactive); 0: in it since creation. MarkQueued needs it: a
	// slot swept while the connection was out enqueued nothing.
	Joined int64 `json:"sj,omitempty"`
	// SiteIDs are the connection's site assignments.
	SiteIDs []string `json:"si,omitempty"`
	// Esc is who put the connection UNDER_INVESTIGATION: escAuto, escOperator,
	// "" when it is not.
	Esc string `json:"es,omitempty"`
	// ProvFails counts the provider-side errors (checks.ProviderFailure)
	// of the checks in a row up to the last one.
	ProvFails int `json:"pe,omitempty"`
	// LastOut and LastOutDetail are the last applied check's status and
	// detail while the connection's own differ from them ("": equal, or no
	// check yet).
	LastOut       string    `json:"lo,omitempty"`
	LastOutDetail string    `json:"ld,omitempty"`
	Accounts      []acctRec `json:"ac,omitempty"` // only ever appended (history refers to them by index)
	// Hist is the newest history elements in compact form (history.go),
	// kept encoded: only a write that adds an element, and History, decode it.
	Hist json.RawMessage `json:"h,omitempty"`
}

type acctRec struct {
	ID         string `json:"i"`
	Number     string `json:"n"`
	Name       string `json:"nm,omitempty"`
	Tracking   string `json:"t,omitempty"` // "" is UNSET`
	Status     string `json:"s"`
	FirstSeen  int64  `json:"fs"`
	LastUpdate int64  `json:"lu,omitempty"` // 0: equal to the connection's LastCheck
	Detail     string `json:"d,omitempty"`
	CreatedAt  int64  `json:"ca,omitempty"` // 0: equal to FirstSeen (the first status is set at creation)
	Prev       string `json:"ps,omitempty"` // status to restore on company reactivation
	PrevDetail string `json:"pd,omitempty"` // and its statusErrorDetail
	PrevFirst  int64  `json:"pf,omitempty"` // and its statusFirstSeenTime (0: saved before it was kept)
	// Flag* are the status, detail and since an operator's account flag
	// (OLD_ACCOUNT, DUPLICATE) replaced, to restore when it is undone;
	// Dup the account a DUPLICATE duplicates.
	FlagPrev       string `json:"fp,omitempty"`
	FlagPrevDetail string `json:"fd,omitempty"`
	FlagPrevFirst  int64  `json:"ff,omitempty"`
	Dup            string `json:"du,omitempty"`
}

// histRec is one write's transitions: the account ID ("" for the
// connection), from, to and detail of each. It is the JSON of one element
// of the history list; the record keeps its newest ones in a compact form
// (history.go).
type histRec struct {
	T  int64       `json:"t"`
	C  string      `json:"c"`
	A  string      `json:"a,omitempty"`
	B  string      `json:"b,omitempty"` // the actor (Origin.Actor)
	Tr [][4]string `json:"x"`
}

// actor is the element's actor: the stored one, or the one its cause
// implies when none is stored (see impliedActor).
func (h *histRec) actor() string {
	if h.B == "" {
		return impliedActor(h.C)
	}
	return h.B
}

func ms(t time.Time) int64 { return t.UnixMilli() }

func fromMS(v int64) time.Time { return time.UnixMilli(v).UTC() }

func optMS(v int64) *time.Time {
	if v == 0 {
		return nil
	}
	t := fromMS(v)
	return &t
}

func (r *connRec) public(nextCheck int64) Connection {
	c := Connection{
		ID:                   r.ID,
		CompanyID:            r.CompanyID,
		Datasource:           Datasource{Name: r.Datasource},
		Name:                 r.Name,
		IsActive:             !r.Inactive,
		CreatedAt:            fromMS(r.CreatedAt),
		Status:               checks.ConnectionStatus(r.Status),
		StatusFirstSeenTime:  fromMS(r.FirstSeen),
		StatusLastUpdateTime: fromMS(r.LastUpdate),
		StatusErrorDetail:    r.Detail,
		LastCheckAt:          optMS(r.LastCheck),
		LastSuccessAt:        optMS(r.LastSuccess),
		NextCheckAt:          optMS(nextCheck),
		ConsecutiveFailures:  r.Failures,
		StartDate:            r.StartDate,
		OccupancyMultiplier:  r.Occupancy,
		CredentialsUpdatedAt: optMS(r.CredUpdated),
		SiteIDs:              r.SiteIDs,
		Accounts:             make([]Account, len(r.Accounts)),
	}
	if c.SiteIDs == nil {
		c.SiteIDs = []string{}
	}
	if r.LastCheck != 0 {
		c.LastCheckStatus, c.LastCheckDetail = checks.ConnectionStatus(r.Status), r.Detail
		if r.LastOut != "" {
			c.LastCheckStatus, c.LastCheckDetail = checks.ConnectionStatus(r.LastOut), r.LastOutDetail
		}
	}
	if r.Status == string(checks.ConnUnderInvestigation) {
		c.Investigation = &Investigation{By: InvestigationOperator, Note: r.Detail, Since: fromMS(r.FirstSeen)}
		if r.Esc == escAuto {
			c.Investigation.By = InvestigationAutomatic
		}
	}
	for i, a := range r.Accounts {
		c.Accounts[i] = Account{
			ID:                   a.ID,
			AccountNumber:        a.Number,
			Name:                 a.Name,
			TrackingStatus:       a.tracking(),
			Status:               checks.AccountStatus(a.Status),
			StatusFirstSeenTime:  fromMS(a.FirstSeen),
			StatusLastUpdateTime: fromMS(a.LastUpdate),
			StatusErrorDetail:    a.Detail,
			CreatedAt:            fromMS(a.created()),
			DuplicateOf:          a.Dup,
		}
	}
	return c
}

// tracking is the account's tracking decision; stored records leave UNSET
// out to stay small.
func (a *acctRec) tracking() checks.TrackingStatus {
	if a.Tracking == "" {
		return checks.TrackingUnset
	}
	return checks.TrackingStatus(a.Tracking)
}

// created is the account's creation time: stored only once its first
// status has been replaced, before that it is FirstSeen.
func (a *acctRec) created() int64 {
	if a.CreatedAt == 0 {
		return a.FirstSeen
	}
	return a.CreatedAt
}

func (h histRec) public(connID string) []HistoryEntry {
	out := make([]HistoryEntry, len(h.Tr))
	for i, tr := range h.Tr {
		out[i] = HistoryEntry{Time: fromMS(h.T), AccountID: tr[0], From: tr[1], To: tr[2], Detail: tr[3], Cause: h.C,
			Actor: h.actor(), Attempt: longAttempt(connID, h.A)}
	}
	return out
}

// attemptPrefix is how a check task ID of connID starts; stored attempts
// drop it (it is implied by the record) to keep records small.
func attemptPrefix(connID string) string { return "check:" + connID + ":" }

func shortAttempt(connID, a string) string {
	if rest, ok := strings.CutPrefix(a, attemptPrefix(connID)); ok {
		return ":" + rest
	}
	return a
}

func longAttempt(connID, a string) string {
	if rest, ok := strings.CutPrefix(a, ":"); ok {
		return attemptPrefix(connID) + rest
	}
	return a
}

// sealedCreds is the plaintext that is encrypted, stored as a JSON array
// (username, password[, extra]) since it sits in every record.
type sealedCreds struct {
	U string
	P string
	X map[string]string
}

// MarshalJSON writes [username, password] or [username, password, extra].
func (c sealedCreds) MarshalJSON() ([]byte, error) {
	if len(c.X) > 0 {
		return json.Marshal([]any{c.U, c.P, c.X})
	}
	return json.Marshal([]string{c.U, c.P})
}

// UnmarshalJSON reads what MarshalJSON writes. The usual two plain
// strings are read without encoding/json (its reflection was most of the
// time a check spent opening its credentials: BENCHMARKS.md, "Sealed
// credentials"); anything else goes to it, with the same result.
func (c *sealedCreds) UnmarshalJSON(b []byte) error {
	d := decoder{s: string(b)}
	var u, p string
	if d.eat('[') && d.str(&u) && d.eat(',') && d.str(&p) && d.eat(']') && d.i == len(d.s) {
		c.U, c.P = u, p
		return nil
	}
	var parts []json.RawMessage
	if err := json.Unmarshal(b, &parts); err != nil {
		return err
	}
	if len(parts) < 2 || len(parts) > 3 {
		return fmt.Errorf("sealed credentials have %d parts, want 2 or 3", len(parts))
	}
	if err := json.Unmarshal(parts[0], &c.U); err != nil {
		return err
	}
	if err := json.Unmarshal(parts[1], &c.P); err != nil {
		return err
	}
	if len(parts) == 3 {
		return json.Unmarshal(parts[2], &c.X)
	}
	return nil
}
