//go:build unix

package agentbackend

import (
	"errors"
	"io/fs"
	"os"
	"syscall"

	"golang.org/x/sys/unix"

	"github.com/agentbackend/agentbackend/internal/tmpfile"
)

// haveWriteAt says writeOnceAt exists on this system.
const haveWriteAt = true

// writeOnceAt is writeOnce done with *at system calls on the parent
// directory's descriptor: the same steps as the portable writeOnceRoot
// (lstat, create the temporary file, write, keep mode and owner, rename),
// without what os.Root adds on top of each (a poller registration for the
// temporary file, an fstat to open the parent as a Root, a second lstat
// inside Root.Rename). It is what keeps an atomic write near the cost of a
// plain one on fast file systems such as tmpfs.
//
// The parent is reached through d's os.Root, and every call
// here takes a single name that is never followed (O_EXCL|O_NOFOLLOW,
// AT_SYMLINK_NOFOLLOW; rename does not follow its last elements), so
// nothing can leave that directory.
func (d *dirHandle) writeOnceAt(rel string, data []byte) (next string, err error) {
	dir, name := splitRel(rel)
	pf, err := d.openParentFile(dir)
	if err != nil {
		return "", err
	}
	if pf != d.file {
		defer pf.Close()
	}
	rc, err := pf.SyscallConn()
	if err != nil {
		return "", err
	}
	var werr error
	if err := rc.Control(func(fd uintptr) { next, werr = writeAt(int(fd), dir, name, data) }); err != nil {
		return "", err
	}
	return next, werr
}

// openParentFile opens the directory dir ("" or "a/b") below d, creating
// it when it is missing (only then). "" is d itself.
func (d *dirHandle) openParentFile(dir string) (*os.File, error) {
	if dir == "" {
		return d.file, nil
	}
	f, err := d.fsys.OpenFile(dir, dirFlags, 0)
	if errors.Is(err, fs.ErrNotExist) {
		if err = d.fsys.MkdirAll(dir, 0o755); err == nil {
			f, err = d.fsys.OpenFile(dir, dirFlags, 0)
		}
	}
	return f, err
}

// writeAt writes data to name in the directory dirfd (dir, relative to the
// workspace, only names the link targets it returns).
func writeAt(dirfd int, dir, name string, data []byte) (string, error) {
	var st unix.Stat_t
	err := ignoringEINTR(func() error { return unix.Fstatat(dirfd, name, &st, unix.AT_SYMLINK_NOFOLLOW) })
	existing := err == nil
	switch {
	case err == unix.ENOENT:
	case err != nil:
		return "", &fs.PathError{Op: "lstat", Path: name, Err: err}
	case st.Mode&unix.S_IFMT == unix.S_IFLNK:
		return linkTargetAt(dirfd, dir, name)
	case st.Mode&unix.S_IFMT == unix.S_IFDIR:
		return "", syscall.EISDIR
	}
	perm := uint32(0o644)
	if existing {
		perm = uint32(st.Mode) & 0o777
	}
	fd, err := tmpfile.OpenUnnamed(dirfd, perm, false)
	tmp := "" // the temporary file's name, when it has one from the start
	if err == tmpfile.ErrUnsupported {
		tmp, fd, err = createTempAt(dirfd, perm)
	}
	if err != nil {
		return "", &fs.PathError{Op: "open", Path: name, Err: err}
	}
	err = writeAll(fd, data)
	if err == nil && existing {
		err = keepOwnerAndModeAt(fd, perm, int(st.Uid), int(st.Gid))
	}
	if err == nil && writeFault != nil {
		err = writeFault("write")
	}
	if tmp == "" {
		if err == nil && writeFault != nil {
			err = writeFault("rename")
		}
		if err == nil {
			if perr := tmpfile.Publish(fd, dirfd, name, existing); perr != nil {
				err = &fs.PathError{Op: "rename", Path: name, Err: perr}
			}
		}
		unix.Close(fd) // unnamed unless published: nothing to clean up
		return "", err
	}
	if cerr := unix.Close(fd); err == nil && cerr != nil && cerr != unix.EINTR {
		err = &fs.PathError{Op: "close", Path: tmp, Err: cerr}
	}
	if err == nil && writeFault != nil {
		err = writeFault("rename")
	}
	if err == nil {
		if rerr := ignoringEINTR(func() error { return unix.Renameat(dirfd, tmp, dirfd, name) }); rerr != nil {
			err = &fs.PathError{Op: "rename", Path: name, Err: rerr}
		}
	}
	if err != nil {
		_ = unix.Unlinkat(dirfd, tmp, 0)
	}
	return "", err
}

// createTempAt creates the named temporary file of a write, where unnamed
// files are not supported.
func createTempAt(dirfd int, perm uint32) (string, int, error) {
	for attempt := 0; ; attempt++ {
		tmp := tmpfile.Name()
		var fd int
		err := ignoringEINTR(func() (err error) {
			fd, err = unix.Openat(dirfd, tmp, unix.O_WRONLY|unix.O_CREAT|unix.O_EXCL|unix.O_NOFOLLOW|unix.O_CLOEXEC, perm)
			return err
		})
		switch {
		case err == nil:
			return tmp, fd, nil
		case err == unix.EEXIST && attempt < 10: // another write drew the same name
		default:
			return "", -1, err
		}
	}
}

// linkTargetAt returns the workspace path the link dir+name points to, or
// errLinkEscapes (see linkTarget).
func linkTargetAt(dirfd int, dir, name string) (string, error) {
	buf := make([]byte, 256)
	for {
		n, err := unix.Readlinkat(dirfd, name, buf)
		if err != nil {
			return "", &fs.PathError{Op: "readlink", Path: name, Err: err}
		}
		if n < len(buf) {
			return resolveLink(dir, string(buf[:n]))
		}
		buf = make([]byte, 2*len(buf))
	}
}

func writeAll(fd int, data []byte) error {
	for len(data) > 0 {
		n, err := unix.Write(fd, data[:min(len(data), 1<<30)])
		switch {
		case err == unix.EINTR:
			continue
		case err != nil:
			return &fs.PathError{Op: "write", Path: "", Err: err}
		}
		data = data[n:]
	}
	return nil
}

// keepOwnerAndModeAt is keepOwnerAndMode on a descriptor.
func keepOwnerAndModeAt(fd int, perm uint32, uid, gid int) error {
	if err := ignoringEINTR(func() error { return unix.Fchmod(fd, perm) }); err != nil {
		return &fs.PathError{Op: "chmod", Path: "", Err: err}
	}
	if uid != processUID || gid != processGID {
		_ = unix.Fchown(fd, uid, gid) // best effort: only root may give files away
	}
	return nil
}

func ignoringEINTR(fn func() error) error {
	for {
		if err := fn(); err != unix.EINTR {
			return err
		}
	}
}
