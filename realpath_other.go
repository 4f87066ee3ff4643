//go:build !linux

package agentbackend

// linkFree reports false: without openat2 links are always followed one
// element at a time.
func (d *dirHandle) linkFree(string) bool { return false }
