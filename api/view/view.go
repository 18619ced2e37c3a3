// Package view is a connection as checkd shows it to integrators: the
// stored fields (never credentials) and what its status and each of its
// accounts' statuses mean. It is the answer of GET
// /v1/connection/{connectionId}/details and the data of every webhook
// message, which must be the same to the byte: both the API and the
// webhook dispatcher build it here.
package view

import (
	"github.com/checkd/checkd/checks"
	"github.com/checkd/checkd/store"
)

// StatusInfo is what a status means, derived from the checks vocabulary, so
// a client need not carry its own copy.
type StatusInfo struct {
	StatusDisplayName string          `json:"statusDisplayName"`
	StatusCategory    checks.Category `json:"statusCategory"`
	StatusReason      string          `json:"statusReason"`
	CanRefresh        bool            `json:"canRefresh"`
	CanReconnect      bool            `json:"canReconnect"`
}

// Info is the StatusInfo of a status's checks.Info.
func Info(in checks.Info) StatusInfo {
	return StatusInfo{StatusDisplayName: in.DisplayName, StatusCategory: in.Category,
		StatusReason: in.Reason, CanRefresh: in.CanRefresh, CanReconnect: in.CanReconnect}
}

// Account is an account as integrators see it: the stored fields and what
// its status means.
type Account struct {
	store.Account
	StatusInfo
}

// Connection is a connection as integrators see it: the stored fields
// (never credentials), what its status means, and its accounts likewise.
type Connection struct {
	store.Connection
	StatusInfo
	// Accounts shadows store.Connection.Accounts with the derived fields.
	Accounts []Account `json:"accounts"`
}

// Of is the view of a stored connection.
func Of(c store.Connection) Connection {
	in, _ := c.Status.Info() // an unknown stored status leaves the derived fields empty
	out := Connection{Connection: c, StatusInfo: Info(in), Accounts: make([]Account, len(c.Accounts))}
	if c.Investigation != nil && c.Investigation.By == store.InvestigationAutomatic {
		out.StatusReason = checks.ReasonContinuedFailures
	}
	for i, a := range c.Accounts {
		ai, _ := a.Status.Info()
		out.Accounts[i] = Account{Account: a, StatusInfo: Info(ai)}
	}
	out.Connection.Accounts = nil // shadowed; keeps one copy in memory
	return out
}
