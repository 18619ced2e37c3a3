package api

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/checkd/checkd/checks"
	"github.com/checkd/checkd/internal/link"
	"github.com/checkd/checkd/internal/tasks"
	"github.com/checkd/checkd/scheduler"
	"github.com/checkd/checkd/store"
)

// DetailsRequest is the body of PATCH /v1/connection/{connectionId}/details.
// Absent (or null) fields are left alone; at least one is required.
type DetailsRequest struct {
	IsActive            *bool    `json:"isActive,omitempty"`
	Name                *string  `json:"name,omitempty"`
	StartDate           *string  `json:"startDate,omitempty"` // YYYY-MM-DD, "" clears it
	OccupancyMultiplier *float64 `json:"occupancyMultiplier,omitempty"`
	// SiteIDs replaces the site assignments; [] clears them.
	SiteIDs *[]string `json:"siteIds,omitempty"`
}

// CompanyRequest is the body of PATCH /v1/company/{companyId}.
type CompanyRequest struct {
	IsActive *bool `json:"isActive"`
}

// CompanyChangeResponse answers PATCH /v1/company/{companyId}: 200 with the
// company and the connections converted, or 202 with InProgress set when
// the conversion had not finished by the request's deadline
// (Config.RequestTimeout; a large company). It then goes on in the background
// (the company's connections show where it is); should it stop (the
// process stopped, Redis failed), the same PATCH finishes it.
type CompanyChangeResponse struct {
	store.CompanyChange
	InProgress bool `json:"inProgress,omitempty"`
}

// AccountsRequest is the body of PATCH /v1/connection/{connectionId}/status:
// either a tracking decision (ENABLED or DISABLED) per account, or an
// operator's flag on one account: accountId with status OLD_ACCOUNT or
// DUPLICATE (duplicateOf naming the account it duplicates), or status null
// to undo the flag.
type AccountsRequest struct {
	Accounts    []store.AccountDecision `json:"accounts,omitempty"`
	AccountID   string                  `json:"accountId,omitempty"`
	Status      OptionalStatus          `json:"status,omitzero"`
	DuplicateOf string                  `json:"duplicateOf,omitempty"`
}

// OptionalStatus is a field that may be absent, null or a status: Set says
// it was given, Value is nil for null.
type OptionalStatus struct {
	Set   bool
	Value *string
}

// UnmarshalJSON reads null or a string; encoding/json calls it only for a
// field that is present.
func (o *OptionalStatus) UnmarshalJSON(b []byte) error {
	o.Set = true
	if string(b) == "null" {
		o.Value = nil
		return nil
	}
	var v string
	if err := json.Unmarshal(b, &v); err != nil {
		return err
	}
	o.Value = &v
	return nil
}

// MarshalJSON writes null or the status (for clients such as checkctl).
func (o OptionalStatus) MarshalJSON() ([]byte, error) { return json.Marshal(o.Value) }

// IsZero makes an absent status stay absent with omitzero.
func (o OptionalStatus) IsZero() bool { return !o.Set }

// InvestigationRequest is the body of POST
// /v1/connection/{connectionId}/investigation.
type InvestigationRequest struct {
	Note string `json:"note"`
}

// CredentialsRequest is the body of PATCH
// /v1/connection/{connectionId}/credentials.
type CredentialsRequest struct {
	Credentials *checks.Credentials `json:"credentials"`
}

// LinkCredentialsRequest is the body of PATCH /v1/link/credentials: the
// link's token and the new credentials.
type LinkCredentialsRequest struct {
	Token       string              `json:"token"`
	Credentials *checks.Credentials `json:"credentials"`
}

// ConnectionChange is the answer of an admin write that may enqueue a check:
// the connection as GET details shows it, and whether a check was enqueued.
type ConnectionChange struct {
	Connection
	// CheckEnqueued: a check was enqueued on the critical queue.
	CheckEnqueued bool `json:"checkEnqueued"`
	// CheckTaskID is the enqueued check's task ID.
	CheckTaskID string `json:"checkTaskId,omitempty"`
	// CheckNote says why no check was enqueued when the change asked for
	// one (one already queued, no task queue configured, queue unavailable).
	CheckNote string `json:"checkNote,omitempty"`
}

