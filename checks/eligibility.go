package checks

// Skip says why a connection is not checked; the zero value means it is.
type Skip string

// Reasons a connection is not checked.
const (
	SkipNone              Skip = ""
	SkipCredentialBlocked Skip = "credentials must be updated before the next check"
	SkipDeactivated       Skip = "collection is deactivated (isActive false)"
	SkipCompanyInactive   Skip = "the company is inactive"
	// SkipServed: a check that started at or after the task's slot is
	// already recorded, so the task has nothing left to do (see
	// store.CheckTarget.Served). Not an eligibility rule.
	SkipServed Skip = "a check that started at or after this task's slot is already recorded"
)

// Eligibility decides whether a connection is checked, from its status, its
// isActive flag and its company's. The scheduler applies it when it enqueues
// and the worker again when the check runs, since an admin may act between.
func Eligibility(status ConnectionStatus, isActive, companyActive bool) Skip {
	switch {
	case !companyActive || status == ConnCompanyInactive:
		return SkipCompanyInactive
	case !isActive || status == ConnDeactivated:
		return SkipDeactivated
	case status.CredentialBlocked():
		return SkipCredentialBlocked
	}
	return SkipNone
}

// Pullable reports whether an account's bills are pulled on a check: it must
// be tracked and not in a terminal status.
func Pullable(status AccountStatus, tracking TrackingStatus) bool {
	return tracking == TrackingEnabled && !status.Terminal()
}
