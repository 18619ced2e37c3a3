// Package ci holds the one rule for tests that need something outside Go
// (redis-server, chromium, python3, a tool on PATH): they skip without it
// locally, and fail in CI (the CI environment variable is set), where
// every such test must run.
package ci

import (
	"os"
	"testing"
)

// Running reports whether the tests run in CI.
func Running() bool { return os.Getenv("CI") != "" }

// SkipOrFail fails tb in CI and skips it elsewhere, saying what is missing.
func SkipOrFail(tb testing.TB, format string, args ...any) {
	tb.Helper()
	if Running() {
		tb.Fatalf(format+" (CI must run this test)", args...)
		return // Fatalf ends the test; a recording TB returns
	}
	tb.Skipf(format+" (skipped locally; CI fails instead)", args...)
}
