//go:build !unix

package daemon

// oDirectory is none where the system has no such flag.
const oDirectory = 0
