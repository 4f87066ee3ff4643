//go:build !unix

package fswatch

// dirFlags are none where the system has no such flags; there is no
// /proc/self/fd there either, so Start fails and callers scan instead.
const dirFlags = 0