// RefreshResult is the answer of POST /v1/connection/{connectionId}/refresh.
type RefreshResult struct {
	Enqueued bool   `json:"enqueued"`
	TaskID   string `json:"taskId,omitempty"`
	Reason   string `json:"reason,omitempty"`
}

// LinkConnectionRequest is the body of POST /v1/link/connection: a
// new-connection link's token and the connection to add to its company.
type LinkConnectionRequest struct {
	Token       string              `json:"token"`
	Datasource  DatasourceName      `json:"datasource"`
	Name        string              `json:"name,omitempty"`
	Credentials *checks.Credentials `json:"credentials"`
	// SiteIDs are the sites the new connection serves.
	SiteIDs []string `json:"siteIds,omitempty"`
}

// LinkResponse is the answer of POST /v1/connection/{connectionId}/link (a
// credential-update link: ConnectionID set) and of
// /v1/connection/company/{companyId}/link (a new-connection link: CompanyID
// set). The token is a secret: hand URL to the end user only.
type LinkResponse struct {
	ConnectionID string    `json:"connectionId,omitempty"`
	CompanyID    string    `json:"companyId,omitempty"`
	URL          string    `json:"url"`
	Token        string    `json:"token"`
	ExpiresAt    time.Time `json:"expiresAt"`
}

// LinkResult is the answer of PATCH /v1/link/credentials and POST
// /v1/link/connection. It tells the link's user only what they need, not
// the connection's details. A new connection is checked on the
// scheduler's next tick (CheckEnqueued false), like one created with the
// API key.
type LinkResult struct {
	ConnectionID      string                  `json:"connectionId"`
	Status            checks.ConnectionStatus `json:"status"`
	StatusDisplayName string                  `json:"statusDisplayName"`
	CheckEnqueued     bool                    `json:"checkEnqueued"`
}

// QueueStats is one queue in GET /v1/queues.
type QueueStats struct {
	Queue     string `json:"queue"`
	Size      int    `json:"size"`
	Pending   int    `json:"pending"`
	Active    int    `json:"active"`
	Scheduled int    `json:"scheduled"`
	Retry     int    `json:"retry"`
	Archived  int    `json:"archived"`
	Completed int    `json:"completed"`
	Paused    bool   `json:"paused"`
}

// QueueList is the answer of GET /v1/queues, in tasks.AllQueues order.
type QueueList struct {
	Queues []QueueStats `json:"queues"`
}

// ReasonAlreadyQueued is why a refresh or an admin change enqueued no check.
const ReasonAlreadyQueued = scheduler.ReasonAlreadyQueued

// enqueueTimeout bounds enqueueing a check (and undoing its queued mark).
const enqueueTimeout = 10 * time.Second

// detached is the request's context without its cancellation, bounded: work
// that must finish once started (an enqueue and its undo, spending a link
// and using it) is not cut short by a client hanging up.
func detached(r *http.Request) (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.WithoutCancel(r.Context()), enqueueTimeout)
}

// afterChange answers an admin write: the connection, and the check the
// store asked for (Change.CheckNow). The write is done, so a failed enqueue
// is not an error answer: the connection is due at once and the scheduler
// checks it on its next tick, which CheckNote says.
func (s *Server) afterChange(r *http.Request, ch store.Change, reason string) ConnectionChange {
	out := ConnectionChange{Connection: viewConnection(ch.Connection)}
	if !ch.CheckNow {
		return out
	}
	if s.onDemand == nil {
		out.CheckNote = "no task queue is configured for the API: the scheduler checks the connection on its next tick"
		return out
	}
	// The store made the connection due on demand at ch.DueAt, the task's
	// slot. (Not NextCheckAt: a weekly slot the sweep has yet to reach may
	// come first, and a task of its ID on this queue would not meet the
	// sweep's.)
	ctx, cancel := detached(r)
	defer cancel()
	res, err := s.onDemand.EnqueueNow(ctx, ch.Connection.ID, ch.DueAt, reason)
	if err != nil && !res.Enqueued {
		s.logError(r, err, "api: enqueue check after an admin change")
		out.CheckNote = "the check could not be enqueued now: the scheduler checks the connection on its next tick"
		return out
	}
	out.CheckEnqueued, out.CheckTaskID, out.CheckNote = res.Enqueued, res.TaskID, res.Reason
	if err != nil { // enqueued, but its due slot stays: the worker skips the sweep's task as served
		s.logError(r, err, "api: advance the due slot of an enqueued check")
		return out
	}
	if !res.NextCheckAt.IsZero() {
		next := res.NextCheckAt
		out.NextCheckAt = &next
	}
	return out
}

