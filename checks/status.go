// Package checks is the domain of a connection check: the status vocabulary
// of the reference documents (connection and account statuses with their
// display names, categories, descriptions, required actions, reasons and
// refresh/reconnect flags), the eligibility rules that decide what is checked,
// the Checker contract that datasource integrations implement, and the
// registry of checkers by datasource. It imports nothing of the project.
package checks

import (
	"fmt"
	"strings"
)

// Category groups statuses by what they mean for an integration.
type Category string

// Status categories, as the reference tables group them.
const (
	CategoryHealthy       Category = "healthy"
	CategoryProviderError Category = "provider_error"
	CategoryCredential    Category = "credential"
	CategorySystem        Category = "system"
	CategoryTerminal      Category = "terminal"
)

// Info describes one status value: the seed's display name, description and
// required action, plus a reason and the "can be refreshed?" / "can
// reconnect?" flags in the spirit of the status-reason table.
type Info struct {
	Value          string   `json:"value"`
	DisplayName    string   `json:"displayName"`
	Category       Category `json:"category"`
	Description    string   `json:"description"`
	RequiredAction string   `json:"requiredAction"`
	Reason         string   `json:"reason"`
	CanRefresh     bool     `json:"canRefresh"`
	CanReconnect   bool     `json:"canReconnect"`
}

// ConnectionStatus is the status of a connection (a login to a utility
// provider's website).
type ConnectionStatus string

// Connection statuses: the twelve of the reference plus DEACTIVATED.
const (
	ConnPending                     ConnectionStatus = "PENDING"
	ConnUnderInvestigation          ConnectionStatus = "UNDER_INVESTIGATION"
	ConnConnected                   ConnectionStatus = "CONNECTED"
	ConnWebsiteDown                 ConnectionStatus = "WEBSITE_DOWN"
	ConnURLInaccessible             ConnectionStatus = "URL_INACCESSIBLE"
	ConnNoAccountsFound             ConnectionStatus = "NO_ACCOUNTS_FOUND"
	ConnOtherError                  ConnectionStatus = "OTHER_ERROR"
	ConnMFATokenExpired             ConnectionStatus = "MFA_TOKEN_EXPIRED"
	ConnPasswordIncorrect           ConnectionStatus = "PASSWORD_INCORRECT"
	ConnNewPasswordNeeded           ConnectionStatus = "NEW_PASSWORD_NEEDED"
	ConnAdditionalCredentialsNeeded ConnectionStatus = "ADDITIONAL_CREDENTIALS_NEEDED"
	ConnCompanyInactive             ConnectionStatus = "COMPANY_INACTIVE"
	ConnDeactivated                 ConnectionStatus = "DEACTIVATED"
)

