package console

import (
	"fmt"
	"net/http"
	"strings"

	"github.com/checkd/checkd/checks"
	"github.com/checkd/checkd/internal/tasks"
	"github.com/checkd/checkd/store"
)

// The operations team's actions on a connection (issue 20's): put it under
// investigation or end one, and flag an account OLD_ACCOUNT or DUPLICATE
// or undo the flag. Each makes the store call of its REST route (POST and
// DELETE .../investigation, PATCH .../status with accountId and status),
// which does the validation; the console only reads the form.

// flagValueUndo is the account-flag form's value that undoes a flag (the
// API's status null).
const flagValueUndo = "UNDO"

// investigate flags the connection UNDER_INVESTIGATION with the form's
// note, as POST /v1/connection/{id}/investigation does.
func (c *Console) investigate(q *request) {
	ctx, cancel, ok := c.acting(q)
	if !ok {
		return
	}
	defer cancel()
	id := q.r.PathValue("id")
	ch, err := c.cfg.Store.FlagInvestigation(ctx, id, q.r.PostFormValue("note"))
	if err != nil {
		c.writeError(q, err, "put the connection under investigation")
		return
	}
	note := ""
	if inv := ch.Connection.Investigation; inv != nil {
		note = inv.Note
	}
	c.done(q, connPath(id), notice{Kind: "good",
		Text: fmt.Sprintf("Connection under investigation (%q). It is still checked weekly; clear the investigation to end it.", note)})
}

// clearInvestigation ends the investigation, as DELETE
// /v1/connection/{id}/investigation does, and enqueues the check the
// store asks for.
func (c *Console) clearInvestigation(q *request) {
	ctx, cancel, ok := c.acting(q)
	if !ok {
		return
	}
	defer cancel()
	id := q.r.PathValue("id")
	ch, err := c.cfg.Store.ClearInvestigation(ctx, id)
	if err != nil {
		c.writeError(q, err, "clear the investigation")
		return
	}
	in, _ := ch.Connection.Status.Info()
	n := notice{Kind: "good", Text: "Investigation cleared: the connection is " + in.DisplayName + "."}
	if ch.CheckNow {
		n.Text += " " + c.checkNow(ctx, ch, tasks.ReasonInvestigationCleared)
	}
	c.done(q, connPath(id), n)
}

// flagAccount flags an account OLD_ACCOUNT or DUPLICATE (of the form's
// duplicateOf), or undoes the flag, as PATCH /v1/connection/{id}/status
// with accountId and status does.
func (c *Console) flagAccount(q *request) {
	f := store.AccountFlag{AccountID: strings.TrimSpace(q.r.PostFormValue("account")),
		DuplicateOf: strings.TrimSpace(q.r.PostFormValue("duplicateOf"))}
	flag := strings.TrimSpace(q.r.PostFormValue("flag"))
	if f.AccountID == "" {
		c.refused(q, http.StatusBadRequest, "Choose an account to flag.")
		return
	}
	if !strings.EqualFold(flag, flagValueUndo) {
		st, err := checks.ParseAccountStatus(flag)
		if err != nil || (st != checks.AcctOldAccount && st != checks.AcctDuplicate) {
			c.refused(q, http.StatusBadRequest, fmt.Sprintf("An account flag is OLD_ACCOUNT or DUPLICATE (or undo), not %.50q.", flag))
			return
		}
		f.Status = st
	}
	ctx, cancel, ok := c.acting(q)
	if !ok {
		return
	}
	defer cancel()
	id := q.r.PathValue("id")
	ch, err := c.cfg.Store.FlagAccount(ctx, id, f)
	if err != nil {
		c.writeError(q, err, "flag the account")
		return
	}
	n := notice{Kind: "good"}
	for _, a := range ch.Connection.Accounts {
		if a.ID != f.AccountID {
			continue
		}
		in, _ := a.Status.Info()
		switch f.Status {
		case checks.AcctOldAccount:
			n.Text = fmt.Sprintf("Account %s flagged Old Account: it is no longer pulled.", a.AccountNumber)
		case checks.AcctDuplicate:
			n.Text = fmt.Sprintf("Account %s flagged Duplicate of %s: it is no longer pulled.", a.AccountNumber, a.DuplicateOf)
		default:
			n.Text = fmt.Sprintf("Account %s's flag undone: it is %s again.", a.AccountNumber, in.DisplayName)
		}
	}
	c.done(q, connPath(id), n)
}
