//go:build !linux

package sandbox

// closeInherited does nothing here: bubblewrap, whose sandbox the
// descriptors would defeat, is Linux-only.
func closeInherited() {}