var connectionInfo = map[ConnectionStatus]Info{
	ConnPending: {DisplayName: "Pending", Category: CategoryHealthy,
		Description:    "The connection is new but has not been onboarded yet.",
		RequiredAction: "Wait: the first check runs promptly after creation.",
		Reason:         "AWAITING_FIRST_CHECK", CanRefresh: true},
	ConnUnderInvestigation: {DisplayName: "Under Investigation", Category: CategoryHealthy,
		Description:    "Something has gone wrong and the team is investigating.",
		RequiredAction: "Wait for resolution; contact support for a status update if needed.",
		Reason:         "MANUAL_REVIEW", CanRefresh: true},
	ConnConnected: {DisplayName: "Connected", Category: CategoryHealthy,
		Description:    "The service can log in and access the connection.",
		RequiredAction: "Nothing: data is flowing on the weekly schedule.",
		Reason:         "HEALTHY", CanRefresh: true},
	ConnWebsiteDown: {DisplayName: "Website Down", Category: CategoryProviderError,
		Description:    "The connection's website is inaccessible.",
		RequiredAction: "None: retried automatically on the next weekly check.",
		Reason:         "INSTITUTION_CURRENTLY_UNAVAILABLE", CanRefresh: true, CanReconnect: true},
	ConnURLInaccessible: {DisplayName: "URL Inaccessible", Category: CategoryProviderError,
		Description:    "The provider URL cannot be reached.",
		RequiredAction: "If persistent, verify the URL is still valid; contact support if the provider moved.",
		Reason:         "INSTITUTION_UNREACHABLE", CanRefresh: true, CanReconnect: true},
	ConnNoAccountsFound: {DisplayName: "No Accounts Found", Category: CategoryProviderError,
		Description:    "The service can log in to the website, but no accounts were available.",
		RequiredAction: "May resolve on the next check; if persistent, the login may be for a different service.",
		Reason:         "NO_ACCOUNTS_AVAILABLE", CanRefresh: true, CanReconnect: true},
	ConnOtherError: {DisplayName: "Other Error", Category: CategoryProviderError,
		Description:    "An issue not covered by an existing status.",
		RequiredAction: "May resolve on retry; if persistent, contact support with the connection ID.",
		Reason:         "UNKNOWN_ERROR", CanRefresh: true, CanReconnect: true},
	ConnMFATokenExpired: {DisplayName: "MFA Token Expired", Category: CategoryCredential,
		Description:    "MFA is required on login but codes aren't reaching the service or the session expired.",
		RequiredAction: "The user must complete the MFA challenge through a credential-update link.",
		Reason:         "MFA_REQUIRED", CanReconnect: true},
	ConnPasswordIncorrect: {DisplayName: "Password Incorrect", Category: CategoryCredential,
		Description:    "The connection password is incorrect.",
		RequiredAction: "The user must provide the updated password (credential update or link).",
		Reason:         "CREDENTIALS_REJECTED", CanReconnect: true},
	ConnNewPasswordNeeded: {DisplayName: "New Password Needed", Category: CategoryCredential,
		Description:    "The utility website requires a new password to be created.",
		RequiredAction: "The user must reset the password on the utility website, then provide it.",
		Reason:         "PASSWORD_RESET_REQUIRED", CanReconnect: true},
	ConnAdditionalCredentialsNeeded: {DisplayName: "Additional Credentials Needed", Category: CategoryCredential,
		Description:    "The website requires additional information to proceed.",
		RequiredAction: "The user must provide the additional information (security questions, PIN).",
		Reason:         "ADDITIONAL_VERIFICATION_REQUIRED", CanReconnect: true},
	ConnCompanyInactive: {DisplayName: "Company Inactive", Category: CategorySystem,
		Description:    "The parent company has been deactivated.",
		RequiredAction: "Reactivate the company to resume collection.",
		Reason:         "COMPANY_DEACTIVATED"},
	ConnDeactivated: {DisplayName: "Deactivated", Category: CategorySystem,
		Description:    "Data collection has been deactivated with isActive false.",
		RequiredAction: "Set isActive back to true to activate collection.",
		Reason:         "COLLECTION_DEACTIVATED"},
}

// AccountStatus is the status of one utility account behind a connection.
type AccountStatus string

// Account statuses of the reference.
const (
	AcctDetected              AccountStatus = "DETECTED"
	AcctOnboarded             AccountStatus = "ONBOARDED"
	AcctPullCompleted         AccountStatus = "PULL_COMPLETED"
	AcctNoDocumentsFound      AccountStatus = "NO_DOCUMENTS_FOUND"
	AcctPDFDownloadFailed     AccountStatus = "PDF_DOWNLOAD_FAILED"
	AcctAccountNotFound       AccountStatus = "ACCOUNT_NOT_FOUND"
	AcctWorkflowNotAccessible AccountStatus = "WORKFLOW_NOT_ACCESSIBLE"
	AcctOtherError            AccountStatus = "OTHER_ERROR"
	AcctOldAccount            AccountStatus = "OLD_ACCOUNT"
	AcctDuplicate             AccountStatus = "DUPLICATE"
	AcctCustomerNotTracked    AccountStatus = "CUSTOMER_NOT_TRACKED"
	AcctCompanyInactive       AccountStatus = "COMPANY_INACTIVE"
)

