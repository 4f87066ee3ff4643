package agentbackend

import (
	"errors"
	"io/fs"
	"os"

	"golang.org/x/sys/unix"

	"github.com/agentbackend/agentbackend/internal/sandbox"
)

// openMasks prepares a scope's masks for the sandbox: each read-only path
// is opened (O_PATH, through the workspace's os.Root, without following a
// final link) so that bwrap binds the file that was judged, not whatever a
// concurrent command swapped in at its name since. A path gone, or become
// a link, is dropped: nothing is left there to protect. Without bwrap
// there is nothing to do.
func (b *LocalBackend) openMasks(masks []sandbox.Mask) ([]sandbox.Mask, error) {
	if b.bwrap == nil || len(masks) == 0 {
		return nil, nil
	}
	out := make([]sandbox.Mask, 0, len(masks))
	fail := func(err error) ([]sandbox.Mask, error) {
		for _, m := range out {
			if m.File != nil {
				m.File.Close()
			}
		}
		return nil, err
	}
	for _, m := range masks {
		if m.Hide {
			out = append(out, m)
			continue
		}
		f, err := b.fsys.OpenFile(m.Path, unix.O_PATH|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			return fail(b.fileErr(CodeExecError, "exec", m.Path, err))
		}
		if fi, err := f.Stat(); err != nil || fi.Mode()&fs.ModeSymlink != 0 {
			f.Close()
			continue
		}
		m.File = f
		out = append(out, m)
	}
	return out, nil
}

// openMaskDir opens the directory rel of the workspace for a mask walk,
// which then goes down with openat, one directory at a time, never
// through a link.
func (b *LocalBackend) openMaskDir(rel string) (maskDir, error) {
	f, err := b.fsys.OpenFile(rel, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, b.fileErr(CodeExecError, "exec", rel, err)
	}
	return fdDir{f}, nil
}

// fdDir is an open directory.
type fdDir struct{ f *os.File }

func (d fdDir) ReadDir(n int) ([]fs.DirEntry, error) { return d.f.ReadDir(n) }
func (d fdDir) Close() error                         { return d.f.Close() }

func (d fdDir) Sub(name string) (maskDir, error) {
	rc, err := d.f.SyscallConn()
	if err != nil {
		return nil, err
	}
	fd := -1
	var oerr error
	if err := rc.Control(func(dirfd uintptr) {
		fd, oerr = unix.Openat(int(dirfd), name, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	}); err != nil {
		return nil, err
	}
	if oerr != nil {
		return nil, oerr
	}
	return fdDir{os.NewFile(uintptr(fd), name)}, nil
}
