package agentbackend

import (
	"context"
	"errors"
	"io/fs"
	"os"

	"golang.org/x/sys/unix"

	"github.com/agentbackend/agentbackend/internal/sandbox"
)

// masker computes a command's masks from the open directory the sandbox
// will bind as its workspace (a scope's permissions; see maskExec).
type masker func(ctx context.Context, top maskDir) ([]sandbox.Mask, error)

// sandboxMasks returns the masks of a command about to run in bubblewrap
// with the directory d as its workspace: masker walks d itself, on a
// descriptor of its own (d's is shared), and each read-only path is then
// opened (O_PATH, beneath d, without following a final link) so that
// bwrap binds the file that was judged, not whatever a concurrent command
// swapped in at its name since. A path gone, or become a link, is
// dropped: nothing is left there to protect.
func (b *LocalBackend) sandboxMasks(ctx context.Context, d *dirHandle, m masker) ([]sandbox.Mask, error) {
	if m == nil {
		return nil, nil
	}
	f, err := d.fsys.OpenFile(".", unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, b.fileErr(CodeExecError, "exec", ".", err)
	}
	masks, err := m(ctx, fdDir{f})
	f.Close()
	if err != nil {
		return nil, err
	}
	out := masks[:0]
	for _, m := range masks {
		if m.Hide {
			out = append(out, m)
			continue
		}
		f, err := d.fsys.OpenFile(m.Path, unix.O_PATH|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			for _, m := range out {
				if m.File != nil {
					m.File.Close()
				}
			}
			return nil, b.fileErr(CodeExecError, "exec", m.Path, err)
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

// fdDir is an open directory that a mask walk reads and goes down from
// with openat, never through a link.
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