var accountInfo = map[AccountStatus]Info{
	AcctDetected: {DisplayName: "Detected", Category: CategoryHealthy,
		Description:    "The account has been discovered but not yet onboarded.",
		RequiredAction: "Confirm (track) or reject the account.",
		Reason:         "AWAITING_CONFIRMATION", CanReconnect: false},
	AcctOnboarded: {DisplayName: "Onboarded", Category: CategoryHealthy,
		Description:    "The account has been confirmed and is actively tracked.",
		RequiredAction: "Nothing: bills are pulled on the next check.",
		Reason:         "TRACKED", CanRefresh: true},
	AcctPullCompleted: {DisplayName: "Pull Completed", Category: CategoryHealthy,
		Description:    "Data has been successfully pulled and processed.",
		RequiredAction: "Nothing: data is flowing.",
		Reason:         "HEALTHY", CanRefresh: true},
	AcctNoDocumentsFound: {DisplayName: "No Documents Found", Category: CategoryProviderError,
		Description:    "No documents were found for this account.",
		RequiredAction: "May resolve when the provider publishes a bill; retried weekly.",
		Reason:         "NO_DOCUMENTS", CanRefresh: true},
	AcctPDFDownloadFailed: {DisplayName: "PDF Download Failed", Category: CategoryProviderError,
		Description:    "Documents were available, but there was an issue downloading them.",
		RequiredAction: "None: retried on the next weekly check.",
		Reason:         "DOWNLOAD_FAILED", CanRefresh: true},
	AcctAccountNotFound: {DisplayName: "Account Not Found", Category: CategoryProviderError,
		Description:    "The account could not be located on the connection's website.",
		RequiredAction: "If persistent, mark the account old or reconnect with the right login.",
		Reason:         "NOT_ON_WEBSITE", CanRefresh: true, CanReconnect: true},
	AcctWorkflowNotAccessible: {DisplayName: "Workflow Not Accessible", Category: CategoryProviderError,
		Description:    "There was a larger issue with the connection (e.g. password incorrect).",
		RequiredAction: "Resolve the connection's status; the account follows.",
		Reason:         "CONNECTION_ERROR", CanRefresh: true, CanReconnect: true},
	AcctOtherError: {DisplayName: "Other Error", Category: CategoryProviderError,
		Description:    "An issue not covered by an existing status.",
		RequiredAction: "May resolve on retry; if persistent, contact support.",
		Reason:         "UNKNOWN_ERROR", CanRefresh: true},
	AcctOldAccount: {DisplayName: "Old Account", Category: CategoryTerminal,
		Description:    "This account has been closed and will not have new data.",
		RequiredAction: "None: the account is no longer pulled.",
		Reason:         "CLOSED"},
	AcctDuplicate: {DisplayName: "Duplicate", Category: CategoryTerminal,
		Description:    "This account is a duplicate of another account.",
		RequiredAction: "None: the other account is pulled instead.",
		Reason:         "DUPLICATE"},
	AcctCustomerNotTracked: {DisplayName: "Customer Not Tracked", Category: CategoryTerminal,
		Description:    "The client has elected not to track this account.",
		RequiredAction: "Confirm the account to start tracking it.",
		Reason:         "NOT_TRACKED"},
	AcctCompanyInactive: {DisplayName: "Company Inactive", Category: CategoryTerminal,
		Description:    "The parent company has been deactivated.",
		RequiredAction: "Reactivate the company to resume collection.",
		Reason:         "COMPANY_DEACTIVATED"},
}

func init() {
	for s, in := range connectionInfo {
		in.Value = string(s)
		connectionInfo[s] = in
	}
	for s, in := range accountInfo {
		in.Value = string(s)
		accountInfo[s] = in
	}
}

// ConnectionStatuses lists every connection status in the reference's order.
var ConnectionStatuses = []ConnectionStatus{
	ConnPending, ConnUnderInvestigation, ConnConnected,
	ConnWebsiteDown, ConnURLInaccessible, ConnNoAccountsFound, ConnOtherError,
	ConnMFATokenExpired, ConnPasswordIncorrect, ConnNewPasswordNeeded, ConnAdditionalCredentialsNeeded,
	ConnCompanyInactive, ConnDeactivated,
}

// AccountStatuses lists every account status in the reference's order.
var AccountStatuses = []AccountStatus{
	AcctDetected, AcctOnboarded, AcctPullCompleted,
	AcctNoDocumentsFound, AcctPDFDownloadFailed, AcctAccountNotFound, AcctWorkflowNotAccessible, AcctOtherError,
	AcctOldAccount, AcctDuplicate, AcctCustomerNotTracked, AcctCompanyInactive,
}

// Info returns the description of s; ok is false for an unknown status.
func (s ConnectionStatus) Info() (Info, bool) { in, ok := connectionInfo[s]; return in, ok }

// Valid reports whether s is one of the connection statuses.
func (s ConnectionStatus) Valid() bool { _, ok := connectionInfo[s]; return ok }

// Category returns the category of s (empty for an unknown status).
func (s ConnectionStatus) Category() Category { return connectionInfo[s].Category }

// CredentialBlocked reports whether s needs the user's new credentials before
// the connection is checked again.
func (s ConnectionStatus) CredentialBlocked() bool { return s.Category() == CategoryCredential }