func (s *Server) patchDetails(w http.ResponseWriter, r *http.Request, id string) {
	var in DetailsRequest
	if !s.decode(w, r, &in) {
		return
	}
	ch, err := s.st.UpdateDetails(r.Context(), id, store.DetailsPatch{IsActive: in.IsActive, Name: in.Name,
		StartDate: in.StartDate, OccupancyMultiplier: in.OccupancyMultiplier, SiteIDs: in.SiteIDs})
	if err != nil {
		s.storeError(w, r, err, connectionNotFound(id))
		return
	}
	writeJSON(w, http.StatusOK, s.afterChange(r, ch, tasks.ReasonReactivated))
}

func (s *Server) patchCompany(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("companyId")
	var in CompanyRequest
	if !s.decode(w, r, &in) {
		return
	}
	if in.IsActive == nil {
		writeError(w, http.StatusBadRequest, CodeInvalidRequest, `isActive is required: send {"isActive": false} to deactivate the company or {"isActive": true} to reactivate it`)
		return
	}
	co, err := s.st.GetCompany(r.Context(), id)
	if err != nil {
		s.storeError(w, r, err, companyNotFound(id))
		return
	}
	// The conversion goes batch by batch and may outlast the request
	// (Config.RequestTimeout: some 20k connections a second): it runs detached,
	// and the request waits for it until its deadline, then answers 202.
	done := make(chan companyResult, 1)
	actor := store.ActorOf(r.Context())
	s.RunJob(func(ctx context.Context) {
		ch, err := s.st.SetCompanyActive(actorContext(ctx, actor), id, *in.IsActive)
		done <- companyResult{ch, err}
		if err != nil {
			s.log.WithError(err).WithFields(logrus.Fields{"companyId": id, "isActive": *in.IsActive, "connectionsUpdated": ch.Connections}).
				Warn("api: company conversion stopped; repeat PATCH /v1/company/{companyId} to finish it")
		}
	})
	select {
	case res := <-done:
		if res.err != nil {
			s.storeError(w, r, res.err, companyNotFound(id))
			return
		}
		writeJSON(w, http.StatusOK, CompanyChangeResponse{CompanyChange: res.ch})
	case <-r.Context().Done():
		co.IsActive = *in.IsActive
		writeJSON(w, http.StatusAccepted, CompanyChangeResponse{CompanyChange: store.CompanyChange{Company: co}, InProgress: true})
	}
}

type companyResult struct {
	ch  store.CompanyChange
	err error
}

func (s *Server) confirmAccounts(w http.ResponseWriter, r *http.Request, id string) {
	var in AccountsRequest
	if !s.decode(w, r, &in) {
		return
	}
	if in.AccountID != "" || in.Status.Set || in.DuplicateOf != "" {
		s.flagAccount(w, r, id, in)
		return
	}
	if len(in.Accounts) == 0 {
		writeError(w, http.StatusBadRequest, CodeInvalidRequest,
			`accounts is required: send {"accounts": [{"accountId": "ac_...", "trackingStatus": "ENABLED"}]} (ENABLED confirms, DISABLED rejects), or flag one account: {"accountId": "ac_...", "status": "OLD_ACCOUNT"}`)
		return
	}
	for i, d := range in.Accounts {
		if strings.TrimSpace(d.AccountID) == "" {
			writeError(w, http.StatusBadRequest, CodeInvalidRequest, fmt.Sprintf("accounts[%d].accountId is required", i))
			return
		}
		if t, err := checks.ParseTrackingStatus(string(d.TrackingStatus)); err == nil {
			in.Accounts[i].TrackingStatus = t // any case; the store refuses UNSET and unknown values per account
		}
	}
	ch, err := s.st.ConfirmAccounts(r.Context(), id, in.Accounts)
	if err != nil {
		s.storeError(w, r, err, connectionNotFound(id))
		return
	}
	writeJSON(w, http.StatusOK, viewConnection(ch.Connection))
}

