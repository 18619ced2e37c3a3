package version

import (
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"strings"
	"testing"
)

func TestGet(t *testing.T) {
	t.Parallel()
	build := func(version string, settings ...string) func() (*debug.BuildInfo, bool) {
		return func() (*debug.BuildInfo, bool) {
			bi := &debug.BuildInfo{Main: debug.Module{Version: version}}
			for i := 0; i+1 < len(settings); i += 2 {
				bi.Settings = append(bi.Settings, debug.BuildSetting{Key: settings[i], Value: settings[i+1]})
			}
			return bi, true
		}
	}
	none := func() (*debug.BuildInfo, bool) { return nil, false }
	for _, c := range []struct {
		name                    string
		stampedV, stampedC      string
		read                    func() (*debug.BuildInfo, bool)
		wantVersion, wantCommit string
	}{
		{"stamped wins", "v1.2.0", "3f9c1e2", build("v0.0.0-x", "vcs.revision", "ffffffffffffffffff"), "v1.2.0", "3f9c1e2"},
		{"recorded by go build", "", "", build("(devel)", "vcs.revision", "0123456789abcdef0123", "vcs.modified", "false"), "(devel)", "0123456789ab"},
		{"a modified checkout", "", "", build("v1.3.0", "vcs.revision", "0123456789abcdef0123", "vcs.modified", "true"), "v1.3.0", "0123456789ab+dirty"},
		{"no VCS information", "", "", build("(devel)"), "(devel)", "unknown"},
		{"no build information", "", "", none, "unknown", "unknown"},
	} {
		got := get(c.stampedV, c.stampedC, c.read)
		if got.Version != c.wantVersion || got.Commit != c.wantCommit || got.Go != runtime.Version() {
			t.Errorf("%s: %+v, want version %q commit %q", c.name, got, c.wantVersion, c.wantCommit)
		}
	}
	if s := (Info{Version: "v1.2.0", Commit: "3f9c1e2", Go: "go1.26.8"}).String(); s != "v1.2.0 (commit 3f9c1e2, go1.26.8)" {
		t.Errorf("String() = %q", s)
	}
}

// TestBinariesPrintVersion builds checkd and checkctl as make build does
// (-ldflags) and plainly, and runs --version on each.
func TestBinariesPrintVersion(t *testing.T) {
	if testing.Short() {
		t.Skip("builds two binaries twice")
	}
	goBin := filepath.Join(runtime.GOROOT(), "bin", "go")
	stamped, plain := t.TempDir(), t.TempDir()
	const ldflags = "-X github.com/checkd/checkd/internal/version.version=v9.8.7 -X github.com/checkd/checkd/internal/version.commit=cafe123"
	for _, b := range []struct{ dir, ldflags string }{{stamped, ldflags}, {plain, ""}} {
		cmd := exec.Command(goBin, "build", "-ldflags", b.ldflags, "-o", b.dir+string(os.PathSeparator), "../../cmd/checkd", "../../cmd/checkctl")
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("go build: %v\n%s", err, out)
		}
	}
	// What the toolchain recorded in the plain build: the commit when it
	// stamped VCS information (not with -buildvcs=false, nor in a git
	// worktree, which cmd/go does not recognise), else none.
	wantCommit := "unknown"
	meta, err := exec.Command(goBin, "version", "-m", filepath.Join(plain, "checkd")).Output()
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(meta), "\n") {
		if f := strings.Fields(line); len(f) == 2 && f[0] == "build" && strings.HasPrefix(f[1], "vcs.revision=") {
			wantCommit = strings.TrimPrefix(f[1], "vcs.revision=")[:12]
		}
	}
	for _, name := range []string{"checkd", "checkctl"} {
		out, err := exec.Command(filepath.Join(stamped, name), "--version").Output()
		if want := name + " v9.8.7 (commit cafe123, " + runtime.Version() + ")\n"; err != nil || string(out) != want {
			t.Errorf("stamped %s --version: %q (%v), want %q", name, out, err, want)
		}
		out, err = exec.Command(filepath.Join(plain, name), "--version").Output()
		if err != nil || !strings.HasPrefix(string(out), name+" ") || !strings.Contains(string(out), "(commit "+wantCommit) {
			t.Errorf("plain %s --version: %q (%v), want the commit Go recorded (%s)", name, out, err, wantCommit)
		}
	}
}
