package console

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/checkd/checkd/checks"
	"github.com/checkd/checkd/internal/tasks"
	"github.com/checkd/checkd/scheduler"
	"github.com/checkd/checkd/store"
)

// historyLimit is how many history entries a connection page shows.
const historyLimit = 100

type accountRow struct {
	Account store.Account
	Info    checks.Info
	// CanConfirm and CanReject: the decision would be taken (the store
	// refuses decisions on terminal accounts other than
	// CUSTOMER_NOT_TRACKED).
	CanConfirm, CanReject bool
	// CanFlag: an operator may flag it OLD_ACCOUNT or DUPLICATE; Flagged:
	// it is one of those, which an operator may undo (the store refuses
	// the undo of a flag a check set).
	CanFlag, Flagged bool
}

type historyRow struct {
	Entry store.HistoryEntry
	// Subject is "Connection" or the account's number.
	Subject string
}

type linkData struct {
	URL     string
	Expires time.Time
}

type connectionData struct {
	Conn    store.Connection
	Info    checks.Info
	Company store.Company
	// Skip says why the connection is not checked ("" when it is).
	Skip       checks.Skip
	Accounts   []accountRow
	History    []historyRow
	HistoryErr string
	// Link is a credential-update link just created, shown once.
	Link *linkData
	// CanRefresh and CanLink: the console can enqueue checks and sign
	// links.
	CanRefresh, CanLink bool
	// CanInvestigate: the status lets an operator flag the connection
	// under investigation (not paused, not waiting for credentials);
	// UnderInvestigation: it is, and the flag can be cleared.
	CanInvestigate, UnderInvestigation bool
	// MaxNoteLen bounds the investigation note's field (store.MaxNoteLen).
	MaxNoteLen int
}

// connectionOr404 reads the connection of the request's {id}, answering
// the error page when it cannot.
func (c *Console) connectionOr404(q *request) (store.Connection, bool) {
	return lookup(c, q, c.cfg.Store.GetConnection, "connection", "open it from its company's page")
}

func (c *Console) connection(q *request) {
	c.showConnection(q, http.StatusOK, nil)
}

// showConnection renders the connection page with status (a refused
// action's, with q.problem) and the link just created, if any.
func (c *Console) showConnection(q *request, status int, l *linkData) {
	cn, ok := c.connectionOr404(q)
	if !ok {
		return
	}
	ctx := q.r.Context()
	co, err := c.cfg.Store.GetCompany(ctx, cn.CompanyID)
	if err != nil {
		c.serverError(q, err, "read the connection's company")
		return
	}
	in, _ := cn.Status.Info()
	d := connectionData{Conn: cn, Info: in, Company: co, Skip: checks.Eligibility(cn.Status, cn.IsActive, co.IsActive),
		Link: l, CanRefresh: c.cfg.OnDemand != nil, CanLink: c.cfg.Links != nil,
		CanInvestigate:     in.Category != checks.CategorySystem && !cn.Status.CredentialBlocked(),
		UnderInvestigation: cn.Status == checks.ConnUnderInvestigation, MaxNoteLen: store.MaxNoteLen}
	numbers := map[string]string{}
	for _, a := range cn.Accounts {
		ai, _ := a.Status.Info()
		numbers[a.ID] = a.AccountNumber
		decidable := !a.Status.Terminal() || a.Status == checks.AcctCustomerNotTracked
		d.Accounts = append(d.Accounts, accountRow{Account: a, Info: ai,
			CanConfirm: decidable && co.IsActive && a.TrackingStatus != checks.TrackingEnabled,
			CanReject:  decidable && co.IsActive && a.TrackingStatus != checks.TrackingDisabled,
			CanFlag:    co.IsActive,
			Flagged:    co.IsActive && (a.Status == checks.AcctOldAccount || a.Status == checks.AcctDuplicate)})
	}
	if h, err := c.cfg.Store.History(ctx, cn.ID, historyLimit); err != nil {
		d.HistoryErr = c.panelError(q, err, "read the history")
	} else {
		for _, e := range h {
			row := historyRow{Entry: e, Subject: "Connection"}
			if e.AccountID != "" {
				row.Subject = "Account " + numbers[e.AccountID]
				if numbers[e.AccountID] == "" {
					row.Subject = "Account " + e.AccountID
				}
			}
			d.History = append(d.History, row)
		}
	}
	title := cn.Name
	if title == "" {
		title = cn.ID
	}
	c.render(q, status, "connection", title, "companies", d)
}