// flagAccount serves the account-flag form of PATCH .../status.
func (s *Server) flagAccount(w http.ResponseWriter, r *http.Request, id string, in AccountsRequest) {
	switch {
	case len(in.Accounts) > 0:
		writeError(w, http.StatusBadRequest, CodeInvalidRequest,
			"send either accounts (tracking decisions) or accountId with status (an operator's flag), not both")
		return
	case strings.TrimSpace(in.AccountID) == "" || !in.Status.Set:
		writeError(w, http.StatusBadRequest, CodeInvalidRequest,
			`an account flag needs accountId and status: {"accountId": "ac_...", "status": "OLD_ACCOUNT"}, "DUPLICATE" with "duplicateOf", or null to undo`)
		return
	}
	f := store.AccountFlag{AccountID: in.AccountID, DuplicateOf: in.DuplicateOf}
	if in.Status.Value != nil {
		st, err := checks.ParseAccountStatus(*in.Status.Value)
		if err != nil {
			writeError(w, http.StatusBadRequest, CodeInvalidRequest, "status: "+err.Error())
			return
		}
		f.Status = st
	}
	ch, err := s.st.FlagAccount(r.Context(), id, f)
	if err != nil {
		s.storeError(w, r, err, connectionNotFound(id))
		return
	}
	writeJSON(w, http.StatusOK, viewConnection(ch.Connection))
}

// flagInvestigation serves POST /v1/connection/{connectionId}/investigation.
func (s *Server) flagInvestigation(w http.ResponseWriter, r *http.Request, id string) {
	var in InvestigationRequest
	if !s.decode(w, r, &in) {
		return
	}
	ch, err := s.st.FlagInvestigation(r.Context(), id, in.Note)
	if err != nil {
		s.storeError(w, r, err, connectionNotFound(id))
		return
	}
	writeJSON(w, http.StatusOK, viewConnection(ch.Connection))
}

// clearInvestigation serves DELETE
// /v1/connection/{connectionId}/investigation: the connection goes back to
// its last check's outcome and is checked at once.
func (s *Server) clearInvestigation(w http.ResponseWriter, r *http.Request, id string) {
	ch, err := s.st.ClearInvestigation(r.Context(), id)
	if err != nil {
		s.storeError(w, r, err, connectionNotFound(id))
		return
	}
	writeJSON(w, http.StatusOK, s.afterChange(r, ch, tasks.ReasonInvestigationCleared))
}

// credentialProblem says what is wrong with new credentials ("" if
// nothing), checking everything the store checks so that the link route
// can spend its token only on a body the store will take.
func credentialProblem(c *checks.Credentials) string {
	if c == nil {
		return `credentials is required: send {"credentials": {"username": "...", "password": "..."}}`
	}
	if err := store.ValidateCredentials(*c); err != nil {
		return strings.TrimPrefix(err.Error(), store.ErrInvalid.Error()+": ")
	}
	return ""
}

func (s *Server) updateCredentials(w http.ResponseWriter, r *http.Request, id string) {
	var in CredentialsRequest
	if !s.decode(w, r, &in) {
		return
	}
	if p := credentialProblem(in.Credentials); p != "" {
		writeError(w, http.StatusBadRequest, CodeInvalidRequest, p)
		return
	}
	ch, err := s.st.UpdateCredentials(r.Context(), id, *in.Credentials)
	if err != nil {
		s.storeError(w, r, err, connectionNotFound(id))
		return
	}
	writeJSON(w, http.StatusOK, s.afterChange(r, ch, tasks.ReasonCredentials))
}

func (s *Server) refresh(w http.ResponseWriter, r *http.Request, id string) {
	if s.onDemand == nil {
		writeError(w, http.StatusServiceUnavailable, CodeUnavailable,
			"on-demand checks are not available: this API has no task queue configured; the scheduler still checks every connection on its schedule")
		return
	}
	c, err := s.st.Refreshable(r.Context(), id)
	if errors.Is(err, store.ErrNotAllowed) {
		msg := err.Error()
		if in, ok := c.Status.Info(); ok && in.RequiredAction != "" {
			msg += " (" + in.RequiredAction + ")"
		}
		writeError(w, http.StatusConflict, CodeNotAllowed, msg)
		return
	}
	if err != nil {
		s.storeError(w, r, err, connectionNotFound(id))
		return
	}
	ctx, cancel := detached(r)
	defer cancel()
	res, err := s.onDemand.EnqueueNow(ctx, id, time.Time{}, tasks.ReasonRefresh)
	if errors.Is(err, scheduler.ErrQueueUnavailable) {
		s.logError(r, err, "api: enqueue refresh")
		w.Header().Set("Retry-After", "5")
		writeError(w, http.StatusServiceUnavailable, CodeUnavailable, "the check could not be enqueued: the task queue is unavailable; retry in a moment")
		return
	}
	if err != nil {
		s.storeError(w, r, err, connectionNotFound(id))
		return
	}
	writeJSON(w, http.StatusAccepted, RefreshResult{Enqueued: res.Enqueued, TaskID: res.TaskID, Reason: res.Reason})
}