// IsError reports whether s is a connection-level failure (credential,
// website, no accounts, other error): such a result sets every non-terminal
// account to WORKFLOW_NOT_ACCESSIBLE.
func (s ConnectionStatus) IsError() bool {
	c := s.Category()
	return c == CategoryCredential || c == CategoryProviderError
}

// ProviderFailure reports the provider-side errors a check can end in
// (WEBSITE_DOWN, URL_INACCESSIBLE, NO_ACCOUNTS_FOUND, OTHER_ERROR): the
// ones that count towards escalation to UNDER_INVESTIGATION.
func (s ConnectionStatus) ProviderFailure() bool { return s.Category() == CategoryProviderError }

// ReasonContinuedFailures is the statusReason of a connection escalated to
// UNDER_INVESTIGATION automatically, after continued provider failures
// (the status's own reason, MANUAL_REVIEW, is an operator's flag).
const ReasonContinuedFailures = "CONTINUED_FAILURES"

// Info returns the description of s; ok is false for an unknown status.
func (s AccountStatus) Info() (Info, bool) { in, ok := accountInfo[s]; return in, ok }

// Valid reports whether s is one of the account statuses.
func (s AccountStatus) Valid() bool { _, ok := accountInfo[s]; return ok }

// Category returns the category of s (empty for an unknown status).
func (s AccountStatus) Category() Category { return accountInfo[s].Category }

// Terminal reports whether s is terminal: such an account is never pulled and
// its status is left alone by checks.
func (s AccountStatus) Terminal() bool { return s.Category() == CategoryTerminal }

// ParseConnectionStatus parses an API value (case-insensitive, surrounding
// space ignored). An unknown value is an error listing the valid ones.
func ParseConnectionStatus(v string) (ConnectionStatus, error) {
	s := ConnectionStatus(strings.ToUpper(strings.TrimSpace(v)))
	if s.Valid() {
		return s, nil
	}
	return "", &UnknownValueError{Kind: "connection status", Value: v, Valid: names(ConnectionStatuses)}
}

// ParseAccountStatus parses an API value like ParseConnectionStatus.
func ParseAccountStatus(v string) (AccountStatus, error) {
	s := AccountStatus(strings.ToUpper(strings.TrimSpace(v)))
	if s.Valid() {
		return s, nil
	}
	return "", &UnknownValueError{Kind: "account status", Value: v, Valid: names(AccountStatuses)}
}

// TrackingStatus is the customer's decision about tracking an account.
type TrackingStatus string

// Tracking decisions of the reference.
const (
	TrackingUnset    TrackingStatus = "UNSET"
	TrackingEnabled  TrackingStatus = "ENABLED"
	TrackingDisabled TrackingStatus = "DISABLED"
)

// TrackingStatuses lists every tracking decision.
var TrackingStatuses = []TrackingStatus{TrackingUnset, TrackingEnabled, TrackingDisabled}

// ParseTrackingStatus parses a tracking decision like ParseConnectionStatus.
func ParseTrackingStatus(v string) (TrackingStatus, error) {
	s := TrackingStatus(strings.ToUpper(strings.TrimSpace(v)))
	for _, t := range TrackingStatuses {
		if s == t {
			return s, nil
		}
	}
	return "", &UnknownValueError{Kind: "tracking status", Value: v, Valid: names(TrackingStatuses)}
}

// UnknownValueError reports a value outside a closed vocabulary, with the
// values that would have been accepted.
type UnknownValueError struct {
	Kind  string
	Value string
	Valid []string
}

func (e *UnknownValueError) Error() string {
	return fmt.Sprintf("unknown %s %q: valid values are %s", e.Kind, e.Value, strings.Join(e.Valid, ", "))
}

func names[T ~string](vs []T) []string {
	out := make([]string, len(vs))
	for i, v := range vs {
		out[i] = string(v)
	}
	return out
}

// ConnectionInfos returns the description of every connection status, in the
// reference's order.
func ConnectionInfos() []Info {
	out := make([]Info, 0, len(ConnectionStatuses))
	for _, s := range ConnectionStatuses {
		out = append(out, connectionInfo[s])
	}
	return out
}

// AccountInfos returns the description of every account status, in the
// reference's order.
func AccountInfos() []Info {
	out := make([]Info, 0, len(AccountStatuses))
	for _, s := range AccountStatuses {
		out = append(out, accountInfo[s])
	}
	return out
}
