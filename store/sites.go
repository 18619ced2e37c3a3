package store

import (
	"fmt"
	"slices"
	"strings"

	"github.com/checkd/checkd/internal/termtext"
)

// Bounds of a connection's site assignments.
const (
	// MaxSiteIDs is how many sites one connection may be assigned.
	MaxSiteIDs = 100
	// MaxSiteIDLen bounds one site ID, in bytes.
	MaxSiteIDLen = 64
)

// siteProblems says what is wrong with a list of site IDs: at most
// MaxSiteIDs of them, each 1 to MaxSiteIDLen bytes without control
// characters (they are printed on operators' terminals), none twice.
func siteProblems(ids []string) []string {
	var problems []string
	if len(ids) > MaxSiteIDs {
		problems = append(problems, fmt.Sprintf("siteIds has %d entries; at most %d", len(ids), MaxSiteIDs))
	}
	seen := make(map[string]bool, len(ids))
	for i, id := range ids {
		switch {
		case id == "" || len(id) > MaxSiteIDLen:
			problems = append(problems, fmt.Sprintf("siteIds[%d] must be 1 to %d bytes", i, MaxSiteIDLen))
		case strings.ContainsFunc(id, termtext.Unsafe):
			problems = append(problems, fmt.Sprintf("siteIds[%d] must not contain control characters", i))
		case seen[id]:
			problems = append(problems, fmt.Sprintf("siteIds[%d] %q is given twice", i, id))
		}
		seen[id] = true
	}
	return problems
}

// ValidSiteID reports whether id can be a site ID (a listing's filter).
func ValidSiteID(id string) bool { return len(siteProblems([]string{id})) == 0 }

// hasSite reports whether the record is assigned site id.
func (r *connRec) hasSite(id string) bool { return slices.Contains(r.SiteIDs, id) }

// cloneSites is a copy of ids to store: nil when empty (the record leaves
// it out).
func cloneSites(ids []string) []string {
	if len(ids) == 0 {
		return nil
	}
	return slices.Clone(ids)
}
