//go:build unix && !linux

package sandbox

// waitExited has no portable non-reaping wait outside Linux, so the process
// group is not killed after a normal exit there: processes a command leaves
// in the background survive it (Kill still ends a running command's group).
func waitExited(int) bool { return false }
