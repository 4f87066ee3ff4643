package pathjail

import (
	"errors"
	"io/fs"
	"os"
	"sync"
)

// rootEscape is the error os.Root returns for a path that a symbolic link
// leads out of the root. os does not export it, so the first root shown to
// LearnRootEscape provokes it once (an absolute name is refused before any
// system call).
var (
	rootEscapeOnce sync.Once
	rootEscape     error
)

// LearnRootEscape lets IsRootEscape recognise os.Root's escape error; call
// it with any open root before relying on IsRootEscape. Only the first call
// does anything.
func LearnRootEscape(r *os.Root) {
	rootEscapeOnce.Do(func() {
		_, err := r.Lstat("/")
		var pe *fs.PathError
		if errors.As(err, &pe) {
			rootEscape = pe.Err
		}
	})
}

// IsRootEscape reports whether err, or the cause beneath its
// *fs.PathError and *os.LinkError layers, is os.Root refusing a path that
// leaves the root.
func IsRootEscape(err error) bool {
	for rootEscape != nil {
		var pe *fs.PathError
		var le *os.LinkError
		switch {
		case errors.As(err, &pe):
			err = pe.Err
		case errors.As(err, &le):
			err = le.Err
		default:
			return err == rootEscape
		}
	}
	return false
}
