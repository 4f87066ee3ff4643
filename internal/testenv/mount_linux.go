package testenv

import (
	"strconv"
	"syscall"
	"testing"
)

// MountTmpfs mounts a tmpfs of size bytes on a new temporary directory and
// returns it; it is unmounted when t ends. It needs the right to mount
// (part "mount": root, or CAP_SYS_ADMIN), for tests of a full disk.
func MountTmpfs(t testing.TB, size int64) string {
	t.Helper()
	dir := t.TempDir()
	err := syscall.Mount("tmpfs", dir, "tmpfs", 0, "size="+strconv.FormatInt(size, 10))
	Need(t, "mount", err == nil, "cannot mount a tmpfs: "+errText(err))
	t.Cleanup(func() { _ = syscall.Unmount(dir, syscall.MNT_DETACH) })
	return dir
}

func errText(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}
