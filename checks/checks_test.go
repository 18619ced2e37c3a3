package checks

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"
)

func TestVocabularyComplete(t *testing.T) {
	t.Parallel()
	if len(ConnectionStatuses) != 13 || len(AccountStatuses) != 12 {
		t.Fatalf("%d connection and %d account statuses, want 13 and 12", len(ConnectionStatuses), len(AccountStatuses))
	}
	for _, in := range append(ConnectionInfos(), AccountInfos()...) {
		if in.Value == "" || in.DisplayName == "" || in.Category == "" || in.Description == "" || in.RequiredAction == "" || in.Reason == "" {
			t.Errorf("%s: incomplete info %+v", in.Value, in)
		}
	}
	for _, s := range ConnectionStatuses {
		if in, ok := s.Info(); !ok || in.Value != string(s) {
			t.Errorf("%s: Info = %+v, %v", s, in, ok)
		}
	}
}

func TestCategoriesFollowTheSeeds(t *testing.T) {
	t.Parallel()
	cases := []struct {
		status     ConnectionStatus
		category   Category
		blocked    bool
		isError    bool
		canRefresh bool
	}{
		{ConnPending, CategoryHealthy, false, false, true},
		{ConnUnderInvestigation, CategoryHealthy, false, false, true},
		{ConnConnected, CategoryHealthy, false, false, true},
		{ConnWebsiteDown, CategoryProviderError, false, true, true},
		{ConnURLInaccessible, CategoryProviderError, false, true, true},
		{ConnNoAccountsFound, CategoryProviderError, false, true, true},
		{ConnOtherError, CategoryProviderError, false, true, true},
		{ConnMFATokenExpired, CategoryCredential, true, true, false},
		{ConnPasswordIncorrect, CategoryCredential, true, true, false},
		{ConnNewPasswordNeeded, CategoryCredential, true, true, false},
		{ConnAdditionalCredentialsNeeded, CategoryCredential, true, true, false},
		{ConnCompanyInactive, CategorySystem, false, false, false},
		{ConnDeactivated, CategorySystem, false, false, false},
	}
	for _, c := range cases {
		in, _ := c.status.Info()
		if c.status.Category() != c.category || c.status.CredentialBlocked() != c.blocked || c.status.IsError() != c.isError || in.CanRefresh != c.canRefresh {
			t.Errorf("%s: category=%s blocked=%v error=%v canRefresh=%v, want %+v", c.status, c.status.Category(),
				c.status.CredentialBlocked(), c.status.IsError(), in.CanRefresh, c)
		}
		if c.blocked && !in.CanReconnect {
			t.Errorf("%s: a credential status must allow reconnecting", c.status)
		}
	}
	terminal := map[AccountStatus]bool{AcctOldAccount: true, AcctDuplicate: true, AcctCustomerNotTracked: true, AcctCompanyInactive: true}
	for _, s := range AccountStatuses {
		if s.Terminal() != terminal[s] {
			t.Errorf("%s: terminal = %v", s, s.Terminal())
		}
	}
}

func TestParse(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		in   string
		want ConnectionStatus
		err  bool
	}{
		{"CONNECTED", ConnConnected, false},
		{" password_incorrect ", ConnPasswordIncorrect, false},
		{"DEACTIVATED", ConnDeactivated, false},
		{"CONNECTED_ISH", "", true},
		{"", "", true},
	} {
		got, err := ParseConnectionStatus(c.in)
		if got != c.want || (err != nil) != c.err {
			t.Errorf("ParseConnectionStatus(%q) = %q, %v", c.in, got, err)
		}
		if err != nil {
			var uv *UnknownValueError
			if !errors.As(err, &uv) || len(uv.Valid) != 13 || !strings.Contains(err.Error(), "PASSWORD_INCORRECT") {
				t.Errorf("error %v does not list the valid values", err)
			}
		}
	}
	if s, err := ParseAccountStatus("pull_completed"); err != nil || s != AcctPullCompleted {
		t.Errorf("ParseAccountStatus: %q %v", s, err)
	}
	if _, err := ParseAccountStatus("CONNECTED"); err == nil || !strings.Contains(err.Error(), "WORKFLOW_NOT_ACCESSIBLE") {
		t.Errorf("ParseAccountStatus(CONNECTED): %v", err)
	}
	if s, err := ParseTrackingStatus("enabled"); err != nil || s != TrackingEnabled {
		t.Errorf("ParseTrackingStatus: %q %v", s, err)
	}
	if _, err := ParseTrackingStatus("ON"); err == nil || !strings.Contains(err.Error(), "UNSET, ENABLED, DISABLED") {
		t.Errorf("ParseTrackingStatus(ON): %v", err)
	}
}