// actionTimeout bounds an action once started: it runs to its end (an
// enqueue and its undo, a company's conversion) even when the browser
// leaves.
const actionTimeout = 5 * time.Minute

// acting returns the request's context for a write: detached from the
// request's cancellation, bounded, and carrying the console's origin (the
// cause console:<action> and the user). false when it answered an error.
func (c *Console) acting(q *request) (context.Context, context.CancelFunc, bool) {
	ctx, ok := c.origin(q)
	if !ok {
		return nil, nil, false
	}
	ctx, cancel := context.WithTimeout(ctx, actionTimeout)
	return ctx, cancel, true
}

// origin returns the request's values, detached from its cancellation,
// with the console's origin (the cause console:<action> and the user).
// false when it answered an error.
func (c *Console) origin(q *request) (context.Context, bool) {
	ctx, err := store.WithOrigin(context.WithoutCancel(q.r.Context()), store.Origin{Channel: Channel, Actor: q.user})
	if err != nil {
		c.serverError(q, err, "record who acts")
		return nil, false
	}
	return ctx, true
}

// done redirects to path with a notice, after an action that worked.
func (c *Console) done(q *request, path string, n notice) {
	c.setNotice(q.w, q.r, n)
	http.Redirect(q.w, q.r, path, http.StatusSeeOther)
}

func connPath(id string) string { return RootPath + "/connections/" + url.PathEscape(id) }

// refused shows the connection page with why an action was refused.
func (c *Console) refused(q *request, status int, why string) {
	q.problem = why
	c.showConnection(q, status, nil)
}

// writeError answers a store error of an action on the connection page.
func (c *Console) writeError(q *request, err error, what string) {
	var accts *store.AccountsError
	switch {
	case errors.Is(err, store.ErrNotFound):
		c.errorPage(q, http.StatusNotFound, "Connection not found",
			fmt.Sprintf("The connection %.100q is gone. Open it again from its company's page.", q.r.PathValue("id")))
	case errors.As(err, &accts):
		c.refused(q, http.StatusBadRequest, strings.TrimSuffix(accts.Error(), ".")+".")
	case errors.Is(err, store.ErrInvalid):
		c.refused(q, http.StatusBadRequest, err.Error())
	case errors.Is(err, store.ErrNotAllowed):
		c.refused(q, http.StatusConflict, err.Error())
	case errors.Is(err, store.ErrConflict):
		c.refused(q, http.StatusConflict, err.Error())
	default:
		c.serverError(q, err, what)
	}
}

func (c *Console) refresh(q *request) {
	if c.cfg.OnDemand == nil {
		c.refused(q, http.StatusServiceUnavailable, "On-demand checks are not available: this console has no task queue. The scheduler still checks the connection on its schedule.")
		return
	}
	id := q.r.PathValue("id")
	cn, err := c.cfg.Store.Refreshable(q.r.Context(), id)
	if errors.Is(err, store.ErrNotAllowed) {
		msg := err.Error()
		if in, ok := cn.Status.Info(); ok && in.RequiredAction != "" {
			msg += " (" + in.RequiredAction + ")"
		}
		c.refused(q, http.StatusConflict, msg)
		return
	}
	if err != nil {
		c.writeError(q, err, "check whether the connection can be refreshed")
		return
	}
	ctx, cancel, ok := c.acting(q)
	if !ok {
		return
	}
	defer cancel()
	res, err := c.cfg.OnDemand.EnqueueNow(ctx, id, time.Time{}, tasks.ReasonRefresh)
	if errors.Is(err, scheduler.ErrQueueUnavailable) {
		c.log.WithError(err).Warn("console: enqueue refresh")
		c.refused(q, http.StatusServiceUnavailable, "The check could not be enqueued: the task queue is unavailable. Try again in a moment.")
		return
	}
	if err != nil {
		c.writeError(q, err, "enqueue the check")
		return
	}
	n := notice{Kind: "good", Text: "Check enqueued on the critical queue (task " + res.TaskID + ")."}
	if !res.Enqueued {
		n.Text = "Nothing enqueued: " + res.Reason + "."
	}
	c.done(q, connPath(id), n)
}

