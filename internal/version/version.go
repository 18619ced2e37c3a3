// Package version tells which build of checkd is running: the version and
// commit a release build stamps in with -ldflags (make build does), or else
// what the Go toolchain recorded in the binary (runtime/debug.ReadBuildInfo:
// the module version, and the VCS revision of a build in a git checkout).
//
//	go build -ldflags "-X github.com/checkd/checkd/internal/version.version=v1.2.0 \
//	    -X github.com/checkd/checkd/internal/version.commit=3f9c1e2" ./cmd/checkd
package version

import (
	"runtime"
	"runtime/debug"
	"strings"
)

// Stamped by -ldflags -X; empty in a plain go build.
var version, commit string

// Info is a build's identity.
type Info struct {
	// Version is the stamped version, else the module's version as Go
	// recorded it ("(devel)" for a build in a checkout without a tag
	// Go recognises), else "unknown".
	Version string
	// Commit is the stamped commit, else the VCS revision Go recorded
	// (shortened to 12 characters), with "+dirty" for a build of a
	// modified checkout; "unknown" without either.
	Commit string
	// Go is the toolchain's version.
	Go string
}

// Get returns the running binary's Info.
func Get() Info { return get(version, commit, debug.ReadBuildInfo) }

func get(stampedVersion, stampedCommit string, read func() (*debug.BuildInfo, bool)) Info {
	in := Info{Version: stampedVersion, Commit: stampedCommit, Go: runtime.Version()}
	bi, ok := read()
	if ok {
		if in.Version == "" {
			in.Version = bi.Main.Version
		}
		if in.Commit == "" {
			var rev, modified string
			for _, s := range bi.Settings {
				switch s.Key {
				case "vcs.revision":
					rev = s.Value
				case "vcs.modified":
					modified = s.Value
				}
			}
			if len(rev) > 12 {
				rev = rev[:12]
			}
			if rev != "" && modified == "true" {
				rev += "+dirty"
			}
			in.Commit = rev
		}
	}
	if in.Version == "" {
		in.Version = "unknown"
	}
	if in.Commit == "" {
		in.Commit = "unknown"
	}
	return in
}

// String is the one line a --version prints after the program's name:
// "v1.2.0 (commit 3f9c1e2, go1.26.8)".
func (i Info) String() string {
	return strings.Join([]string{i.Version, "(commit " + i.Commit + ",", i.Go + ")"}, " ")
}
