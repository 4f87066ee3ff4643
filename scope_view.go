package agentbackend

import (
	"context"
	"errors"

	"github.com/agentbackend/agentbackend/internal/pathjail"
)

// jailer is the optional capability of a backend to enforce a scope where
// its files are (see ScopedBackend): jail returns a view of the directory
// dir (clean, relative to the backend's root, not ".") whose root is that
// directory, and which resolves every path beneath it, following symbolic
// links inside it only. The directory need not exist yet. The view is a
// FileBackend with the backend's optional interfaces (InfoLister, Globber,
// Grepper, LinkResolver, ProcessStarter) working on that directory; it
// shares the backend's status and lifetime. Nobody closes it: release
// (nil when there is nothing to release) gives back what the view holds
// (a directory handle, sessions) when its scope closes. A view that is
// itself a jailer jails a child scope beneath it, so every level of nested
// scopes is resolved beneath its parent. jail returns a nil view when it
// cannot jail dir: the scope then falls back to the path rule alone
// (prefix arithmetic).
//
// It is unexported: the backends of this package implement it, and other
// FileBackend implementations get prefix arithmetic (documented on
// ScopedBackend).
type jailer interface {
	jail(dir string) (view FileBackend, release func())
}

var _ jailer = (*ScopedBackend)(nil)

// jail lets a scope stand where a backend is expected to jail (a route of
// a composite): the view is a child scope, unregistered, with this
// scope's environment and permissions.
func (s *ScopedBackend) jail(dir string) (FileBackend, func()) {
	child, err := newScope(s.base, nil, s, dir, nil)
	if err != nil {
		return nil, nil
	}
	return child, func() { child.Close() }
}

// baseRel returns a path of fs (as inner returned it) relative to the
// base's root, as permissions see it.
func (s *ScopedBackend) baseRel(at string) string { return pathjail.JoinRel(s.fsRoot, at) }

// fsPath returns a path relative to the base's root, inside the scope, as
// a path of fs (the inverse of baseRel).
func (s *ScopedBackend) fsPath(in string) string {
	at, _ := belowOrSame(s.fsRoot, in)
	return at
}

// realIn returns the real path, relative to the base's root, that in
// (relative to the base's root, inside the scope) leads to through
// symbolic links, as fs resolves them. s.links must be set.
func (s *ScopedBackend) realIn(ctx context.Context, in string) (string, error) {
	at := s.fsPath(in)
	real, err := s.links.RealPath(ctx, at)
	if err != nil {
		return "", withPath(err, at, in)
	}
	return s.baseRel(real), nil
}

// linkFreeFS is the optional capability of a backend to read and write a
// file by a path in which no element may be a symbolic link (LocalBackend
// on Linux: openat2 calls that follow none). A scope whose rules judge the
// real path a link leads to acts on exactly that path this way, so that a
// link swapped in between the check and the operation (by a command of the
// scope running meanwhile) makes the operation fail instead of leading to
// a file the rules deny. A link on the way is errLinkChanged: the scope
// checks again.
type linkFreeFS interface {
	readLinkFree(ctx context.Context, p string) ([]byte, error)
	writeLinkFree(ctx context.Context, p string, data []byte) error
}

// errLinkChanged is a link met where the check found none.
var errLinkChanged = errors.New("a symbolic link changed during the operation")

// maxLinkRechecks bounds how often an operation is checked again when a
// link keeps changing under it.
const maxLinkRechecks = 8