func FuzzParseConnectionStatus(f *testing.F) {
	for _, s := range ConnectionStatuses {
		f.Add(string(s))
	}
	f.Add("pEnDiNg\n")
	f.Add("\xff")
	f.Fuzz(func(t *testing.T, v string) {
		s, err := ParseConnectionStatus(v)
		if err == nil {
			if !s.Valid() || !strings.EqualFold(strings.TrimSpace(v), string(s)) {
				t.Fatalf("accepted %q as %q", v, s)
			}
			return
		}
		if s != "" || !strings.Contains(err.Error(), "valid values are") {
			t.Fatalf("rejection of %q: %q, %v", v, s, err)
		}
	})
}

func FuzzParseAccountStatus(f *testing.F) {
	for _, s := range AccountStatuses {
		f.Add(string(s))
	}
	f.Fuzz(func(t *testing.T, v string) {
		s, err := ParseAccountStatus(v)
		if (err == nil) != s.Valid() {
			t.Fatalf("%q: %q, %v", v, s, err)
		}
	})
}

func TestEligibility(t *testing.T) {
	t.Parallel()
	cases := []struct {
		status                ConnectionStatus
		active, companyActive bool
		want                  Skip
	}{
		{ConnConnected, true, true, SkipNone},
		{ConnPending, true, true, SkipNone},
		{ConnWebsiteDown, true, true, SkipNone},
		{ConnUnderInvestigation, true, true, SkipNone},
		{ConnPasswordIncorrect, true, true, SkipCredentialBlocked},
		{ConnMFATokenExpired, true, true, SkipCredentialBlocked},
		{ConnNewPasswordNeeded, true, true, SkipCredentialBlocked},
		{ConnAdditionalCredentialsNeeded, true, true, SkipCredentialBlocked},
		{ConnDeactivated, false, true, SkipDeactivated},
		{ConnConnected, false, true, SkipDeactivated},
		{ConnCompanyInactive, true, false, SkipCompanyInactive},
		{ConnConnected, true, false, SkipCompanyInactive},
		{ConnPasswordIncorrect, false, false, SkipCompanyInactive},
	}
	for _, c := range cases {
		if got := Eligibility(c.status, c.active, c.companyActive); got != c.want {
			t.Errorf("Eligibility(%s, %v, %v) = %q, want %q", c.status, c.active, c.companyActive, got, c.want)
		}
	}
	for _, s := range AccountStatuses {
		for _, tr := range TrackingStatuses {
			want := tr == TrackingEnabled && !s.Terminal()
			if Pullable(s, tr) != want {
				t.Errorf("Pullable(%s, %s) = %v", s, tr, !want)
			}
		}
	}
}

func TestResultValidate(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name string
		r    Result
		ok   bool
	}{
		{"connected", Result{Status: ConnConnected, Accounts: []AccountResult{{Number: "1", Status: AcctPullCompleted}, {Number: "2"}}}, true},
		{"error", Result{Status: ConnPasswordIncorrect, Detail: "x"}, true},
		{"unknown", Result{Status: "FINE"}, false},
		{"pending", Result{Status: ConnPending}, false},
		{"deactivated", Result{Status: ConnDeactivated}, false},
		{"under investigation", Result{Status: ConnUnderInvestigation}, false}, // the operations team's flag
		{"no number", Result{Status: ConnConnected, Accounts: []AccountResult{{}}}, false},
		{"twice", Result{Status: ConnConnected, Accounts: []AccountResult{{Number: "1"}, {Number: "1"}}}, false},
		{"terminal outcome", Result{Status: ConnConnected, Accounts: []AccountResult{{Number: "1", Status: AcctOldAccount}}}, false},
	}
	for _, c := range cases {
		if err := c.r.Validate(); (err == nil) != c.ok {
			t.Errorf("%s: Validate = %v", c.name, err)
		}
	}
}

func TestResultNormalized(t *testing.T) {
	t.Parallel()
	acct := []AccountResult{{Number: "1"}}
	for _, c := range []struct {
		name string
		in   Result
		want Result
	}{
		{"connected with accounts", Result{Status: ConnConnected, Accounts: acct}, Result{Status: ConnConnected, Accounts: acct}},
		{"connected without accounts", Result{Status: ConnConnected, Detail: "x"}, Result{Status: ConnNoAccountsFound, Detail: NoAccountsDetail}},
		{"error without accounts", Result{Status: ConnWebsiteDown, Detail: "503"}, Result{Status: ConnWebsiteDown, Detail: "503"}},
	} {
		got := c.in.Normalized()
		if got.Status != c.want.Status || got.Detail != c.want.Detail || len(got.Accounts) != len(c.want.Accounts) {
			t.Errorf("%s: Normalized = %+v, want %+v", c.name, got, c.want)
		}
		if err := got.Validate(); err != nil {
			t.Errorf("%s: normalized result invalid: %v", c.name, err)
		}
	}
}

