//go:build !linux

package tmpfile

import "errors"

// ErrUnsupported says the system cannot make a file without a name: make a
// named temporary file instead.
var ErrUnsupported = errors.New("tmpfile: unnamed files are not supported here")

// OpenUnnamed is not available here: it returns ErrUnsupported.
func OpenUnnamed(dirfd int, perm uint32, read bool) (int, error) { return -1, ErrUnsupported }

// Publish is not available here (OpenUnnamed never succeeds).
func Publish(fd, dirfd int, name string, replace bool) error { return ErrUnsupported }