// publicURL is the base of handed-out links.
func (s *Server) publicURL() string {
	if s.cfg.PublicURL != "" {
		return s.cfg.PublicURL
	}
	return "http://" + s.Addr()
}

const linksUnavailable = "credential-update links are not available: this API has no link signer configured"

func (s *Server) createLink(w http.ResponseWriter, r *http.Request, id string) {
	s.link(w, r, id, http.StatusCreated)
}

// editLink is the reference's "GET /connection/{connectionId}: generate a
// magic link for editing an existing connection": the same link as POST
// .../link, answered 200 (signing a token changes nothing on the server).
func (s *Server) editLink(w http.ResponseWriter, r *http.Request) {
	s.link(w, r, r.PathValue("connectionId"), http.StatusOK)
}

func (s *Server) link(w http.ResponseWriter, r *http.Request, id string, code int) {
	if s.cfg.Links == nil {
		writeError(w, http.StatusServiceUnavailable, CodeUnavailable, linksUnavailable)
		return
	}
	if _, err := s.st.GetConnection(r.Context(), id); err != nil {
		s.storeError(w, r, err, connectionNotFound(id))
		return
	}
	s.signLink(w, r, id, code, LinkResponse{ConnectionID: id})
}

// companyLink is the reference's "/connection/company/{companyId}/link (GET,
// POST): generate a magic link for creating a new connection".
func (s *Server) companyLink(w http.ResponseWriter, r *http.Request) {
	if s.cfg.Links == nil {
		writeError(w, http.StatusServiceUnavailable, CodeUnavailable, linksUnavailable)
		return
	}
	id := r.PathValue("companyId")
	co, err := s.st.GetCompany(r.Context(), id)
	if err != nil {
		s.storeError(w, r, err, companyNotFound(id))
		return
	}
	if !co.IsActive { // its link could add nothing that would be checked
		writeError(w, http.StatusConflict, CodeNotAllowed, fmt.Sprintf("company %s is inactive: reactivate it (PATCH /v1/company/%s {\"isActive\":true}) before handing out a link to add connections", id, id))
		return
	}
	code := http.StatusCreated
	if r.Method == http.MethodGet {
		code = http.StatusOK
	}
	s.signLink(w, r, id, code, LinkResponse{CompanyID: id})
}

// signLink answers out with a token for subject and the URL of its page.
func (s *Server) signLink(w http.ResponseWriter, r *http.Request, subject string, code int, out LinkResponse) {
	tok, exp, err := s.cfg.Links.Sign(subject)
	if err != nil {
		s.logError(r, err, "api: sign link")
		writeInternal(w, r)
		return
	}
	// The token rides in the fragment: browsers never send it to a server,
	// so it stays out of access logs and Referer headers.
	out.URL, out.Token, out.ExpiresAt = s.publicURL()+"/link#token="+tok, tok, exp
	writeJSON(w, code, out)
}

// verifyLink checks a link token for an action on a subject of kind
// prefix (a connection or a company); false when it answered the refusal.
func (s *Server) verifyLink(w http.ResponseWriter, token, prefix string) (link.Claims, bool) {
	if s.cfg.Links == nil {
		writeError(w, http.StatusServiceUnavailable, CodeUnavailable, linksUnavailable)
		return link.Claims{}, false
	}
	if token == "" {
		writeError(w, http.StatusUnauthorized, CodeUnauthorized, `token is required: send the token of the link you were given in {"token": "..."}`)
		return link.Claims{}, false
	}
	claims, err := s.cfg.Links.Verify(token)
	switch {
	case errors.Is(err, link.ErrExpired):
		writeError(w, http.StatusGone, CodeGone, linkExpiredMessage(claims))
		return claims, false
	case err != nil, !store.ValidID(prefix, claims.Subject): // a genuine token for the other action counts as not valid here
		writeError(w, http.StatusUnauthorized, CodeUnauthorized, linkNotValid)
		return claims, false
	}
	return claims, true
}