func TestRegistry(t *testing.T) {
	t.Parallel()
	r := NewRegistry()
	noop := CheckerFunc(func(context.Context, Request) (Result, error) { return Result{Status: ConnConnected}, nil })
	if err := r.Register("b", noop); err != nil {
		t.Fatal(err)
	}
	if err := r.Register("a", noop); err != nil {
		t.Fatal(err)
	}
	if err := r.Register("a", noop); err == nil {
		t.Fatal("registered a datasource twice")
	}
	if err := r.Register("", noop); err == nil {
		t.Fatal("registered an empty name")
	}
	if got := r.Names(); strings.Join(got, ",") != "a,b" {
		t.Fatalf("Names = %v", got)
	}
	if _, err := r.Lookup("zz"); err == nil || !strings.Contains(err.Error(), "a, b") {
		t.Fatalf("Lookup unknown: %v", err)
	}
	c, err := r.Lookup("a")
	if err != nil {
		t.Fatal(err)
	}
	if res, _ := c.Check(context.Background(), Request{}); res.Status != ConnConnected {
		t.Fatalf("checker not called: %+v", res)
	}
}

func TestCredentialsNeverPrintTheSecret(t *testing.T) {
	t.Parallel()
	c := Credentials{Username: "u", Password: "hunter2"}
	for _, s := range []string{fmt.Sprint(c), fmt.Sprintf("%v", c), fmt.Sprintf("%+v", c), fmt.Sprintf("%#v", c), fmt.Sprintf("%s", c)} {
		if strings.Contains(s, "hunter2") {
			t.Fatalf("credentials printed their password: %s", s)
		}
	}
}

func TestNextSlot(t *testing.T) {
	t.Parallel()
	const week = 7 * 24 * time.Hour
	base := time.Date(2026, 5, 4, 13, 7, 0, 0, time.UTC)
	for i := 0; i < 2000; i++ {
		id := fmt.Sprintf("cn_%016d", i)
		n1 := NextSlot(id, base, week)
		if !n1.After(base) || n1.Sub(base) > week {
			t.Fatalf("%s: next slot %v not within (t, t+interval]", id, n1)
		}
		if n2 := NextSlot(id, n1, week); n2.Sub(n1) != week {
			t.Fatalf("%s: consecutive slots %v apart, want one interval", id, n2.Sub(n1))
		}
		if NextSlot(id, base.Add(time.Hour), week) != NextSlot(id, base.Add(time.Hour), week) {
			t.Fatal("slots are not stable")
		}
		if n1.Nanosecond()%int(time.Millisecond) != 0 {
			t.Fatalf("slot %v is not a whole millisecond", n1)
		}
	}
	if got := NextSlot("x", base, 0); !got.Equal(base) {
		t.Fatalf("zero interval: %v", got)
	}
}

func ExampleEligibility() {
	fmt.Printf("%q\n", Eligibility(ConnConnected, true, true))
	fmt.Println(Eligibility(ConnPasswordIncorrect, true, true))
	fmt.Println(Eligibility(ConnConnected, true, false))
	// Output:
	// ""
	// credentials must be updated before the next check
	// the company is inactive
}

func ExampleParseConnectionStatus() {
	s, _ := ParseConnectionStatus("website_down")
	in, _ := s.Info()
	fmt.Println(s, "-", in.DisplayName, "-", in.Category, "- refresh:", in.CanRefresh)
	_, err := ParseConnectionStatus("BROKEN")
	fmt.Println(err != nil)
	// Output:
	// WEBSITE_DOWN - Website Down - provider_error - refresh: true
	// true
}

// TestRetryAfterError: a Retry-After is temporary to code that knows only
// ErrTemporary, and its delay is found through wrapping.
func TestRetryAfterError(t *testing.T) {
	t.Parallel()
	cause := errors.New("checker answered 429")
	err := fmt.Errorf("check cn_1: %w", &RetryAfterError{Delay: 30 * time.Second, Err: cause})
	if !errors.Is(err, ErrTemporary) || !errors.Is(err, cause) {
		t.Errorf("%v: want it to wrap ErrTemporary and its cause", err)
	}
	if d, ok := RetryAfter(err); !ok || d != 30*time.Second {
		t.Errorf("RetryAfter(%v) = %s %v", err, d, ok)
	}
	if _, ok := RetryAfter(fmt.Errorf("x: %w", ErrTemporary)); ok {
		t.Error("a plain temporary error has a Retry-After")
	}
	if !strings.Contains(err.Error(), "retry after 30s") {
		t.Errorf("message %q does not say when", err)
	}
}
