package agentbackend

import (
	"errors"
	"os"
	"sync/atomic"
	"syscall"

	"github.com/agentbackend/agentbackend/internal/pathjail"
)

// A scope of a LocalBackend works on a view of the backend whose root is
// the scope's directory (see jailer): a *LocalBackend that shares the
// backend's configuration, status and commands (localCore) and resolves
// every path beneath a directory handle of its own, opened beneath the
// handle of its parent (the backend, or the view of the enclosing scope).
// The kernel, through os.Root and *at system calls on that handle, keeps
// every operation inside the scope: a symbolic link that leads out of it,
// even to a sibling scope inside the workspace, is refused.
//
// The scope's directory is created on the first operation that writes, may
// be removed (Remove(".") through the scope) and created again, and may be
// renamed or replaced by whoever holds the parent. So the handle is cached
// and checked before each use: one stat of the scope's path from the
// workspace root, compared with the handle's device and inode. When they
// differ (or the path is gone) the handle is dropped and the directory
// opened again beneath the parent. The check only decides whether the
// cached handle is still the scope's directory; it never grants access by
// itself, since every handle was opened beneath its parent.

// dirHandle is an open directory that file operations resolve beneath: the
// workspace, or the directory of a scope.
type dirHandle struct {
	fsys      *os.Root
	file      *os.File     // the same directory, for *at system calls and bwrap --bind-fd
	id        dirID        // its identity, to check a scope's cached handle
	workspace bool         // the backend's own: lives as long as the backend
	refs      atomic.Int32 // a scope's: one for the cache, one per operation using it
}

// newLocalDir wraps an open root.
func newDirHandle(fsys *os.Root) (*dirHandle, error) {
	f, err := fsys.OpenFile(".", dirFlags, 0)
	if err != nil {
		fsys.Close()
		return nil, err
	}
	d := &dirHandle{fsys: fsys, file: f}
	if d.id, err = dirIDOf(f); err != nil {
		d.close()
		return nil, err
	}
	return d, nil
}

func (d *dirHandle) close() error { return errors.Join(d.file.Close(), d.fsys.Close()) }

// retain takes a reference to d unless it is being closed.
func (d *dirHandle) retain() bool {
	for {
		n := d.refs.Load()
		if n <= 0 {
			return false
		}
		if d.refs.CompareAndSwap(n, n+1) {
			return true
		}
	}
}

// release gives back a reference; the last one closes a scope's handle.
func (d *dirHandle) release() {
	if !d.workspace && d.refs.Add(-1) == 0 {
		d.close()
	}
}

// localJail is where the directory of a scope's view is: its path beneath
// the parent view, and the handle cached for it.
type localJail struct {
	parent *LocalBackend // the backend, or the view of the enclosing scope
	name   string        // the scope's directory relative to the parent's root
	full   string        // the same, relative to the workspace root, for the check
	cur    atomic.Pointer[dirHandle]
	closed atomic.Bool
}

var _ jailer = (*LocalBackend)(nil)

// jail returns the view of the directory dir (clean, relative, not ".") of
// b, for a scope.
func (b *LocalBackend) jail(dir string) (FileBackend, func()) {
	full := dir
	if b.view != nil {
		full = pathjail.JoinRel(b.view.full, dir)
	}
	j := &localJail{parent: b, name: dir, full: full}
	b.viewMu.Lock()
	if b.views == nil {
		b.views = map[*localJail]struct{}{}
	}
	b.views[j] = struct{}{}
	b.viewMu.Unlock()
	return &LocalBackend{localCore: b.localCore, root: joinRoot(b.root, dir), view: j}, j.close
}

// open returns the handle of the directory b's operations resolve beneath,
// to be given back with done. create makes a scope's missing directory
// (with its parents); without it a missing directory is ENOENT.
func (b *LocalBackend) open(create bool) (*dirHandle, error) {
	if b.view == nil {
		return b.dir, nil
	}
	return b.view.acquire(create)
}

// done gives back a handle from open.
func (b *LocalBackend) done(d *dirHandle) { d.release() }

// acquire returns the scope directory's handle, checked or opened anew.
func (j *localJail) acquire(create bool) (*dirHandle, error) {
	for {
		d := j.cur.Load()
		if d == nil {
			break
		}
		if !d.retain() {
			continue // dropped meanwhile: cur has changed
		}
		if j.current(d) {
			return d, nil
		}
		if j.cur.CompareAndSwap(d, nil) {
			d.release() // the cache's reference
		}
		d.release()
		break
	}
	d, err := j.openDir(create)
	if err != nil {
		return nil, err
	}
	d.refs.Store(2) // the cache's and the caller's
	if old := j.cur.Swap(d); old != nil {
		old.release()
	}
	if j.closed.Load() || j.parent.destroyed.Load() {
		j.drop() // closed meanwhile: nothing may stay cached
	}
	return d, nil
}

// current reports whether d is still the directory at the scope's path.
func (j *localJail) current(d *dirHandle) bool { return j.parent.top.holds(j.full, d.id) }

// openDir opens the scope's directory beneath its parent's handle, so
// links on the way are followed inside the parent only.
func (j *localJail) openDir(create bool) (*dirHandle, error) {
	pd, err := j.parent.open(create)
	if err != nil {
		return nil, err
	}
	defer j.parent.done(pd)
	// One element at a time (a link an agent of an enclosing scope
	// planted cannot take the scope into a sibling).
	r, err := pathjail.OpenBeneath(pd.fsys, j.name, create)
	if errors.Is(err, syscall.ENOTDIR) {
		err = syscall.ENOTDIR
	}
	if err != nil {
		return nil, err
	}
	return newDirHandle(r)
}

// close drops the cached handle for good, when the view's scope closes.
// Operations still using it keep it until they give it back.
func (j *localJail) close() {
	j.closed.Store(true)
	j.drop()
	core := j.parent.localCore
	core.viewMu.Lock()
	delete(core.views, j)
	core.viewMu.Unlock()
}

func (j *localJail) drop() {
	if d := j.cur.Swap(nil); d != nil {
		d.release()
	}
}
