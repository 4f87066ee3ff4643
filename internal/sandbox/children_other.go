//go:build unix && !linux

package sandbox

// childOf cannot tell without /proc; bubblewrap is Linux-only anyway.
func childOf(int) int { return 0 }

// awaitNamespace has nothing to wait for without bubblewrap.
func awaitNamespace(int) {}
