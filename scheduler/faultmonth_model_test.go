package scheduler_test

import (
	"strings"
	"testing"
	"time"

	"github.com/checkd/checkd/checks"
)

// TestFaultMonthRecheckModel drives the fault month's model of the
// re-check promise (fmRechecks) through the orders in which the workers'
// reports of overlapping checks of one connection arrive: the
// simulation's assertion must hold whenever the store's does (a
// connection stays listed until a check of it is attempted) and fail
// when a connection recorded not attempted had no login since.
func TestFaultMonthRecheckModel(t *testing.T) {
	t.Parallel()
	if !strings.Contains(notAttemptedEnd, "not attempted") {
		t.Fatalf("notAttemptedEnd %q: the month's read of the store would find no check not attempted", notAttemptedEnd)
	}
	const down, ok = checks.ConnWebsiteDown, checks.ConnConnected
	// Events: "begin T", "login T" (of conn X), "rec T <status>" (applied),
	// "stale T <status>" (recorded, not applied).
	cases := []struct {
		name    string
		events  []string
		waiting bool // X waits for a login at the end
		count   int  // checks counted not attempted
	}{
		{"not attempted, no login since: waits", []string{"begin B", "rec B down"}, true, 1},
		{"not attempted, then its re-check logs in", []string{"begin B", "rec B down", "begin R", "login R", "rec R ok"}, false, 1},
		{"not attempted, then a probe during the outage logs in and fails (the store forgets it then)",
			[]string{"begin B", "rec B down", "begin P", "login P", "rec P down"}, false, 1},
		{"the re-check's reports overtake the not-attempted one's",
			[]string{"begin B", "begin R", "login R", "rec R ok", "rec B down"}, false, 1},
		{"the not-attempted report lands between the re-check's login and its report of a site failure",
			[]string{"begin B", "begin R", "login R", "rec B down", "rec R down"}, false, 1},
		{"a login that began before the not-attempted check does not count",
			[]string{"begin A", "login A", "begin B", "rec B down", "rec A ok"}, true, 1},
		{"a login of a crashed delivery does not count for its redelivery",
			[]string{"begin B", "login B", "begin B", "rec B down"}, true, 1},
		{"a held call the worker gave up on is an attempted check", []string{"begin H", "login H", "rec H down"}, false, 0},
		{"a not-attempted check not applied is not counted (the store keeps it listed)", []string{"begin B", "stale B down"}, false, 0},
		{"a site failure logged in is not a check not attempted", []string{"begin A", "login A", "rec A down", "begin B", "rec B down"}, true, 1},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			m := newFMRechecks()
			at := time.Date(2026, 3, 24, 10, 0, 0, 0, time.UTC)
			for _, e := range tc.events {
				f := strings.Fields(e)
				st := checks.ConnectionStatus("")
				if len(f) == 3 {
					st = map[string]checks.ConnectionStatus{"down": down, "ok": ok}[f[2]]
				}
				switch f[0] {
				case "begin":
					m.begin(f[1])
				case "login":
					m.loggedIn(f[1], "X")
				case "rec", "stale":
					m.recorded(f[1], "X", f[0] == "rec", st, at)
				default:
					t.Fatalf("event %q", e)
				}
			}
			_, waits := m.waiting["X"]
			if waits != tc.waiting || m.count != tc.count {
				t.Fatalf("after %v: waiting %v, counted %d not attempted; want waiting %v, %d", tc.events, waits, m.count, tc.waiting, tc.count)
			}
		})
	}
}