// spendLink makes the token single-use: of concurrent requests with one
// token, exactly one gets true. False when it answered the refusal.
func (s *Server) spendLink(ctx context.Context, w http.ResponseWriter, r *http.Request, claims link.Claims) bool {
	fresh, err := s.st.UseOnce(ctx, linkOnce(claims), claims.Expires)
	if err != nil {
		s.storeError(w, r, err, "")
		return false
	}
	if !fresh {
		writeError(w, http.StatusGone, CodeGone, linkUsed)
		return false
	}
	return true
}

// useNewLink adds a connection to the company of a new-connection link.
func (s *Server) useNewLink(w http.ResponseWriter, r *http.Request) {
	r = r.WithContext(actorContext(r.Context(), store.ActorLink))
	var in LinkConnectionRequest
	if !s.decode(w, r, &in) {
		return
	}
	claims, ok := s.verifyLink(w, in.Token, store.CompanyIDPrefix)
	if !ok {
		return
	}
	// Everything that can refuse the request is checked before the token is
	// spent, so a mistyped body does not burn the link.
	if problems := s.connectionProblems(CreateConnectionRequest{Datasource: in.Datasource, Name: in.Name, Credentials: in.Credentials}); len(problems) > 0 {
		writeError(w, http.StatusBadRequest, CodeInvalidRequest, strings.Join(problems, "; "))
		return
	}
	nc := store.NewConnection{CompanyID: claims.Subject, Datasource: string(in.Datasource), Name: in.Name, Credentials: *in.Credentials, SiteIDs: in.SiteIDs}
	if err := nc.Validate(); err != nil {
		s.storeError(w, r, err, "")
		return
	}
	co, err := s.st.GetCompany(r.Context(), claims.Subject)
	if err != nil {
		s.storeError(w, r, err, "the company of this link no longer exists")
		return
	}
	if !co.IsActive {
		writeError(w, http.StatusConflict, CodeNotAllowed, linkCompanyInactive)
		return
	}
	ctx, cancel := detached(r)
	defer cancel()
	if !s.spendLink(ctx, w, r, claims) {
		return
	}
	c, err := s.st.CreateConnection(ctx, nc)
	if err != nil {
		s.storeError(w, r, err, "the company of this link no longer exists")
		return
	}
	info, _ := c.Status.Info()
	writeJSON(w, http.StatusCreated, LinkResult{ConnectionID: c.ID, Status: c.Status, StatusDisplayName: info.DisplayName})
}

func (s *Server) useLink(w http.ResponseWriter, r *http.Request) {
	r = r.WithContext(actorContext(r.Context(), store.ActorLink))
	var in LinkCredentialsRequest
	if !s.decode(w, r, &in) {
		return
	}
	claims, ok := s.verifyLink(w, in.Token, store.ConnectionIDPrefix)
	if !ok {
		return
	}
	// Everything that can refuse the request is checked before the token is
	// spent, so a mistyped body does not burn the link.
	if p := credentialProblem(in.Credentials); p != "" {
		writeError(w, http.StatusBadRequest, CodeInvalidRequest, p)
		return
	}
	c, err := s.st.GetConnection(r.Context(), claims.Subject)
	if err != nil {
		s.storeError(w, r, err, "the connection of this link no longer exists")
		return
	}
	if c.CredentialsUpdatedAt != nil && c.CredentialsUpdatedAt.After(claims.IssuedAt) {
		writeError(w, http.StatusGone, CodeGone, linkSuperseded)
		return
	}
	ctx, cancel := detached(r)
	defer cancel()
	if !s.spendLink(ctx, w, r, claims) {
		return
	}
	// Checked again in the write: credentials replaced since the look above.
	ch, err := s.st.UpdateCredentialsSince(ctx, claims.Subject, *in.Credentials, claims.IssuedAt)
	if errors.Is(err, store.ErrSuperseded) {
		writeError(w, http.StatusGone, CodeGone, linkSuperseded)
		return
	}
	if err != nil {
		s.storeError(w, r, err, "the connection of this link no longer exists")
		return
	}
	out := s.afterChange(r, ch, tasks.ReasonCredentials)
	writeJSON(w, http.StatusOK, LinkResult{ConnectionID: out.ID, Status: out.Status,
		StatusDisplayName: out.StatusDisplayName, CheckEnqueued: out.CheckEnqueued})
}

