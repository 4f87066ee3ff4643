// Package testenv decides whether a test that needs an outside part (bwrap,
// Docker, ripgrep, the npm reference packages) runs, skips or fails.
//
// The rule: a test whose part is missing skips, unless the comma-separated
// AGENTBE_REQUIRE environment variable names that part, in which case it
// fails. CI sets AGENTBE_REQUIRE so nothing it promises to test is skipped.
package testenv

import (
	"os"
	"os/exec"
	"slices"
	"strings"
	"testing"
)

// Required reports whether AGENTBE_REQUIRE names part.
func Required(part string) bool {
	return slices.Contains(strings.Split(os.Getenv("AGENTBE_REQUIRE"), ","), part)
}

// Need skips t when available is false, or fails it when part is required.
// why says what is missing and how to get it.
func Need(t testing.TB, part string, available bool, why string) {
	t.Helper()
	if available {
		return
	}
	if Required(part) {
		t.Fatalf("%s is required (AGENTBE_REQUIRE=%s) but unavailable: %s", part, os.Getenv("AGENTBE_REQUIRE"), why)
	}
	t.Skipf("%s unavailable, skipping: %s", part, why)
}

// NeedCommand needs an executable on PATH, under the part name part, and
// returns its path.
func NeedCommand(t testing.TB, part, command string) string {
	t.Helper()
	p, err := exec.LookPath(command)
	Need(t, part, err == nil, command+" not found on PATH")
	return p
}

// NeedBwrap needs a working bubblewrap (part "bwrap") and returns its path.
// Having the binary is not enough: some containers forbid the namespaces it
// needs, so it runs `true` once.
func NeedBwrap(t testing.TB) string {
	t.Helper()
	p := NeedCommand(t, "bwrap", "bwrap")
	out, err := exec.Command(p, "--ro-bind", "/", "/", "--unshare-all", "--", "/bin/true").CombinedOutput()
	Need(t, "bwrap", err == nil, "bwrap cannot create a sandbox here: "+strings.TrimSpace(string(out)))
	return p
}