func (c *Console) deactivate(q *request) { c.setActive(q, false) }

func (c *Console) reactivate(q *request) { c.setActive(q, true) }

// setActive deactivates or reactivates the connection as PATCH
// .../details {"isActive"} does, enqueueing the check a reactivation asks
// for.
func (c *Console) setActive(q *request, active bool) {
	before, ok := c.connectionOr404(q)
	if !ok {
		return
	}
	ctx, cancel, ok := c.acting(q)
	if !ok {
		return
	}
	defer cancel()
	ch, err := c.cfg.Store.UpdateDetails(ctx, before.ID, store.DetailsPatch{IsActive: &active})
	if err != nil {
		c.writeError(q, err, "change the connection")
		return
	}
	in, _ := ch.Connection.Status.Info()
	n := notice{Kind: "good"}
	switch {
	case before.IsActive == active && active:
		n.Text = "The connection was active already: nothing changed."
	case before.IsActive == active:
		n.Text = "The connection was deactivated already: nothing changed."
	case !active:
		n.Text = "Connection deactivated: it is " + in.DisplayName + " and not checked until reactivated."
	default:
		n.Text = "Connection reactivated: it is " + in.DisplayName + "."
	}
	if ch.CheckNow {
		n.Text += " " + c.checkNow(ctx, ch, tasks.ReasonReactivated)
	}
	c.done(q, connPath(before.ID), n)
}

// checkNow enqueues the check a change asked for (for reason), as the
// API does after one, and says what happened.
func (c *Console) checkNow(ctx context.Context, ch store.Change, reason string) string {
	const later = "It is due at once: the scheduler checks it on its next tick."
	if c.cfg.OnDemand == nil {
		return later
	}
	res, err := c.cfg.OnDemand.EnqueueNow(ctx, ch.Connection.ID, ch.DueAt, reason)
	if err != nil && !res.Enqueued {
		c.log.WithError(err).WithField("reason", reason).Warn("console: enqueue the check a change asked for")
		return later
	}
	if err != nil { // enqueued, but its due slot stays: the worker skips the sweep's task as served
		c.log.WithError(err).Warn("console: serve the due slot of an enqueued check")
	}
	if !res.Enqueued {
		return "No check enqueued: " + res.Reason + "."
	}
	return "A check is enqueued (task " + res.TaskID + ")."
}

func (c *Console) createLink(q *request) {
	if c.cfg.Links == nil {
		c.refused(q, http.StatusServiceUnavailable, "Credential-update links are not available: this console has no link signer.")
		return
	}
	cn, ok := c.connectionOr404(q)
	if !ok {
		return
	}
	tok, exp, err := c.cfg.Links.Sign(cn.ID)
	if err != nil {
		c.serverError(q, err, "sign the link")
		return
	}
	// As the API's: the token rides in the fragment, so it never reaches
	// a server's access log.
	c.showConnection(q, http.StatusOK, &linkData{URL: c.publicURL(q.r) + "/link#token=" + tok, Expires: exp})
}

// publicURL is the base of handed-out links: Config.PublicURL, else the
// URL the console was opened at.
func (c *Console) publicURL(r *http.Request) string {
	if c.cfg.PublicURL != "" {
		return c.cfg.PublicURL
	}
	scheme := "http"
	if r.TLS != nil {
		scheme = "https"
	}
	return scheme + "://" + r.Host
}

func (c *Console) decideAccount(q *request) {
	acct := strings.TrimSpace(q.r.PostFormValue("account"))
	decision, err := checks.ParseTrackingStatus(q.r.PostFormValue("decision"))
	switch {
	case acct == "":
		c.refused(q, http.StatusBadRequest, "Choose an account to confirm or reject.")
		return
	case err != nil || decision == checks.TrackingUnset:
		c.refused(q, http.StatusBadRequest, fmt.Sprintf("The decision must be ENABLED (confirm) or DISABLED (reject), not %.50q.", q.r.PostFormValue("decision")))
		return
	}
	id := q.r.PathValue("id")
	ctx, cancel, ok := c.acting(q)
	if !ok {
		return
	}
	defer cancel()
	ch, err := c.cfg.Store.ConfirmAccounts(ctx, id, []store.AccountDecision{{AccountID: acct, TrackingStatus: decision}})
	if err != nil {
		c.writeError(q, err, "record the account decision")
		return
	}
	n := notice{Kind: "good"}
	for _, a := range ch.Connection.Accounts {
		if a.ID == acct {
			in, _ := a.Status.Info()
			verb := "confirmed: it is tracked"
			if decision == checks.TrackingDisabled {
				verb = "rejected: it is not tracked"
			}
			n.Text = fmt.Sprintf("Account %s %s (%s).", a.AccountNumber, verb, in.DisplayName)
		}
	}
	c.done(q, connPath(id), n)
}

