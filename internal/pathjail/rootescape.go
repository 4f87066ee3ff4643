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

// IsRootEscape reports whether err (unwrapped from its PathError) is
// os.Root refusing a path that leaves the root.
func IsRootEscape(err error) bool { return rootEscape != nil && err == rootEscape }
