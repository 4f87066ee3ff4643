//go:build !linux

package testenv

import "testing"

// MountTmpfs is Linux's: elsewhere the test skips (or fails when
// AGENTBE_REQUIRE names "mount").
func MountTmpfs(t testing.TB, size int64) string {
	t.Helper()
	Need(t, "mount", false, "tmpfs mounts are Linux's")
	return ""
}