// setCompany deactivates or reactivates a company, as PATCH
// /v1/company/{id} does, after the confirmation page.
func (c *Console) setCompany(q *request) {
	co, active, ok := c.companyTarget(q)
	if !ok {
		return
	}
	octx, ok := c.origin(q)
	if !ok {
		return
	}
	// The conversion goes batch by batch and may outlast the request (its
	// deadline under the API server): it runs in the background, and the
	// request waits for it until its deadline, as PATCH /v1/company does.
	done := make(chan companyResult, 1)
	c.cfg.Background(func(job context.Context) {
		ctx, cancel := context.WithCancel(octx) // the origin's values, cancelled with the job
		defer cancel()
		defer context.AfterFunc(job, cancel)()
		ch, err := c.cfg.Store.SetCompanyActive(ctx, co.ID, active)
		done <- companyResult{ch, err}
		if err != nil {
			c.log.WithError(err).WithFields(logrus.Fields{"companyId": co.ID, "isActive": active, "connectionsUpdated": ch.Connections}).
				Warn("console: company conversion stopped; confirm the change again to finish it")
		}
	})
	path := RootPath + "/companies/" + url.PathEscape(co.ID)
	var res companyResult
	select {
	case res = <-done:
	case <-q.r.Context().Done():
		verb := "deactivated"
		if active {
			verb = "reactivated"
		}
		c.done(q, path, notice{Kind: "good", Text: fmt.Sprintf("%s is being %s: its connections are converted in the background. Reload this page to follow the counts.",
			co.Name, verb)})
		return
	}
	if errors.Is(res.err, store.ErrConflict) {
		q.problem = res.err.Error()
		c.renderConfirm(q, http.StatusConflict, co, active)
		return
	}
	if res.err != nil {
		c.serverError(q, res.err, "change the company")
		return
	}
	n := notice{Kind: "good", Text: fmt.Sprintf("%s deactivated: %s connections are now Company Inactive and not checked.", co.Name, num(res.ch.Connections))}
	if active {
		n.Text = fmt.Sprintf("%s reactivated: %s connections got their statuses back; the checkable ones are due at once.", co.Name, num(res.ch.Connections))
	}
	c.done(q, path, n)
}

type companyResult struct {
	ch  store.CompanyChange
	err error
}

// find opens the company or connection of ?id=.
func (c *Console) find(q *request) {
	id := strings.TrimSpace(q.r.URL.Query().Get("id"))
	ctx := q.r.Context()
	var err error
	switch {
	case id == "":
		c.errorPage(q, http.StatusBadRequest, "Nothing to find", "Type a company ID (co_…) or a connection ID (cn_…).")
		return
	case strings.HasPrefix(id, store.CompanyIDPrefix):
		if _, err = c.cfg.Store.GetCompany(ctx, id); err == nil {
			http.Redirect(q.w, q.r, RootPath+"/companies/"+url.PathEscape(id), http.StatusSeeOther)
			return
		}
	case strings.HasPrefix(id, store.ConnectionIDPrefix):
		if _, err = c.cfg.Store.GetConnection(ctx, id); err == nil {
			http.Redirect(q.w, q.r, connPath(id), http.StatusSeeOther)
			return
		}
	default:
		err = store.ErrNotFound
	}
	if !errors.Is(err, store.ErrNotFound) {
		c.serverError(q, err, "look the ID up")
		return
	}
	c.errorPage(q, http.StatusNotFound, "Nothing found",
		fmt.Sprintf("No company or connection has the ID %.100q. IDs start with co_ (companies) or cn_ (connections).", id))
}