const queuesUnavailable = "queue controls are not available: this API has no queue inspector configured"

// queueStats reads one of tasks.AllQueues; exists is whether asynq has
// created it (a queue is created with its first task).
func (s *Server) queueStats(name string, exists bool) (QueueStats, error) {
	if !exists {
		return QueueStats{Queue: name}, nil
	}
	in, err := s.cfg.Inspector.GetQueueInfo(name)
	if err != nil {
		return QueueStats{}, fmt.Errorf("read queue %s: %w", name, err)
	}
	return QueueStats{Queue: name, Size: in.Size, Pending: in.Pending, Active: in.Active, Scheduled: in.Scheduled,
		Retry: in.Retry, Archived: in.Archived, Completed: in.Completed, Paused: in.Paused}, nil
}

func (s *Server) existingQueues() (map[string]bool, error) {
	names, err := s.cfg.Inspector.Queues()
	if err != nil {
		return nil, fmt.Errorf("list queues: %w", err)
	}
	out := make(map[string]bool, len(names))
	for _, n := range names {
		out[n] = true
	}
	return out, nil
}

func (s *Server) listQueues(w http.ResponseWriter, r *http.Request) {
	if s.cfg.Inspector == nil {
		writeError(w, http.StatusServiceUnavailable, CodeUnavailable, queuesUnavailable)
		return
	}
	exist, err := s.existingQueues()
	if err != nil {
		s.serverError(w, r, err, "api: list queues")
		return
	}
	out := QueueList{Queues: make([]QueueStats, 0, len(tasks.AllQueues))}
	for _, q := range tasks.AllQueues {
		st, err := s.queueStats(q, exist[q])
		if err != nil {
			s.serverError(w, r, err, "api: list queues")
			return
		}
		out.Queues = append(out.Queues, st)
	}
	writeJSON(w, http.StatusOK, out)
}

func (s *Server) pauseQueue(w http.ResponseWriter, r *http.Request) {
	s.setPaused(w, r, true)
}

func (s *Server) resumeQueue(w http.ResponseWriter, r *http.Request) {
	s.setPaused(w, r, false)
}

// setPaused pauses or resumes a queue. It is idempotent: pausing a paused
// queue answers 200 like the first time.
func (s *Server) setPaused(w http.ResponseWriter, r *http.Request, pause bool) {
	if s.cfg.Inspector == nil {
		writeError(w, http.StatusServiceUnavailable, CodeUnavailable, queuesUnavailable)
		return
	}
	name := r.PathValue("queue")
	if !slices.Contains(tasks.AllQueues, name) {
		writeError(w, http.StatusNotFound, CodeNotFound, fmt.Sprintf("queue %.100q not found: valid queues are %s", name, strings.Join(tasks.AllQueues, ", ")))
		return
	}
	var opErr error
	if pause {
		opErr = s.cfg.Inspector.PauseQueue(name)
	} else {
		opErr = s.cfg.Inspector.UnpauseQueue(name)
	}
	exist, err := s.existingQueues()
	var st QueueStats
	if err == nil {
		st, err = s.queueStats(name, exist[name])
	}
	if err != nil {
		s.serverError(w, r, errors.Join(opErr, err), "api: pause or resume queue")
		return
	}
	if opErr != nil {
		// asynq refuses to pause a paused queue (or resume a running one)
		// with an untyped error; the state tells whether that was all.
		already := strings.Contains(opErr.Error(), "already paused") || strings.Contains(opErr.Error(), "not paused")
		if exist[name] && st.Paused != pause || !exist[name] && !already {
			s.serverError(w, r, opErr, "api: pause or resume queue")
			return
		}
	}
	// A queue asynq has not created yet reports no pause flag; it is set.
	st.Paused = pause
	writeJSON(w, http.StatusOK, st)
}
