package ci_test

import (
	"testing"

	"github.com/checkd/checkd/internal/testing/ci"
)

// recorder is a testing.TB that records whether it was failed or skipped.
type recorder struct {
	testing.TB
	failed, skipped bool
	msg             string
}

func (r *recorder) Helper() {}
func (r *recorder) Fatalf(format string, args ...any) {
	r.failed = true
	r.msg = format
}
func (r *recorder) Skipf(format string, args ...any) {
	r.skipped = true
	r.msg = format
}

func TestSkipOrFail(t *testing.T) {
	for _, tc := range []struct {
		env                string
		wantFail, wantSkip bool
	}{
		{env: "true", wantFail: true},
		{env: "", wantSkip: true},
	} {
		t.Run("CI="+tc.env, func(t *testing.T) {
			t.Setenv("CI", tc.env)
			r := &recorder{TB: t}
			ci.SkipOrFail(r, "redis-server is not installed")
			if r.failed != tc.wantFail || r.skipped != tc.wantSkip {
				t.Errorf("CI=%q: failed %v skipped %v, want %v %v (%q)", tc.env, r.failed, r.skipped, tc.wantFail, tc.wantSkip, r.msg)
			}
		})
	}
}
